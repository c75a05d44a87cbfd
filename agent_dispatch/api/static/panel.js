// agent-dispatch live panel: a REST snapshot, then every change from /api/ws applied in place.
// Plain script, no build step, no CDN. State lives in `jobs` and `agents`; render() redraws.
"use strict";

const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED", "EXPIRED", "TIMEOUT", "SKIPPED"]);
const JOB_RANK = { WAITING: -1, OPEN: 0, DISTRIBUTED: 1, IN_PROGRESS: 2 };  // terminal ones rank 3
const AGENT_RANK = { ASSIGNED: 0, WORKING: 1 };
const ENDINGS_SHOWN = 30;

const jobs = new Map();     // queueTaskId -> {qid, title, status, agents: Map, winner, ...}
// A workflow's steps live in their parent's `steps` (stepId -> step), never as jobs of their
// own; `stepOf` finds a step job's parent and step from its queue task id (`<task>/<step>`).
const stepOf = new Map();   // step queueTaskId -> {parent, stepId}
const agents = new Map();   // name -> agent document from /api/agents
let token = sessionStorage.getItem("ad-token") || "";
let meta = { prefectUiUrl: null, dashboardUrl: null };
let lastId = null;          // the newest change id seen: a reconnect asks for what came after
let socket = null;
let stats = null;
window.__panel = { changes: 0, connects: 0, loadedAt: Date.now() };  // read by tests

const $ = (sel) => document.querySelector(sel);
const rank = (table, s) => (TERMINAL.has(s) ? 3 : table[s] ?? 0);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

async function api(path) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const r = await fetch(path, { headers });
  if (r.status === 401 || r.status === 403) { askForToken(r.status); throw new Error("auth"); }
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

function askForToken(status) {
  $("#login").hidden = false;
  $("#login-note").textContent = status === 403 ? "that token was refused" : "this server needs a token";
  setConn("down", "needs a token");
}

function job(qid) {
  let j = jobs.get(qid);
  if (!j) { j = { qid, title: "", status: "OPEN", agents: new Map(), fresh: true }; jobs.set(qid, j); }
  return j;
}

// A job first seen on the feed: fetch its title (and run link) once.
const described = new Set();
async function describe(j) {
  if (j.title || described.has(j.qid)) return;
  described.add(j.qid);
  try { fromSummary(await api(`/api/jobs/${encodeURIComponent(j.qid)}`)); renderSoon(); }
  catch (e) { described.delete(j.qid); }
}

function fromSummary(s) {
  if (s.kind === "step" && s.parentQueueTaskId) {  // a step job: it goes in its parent's tree
    const st = step(s.parentQueueTaskId, s.stepId, s.queueTaskId);
    setStatus(st, s.status);
    Object.assign(st, { winner: s.winner || st.winner, latencyMs: s.winnerLatencyMs ?? st.latencyMs,
      error: s.error || st.error });
    return null;
  }
  const j = job(s.queueTaskId);
  if (rank(JOB_RANK, s.status) >= rank(JOB_RANK, j.status)) j.status = s.status;
  Object.assign(j, { id: s.id, title: s.title, flowRunId: s.flowRunId || j.flowRunId,
    winner: s.winner || j.winner, latencyMs: s.winnerLatencyMs ?? j.latencyMs,
    error: s.error || j.error, endedAt: s.finishedAt || j.endedAt });
  if (s.kind === "workflow") {  // no winner of its own: its latency is the whole run's
    Object.assign(j, { workflow: s.workflow, latencyMs: s.endToEndMs ?? j.latencyMs });
  }
  for (const x of s.steps || []) {  // a parent's detail: its whole tree, needs included
    const st = step(j.qid, x.stepId, x.queueTaskId);
    setStatus(st, x.status);
    Object.assign(st, { needs: x.needs, winner: x.winner || st.winner,
      latencyMs: x.winnerLatencyMs ?? st.latencyMs, error: x.error, skipped: x.skippedReason });
  }
  return j;
}

