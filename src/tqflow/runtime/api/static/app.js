// The tqflow dashboard: plain JS over the REST API, hash routes, polling for live updates.
"use strict";

const view = document.getElementById("view");
const statusEl = document.getElementById("status");
const tokenForm = document.getElementById("token-form");
const REFRESH_MS = 1000;
let timer = null;
let routes = new Set();  // API paths the server offers (from its OpenAPI spec)
let selectedJob = null;

const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const when = (ms) => (ms ? new Date(ms).toLocaleString() : "");
const ago = (ms) => (ms == null ? "" : ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60000)} min`);
const took = (a, b) => (a && b ? ago(b - a) : "");
const json = (v) => esc(JSON.stringify(v, null, 2));
const dayStart = (text) => (text ? String(new Date(`${text}T00:00:00`).getTime()) : "");
const state = (s) => `<span class="state ${esc(s)}" style="background:${tqGraph.STATE_COLOURS[s] || (s === "failed" ? "#d03b3b" : "#777")}">${esc(s)}</span>`;

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const token = localStorage.getItem("tqflow-token");
  if (token) headers.authorization = `Bearer ${token}`;
  if (options.body) headers["content-type"] = "application/json";
  const reply = await fetch(path, { ...options, headers });
  if (reply.status === 401) throw new Unauthorized();
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error(body.detail ? JSON.stringify(body.detail) : `HTTP ${reply.status}`);
  return body;
}

tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem("tqflow-token", document.getElementById("token").value);
  tokenForm.hidden = true;
  render();
});

// ---- views -------------------------------------------------------------------------------------
async function runsView(params) {
  const query = new URLSearchParams({ limit: "50" });
  if (params.get("flow")) query.set("flow", params.get("flow"));
  if (params.get("state")) query.set("state", params.get("state"));
  if (params.get("offset")) query.set("offset", params.get("offset"));
  if (params.get("q")) query.set("q", params.get("q"));
  if (params.get("since")) query.set("since", dayStart(params.get("since")));
  if (params.get("until")) query.set("until", String(Number(dayStart(params.get("until"))) + 86400000 - 1));
  const page = await api(`/api/runs?${query}`);
  const rows = page.items.map((r) => `<tr data-run="${esc(r.id)}">
      <td><a href="#/run/${esc(r.id)}">${esc(r.id)}</a></td><td><a href="#/flow/${esc(r.flow)}">${esc(r.flow)}</a> v${r.version}</td>
      <td>${state(r.state)}</td><td class="num">${r.open}</td><td class="num">${r.failed}</td>
      <td>${when(r.created)}</td><td>${when(r.finished)}</td><td class="num duration">${took(r.created, r.finished)}</td></tr>`).join("");
  const next = page.next_offset != null ? `<a href="#/runs?${new URLSearchParams({ ...Object.fromEntries(params), offset: page.next_offset })}">older →</a>` : "";
  return `<h1>Runs</h1>
    <div class="filters">${["", "running", "succeeded", "failed", "cancelled"].map((s) => `<a href="#/runs${s ? `?state=${s}` : ""}">${s || "all"}</a>`).join(" · ")}
      ${page.total != null ? `<span class="muted">${page.total} runs</span>` : ""}</div>
    <form id="run-search" class="filters">
      <input name="q" placeholder="run id or parameter text" value="${esc(params.get("q") || "")}">
      <label>from <input type="date" name="since" value="${esc(params.get("since") || "")}"></label>
      <label>to <input type="date" name="until" value="${esc(params.get("until") || "")}"></label>
      <input type="hidden" name="state" value="${esc(params.get("state") || "")}"><input type="hidden" name="flow" value="${esc(params.get("flow") || "")}">
      <button type="submit">Search</button></form>
    <table id="runs"><thead><tr><th>Run</th><th>Flow</th><th>State</th><th class="num">Open jobs</th><th class="num">Failed</th><th>Started</th><th>Finished</th><th class="num">Duration</th></tr></thead>
    <tbody>${rows || `<tr><td colspan="8" class="muted">No runs found.</td></tr>`}</tbody></table>${next}`;
}

