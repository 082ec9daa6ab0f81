// chronicle console. Plain DOM code, no framework, no build step.
// Everything shown comes from the same-origin HTTP API and is put into the
// page with textContent, never innerHTML: event data is user input.
"use strict";

const STATUSES = ["created", "paid", "shipped", "delivered", "cancelled"];
const COLORS = { created: "#7a8699", paid: "#2f5fd0", shipped: "#d08a1e", delivered: "#2e9d55", cancelled: "#c8423b" };
const SVGNS = "http://www.w3.org/2000/svg";

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "onclick") e.addEventListener("click", v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

// ---- API ---------------------------------------------------------------

class APIError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || "HTTP " + status);
    this.status = status;
  }
}

async function api(path) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem("chronicle-token");
  if (token) headers.Authorization = "Bearer " + token;
  const res = await fetch(path, { headers });
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (!res.ok) {
    const err = new APIError(res.status, body);
    if (res.status === 401) err.message = "The server needs a token: open “Token” at the top right.";
    if (res.status === 403) err.message = "This token's role may not do that.";
    throw err;
  }
  return body;
}

function showMessage(text) {
  const m = $("#message");
  m.textContent = text || "";
  m.hidden = !text;
}

// ---- formatting --------------------------------------------------------

function money(n) {
  if (typeof n !== "number" || !Number.isInteger(n)) return String(n);
  const sign = n < 0 ? "-" : "";
  const a = Math.abs(n);
  return sign + "$" + Math.floor(a / 100) + "." + String(a % 100).padStart(2, "0");
}

function fmtTime(s) {
  if (!s) return "";
  const d = new Date(s);
  if (isNaN(d)) return s;
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/Z$/, "");
}