function apply(change) {
  window.__panel.changes += 1;
  if (lastId === null || change.id > lastId) lastId = change.id;
  const d = change.detail || {};
  if (d.parentQueueTaskId && d.stepId) {
    return applyToStep(change, { parent: d.parentQueueTaskId, stepId: d.stepId });
  }
  const where = stepOf.get(change.queueTaskId);  // an agent change of a known step
  if (where) return applyToStep(change, where);
  const j = job(change.queueTaskId);
  if (change.kind === "job") {
    if (rank(JOB_RANK, change.status) < rank(JOB_RANK, j.status)) return;  // older than we know
    j.status = change.status;
    if (TERMINAL.has(change.status)) {
      Object.assign(j, { endedAt: change.at, error: d.error || null, fresh: true,
        winner: d.winner || null, latencyMs: d.winnerLatencyMs ?? null });
      refreshSoon("stats"); refreshSoon("agents");
      if (j.workflow) refreshTree(j.qid, 0);
    }
  } else {
    const now = j.agents.get(change.agent);
    if (now && rank(AGENT_RANK, change.status) < rank(AGENT_RANK, now)) return;
    j.agents.set(change.agent, change.status);
    if (d.flowRunId) j.flowRunId = d.flowRunId;
    refreshSoon("agents");
  }
  if (inFlight(j)) describe(j);
  renderSoon();
}

// -- rendering -------------------------------------------------------------------------------

let renderQueued = false;
function renderSoon() {
  if (!renderQueued) { renderQueued = true; requestAnimationFrame(() => { renderQueued = false; render(); }); }
}

function runLink(j) {
  if (!j.flowRunId) return "";
  if (!meta.prefectUiUrl) return el("span", { title: j.flowRunId }, j.flowRunId.slice(0, 8));
  return el("a", { href: `${meta.prefectUiUrl}/runs/flow-run/${j.flowRunId}`, target: "_blank" },
    j.flowRunId.slice(0, 8));
}

function chips(j) {
  const out = el("span", { class: "chips" });
  for (const [name, status] of j.agents) {
    const won = j.winner === name && status === "COMPLETED";
    out.append(el("span", { class: "agent" + (won ? " won" : ""), "data-agent": name,
      "data-status": status, title: `${name}: ${status}` }, `${name} ${status}`));
  }
  return out;
}