async function runView(params, runId) {
  const run = await api(`/api/runs/${encodeURIComponent(runId)}`);
  if (selectedJob === null && params.get("job")) selectedJob = params.get("job");
  const signature = run.jobs.map((j) => `${j.name}:${j.state}:${j.attempt}`).join(",");
  const counts = Object.entries(run.counts).map(([s, n]) => `${state(s)} ${n}`).join(" ");
  const job = run.jobs.find((j) => j.name === selectedJob);
  if (job && job.children) job.items = await api(`/api/jobs/${encodeURIComponent(job.id)}/children?limit=100`);
  const waiting = run.state === "running" && routes.has("/api/runs/{run_id}/signals")
    ? await api(`/api/runs/${encodeURIComponent(run.id)}/signals`) : [];
  const cancel = run.state === "running" && routes.has("/api/runs/{run_id}/cancel")
    ? ` <button data-action="cancel-run" data-id="${esc(run.id)}">Cancel run</button>` : "";
  const html = `<h1 data-sig="${esc(signature)}">Run ${esc(run.id)} ${state(run.state)}${cancel}</h1>
    <p class="muted">Flow <a href="#/flow/${esc(run.flow)}">${esc(run.flow)}</a> version ${run.version} · started ${when(run.created)}
      ${run.finished ? `· finished ${when(run.finished)}` : ""}</p>
    ${run.parent_run ? `<p class="parent">Child run of job <a href="#/run/${esc(run.parent_run)}?job=${esc(run.parent_job.slice(run.parent_run.length + 1))}">${esc(run.parent_job)}</a></p>` : ""}
    <p class="legend" id="counts">${counts}</p>
    ${waiting.length ? `<h2>Waiting for signals</h2>${waiting.map(signalForm).join("")}` : ""}
    <div class="split"><div id="graph"></div><div id="job">${job ? jobDetail(job) : `<p class="muted">Click a job to see its attempts and errors.</p>`}</div></div>
    <h2>Parameters</h2><pre>${esc(JSON.stringify(run.params, null, 2))}</pre>`;
  return { html, after: () => {
    const svg = tqGraph.drawGraph(run, selectedJob, (name) => { selectedJob = name; render(); });
    document.getElementById("graph").appendChild(svg);
  } };
}

// ---- signals: the payloads signal jobs wait for (approvals) -----------------------------------
function skeleton(t) {  // a payload of type t to start editing from
  if (!t || t.optional) return null;
  const simple = { Str: "", Bytes: "", Int: 0, Float: 0, Duration: 0, Decimal: "0", Bool: false, list: [], dict: {}, None: null, Json: null };
  if (t.name in simple) return simple[t.name];
  if (t.name === "Date") return new Date().toISOString().slice(0, 10);
  if (t.name === "DateTime") return new Date().toISOString();
  if (t.name === "Literal") return (t.values || [null])[0];
  const out = {};
  for (const name of t.required || []) out[name] = skeleton((t.fields || {})[name]);
  return out;
}

function approvable(t) {  // "bool": the payload is the decision; "field": its `approved` field is; "": neither
  if (t.name === "Bool") return "bool";
  const flag = (t.fields || {}).approved;
  return flag && flag.name === "Bool" ? "field" : "";
}

function signalForm(s) {
  const kind = approvable(s.schema);
  const quick = kind ? [true, false].map((yes) =>
    `<button type="submit" data-approve="${yes}">${yes ? "Approve" : "Reject"}</button>`).join(" ") : "";
  return `<form class="signal-form" data-run="${esc(s.run)}" data-name="${esc(s.name)}" data-approvable="${kind}">
    <p><a href="#/run/${esc(s.run)}">${esc(s.run)}</a> · ${esc(s.flow)}.<b>${esc(s.name)}</b> awaits <code>${esc(s.type)}</code>
      since ${when(s.since_ms)}${s.timeout_at_ms ? ` · times out ${when(s.timeout_at_ms)}` : ""}</p>
    ${kind === "bool" ? "" : `<textarea name="payload" rows="4" cols="60" aria-label="payload (JSON)">${json(skeleton(s.schema))}</textarea>`}
    <p>${kind === "bool" ? "" : `<button type="submit">Send</button>`} ${quick}</p></form>`;
}