function fmtValue(v) {
  if (v === undefined) return "";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

// Money fields are integer minor units; they read better as $X.YY.
const MONEY = /(^|\.)(total|amount|unit_price|paid_amount)$/;

function fmtField(path, v) {
  return MONEY.test(path) && typeof v === "number" ? money(v) : fmtValue(v);
}

function summary(data) {
  if (data === null || typeof data !== "object" || Array.isArray(data)) return JSON.stringify(data);
  return Object.entries(data).map(([k, v]) => {
    if (MONEY.test(k)) return k + ": " + money(v);
    if (Array.isArray(v)) return k + ": [" + v.length + "]";
    return k + ": " + fmtValue(v);
  }).join(", ");
}

// flatten turns nested state into path -> scalar, so a diff is a list of
// fields ("items[0].quantity", "shipping_address.city").
function flatten(v, prefix, out) {
  out = out || {};
  if (v !== null && typeof v === "object") {
    const entries = Array.isArray(v) ? v.map((x, i) => [prefix + "[" + i + "]", x])
      : Object.entries(v).map(([k, x]) => [prefix ? prefix + "." + k : k, x]);
    if (entries.length === 0 && prefix) out[prefix] = Array.isArray(v) ? "[]" : "{}";
    for (const [p, x] of entries) flatten(x, p, out);
  } else if (prefix) {
    out[prefix] = v;
  }
  return out;
}

// Fields every event changes; they would drown the interesting ones.
const NOISE = new Set(["version", "updated_at"]);

function diff(before, after) {
  const a = flatten(before || {}, ""), b = flatten(after || {}, "");
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const rows = [];
  for (const k of keys) {
    if (NOISE.has(k)) continue;
    const inA = k in a, inB = k in b;
    if (inA && inB && JSON.stringify(a[k]) === JSON.stringify(b[k])) continue;
    rows.push({ path: k, before: a[k], after: b[k], kind: !inA ? "added" : !inB ? "removed" : "changed" });
  }
  // A null that became an object (or the reverse) shows as its fields
  // appearing; the bare null row would only add noise.
  const parent = (p) => rows.some((r) => r.path.startsWith(p + ".") || r.path.startsWith(p + "["));
  return rows.filter((r) => !((r.before === null || r.after === null) && r.kind !== "changed" && parent(r.path)));
}

// ---- order timeline ----------------------------------------------------

const state = { orderId: null, timeline: null, selected: null };

async function loadOrder(id, version) {
  id = id.trim();
  if (!id) return;
  showMessage("");
  $("#order-id").value = id;
  let tl;
  try {
    tl = await api("/orders/" + encodeURIComponent(id) + "/events");
  } catch (e) {
    $("#order-view").hidden = true;
    $("#order-empty").hidden = false;
    showMessage(e.status === 404 ? "No order " + id + "." : "Could not load " + id + ": " + e.message);
    return;
  }
  state.orderId = id;
  state.timeline = tl;
  history.replaceState(null, "", "#order=" + encodeURIComponent(id) + (version ? "&v=" + version : ""));
  $("#order-empty").hidden = true;
  $("#order-view").hidden = false;
  $("#order-title").textContent = tl.order_id;
  const last = tl.events[tl.events.length - 1];
  $("#order-meta").textContent = "version " + tl.version + " · " + tl.events.length + " events · last change " + fmtTime(last && last.recorded_at);

  const tbody = $("#timeline tbody");
  tbody.replaceChildren();
  for (const ev of tl.events) {
    const tr = el("tr", { "data-version": ev.version },
      el("td", {}, "v" + ev.version),
      el("td", { class: "type" }, ev.type, ev.stored_schema_version ? el("small", { class: "muted", title: "stored as schema v" + ev.stored_schema_version + ", shown upcast" }, " ↑v" + ev.stored_schema_version) : null),
      el("td", { class: "time" }, fmtTime(ev.recorded_at)),
      actorCell(ev.metadata),
      el("td", { class: "data" }, summary(ev.data)));
    tr.addEventListener("click", () => selectEvent(ev.version));
    tbody.append(tr);
  }
  await selectEvent(version && version <= tl.version ? version : tl.version);
}

// actorCell shows who appended an event (metadata.actor), with the request
// and correlation ids on hover; events from before actors were recorded
// show a dash.
function actorCell(meta) {
  const m = meta || {};
  const ids = [m.request_id && "request " + m.request_id, m.correlation_id && "correlation " + m.correlation_id].filter(Boolean).join(" · ");
  return m.actor
    ? el("td", { class: "actor", title: ids }, String(m.actor))
    : el("td", { class: "actor none", title: ids }, "—");
}

async function selectEvent(v) {
  const tl = state.timeline;
  if (!tl) return;
  const ev = tl.events.find((e) => e.version === v);
  if (!ev) return;
  state.selected = v;
  for (const tr of document.querySelectorAll("#timeline tbody tr")) {
    tr.classList.toggle("selected", Number(tr.dataset.version) === v);
  }
  history.replaceState(null, "", "#order=" + encodeURIComponent(state.orderId) + "&v=" + v);
  const base = "/orders/" + encodeURIComponent(state.orderId) + "?version=";
  let after, before = null;
  try {
    [after, before] = await Promise.all([api(base + v), v > 1 ? api(base + (v - 1)) : Promise.resolve(null)]);
  } catch (e) {
    showMessage("Could not load the state at v" + v + ": " + e.message);
    return;
  }
  if (state.selected !== v) return; // the user clicked another event meanwhile
  $("#detail").hidden = false;
  $("#detail-title").textContent = "v" + v + " " + ev.type + " at " + fmtTime(ev.recorded_at);

  const rows = diff(before, after);
  const tbody = $("#diff tbody");
  tbody.replaceChildren();
  if (rows.length === 0) tbody.append(el("tr", {}, el("td", { colspan: 3, class: "none" }, "no visible change")));
  for (const r of rows) {
    tbody.append(el("tr", { class: r.kind, "data-path": r.path },
      el("td", {}, r.path),
      el("td", { class: r.kind === "added" ? "none" : "" }, r.kind === "added" ? "—" : fmtField(r.path, r.before)),
      el("td", { class: r.kind === "removed" ? "none" : "" }, r.kind === "removed" ? "—" : fmtField(r.path, r.after))));
  }
  $("#state").textContent = JSON.stringify(after, null, 2);
  $("#event-json").textContent = JSON.stringify({ event_id: ev.event_id, type: ev.type, schema_version: ev.schema_version, position: ev.position, data: ev.data, metadata: ev.metadata }, null, 2);
}

async function loadRecent() {
  const ul = $("#recent");
  try {
    const status = $("#recent-status").value;
    const res = await api("/orders?limit=10" + (status ? "&status=" + encodeURIComponent(status) : ""));
    const orders = (res && (res.orders || res.items)) || [];
    ul.replaceChildren();
    if (orders.length === 0) ul.append(el("li", {}, "none yet"));
    for (const o of orders) {
      ul.append(el("li", {},
        el("a", { onclick: () => loadOrder(o.order_id) }, o.order_id), " ",
        el("span", { class: "badge " + o.status }, o.status), " ",
        el("span", { class: "muted" }, o.customer_id + " · " + money(o.total))));
    }
  } catch (e) {
    ul.replaceChildren(el("li", {}, "unavailable (" + e.message + ")"));
  }
}

// ---- projections -------------------------------------------------------

async function loadProjections() {
  const tbody = $("#projections tbody");
  try {
    const res = await api("/projections");
    const list = Array.isArray(res) ? res : (res && res.projections) || [];
    tbody.replaceChildren();
    for (const p of list) {
      const lag = p.lag_events + " events" + (p.lag_seconds ? " · " + Number(p.lag_seconds).toFixed(1) + " s" : "");
      tbody.append(el("tr", { "data-name": p.name },
        el("td", {}, p.name),
        el("td", {}, el("span", { class: "badge " + p.status }, p.status)),
        el("td", {}, p.position + " / " + p.head_position),
        el("td", {}, lag)));
    }
  } catch (e) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "unavailable (" + e.message + ")")));
  }
}

