// elastiq's live dashboard: polls dashboard/series every interval, keeps the
// server's window of points and scaling events, and draws each chart as SVG.
// No libraries: the page works offline, from the binary alone.
"use strict";

const svgNS = "http://www.w3.org/2000/svg";
const state = {
  points: [], events: [], last: 0, intervalMs: 2000, windowMs: 30 * 60 * 1000,
  rangeMs: 5 * 60 * 1000, lastOk: 0, sources: {},
};

// Each chart: its series, as a label and a function of a point.
const perSecond = (key) => (p) => p[key] / (state.intervalMs / 1000);
const field = (key) => (p) => p[key];
const charts = [
  { id: "chart-requests", format: rate, series: [
    { key: "accepted", label: "accepted", value: perSecond("accepted") },
    { key: "done", label: "done", value: perSecond("done") },
    { key: "failed", label: "failed", value: perSecond("failed") },
    { key: "rejected", label: "rejected", value: perSecond("rejected") },
  ] },
  { id: "chart-latency", format: seconds, series: [
    { key: "p50", label: "p50", value: field("p50") },
    { key: "p95", label: "p95", value: field("p95") },
    { key: "p99", label: "p99", value: field("p99") },
  ] },
  { id: "chart-queue", format: count, series: [
    { key: "visible", label: "visible", value: field("visible") },
    { key: "in_flight", label: "in flight", value: field("in_flight") },
    { key: "dead_letters", label: "dead letters", value: field("dead_letters") },
  ] },
  { id: "chart-instances", format: count, events: true, series: [
    { key: "pending", label: "pending", value: field("pending") },
    { key: "running", label: "running", value: field("running") },
    { key: "stopping", label: "stopping", value: field("stopping") },
    { key: "stopped", label: "stopped", value: field("stopped") },
  ] },
  { id: "chart-cost", format: dollars, series: [
    { key: "cost_dollars", label: "cost", value: field("cost_dollars"),
      legend: (p) => p && p.billed_seconds != null ? `${Math.round(p.billed_seconds)} instance-s` : "" },
  ] },
];

function rate(v) { return v >= 10 ? v.toFixed(0) : v.toFixed(1); }
function count(v) { return Number.isInteger(v) ? String(v) : v.toFixed(1); }
function seconds(v) { return v >= 10 ? v.toFixed(0) + " s" : v >= 1 ? v.toFixed(1) + " s" : Math.round(v * 1000) + " ms"; }
function dollars(v) { return "$" + (v >= 1 ? v.toFixed(2) : v.toFixed(4)); }
function clock(ms) { return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }); }