// The payload a signal form sends: its JSON text, with the decision of an Approve / Reject button.
function signalPayload(form, submitter) {
  const kind = form.dataset.approvable;
  const decision = submitter && submitter.dataset.approve ? submitter.dataset.approve === "true" : null;
  if (kind === "bool") return JSON.stringify(decision);
  const payload = JSON.parse(new FormData(form).get("payload") || "null");  // a typing mistake shows here
  if (decision !== null && kind === "field") payload.approved = decision;
  return JSON.stringify(payload);
}

async function signalsView() {
  const waiting = await api("/api/signals?limit=200");
  return `<h1>Signals</h1><p class="muted">Signal jobs awaiting a payload, oldest first: approvals waiting for someone.</p>
    ${waiting.map(signalForm).join("") || `<p class="muted">No signal job is waiting.</p>`}`;
}

async function sendSignal(run, name, body) {
  return api(`/api/runs/${encodeURIComponent(run)}/signals/${encodeURIComponent(name)}`, { method: "POST", body });
}

function jobDetail(job) {
  const attempts = job.attempts.map((a) => `<tr><td class="num">${a.attempt}</td><td>${state(a.outcome === "retry" ? "retrying" : a.outcome)}</td>
      <td>${esc(a.worker)}</td><td>${when(a.started)}</td><td class="num">${ago(a.duration_ms)}</td>
      <td>${a.error_type ? `<span class="error">${esc(a.error_type)}: ${esc(a.error_message)}</span>` : ""}</td></tr>`).join("");
  const error = job.error ? `<h2>Last error</h2><p class="error">${esc(job.error.type)}: ${esc(job.error.message)}</p>
      ${job.error.traceback ? `<pre class="traceback">${esc(job.error.traceback)}</pre>` : ""}` : "";
  const open = !["succeeded", "dead", "skipped", "cancelled"].includes(job.state);
  const cancel = open && routes.has("/api/jobs/{job_id}/cancel") ? `<button data-action="cancel-job" data-id="${esc(job.id)}">Cancel job</button>` : "";
  const movable = ["waiting", "queued", "scheduled", "retrying"].includes(job.state) && routes.has("/api/jobs/{job_id}/priority");
  const priorities = ["critical", "high", "normal", "low", "batch"].map((p) => `<option${p === job.priority ? " selected" : ""}>${p}</option>`).join("");
  const move = movable ? `<label>priority <select data-action="priority" data-id="${esc(job.id)}">${priorities}</select></label>` : "";
  return `<div class="card" data-job-detail="${esc(job.id)}"><h2>Job ${esc(job.name)} ${state(job.state)}</h2><p class="actions">${cancel} ${move}</p>
    <p class="muted">${esc(job.task)} · queue ${esc(job.queue)} · priority ${esc(job.priority)} · attempt ${job.attempt}
      ${job.worker ? `· worker ${esc(job.worker)}` : ""}${job.reason ? ` · ${esc(job.reason)}` : ""}</p>
    <p class="policy">${policy(job)}${job.duration_ms != null ? ` · took <span class="duration">${ago(job.duration_ms)}</span>` : ""}</p>
    ${job.children ? `<p class="children">Fan-out: ${job.children - (job.children_left || 0)} of ${job.children} child jobs ended.
      ${Array.from({ length: Math.min(job.children, 20) }, (_, i) => `<a href="#/job/${esc(job.id)}.${i}">${i}</a>`).join(" ")}${job.children > 20 ? " …" : ""}</p>` : ""}
    ${job.items ? itemsTable(job.items) : ""}
    ${job.child_run ? `<p class="child-run">Sub-flow: child run <a href="#/run/${esc(job.child_run)}">${esc(job.child_run)}</a></p>` : ""}
    <h3>Arguments</h3><pre class="args">${json(job.args)}</pre>
    ${job.state === "succeeded" ? `<h3>Result</h3><pre class="result">${json(job.result)}</pre>` : ""}
    <table class="attempts"><thead><tr><th class="num">#</th><th>Outcome</th><th>Worker</th><th>Started</th><th class="num">Took</th><th>Error</th></tr></thead>
    <tbody>${attempts || `<tr><td colspan="6" class="muted">No attempt finished yet.</td></tr>`}</tbody></table>${error}</div>`;
}