// ---- status chart ------------------------------------------------------

async function loadStats() {
  const box = $("#chart");
  const now = Date.now();
  const span = Number($("#stats-range").value) * 3600 * 1000;
  const N = 12; // intervals: N+1 requests, answered from the status-history read model
  const times = [];
  for (let i = N; i >= 0; i--) times.push(new Date(Math.floor((now - (i * span) / N) / 1000) * 1000));
  let points;
  try {
    points = await Promise.all(times.map((t) => api("/stats/order-status?at=" + encodeURIComponent(t.toISOString().replace(/\.\d+Z$/, "Z")))));
  } catch (e) {
    box.replaceChildren(el("p", { class: "muted" }, "unavailable (" + e.message + ")"));
    return;
  }
  box.replaceChildren(chart(times, points));
}

function chart(times, points) {
  const W = 400, H = 170, L = 34, R = 8, T = 8, B = 22;
  const top = Math.max(1, ...points.flatMap((p) => STATUSES.map((s) => (p.counts && p.counts[s]) || 0)));
  // A round axis maximum with whole-number ticks.
  const stepOf = (n) => { const p = Math.pow(10, Math.floor(Math.log10(n))); return n / p <= 2 ? p / 2 : n / p <= 5 ? p : 2 * p; };
  const step = Math.max(1, stepOf(top));
  const max = Math.ceil(top / step) * step;
  const x = (i) => L + (i * (W - L - R)) / (times.length - 1);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const s = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "orders by status over time" });
  for (let v = 0; v <= max; v += step) {
    s.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "axis" }));
    const t = svg("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" });
    t.textContent = Math.round(v);
    s.append(t);
  }
  times.forEach((d, i) => {
    if (i % 3 !== 0 && i !== times.length - 1) return;
    const t = svg("text", { x: x(i), y: H - 6, "text-anchor": "middle" });
    const long = times[times.length - 1] - times[0] > 24 * 3600 * 1000;
    const hm = d.toISOString().slice(11, 16);
    t.textContent = i === times.length - 1 ? "now" : (long ? d.toISOString().slice(5, 10) + " " : "") + hm + (i === 0 ? " UTC" : "");
    s.append(t);
  });
  for (const st of STATUSES) {
    const pts = points.map((p, i) => x(i) + "," + y((p.counts && p.counts[st]) || 0)).join(" ");
    const line = svg("polyline", { points: pts, fill: "none", stroke: COLORS[st], "stroke-width": 2, "stroke-linejoin": "round" });
    const title = svg("title", {});
    title.textContent = st;
    line.append(title);
    s.append(line);
  }
  const last = points[points.length - 1].counts || {};
  const legend = el("div", { class: "legend" });
  for (const st of STATUSES) {
    const sw = el("i");
    sw.style.background = COLORS[st];
    legend.append(el("span", {}, sw, st + " " + (last[st] || 0)));
  }
  return el("div", {}, s, legend);
}

// ---- live tail ---------------------------------------------------------
// The newest events of the whole log, as they commit. It reads GET /events
// as Server-Sent Events through fetch rather than EventSource, which cannot
// send the Authorization header: the token stays where every other request
// of the console keeps it, out of URLs and cookies. It resumes with
// Last-Event-ID after the last event shown, so a dropped connection or a
// server restart neither skips nor repeats one.

const TAIL_ROWS = 200; // older rows are dropped
const TAIL_IDLE_MS = 45000; // three heartbeats of silence: the connection is dead

