// agent-dispatch live panel: a workflow's steps, drawn as a tree inside their parent's row.
// Loaded before panel.js, whose helpers (job, el, api, chips, ...) these call at run time.
"use strict";

function step(parentQid, stepId, qid) {
  const p = job(parentQid);
  p.workflow = p.workflow || true;
  p.steps = p.steps || new Map();
  let st = p.steps.get(stepId);
  if (!st) { st = { stepId, status: "WAITING", needs: null, agents: new Map() }; p.steps.set(stepId, st); }
  if (qid) { st.qid = qid; stepOf.set(qid, { parent: parentQid, stepId }); }
  return st;
}

function setStatus(x, status) {
  if (rank(JOB_RANK, status) >= rank(JOB_RANK, x.status)) x.status = status;
}

// A parent's tree is read again (throttled) when a step it did not know about appears, and
// when the run ends: the feed carries statuses, the detail the needs and final figures.
function refreshTree(qid, delay = 300) {
  readSoon(`tree:${qid}`, delay, async () => {
    fromSummary(await api(`/api/jobs/${encodeURIComponent(qid)}`));
  });
}

function applyToStep(change, where) {
  const d = change.detail || {};
  const st = step(where.parent, where.stepId, change.queueTaskId);
  if (change.kind === "job") {
    if (rank(JOB_RANK, change.status) < rank(JOB_RANK, st.status)) return;
    st.status = change.status;
    if (st.needs === null) refreshTree(where.parent);
    if (change.status === "SKIPPED") st.skipped = d.error || null;
    else if (TERMINAL.has(change.status)) {
      Object.assign(st, { winner: d.winner || null, latencyMs: d.winnerLatencyMs ?? null,
        error: d.error || null });
    }
  } else {
    const now = st.agents.get(change.agent);
    if (now && rank(AGENT_RANK, change.status) < rank(AGENT_RANK, now)) return;
    st.agents.set(change.agent, change.status);
    refreshSoon("agents");
  }
  const p = job(where.parent);
  if (inFlight(p)) describe(p);
  renderSoon();
}

// The steps as a tree: each step hangs under the first step it needs (as `jobs show` draws
// it) and names its other needs; steps whose needs are not known yet sit at the top.
function tree(j) {
  const steps = [...(j.steps || new Map()).values()];
  const known = new Set(steps.map((x) => x.stepId));
  const kids = new Map();
  for (const x of steps) {
    const up = x.needs && x.needs.length && known.has(x.needs[0]) ? x.needs[0] : null;
    if (!kids.has(up)) kids.set(up, []);
    kids.get(up).push(x);
  }
  const branch = (up) => el("ul", { class: "tree" }, ...(kids.get(up) || []).map((x) => {
    const label = [el("b", {}, x.stepId), " ",
      el("span", { class: "status", "data-status": x.status }, x.status)];
    if (x.winner) label.push(el("span", { class: "winner" }, ` ${x.winner} in ${fmtMs(x.latencyMs)}`));
    if (x.needs && x.needs.length > 1) label.push(el("span", { class: "needs" }, ` also needs ${x.needs.slice(1).join(", ")}`));
    if (x.skipped) label.push(el("span", { class: "why" }, ` ${x.skipped}`));
    else if (x.error) label.push(el("span", { class: "why error" }, ` ${x.error}`));
    if (!TERMINAL.has(x.status) && x.agents.size) label.push(" ", chips(x));
    const node = el("li", { "data-step": x.stepId, "data-status": x.status }, ...label);
    if (kids.has(x.stepId)) node.append(branch(x.stepId));
    return node;
  }));
  return branch(null);
}

function treeRow(j, span) {
  return el("tr", { class: "steps", "data-steps-of": j.qid },
    el("td", { colSpan: span }, tree(j)));
}