function policy(job) {
  const o = job.options || {};
  const r = o.retry;
  const retry = !r || r.kind === "none" ? "no retry" : `retry ${esc(r.kind)}, ${r.attempts || 1} attempts${r.delay_ms ? `, ${ago(r.delay_ms)}` : ""}`;
  return [`<span class="retry">${retry}</span>`, `<span class="timeout">${o.timeout_ms ? `timeout ${ago(o.timeout_ms)}` : "no timeout"}</span>`,
    o.deadline_ms ? `deadline ${ago(o.deadline_ms)}` : "", o.dead_letter ? `dead-letter queue ${esc(o.dead_letter)}` : ""].filter(Boolean).join(" · ");
}

function itemsTable(page) {
  const rows = page.items.map((c, i) => `<tr data-item="${esc(c.id)}"><td class="num">${page.offset + i}</td><td><a href="#/job/${esc(c.id)}">${esc(c.id)}</a></td>
      <td>${state(c.state)}</td><td class="num">${c.attempt}</td><td class="num">${ago(c.duration_ms)}</td>
      <td class="error">${c.error ? esc(`${c.error.type}: ${c.error.message}`) : ""}</td></tr>`).join("");
  return `<table class="items"><thead><tr><th class="num">Item</th><th>Job</th><th>State</th><th class="num">Attempt</th><th class="num">Took</th><th>Error</th></tr></thead><tbody>${rows}</tbody></table>`;
}

async function jobView(params, jobId) {
  const job = await api(`/api/jobs/${encodeURIComponent(jobId)}`);
  if (job.children) job.items = await api(`/api/jobs/${encodeURIComponent(job.id)}/children?limit=100`);
  return `${job.run ? `<p><a href="#/run/${esc(job.run)}">← run ${esc(job.run)}</a></p>` : ""}${jobDetail(job)}`;
}

async function flowsView() {
  const flows = await api("/api/flows");
  const rows = flows.map((f) => `<tr><td><a href="#/flow/${esc(f.name)}">${esc(f.name)}</a></td><td class="num">${f.current ?? ""}</td>
      <td class="num">${f.latest}</td><td>${esc(f.queue)}</td><td class="num">${f.jobs}</td><td class="num">${f.triggers}</td>
      <td><a href="#/runs?flow=${esc(f.name)}">runs</a></td></tr>`).join("");
  return `<h1>Flows</h1><table id="flows"><thead><tr><th>Flow</th><th class="num">Current</th><th class="num">Latest</th><th>Queue</th>
    <th class="num">Jobs</th><th class="num">Triggers</th><th></th></tr></thead><tbody>${rows || `<tr><td colspan="7" class="muted">Nothing deployed yet (tqc deploy FILE).</td></tr>`}</tbody></table>`;
}

async function flowView(params, name) {
  const version = params.get("version");
  const flow = await api(`/api/flows/${encodeURIComponent(name)}${version ? `?version=${encodeURIComponent(version)}` : ""}`);
  const versions = flow.versions.map((v) => `<tr><td><a href="#/flow/${esc(name)}?version=${v.version}">v${v.version}</a>${v.current ? " (current)" : ""}</td>
      <td><code>${esc(v.plan_id.slice(0, 12))}</code></td></tr>`).join("");
  const plan = flow.plan;
  const preview = { id: `${name} v${flow.version}`, edges: [], jobs: plan.order.map((j) => ({ name: j, state: "waiting", attempt: 0, task: plan.jobs[j].task.name })) };
  plan.order.forEach((j) => plan.jobs[j].waits_for.forEach((up) => preview.edges.push({ source: up, target: j, kind: plan.jobs[j].data_deps.includes(up) ? "data" : "after" })));
  return { html: `<h1>Flow ${esc(name)} <span class="muted">version ${flow.version}</span></h1>
    <p><a href="#/runs?flow=${esc(name)}">Runs of this flow</a></p>
    ${routes.has("/api/runs") ? `<form id="start-run" data-flow="${esc(name)}"><h2>Start a run</h2>
      <label>Parameters (JSON) <textarea name="params" rows="3" cols="60">{}</textarea></label>
      <p class="muted">${(plan.params || []).map((p) => `${esc(p.name)}: ${esc(p.type)}${p.default != null ? " (has a default)" : ""}`).join(" · ") || "no parameters"}</p>
      <button type="submit">Start</button></form>` : ""}
    <div id="graph"></div>
    <h2>Versions</h2><table id="versions"><thead><tr><th>Version</th><th>Plan</th></tr></thead><tbody>${versions}</tbody></table>
    <h2>Plan</h2><pre>${esc(JSON.stringify(plan, null, 2))}</pre>`,
  after: () => document.getElementById("graph").appendChild(tqGraph.drawGraph(preview, null, () => {})) };
}

