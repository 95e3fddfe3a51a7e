//! Drives Debian's Chromium (headless) through Playwright
//! (`collector/web/tests/driver.mjs`, npm `playwright-core`). Node and
//! Chromium are killed by PID (and their process group) when dropped.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Browser {
    node: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    chromium: Option<Pid>,
}

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

impl Browser {
    /// Starts Chromium, or returns None (after saying why) when a piece is
    /// missing and SIPSENSOR_CI is not set.
    pub fn start() -> Option<Browser> {
        Browser::start_with_credentials(None)
    }

    /// Like [`Browser::start`]; `credentials` (`user:password`) answer a
    /// basic-auth challenge as the log-in prompt would.
    pub fn start_with_credentials(credentials: Option<&str>) -> Option<Browser> {
        let chromium = std::env::var_os("SIPSENSOR_CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        if !chromium.exists() {
            super::skip_or_fail(&format!(
                "no Chromium at {} (apt-get install chromium)",
                chromium.display()
            ));
            return None;
        }
        let Some(node) = find_in_path("node") else {
            super::skip_or_fail("no node in PATH (apt-get install nodejs npm)");
            return None;
        };
        if !web_dir().join("node_modules/playwright-core").is_dir() {
            super::skip_or_fail(&format!(
                "playwright-core is not installed: run `npm ci` in {}",
                web_dir().display()
            ));
            return None;
        }
        let mut child = Command::new(node)
            .arg(web_dir().join("tests/driver.mjs"))
            .current_dir(web_dir())
            .env("SIPSENSOR_CHROMIUM", &chromium)
            .env("SIPSENSOR_HTTP_CREDENTIALS", credentials.unwrap_or(""))
            // Its own process group, so that everything it starts can be
            // killed together.
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut b = Browser {
            node: child,
            stdin,
            lines,
            chromium: None,
        };
        let hello = b.read(Duration::from_secs(60)).expect("browser start");
        assert_eq!(hello["ready"], true, "{hello}");
        b.chromium = hello["chromium_pid"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .map(Pid::from_raw);
        Some(b)
    }

    fn read(&mut self, timeout: Duration) -> Result<Value, String> {
        let line = self
            .lines
            .recv_timeout(timeout)
            .map_err(|_| format!("no answer from the browser driver within {timeout:?}"))?;
        serde_json::from_str(&line).map_err(|e| format!("driver said {line:?}: {e}"))
    }

    fn call(&mut self, cmd: Value, timeout_ms: u64) -> Result<Value, String> {
        let mut cmd = cmd;
        cmd["timeout_ms"] = json!(timeout_ms);
        writeln!(self.stdin, "{cmd}").map_err(|e| e.to_string())?;
        self.stdin.flush().map_err(|e| e.to_string())?;
        // The driver bounds each command by timeout_ms; allow it to answer.
        let answer = self.read(Duration::from_millis(timeout_ms + 10_000))?;
        if answer["ok"] == true {
            Ok(answer["result"].clone())
        } else {
            Err(answer["error"].as_str().unwrap_or("?").to_string())
        }
    }

    pub fn goto(&mut self, url: &str) {
        self.call(json!({"op": "goto", "url": url}), 15_000)
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Waits until `expr` is truthy in the page.
    pub fn wait(&mut self, expr: &str, timeout_ms: u64) -> Result<(), String> {
        self.call(json!({"op": "wait", "expr": expr}), timeout_ms)
            .map(|_| ())
    }

    pub fn eval(&mut self, expr: &str) -> Value {
        self.call(json!({"op": "eval", "expr": expr}), 15_000)
            .unwrap_or_else(|e| panic!("eval {expr}: {e}"))
    }

    pub fn screenshot(&mut self, path: &Path) {
        self.call(
            json!({"op": "screenshot", "path": path.to_str().expect("utf-8 path")}),
            15_000,
        )
        .unwrap_or_else(|e| panic!("screenshot: {e}"));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"op": "quit"}));
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.node.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever is left: the driver, Chromium and their helpers, by PID
        // and by process group.
        let _ = self.node.kill();
        let _ = self.node.wait();
        if let Some(pid) = self.chromium {
            let _ = kill(pid, Signal::SIGKILL);
        }
        if let Ok(pgid) = i32::try_from(self.node.id()) {
            let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
        }
    }
}
