// The collector's live page: polls the JSON API once a second and draws each
// sensor's recent samples with uPlot (vendor/uPlot.iife.min.js), with a
// coverage band under each chart: live, resent, backfilled and missing
// ranges (api/sensors/{id}/coverage), told apart by pattern and label as
// well as colour.
// All data is inserted with textContent, never as HTML: addresses of record
// and channel names come from the network.
"use strict";

(() => {
  const POLL_MS = 1000;
  const ROWS_PER_CHART = 3000; // samples fetched per sensor (all channels)
  const MAX_CHARTS = 24;
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                  "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

  // A coverage window spans at most 31 days (the API refuses more).
  const MAX_COVERAGE_MS = 30 * 86400 * 1000;
  const CAUSES = {
    loss: "packets lost",
    session_break: "no session",
    overload: "collector overloaded",
    source: "not sampled",
    expired: "expired, gone for good",
  };

  // sensor id -> { plot, keys, box, band, ranges }
  const charts = new Map();

  // For people in the console and for the page test: the data each chart holds.
  window.sipsensor = {
    charts,
    polls: 0,
    lastError: null,
    chartData(id) {
      const c = charts.get(Number(id));
      if (!c) return null;
      return {
        labels: c.plot.series.slice(1).map((s) => s.label),
        x: Array.from(c.plot.data[0]),
        series: c.plot.data.slice(1).map((ys) => Array.from(ys)),
      };
    },
    // The ranges the chart's coverage band shows, as drawn.
    coverage(id) {
      const c = charts.get(Number(id));
      if (!c) return null;
      return Array.from(c.band.querySelectorAll(".seg")).map((el) => ({
        kind: el.dataset.kind,
        cls: el.className,
        from: el.dataset.from,
        to: el.dataset.to,
        label: el.getAttribute("aria-label"),
        text: el.textContent,
      }));
    },
  };

  const $ = (sel) => document.querySelector(sel);

  async function getJSON(url) {
    const r = await fetch(url, { cache: "no-store" });
    if (!r.ok) {
      let msg = r.status + " " + r.statusText;
      try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
      throw new Error(url + ": " + msg);
    }
    return r.json();
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function fmtTime(ns) {
    if (ns === null || ns === undefined) return "never";
    return new Date(ns / 1e6).toLocaleString();
  }

  function fmtDuration(s) {
    if (s < 60) return s.toFixed(0) + " s";
    if (s < 3600) return (s / 60).toFixed(1) + " min";
    if (s < 86400) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  }

  const seriesKey = (s) => s.name + " [" + s.unit + "]";

  // Samples (any order) -> aligned uPlot data: [x seconds, series...],
  // series in channel order.
  function toChartData(samples) {
    const channelOf = new Map();
    const meta = new Map();
    const byTs = new Map();
    for (const s of samples) {
      const k = seriesKey(s);
      meta.set(k, { name: s.name, unit: s.unit });
      if (!channelOf.has(k) || s.channel < channelOf.get(k)) channelOf.set(k, s.channel);
      let row = byTs.get(s.ts_ns);
      if (!row) { row = new Map(); byTs.set(s.ts_ns, row); }
      row.set(k, s.value);
    }
    const keys = Array.from(channelOf.keys())
      .sort((a, b) => channelOf.get(a) - channelOf.get(b) || (a < b ? -1 : a > b ? 1 : 0));
    const ts = Array.from(byTs.keys()).sort((a, b) => a - b);
    const data = [ts.map((t) => t / 1e9)];
    for (const k of keys) {
      data.push(ts.map((t) => { const v = byTs.get(t).get(k); return v === undefined ? null : v; }));
    }
    return { keys, data, meta };
  }

  function latestValues(cd) {
    const out = [];
    cd.keys.forEach((k, i) => {
      const ys = cd.data[i + 1];
      for (let j = ys.length - 1; j >= 0; j--) {
        if (ys[j] !== null) {
          const m = cd.meta.get(k);
          out.push(m.name + ": " + ys[j] + " " + m.unit);
          break;
        }
      }
    });
    return out.join(", ");
  }

  // What a coverage range is called and which class draws it.
  function coverageLook(r) {
    switch (r.kind) {
      case "live": return { cls: "cov-live", name: "live" };
      case "resent": return { cls: "cov-resent", name: "resent" };
      case "backfilled": return { cls: "cov-backfilled", name: "backfilled" };
      default:
        if (r.cause === "expired") return { cls: "cov-expired", name: "expired" };
        if (r.cause === "source") return { cls: "cov-unsampled", name: "not sampled" };
        return { cls: "cov-missing", name: "missing" };
    }
  }

  function coverageTitle(r, name) {
    const span = fmtTime(r.from_ns) + " – " + fmtTime(r.to_ns);
    if (r.kind === "missing") {
      return name + ": " + r.instants + " instants between " + span +
        " (" + (CAUSES[r.cause] || r.cause) + ")";
    }
    const resent = r.resent > 0 ? ", " + r.resent + " resent" : "";
    return name + ": " + r.instants + " instants, " + span + resent;
  }

  // Draws the band under the plot area, in the plot's x scale.
  function drawBand(c) {
    const over = c.plot.over;
    const band = c.band;
    band.style.marginLeft = over.style.left;
    band.style.width = over.style.width;
    const width = over.clientWidth;
    const segs = [];
    c.ranges.forEach((r, i) => {
      const next = c.ranges[i + 1];
      // Readings up to the next range's first reading leave no hole: a
      // range of readings ends at its last instant, the next begins at its
      // first (a gap between them would be a range of its own).
      const to = r.kind !== "missing" && next && next.kind !== "missing" ? next.from_ns : r.to_ns;
      const x0 = c.plot.valToPos(r.from_ns / 1e9, "x");
      const x1 = c.plot.valToPos(to / 1e9, "x");
      if (!(x1 >= 0 && x0 <= width)) return;
      const left = Math.max(0, x0);
      const right = Math.min(width, x1);
      const look = coverageLook(r);
      const el = document.createElement("div");
      el.className = "seg " + look.cls;
      el.setAttribute("role", "listitem");
      el.dataset.kind = r.kind;
      el.dataset.from = r.from;
      el.dataset.to = r.to;
      el.style.left = left + "px";
      el.style.width = Math.max(2, right - left) + "px";
      const title = coverageTitle(r, look.name);
      el.title = title;
      el.setAttribute("aria-label", title);
      // A label where it fits; the pattern and the tooltip where it does not.
      if (right - left > 8 * look.name.length + 8) el.textContent = look.name;
      segs.push(el);
    });
    band.replaceChildren(...segs);
  }

  function chartWidth(box) {
    return Math.max(300, box.clientWidth - 16);
  }

  function drawChart(sensor, cd) {
    let c = charts.get(sensor.id);
    if (c && c.keys.join("\n") === cd.keys.join("\n")) {
      c.plot.setData(cd.data);
      return c;
    }
    if (c) { c.plot.destroy(); c.box.remove(); }
    const box = document.createElement("div");
    box.className = "chart";
    box.dataset.sensor = String(sensor.id);
    const h = document.createElement("h3");
    h.textContent = sensor.display_name ? sensor.display_name + " — " + sensor.aor : sensor.aor;
    box.appendChild(h);
    $("#charts").appendChild(box);
    // One y scale per unit: temperature and humidity do not share an axis.
    const units = [];
    for (const k of cd.keys) {
      const u = cd.meta.get(k).unit;
      if (!units.includes(u)) units.push(u);
    }
    // Axis width from its longest label, so 101,325 Pa is not clipped.
    const axisSize = (self, values) =>
      values ? Math.max(40, ...values.map((v) => String(v).length * 7 + 18)) : 40;
    const yAxes = units.slice(0, 2).map((u, i) => ({
      scale: u, label: u, side: i === 0 ? 3 : 1, size: axisSize,
      grid: { show: i === 0 },
    }));
    const opts = {
      width: chartWidth(box),
      height: 240,
      scales: { x: { time: true } },
      series: [{}].concat(cd.keys.map((k, i) => ({
        label: k, scale: cd.meta.get(k).unit, stroke: COLORS[i % COLORS.length],
        width: 1.5, spanGaps: false,
      }))),
      axes: [{}].concat(yAxes),
      // The band follows every redraw (new data moves the x scale).
      hooks: { draw: [() => { const me = charts.get(sensor.id); if (me && me.plot) drawBand(me); }] },
    };
    const band = document.createElement("div");
    band.className = "coverage";
    band.setAttribute("role", "list");
    band.setAttribute("aria-label", "Coverage of " + sensor.aor);
    const entry = { plot: null, keys: cd.keys, box, band, ranges: [] };
    charts.set(sensor.id, entry);
    entry.plot = new uPlot(opts, cd.data, box);
    // Right under the plot, above uPlot's legend.
    entry.plot.root.querySelector(".u-wrap").after(band);
    return entry;
  }

  // The coverage of a chart's time span (the samples come newest first):
  // from its oldest instant to a second past its newest or now, whichever
  // is later, within the window the API allows.
  async function fetchCoverage(sensor, samples) {
    const oldest = samples[samples.length - 1];
    const toMs = Math.max(Date.now(), samples[0].ts_ns / 1e6 + 1000);
    const from = toMs - oldest.ts_ns / 1e6 > MAX_COVERAGE_MS
      ? new Date(toMs - MAX_COVERAGE_MS).toISOString() : oldest.time;
    const url = "api/sensors/" + sensor.id + "/coverage?limit=1000&from=" +
      encodeURIComponent(from) + "&to=" + encodeURIComponent(new Date(toMs).toISOString());
    return (await getJSON(url)).ranges;
  }

  function renderSensors(sensors, latest) {
    const body = $("#sensors tbody");
    body.replaceChildren();
    for (const s of sensors) {
      const tr = document.createElement("tr");
      tr.dataset.sensor = String(s.id);
      cell(tr, s.aor);
      cell(tr, s.display_name || "");
      const st = cell(tr, "");
      const badge = document.createElement("span");
      badge.className = "state " + s.state;
      badge.textContent = s.state;
      st.appendChild(badge);
      cell(tr, fmtTime(s.last_seen_ns));
      cell(tr, latest.get(s.id) || "");
      body.appendChild(tr);
    }
    $("#no-sensors").hidden = sensors.length > 0;
  }

  function renderStreams(streams) {
    const body = $("#streams tbody");
    body.replaceChildren();
    for (const s of streams) {
      const tr = document.createElement("tr");
      cell(tr, s.aor);
      cell(tr, s.rate_hz + " Hz", "num");
      cell(tr, String(s.packets), "num");
      cell(tr, s.lost + " (" + (s.fraction_lost * 100).toFixed(1) + " %)", "num");
      cell(tr, (s.jitter_seconds * 1000).toFixed(2) + " ms", "num");
      cell(tr, fmtDuration(s.uptime_seconds), "num");
      body.appendChild(tr);
    }
    $("#no-streams").hidden = streams.length > 0;
  }

  // The fleet view (docs/protocol.md 12.3).
  function renderFleet(fleet) {
    const versions = $("#fleet-versions");
    versions.replaceChildren();
    for (const v of fleet.versions) {
      const li = document.createElement("li");
      const states = Object.entries(v.by_update).map(([u, n]) => n + " " + u).join(", ");
      li.textContent = v.version + ": " + v.sensors + " (" + states + ")";
      versions.appendChild(li);
    }
    const body = $("#fleet-sensors tbody");
    body.replaceChildren();
    for (const s of fleet.sensors) {
      const tr = document.createElement("tr");
      cell(tr, s.sensor);
      cell(tr, s.version);
      cell(tr, s.slot);
      const st = cell(tr, "");
      const badge = document.createElement("span");
      badge.className = "update " + s.update;
      badge.textContent = s.update;
      st.appendChild(badge);
      cell(tr, s.target || "");
      cell(tr, s.progress === null ? "" : s.progress + " %", "num");
      cell(tr, s.reason || "");
      cell(tr, fmtTime(s.reported_ns));
      body.appendChild(tr);
    }
    $("#no-fleet").hidden = fleet.sensors.length > 0;
  }

  async function poll() {
    try {
      const [sensors, streams, fleet] = await Promise.all(
        [getJSON("api/sensors"), getJSON("api/streams"), getJSON("api/fleet")]);
      const shown = sensors.slice(0, MAX_CHARTS);
      const latest = new Map();
      const results = await Promise.all(shown.map((s) =>
        getJSON("api/sensors/" + s.id + "/samples?order=desc&limit=" + ROWS_PER_CHART)));
      const withData = shown.filter((s, i) => results[i].samples.length > 0);
      // A band that cannot be fetched keeps its last ranges; the charts
      // still update, and the status line says what failed.
      let coverageError = null;
      const coverage = await Promise.all(withData.map((s) =>
        fetchCoverage(s, results[shown.indexOf(s)].samples)
          .catch((e) => { coverageError = e; return null; })));
      shown.forEach((s, i) => {
        const samples = results[i].samples;
        if (samples.length === 0) return;
        const cd = toChartData(samples);
        latest.set(s.id, latestValues(cd));
        const c = drawChart(s, cd);
        const ranges = coverage[withData.indexOf(s)];
        if (ranges) c.ranges = ranges;
        drawBand(c);
      });
      // Charts of sensors that disappeared.
      for (const [id, c] of charts) {
        if (!shown.some((s) => s.id === id)) { c.plot.destroy(); c.box.remove(); charts.delete(id); }
      }
      const note = $("#charts-note");
      note.hidden = sensors.length <= MAX_CHARTS;
      note.textContent = "Charts for the first " + MAX_CHARTS + " of " + sensors.length + " sensors.";
      renderSensors(sensors, latest);
      renderStreams(streams);
      renderFleet(fleet);
      if (coverageError) throw coverageError;
      const st = $("#status");
      st.className = "status";
      st.textContent = "updated " + new Date().toLocaleTimeString();
      window.sipsensor.lastError = null;
    } catch (e) {
      const st = $("#status");
      st.className = "status error";
      st.textContent = String(e.message || e);
      window.sipsensor.lastError = String(e.message || e);
    }
    window.sipsensor.polls += 1;
    setTimeout(poll, POLL_MS);
  }

  window.addEventListener("resize", () => {
    for (const c of charts.values()) c.plot.setSize({ width: chartWidth(c.box), height: 240 });
  });

  poll();
})();