async function queuesView() {
  const overview = await api("/api/queues");
  const widest = Math.max(1, ...overview.queues.flatMap((q) => q.levels.map((l) => l.waiting)));
  const rows = overview.queues.flatMap((q) => q.levels.map((l) => `<tr data-queue="${esc(q.queue)}" data-priority="${esc(l.priority)}">
      <td><a href="#/queue/${esc(q.queue)}">${esc(q.queue)}</a></td><td>${esc(l.priority)}</td><td class="num">${l.waiting}</td>
      <td><span class="bar" style="width:${(120 * l.waiting) / widest}px"></span></td><td class="num">${l.running}</td>
      <td class="num">${ago(l.oldest_age_ms)}</td></tr>`)).join("");
  return `<h1>Queues</h1><p>${overview.delayed} delayed or retrying · <a href="#/dlq">${overview.dead} dead-lettered</a></p>
    <table id="queues"><thead><tr><th>Queue</th><th>Priority</th><th class="num">Waiting</th><th></th><th class="num">Running</th><th class="num">Oldest waiting</th></tr></thead>
    <tbody>${rows || `<tr><td colspan="6" class="muted">No queues yet.</td></tr>`}</tbody></table>${await limitsPanel()}`;
}

// Rate and concurrency limiters (GET /api/limits): each limiter's use and its waiting jobs, busiest keys first.
async function limitsPanel() {
  if (!routes.has("/api/limits")) return "";
  const overview = await api("/api/limits");
  if (!overview.limiters.length) return "";
  const rows = overview.limiters.map((l) => `<tr data-limiter="${esc(l.name)}"><td>${esc(l.name)}</td><td>${esc(l.definition)}</td>
      <td class="num">${l.keys.length}</td><td class="num">${l.in_use}</td><td class="num">${l.waiting}</td>
      <td class="muted">${l.keys.slice(0, 5).map((k) => `${esc(k.key || "(one bucket)")}: ${k.in_use} in use, ${k.waiting} waiting`).join(" · ")}</td></tr>`).join("");
  return `<h2>Limiters</h2><table id="limits"><thead><tr><th>Limiter</th><th>Definition</th><th class="num">Keys</th><th class="num">In use</th><th class="num">Waiting</th><th>Busiest keys</th></tr></thead>
    <tbody>${rows}</tbody></table>`;
}

async function queueView(params, name) {
  const [queued, running, scheduled, waiting] = await Promise.all(["queued", "running", "scheduled", "waiting"].map((s) =>
    api(`/api/jobs?state=${s}&queue=${encodeURIComponent(name)}&limit=100`)));
  const table = (title, page) => `<h2>${title} <span class="muted">${page.items.length}${page.next_offset != null ? "+" : ""}</span></h2>
    <table class="queue-jobs" data-list="${title.toLowerCase()}"><thead><tr><th>Job</th><th>Task</th><th>Priority</th><th>State</th><th class="num">Attempt</th><th>Enqueued</th><th class="num">Running for</th></tr></thead>
    <tbody>${page.items.map((j) => `<tr data-job-row="${esc(j.id)}"><td><a href="#/job/${esc(j.id)}">${esc(j.id)}</a></td><td>${esc(j.task)}</td><td>${esc(j.priority)}</td>
      <td>${state(j.state)}</td><td class="num">${j.attempt}</td><td>${when(j.enqueued)}</td><td class="num">${j.started && j.state === "running" ? ago(Date.now() - j.started) : ""}</td></tr>`).join("")
      || `<tr><td colspan="7" class="muted">None.</td></tr>`}</tbody></table>`;
  return `<h1>Queue ${esc(name)}</h1>${table("Queued", queued)}${table("Running", running)}${table("Scheduled", scheduled)}${table("Waiting", waiting)}`;
}