function el(name, attrs, parent) {
  const e = document.createElementNS(svgNS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// niceMax rounds a chart's top up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function draw(chart, points, t0, t1) {
  const svg = document.getElementById(chart.id);
  const w = Math.max(svg.clientWidth, 200), h = Math.max(svg.clientHeight, 120);
  const pad = { l: 44, r: 8, t: 22, b: 18 };
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.replaceChildren();
  const values = chart.series.map((s) => points.map((p) => { const v = s.value(p); return v == null || Number.isNaN(v) ? null : v; }));
  const top = niceMax(Math.max(0, ...values.flat().filter((v) => v != null)));
  const x = (t) => pad.l + (w - pad.l - pad.r) * (t - t0) / Math.max(t1 - t0, 1);
  const y = (v) => h - pad.b - (h - pad.t - pad.b) * v / top;

  for (const f of [0, 0.5, 1]) {
    el("line", { class: "grid", x1: pad.l, x2: w - pad.r, y1: y(top * f), y2: y(top * f) }, svg);
    el("text", { x: pad.l - 4, y: y(top * f) + 4, "text-anchor": "end" }, svg).textContent = chart.format(top * f);
  }
  el("text", { x: pad.l, y: h - 3 }, svg).textContent = clock(t0);
  el("text", { x: w - pad.r, y: h - 3, "text-anchor": "end" }, svg).textContent = clock(t1);

  if (chart.events) {
    for (const e of state.events) {
      const t = Date.parse(e.at);
      if (t < t0 || t > t1) continue;
      const g = el("g", { class: "event-mark" }, svg);
      el("title", {}, g).textContent = `${clock(t)} ${actions(e)}: ${e.reason}`;
      el("line", { class: "event", x1: x(t), x2: x(t), y1: pad.t, y2: h - pad.b }, g);
      el("line", { class: "event-hit", x1: x(t), x2: x(t), y1: pad.t, y2: h - pad.b }, g);
    }
  }

  const legend = el("g", { class: "legend" }, svg);
  let lx = pad.l;
  chart.series.forEach((s, i) => {
    const vs = values[i];
    // A gap where the value is unknown: one polyline per run of values.
    let run = [];
    const runs = [run];
    points.forEach((p, j) => {
      if (vs[j] == null) { if (run.length) runs.push(run = []); return; }
      run.push(`${x(p.t).toFixed(1)},${y(vs[j]).toFixed(1)}`);
    });
    const known = vs.filter((v) => v != null);
    const max = known.length ? Math.max(...known) : null;
    const last = known.length ? known[known.length - 1] : null;
    for (const r of runs.filter((r) => r.length)) {
      el("polyline", { points: r.join(" "), stroke: `var(--${s.key})`, "data-series": s.key, "data-max": max, "data-last": last }, svg);
      if (r.length === 1) { // a lone value: a dot, as a line of one point draws nothing
        const [cx, cy] = r[0].split(",");
        el("circle", { cx, cy, r: 2.5, fill: `var(--${s.key})` }, svg);
      }
    }
    // An empty polyline still carries the series' figures for readers.
    if (!runs.some((r) => r.length)) el("polyline", { points: "", "data-series": s.key, "data-max": "", "data-last": "" }, svg);
    el("rect", { x: lx, y: 4, width: 10, height: 10, fill: `var(--${s.key})` }, legend);
    const extra = s.legend ? s.legend(points[points.length - 1]) : "";
    const label = el("text", { x: lx + 14, y: 13 }, legend);
    label.textContent = `${s.label} ${last == null ? "–" : chart.format(last)}${extra ? " · " + extra : ""}`;
    lx += 24 + label.getComputedTextLength();
  });
  if (!points.length) el("text", { class: "nodata", x: w / 2, y: h / 2, "text-anchor": "middle" }, svg).textContent = "waiting for data";
}

function actions(e) {
  const parts = [];
  for (const k of ["start", "launch", "stop", "terminate"]) if (e[k]) parts.push(`${k} ${e[k]}`);
  return parts.join(", ");
}

function sum(points, key) { return points.reduce((a, p) => a + (p[key] || 0), 0); }

function render() {
  const t1 = state.points.length ? state.points[state.points.length - 1].t : Date.now();
  // A stack younger than the range fills the chart with what it has.
  const t0 = Math.max(t1 - state.rangeMs, state.points.length ? state.points[0].t : 0);
  const points = state.points.filter((p) => p.t >= t0);
  for (const c of charts) draw(c, points, t0, t1);

  const recent = points.slice(-5);
  const lastP = points[points.length - 1];
  const text = (id, v) => { document.getElementById(id).textContent = v; };
  text("tile-rate", recent.length ? rate(sum(recent, "accepted") / (recent.length * state.intervalMs / 1000)) : "–");
  text("tile-answered", `${sum(points, "done")} / ${sum(points, "failed")}`);
  const p95 = [...points].reverse().find((p) => p.p95 != null);
  text("tile-p95", p95 ? seconds(p95.p95) : "–");
  text("tile-queue", lastP && lastP.visible != null ? `${lastP.visible} / ${lastP.in_flight}` : "–");
  text("tile-fleet", lastP && lastP.running != null
    ? `${lastP.running} (${lastP.pending + lastP.running + lastP.stopping + lastP.stopped})` : "–");
  text("tile-cost", lastP && lastP.cost_dollars != null ? dollars(lastP.cost_dollars) : "–");
  text("tile-billed", lastP && lastP.billed_seconds != null ? `${Math.round(lastP.billed_seconds)} billed instance-seconds` : "");

  const list = document.getElementById("events");
  list.replaceChildren(...state.events.slice(-50).reverse().map((e) => {
    const li = document.createElement("li");
    const t = document.createElement("time");
    t.textContent = clock(Date.parse(e.at)) + " ";
    const a = document.createElement("span");
    a.className = "act";
    a.textContent = actions(e);
    li.append(t, a, document.createTextNode(": " + e.reason));
    return li;
  }));
  if (!state.events.length) list.innerHTML = "<li>none yet</li>";

  const failing = Object.entries(state.sources).filter(([, err]) => err);
  document.getElementById("sources").textContent =
    failing.map(([name, err]) => `${name.replace("_", " ")} could not be read: ${err}`).join("; ");
}

async function poll() {
  try {
    const resp = await fetch(`dashboard/series?since=${state.last}`, { cache: "no-store" });
    if (!resp.ok) throw new Error(`${resp.status} ${resp.statusText}`);
    const s = await resp.json();
    state.intervalMs = s.interval_ms;
    state.windowMs = s.window_ms;
    state.sources = s.sources || {};
    state.points.push(...s.points);
    state.events.push(...s.events);
    if (state.points.length) state.last = state.points[state.points.length - 1].t;
    const cutoff = state.last - state.windowMs;
    state.points = state.points.filter((p) => p.t >= cutoff);
    state.events = state.events.filter((e) => Date.parse(e.at) >= cutoff);
    state.lastOk = Date.now();
    setStatus("ok", `live · updated ${clock(state.lastOk)}`);
    render();
  } catch (err) {
    setStatus("stale", `not updating (${err.message}); retrying`);
  }
  setTimeout(poll, Math.min(state.intervalMs, 2000));
}

function setStatus(cls, text) {
  const s = document.getElementById("status");
  s.className = "status " + cls;
  s.textContent = text;
}

document.getElementById("range").addEventListener("click", (ev) => {
  const b = ev.target.closest("button");
  if (!b) return;
  state.rangeMs = Number(b.dataset.minutes) * 60 * 1000;
  for (const x of document.querySelectorAll("#range button")) x.classList.toggle("on", x === b);
  render();
});
window.addEventListener("resize", render);
poll();
