// Headless-browser driver for the collector's page test
// (collector/tests/web_page.rs). Launches Debian's Chromium through
// playwright-core and executes JSON commands, one per stdin line, answering
// one JSON line each on stdout:
//   {"op":"goto","url":...}            load a page
//   {"op":"wait","expr":...}           wait until a JS expression is truthy
//   {"op":"eval","expr":...}           evaluate an expression, return its value
//   {"op":"screenshot","path":...}     full-page PNG
//   {"op":"quit"}                      close the browser and exit
// The first line reports the Chromium PID so the test can kill it by PID.
// Every wait is bounded by timeout_ms (default 15 s).
import { chromium } from "playwright-core";
import readline from "node:readline";

const executablePath = process.env.SIPSENSOR_CHROMIUM || "/usr/bin/chromium";
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// launchServer gives a fresh temporary profile (user data dir) every time
// and exposes the browser's PID.
const server = await chromium.launchServer({
  executablePath,
  headless: true,
  timeout: 30000,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
say({ ready: true, chromium_pid: server.process().pid });

const browser = await chromium.connect(server.wsEndpoint());
// SIPSENSOR_HTTP_CREDENTIALS=user:password answers the server's basic-auth
// challenge, as a person does in the browser's log-in prompt.
const credentials = process.env.SIPSENSOR_HTTP_CREDENTIALS;
const colon = credentials ? credentials.indexOf(":") : -1;
const page = await browser.newPage({
  viewport: { width: 1280, height: 900 },
  ...(colon >= 0
    ? { httpCredentials: { username: credentials.slice(0, colon), password: credentials.slice(colon + 1) } }
    : {}),
});
page.on("console", (m) => process.stderr.write(`[page ${m.type()}] ${m.text()}\n`));
page.on("pageerror", (e) => process.stderr.write(`[page error] ${e}\n`));

async function quit(code) {
  try { await browser.close(); } catch (_) { /* already gone */ }
  try { await server.close(); } catch (_) { /* already gone */ }
  process.exit(code);
}
process.on("SIGTERM", () => quit(1));

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  let cmd;
  try { cmd = JSON.parse(line); } catch (e) { say({ ok: false, error: "bad command: " + e }); continue; }
  const timeout = cmd.timeout_ms ?? 15000;
  try {
    let result = null;
    switch (cmd.op) {
      case "goto": await page.goto(cmd.url, { timeout }); break;
      case "wait": await page.waitForFunction(cmd.expr, null, { timeout, polling: 100 }); break;
      case "eval": result = await page.evaluate(cmd.expr); break;
      case "screenshot": await page.screenshot({ path: cmd.path, fullPage: true, timeout }); break;
      case "quit": say({ ok: true, result: null }); await quit(0); break;
      default: throw new Error("unknown op " + cmd.op);
    }
    say({ ok: true, result: result === undefined ? null : result });
  } catch (e) {
    say({ ok: false, error: String(e && e.message ? e.message : e) });
  }
}
await quit(0);