async function workersView() {
  const workers = await api("/api/workers");
  const colours = { leader: "#2e9e5b", alive: "#2e9e5b", dead: "#d03b3b", unregistered: "#9a9aa0" };
  const rows = workers.map((w) => `<tr data-worker="${esc(w.name)}"><td>${esc(w.name)}</td>
      <td><span class="state" style="background:${colours[w.state] || "#777"}">${esc(w.state)}</span></td>
      <td>${esc(w.info.node || "")}</td><td>${esc(w.queues.join(", "))}</td>
      <td class="num">${w.running}${w.info.concurrency ? ` / ${w.info.concurrency}` : ""}</td>
      <td class="num">${ago(w.idle_ms)}</td><td class="muted">${esc(w.info.version || w.source)}</td></tr>`).join("");
  return `<h1>Workers</h1><table id="workers"><thead><tr><th>Worker</th><th>State</th><th>Node</th><th>Queues</th><th class="num">Running jobs</th><th class="num">Last heartbeat</th><th>Version</th></tr></thead>
    <tbody>${rows || `<tr><td colspan="7" class="muted">No worker has connected yet.</td></tr>`}</tbody></table>`;
}

async function dlqView(params) {
  const name = params.get("name") || "";
  const names = await api("/api/dlq/names");
  const query = new URLSearchParams({ limit: "50", offset: params.get("offset") || "0" });
  if (name) query.set("name", name);
  const page = await api(`/api/dlq?${query}`);
  const tabs = ["", ...names].map((n) => `<a href="#/dlq${n ? `?name=${encodeURIComponent(n)}` : ""}" class="${n === name ? "active" : ""}" data-dlq="${esc(n || "default")}">${esc(n || "default")}</a>`).join(" · ");
  const canReplay = routes.has("/api/dlq/{job_id}/replay");
  const rows = page.items.map((d) => `<tr data-dead="${esc(d.job.id)}"><td><a href="#/job/${esc(d.job.id)}">${esc(d.job.id)}</a></td>
      <td>${esc(d.job.task)}</td><td>${esc(d.job.queue)}</td><td class="num">${d.job.attempt}</td>
      <td class="error">${esc(d.job.error ? `${d.job.error.type}: ${d.job.error.message}` : "")}</td><td>${when(d.dead_at)}</td>
      <td>${canReplay ? `<button data-action="replay" data-id="${esc(d.job.id)}" data-dlq="${esc(name)}" data-seen="${esc(d.job.finished ?? "")}">Replay</button>` : ""}</td></tr>`).join("");
  return { html: `<h1>Dead letters${name ? ` in ${esc(name)}` : ""} <span class="muted">${page.total}</span></h1>
    <p class="filters" id="dlq-names">Dead-letter queues: ${tabs}</p>
    <table id="dlq"><thead><tr><th>Job</th><th>Task</th><th>Queue</th><th class="num">Attempts</th><th>Error</th><th>Dead since</th><th></th></tr></thead>
    <tbody>${rows || `<tr><td colspan="7" class="muted">The dead-letter queue is empty.</td></tr>`}</tbody></table>`,
  };
}