function inFlight(j) {
  if (TERMINAL.has(j.status)) return false;
  if (j.status !== "OPEN") return true;
  return [...j.agents.values()].some((s) => !TERMINAL.has(s));  // agents being assigned
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

function render() {
  const flying = [...jobs.values()].filter(inFlight);
  $("#inflight tbody").replaceChildren(...flying.flatMap((j) => [
    el("tr", { "data-qid": j.qid, "data-status": j.status, class: j.fresh ? "fresh" : "" },
      el("td", {}, j.qid), el("td", {}, j.title || ""),
      el("td", {}, el("span", { class: "status", "data-status": j.status }, j.status)),
      el("td", {}, j.workflow ? `workflow ${j.workflow === true ? "" : j.workflow}` : chips(j)),
      el("td", {}, runLink(j))),
    ...(j.steps ? [treeRow(j, 5)] : [])]));
  $("#inflight-empty").hidden = flying.length > 0;

  const ended = [...jobs.values()].filter((j) => TERMINAL.has(j.status))
    .sort((a, b) => String(b.endedAt).localeCompare(String(a.endedAt))).slice(0, ENDINGS_SHOWN);
  $("#endings tbody").replaceChildren(...ended.flatMap((j) => [
    el("tr", { "data-qid": j.qid, "data-status": j.status, class: j.fresh ? "fresh" : "" },
      el("td", {}, j.qid),
      el("td", {}, el("span", { class: "status", "data-status": j.status }, j.status)),
      el("td", { class: "winner" }, j.winner || (j.steps ? `${j.steps.size} steps` : "–")),
      el("td", { class: "latency" }, fmtMs(j.latencyMs)),
      el("td", { class: "error", title: j.error || "" }, j.error || ""),
      el("td", {}, j.endedAt ? new Date(j.endedAt).toLocaleTimeString() : "")),
    ...(j.steps ? [treeRow(j, 6)] : [])]));
  for (const j of jobs.values()) j.fresh = false;

  $("#agents tbody").replaceChildren(...[...agents.values()].map((a) => {
    const health = a.healthy === null ? "unknown" : a.healthy ? "healthy" : "DOWN";
    return el("tr", { "data-agent": a.name },
      el("td", {}, a.name + (a.active ? "" : " (inactive)")),
      el("td", { class: "health", "data-health": health }, health),
      el("td", { class: "circuit" }, a.circuitOpen ? "OPEN" : "closed"),
      el("td", { class: "load" }, `${a.inFlight}/${a.maxConcurrency}`),
      el("td", {}, a.successRate === null ? "–" : `${Math.round(a.successRate * 100)}%`),
      el("td", {}, String(a.wins)));
  }));

  kpi("in-flight", String(flying.length));
  const healthy = [...agents.values()].filter((a) => a.healthy !== false && a.active).length;
  kpi("agents", `${healthy}/${agents.size}`);
  if (stats) {
    kpi("finished", String(stats.jobs.finished));
    kpi("success", stats.jobs.successRate === null ? "–" : `${(stats.jobs.successRate * 100).toFixed(1)}%`);
    kpi("e2e", fmtMs(stats.jobs.avgEndToEndMs));
    kpi("ttfr", fmtMs(stats.jobs.timeToFirstResultP50Ms));
  }
}

function kpi(name, value) { $(`#kpi-${name} b`).textContent = value; }

// -- data ------------------------------------------------------------------------------------

const refreshers = {
  agents: async () => { for (const a of await api("/api/agents")) agents.set(a.name, a); },
  stats: async () => {
    const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
    stats = await api(`/api/stats?since=${encodeURIComponent(since)}`);
  },
};
// One read of the server per key at a time, `delay` ms after the first ask. An ask that comes
// while a read is under way runs one more read after it: the one under way may have read the
// server before the change that asked, and dropping the ask would leave the panel stale (the
// last job's end missing from the KPIs, a new step outside its tree) until some later change.
const reads = new Map();  // key -> {timer, running, again}
function readSoon(key, delay, read) {
  let r = reads.get(key);
  if (!r) { r = { timer: null, running: false, again: false }; reads.set(key, r); }
  if (r.running) { r.again = true; return; }
  if (r.timer) return;  // the read to come will see this change too
  r.timer = setTimeout(async () => {
    Object.assign(r, { timer: null, running: true });
    try { await read(); renderSoon(); } catch (e) { /* the next change retries */ }
    r.running = false;
    if (r.again) { r.again = false; readSoon(key, delay, read); } else reads.delete(key);
  }, delay);
}

function refreshSoon(what, delay = 1000) { readSoon(what, delay, refreshers[what]); }

async function snapshot() {
  meta = await api("/api/meta");
  if (meta.prefectUiUrl) Object.assign($("#prefect-link"), { href: meta.prefectUiUrl, hidden: false });
  if (meta.dashboardUrl) {
    const url = meta.dashboardUrl + (token ? `?token=${encodeURIComponent(token)}` : "");
    Object.assign($("#dashboard-link"), { href: url, hidden: false });
  }
  const [recent, distributed, working] = await Promise.all([
    api("/api/jobs?limit=50"), api("/api/jobs?status=DISTRIBUTED&limit=200"),
    api("/api/jobs?status=IN_PROGRESS&limit=200")]);
  const flying = [...distributed.items, ...working.items].map(fromSummary).filter(Boolean);
  recent.items.forEach(fromSummary);
  for (const j of flying) if (j.workflow) refreshTree(j.qid, 0);
  await Promise.all(flying.slice(0, 50).map(async (j) => {  // who is working on what, right now
    const detail = await api(`/api/jobs/${encodeURIComponent(j.qid)}`);
    const latest = detail.distributions[detail.distributions.length - 1];
    for (const a of latest ? latest.agents : []) {
      if (!j.agents.has(a.agent)) j.agents.set(a.agent, a.status);
    }
  }));
  await Promise.all([refreshers.agents(), refreshers.stats()]);
  renderSoon();
}

function setConn(state, text) { const c = $("#conn"); c.dataset.state = state; c.textContent = text; }

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams();
  if (lastId !== null) query.set("after", String(lastId));
  if (token) query.set("token", token);
  socket = new WebSocket(`${scheme}://${location.host}/api/ws?${query}`);
  socket.onmessage = (event) => {
    const m = JSON.parse(event.data);
    if (m.kind === "hello") {
      window.__panel.connects += 1;
      if (lastId === null) lastId = m.lastId;
      setConn("live", "live");
    } else if (m.kind === "gap") {
      snapshot().catch(() => {});  // rows we missed were pruned: start again from the tables
    } else if (Array.isArray(m)) {
      m.forEach(apply);  // one frame: the changes that were ready together, oldest first
    }
  };
  socket.onclose = () => { setConn("down", "reconnecting…"); setTimeout(connect, 1000); };
}

async function start() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) { token = fromHash; sessionStorage.setItem("ad-token", token); history.replaceState(null, "", location.pathname); }
  try {
    connect();  // first, so nothing that happens during the snapshot is lost
    await snapshot();
  } catch (e) {
    if (e.message !== "auth") setConn("down", "cannot reach the API");
  }
}

$("#login").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("#token-input").value.trim();
  sessionStorage.setItem("ad-token", token);
  $("#login").hidden = true;
  if (socket) { socket.onclose = null; socket.close(); }
  start();
});

start();