const tail = { last: null, gen: 0, ctrl: null, count: 0 };

function setTailStatus(text, live) {
  const s = $("#tail-status");
  s.textContent = text;
  s.className = "badge " + (live ? "live" : "stopped");
}

function addTailRow(ev) {
  const tbody = $("#tail tbody");
  const m = /^order-(.+)$/.exec(ev.stream_id);
  const tr = el("tr", { "data-checkpoint": ev.checkpoint, "data-stream": ev.stream_id, "data-version": ev.version },
    el("td", { class: "time" }, fmtTime(ev.recorded_at)),
    el("td", { class: "type" }, ev.type),
    el("td", { class: "stream" }, ev.stream_id),
    el("td", {}, "v" + ev.version),
    actorCell(ev.metadata));
  if (m) { // an order's stream: its timeline, at this event
    tr.classList.add("order");
    tr.addEventListener("click", () => loadOrder(m[1], ev.version));
  }
  tbody.prepend(tr);
  while (tbody.rows.length > TAIL_ROWS) tbody.lastElementChild.remove();
  tail.count++;
  $("#tail-count").textContent = tail.count + " since opened" + (tail.count > TAIL_ROWS ? ", last " + TAIL_ROWS + " shown" : "");
}

// tailStream reads one event stream until it ends; it throws when the
// connection fails or the server refuses.
async function tailStream(ctrl) {
  const headers = { Accept: "text/event-stream", "Last-Event-ID": tail.last };
  const token = sessionStorage.getItem("chronicle-token");
  if (token) headers.Authorization = "Bearer " + token;
  const res = await fetch("/events", { headers, signal: ctrl.signal, cache: "no-store" });
  if (!res.ok) {
    let body = null;
    try { body = await res.json(); } catch (_) { body = null; }
    throw new APIError(res.status, body);
  }
  setTailStatus("live", true);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let idle = setTimeout(() => ctrl.abort(), TAIL_IDLE_MS);
  try {
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      clearTimeout(idle);
      idle = setTimeout(() => ctrl.abort(), TAIL_IDLE_MS);
      buf += value.replace(/\r\n?/g, "\n");
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let id = null, data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("id: ")) id = line.slice(4);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (id === null || !data) continue; // a heartbeat
        addTailRow(JSON.parse(data));
        tail.last = id;
      }
    }
  } finally {
    clearTimeout(idle);
  }
}

// startTail (re)starts the tail, as when the token changes; the place in
// the log is kept.
async function startTail() {
  const gen = ++tail.gen;
  if (tail.ctrl) tail.ctrl.abort();
  let delay = 250;
  while (gen === tail.gen) {
    const ctrl = new AbortController();
    tail.ctrl = ctrl;
    try {
      if (tail.last === null) {
        // The end of the log now: the tail shows what commits from here.
        tail.last = (await api("/events?after=now&limit=1")).next;
      }
      await tailStream(ctrl);
      delay = 250; // it was up: the next failure is new
    } catch (e) {
      if (gen !== tail.gen) return;
      if (e.status === 401 || e.status === 403) {
        setTailStatus(e.status === 401 ? "needs a token" : "not allowed", false);
        return; // until the token changes
      }
    }
    if (gen !== tail.gen) return;
    setTailStatus("reconnecting", false);
    await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())));
    delay = Math.min(delay * 2, 10000);
  }
}

// ---- wiring ------------------------------------------------------------

function refreshAll() {
  loadRecent();
  loadProjections();
  loadStats();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#search-form").addEventListener("submit", (e) => { e.preventDefault(); loadOrder($("#order-id").value); });
  $("#token").value = sessionStorage.getItem("chronicle-token") || "";
  $("#token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("chronicle-token", $("#token").value.trim());
    showMessage("");
    refreshAll();
    startTail();
    if (state.orderId) loadOrder(state.orderId, state.selected);
  });
  $("#token-clear").addEventListener("click", () => { sessionStorage.removeItem("chronicle-token"); $("#token").value = ""; });
  $("#proj-refresh").addEventListener("click", loadProjections);
  $("#stats-refresh").addEventListener("click", loadStats);
  $("#stats-range").addEventListener("change", loadStats);
  $("#recent-status").addEventListener("change", loadRecent);
  refreshAll();
  startTail();
  const m = /order=([^&]+)(?:&v=(\d+))?/.exec(location.hash);
  if (m) loadOrder(decodeURIComponent(m[1]), m[2] ? Number(m[2]) : null);
});