// Buttons and selects that change something: one handler for the whole page.
const ACTIONS = {
  // `seen`: the dead-lettering this row shows, so two clicks (or two operators) replay it once
  "replay": async (id, el) => {
    const query = new URLSearchParams();
    if (el.dataset.dlq) query.set("name", el.dataset.dlq);
    if (el.dataset.seen) query.set("seen", el.dataset.seen);
    const out = await api(`/api/dlq/${encodeURIComponent(id)}/replay?${query}`, { method: "POST", body: "{}" });
    return out.replayed[id];
  },
  "cancel-run": (id) => api(`/api/runs/${encodeURIComponent(id)}/cancel`, { method: "POST", body: "{}" }),
  "cancel-job": (id) => api(`/api/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST", body: "{}" }),
  "priority": (id, el) => api(`/api/jobs/${encodeURIComponent(id)}/priority`, { method: "POST", body: JSON.stringify({ priority: el.value }) }),
};

async function act(el) {
  const notice = document.getElementById("notice");
  try {
    const status = await ACTIONS[el.dataset.action](el.dataset.id, el);
    const outcome = typeof status === "string" && status !== "replayed" ? status : "done";
    notice.textContent = `${el.dataset.action}: ${outcome} for ${el.dataset.id}`;
    notice.className = "";
  } catch (err) {
    notice.textContent = `${el.dataset.action} failed: ${err.message}`;
    notice.className = "error";
  }
  view.dataset.html = "";  // redraw with the new state
  render();
}

view.addEventListener("click", (event) => {
  const el = event.target.closest("button[data-action]");
  if (el) act(el);
});
view.addEventListener("submit", async (event) => {
  const form = event.target;
  event.preventDefault();
  if (form.id === "run-search") {
    const query = new URLSearchParams([...new FormData(form)].filter(([, v]) => v));
    location.hash = `#/runs?${query}`;
  } else if (form.classList.contains("signal-form")) {
    const notice = document.getElementById("notice");
    try {
      const sent = await sendSignal(form.dataset.run, form.dataset.name, signalPayload(form, event.submitter));
      notice.textContent = `signal ${form.dataset.name}: ${sent.status}`;
      notice.className = "";
    } catch (err) {
      notice.textContent = `signal ${form.dataset.name} refused: ${err.message}`;
      notice.className = "error";
    }
    view.dataset.html = "";
    render();
  } else if (form.id === "start-run") {
    const notice = document.getElementById("notice");
    try {
      const text = new FormData(form).get("params") || "{}";
      const started = await api("/api/runs", { method: "POST", body: JSON.stringify({ flow: form.dataset.flow, params: JSON.parse(text) }) });
      location.hash = `#/run/${started.id}`;
    } catch (err) {
      notice.textContent = `start failed: ${err.message}`;
      notice.className = "error";
    }
  }
});
document.getElementById("search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = document.getElementById("search-id").value.trim();
  if (!text) return;
  try {
    await api(`/api/runs/${encodeURIComponent(text)}`);
    location.hash = `#/run/${text}`;
  } catch (err) {
    location.hash = /^[A-Za-z0-9_.:-]+$/.test(text) ? `#/job/${text}` : `#/runs?q=${encodeURIComponent(text)}`;
  }
});
view.addEventListener("change", (event) => {
  if (event.target.matches("select[data-action]")) act(event.target);
});

// ---- routing and refresh -----------------------------------------------------------------------
const VIEWS = { runs: runsView, run: runView, job: jobView, flows: flowsView, flow: flowView, queues: queuesView, queue: queueView, workers: workersView, dlq: dlqView, signals: signalsView };

function parseHash() {
  const [path, query] = (location.hash.replace(/^#\/?/, "") || "runs").split("?");
  const [name, ...rest] = path.split("/");
  return { name: VIEWS[name] ? name : "runs", arg: decodeURIComponent(rest.join("/")), params: new URLSearchParams(query || "") };
}

async function render() {
  clearTimeout(timer);
  const { name, arg, params } = parseHash();
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === name || (name === "run" && a.dataset.view === "runs")));
  const scroll = window.scrollY;
  try {
    const out = await VIEWS[name](params, arg);
    const html = typeof out === "string" ? out : out.html;
    if (view.dataset.html !== html) {  // redraw only what changed, so a live page does not flicker
      view.innerHTML = html;
      view.dataset.html = html;
      if (out.after) out.after();
      window.scrollTo(0, scroll);
    }
    statusEl.textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.view = name;
  } catch (err) {
    if (err instanceof Unauthorized) {
      tokenForm.hidden = false;
      view.innerHTML = `<p>This API needs a token. Enter it above.</p>`;
      view.dataset.html = "";
      return;
    }
    view.innerHTML = `<p class="error">${esc(err.message)}</p>`;
    view.dataset.html = "";
  }
  timer = setTimeout(render, REFRESH_MS);
}

window.addEventListener("hashchange", () => { selectedJob = null; render(); });
fetch("/openapi.json").then((r) => r.json()).then((spec) => { routes = new Set(Object.keys(spec.paths || {})); }).catch(() => {}).finally(render);
