// Corral's dashboard: a client of the /v1 API, signed in by the session
// cookie (docs/dashboard.md). Rule of this file: text from the server goes
// into the page only through textContent (the `h` helper); nothing here
// writes HTML, so a plugin's log that holds markup shows as text.
"use strict";

const session = { kind: null, tenant: null, csrf: null, tenants: null };
const main = () => document.getElementById("main");
let closeView = () => {};

// An element with attributes (event handlers for `on…`) and children
// (strings become text nodes).
function h(tag, attrs, ...children) {
  const svg = ["svg", "rect", "line", "text", "g", "title"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  el.append(...nodes(children));
  return el;
}

// Children as nodes: nested lists flattened, absent ones (null, false)
// dropped, anything else as a text node.
function nodes(children) {
  return children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
}

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

// A read made for a view the user has already left: its answer must not
// replace the view now shown.
class Stale extends Error {}
let generation = 0;

// A call to the API: the cookie authenticates, the CSRF header proves the
// change comes from this page.
async function api(method, path, body, contentType) {
  const headers = {};
  if (method !== "GET") headers["X-Corral-CSRF"] = session.csrf || "";
  let payload;
  if (body instanceof Blob || body instanceof ArrayBuffer) { payload = body; headers["Content-Type"] = contentType; }
  else if (body !== undefined) { payload = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
  const shownFor = generation;
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  // Changes always finish; a read for a view left behind stops here.
  if (method === "GET" && shownFor !== generation) throw new Stale();
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || "error", error.message || response.statusText);
  }
  return data;
}

const finished = (state) => ["completed", "dead", "cancelled"].includes(state);
const fmtTime = (t) => (t ? new Date(t).toLocaleString() : "—");
const stateTag = (s) => h("span", { class: `state state-${s}`, "data-state": s }, s);
const link = (href, text) => h("a", { href }, text);
const errorBox = (e) => h("p", { class: "error", role: "alert" }, e.message || String(e));

function show(...children) { main().replaceChildren(...nodes(children)); }

// The route: "#/jobs/ID?x=y" -> { parts: ["jobs", "ID"], query }.
function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, search] = hash.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(search || "") };
}

function header() {
  const { parts } = route();
  const here = parts[0] || "";
  const nav = [["", "Overview"], ["jobs", "Jobs"], ["dead", "Dead letters"], ["plugins", "Plugins"],
    ["runs", "Workflows"], ["schedules", "Schedules"]];
  if (session.kind === "admin") nav.push(["tenants", "Admin"]);
  const who = h("span", { class: "who" });
  if (session.kind === "admin") {
    const pick = h("select", { id: "tenant-picker", onchange: (e) => pickTenant(e.target.value) },
      h("option", { value: "" }, "(choose a tenant)"));
    // Read once a session (the header is redrawn on every view); the
    // Admin view reads the list afresh and refreshes this copy.
    session.tenants = session.tenants || api("GET", "/v1/tenants").then((list) => list.tenants.map((t) => t.id));
    session.tenants.then((ids) => {
      for (const id of ids) pick.append(h("option", { value: id, selected: id === session.tenant }, id));
    }).catch(() => { session.tenants = null; });
    who.append("admin, acting as", pick);
  } else {
    who.append(h("span", { id: "who" }, `tenant ${session.tenant}`));
  }
  who.append(h("button", { class: "quiet", id: "sign-out", onclick: async () => {
    await api("DELETE", "/ui/session"); session.kind = null; session.tenants = null; location.hash = "#/"; render();
  } }, "Sign out"));
  document.getElementById("top").replaceChildren(
    h("span", { class: "brand" }, "Corral"),
    h("nav", {}, nav.map(([p, name]) => h("a", { href: `#/${p}`, class: p === here ? "here" : null }, name))),
    who);
}

function signInView(message) {
  document.getElementById("top").replaceChildren(h("span", { class: "brand" }, "Corral"));
  const input = h("input", { id: "key", type: "password", autocomplete: "off", placeholder: "corral_…" });
  const status = h("p", { id: "signin-error", class: "error", role: "alert" }, message || "");
  const form = h("form", { class: "signin", onsubmit: async (e) => {
    e.preventDefault();
    try {
      Object.assign(session, await api("POST", "/ui/session", { key: input.value }));
      render();
    } catch (err) { status.textContent = err.message; }
  } }, h("h1", {}, "Sign in"), h("label", {}, "API key (a tenant's or an admin's)", input), h("p", {}),
    h("button", { type: "submit", id: "sign-in" }, "Sign in"), status);
  show(form);
  input.focus();
}

function needTenant() {
  if (session.kind === "admin" && !session.tenant) {
    show(h("h1", {}, "Choose a tenant"), h("p", { class: "note" }, "An admin key sees every tenant: pick one above."));
    return true;
  }
  return false;
}

async function overviewView() {
  if (needTenant()) return;
  const o = await api("GET", "/v1/overview");
  const live = ["scheduled", "available", "retrying", "running"];
  let completed = 0, dead = 0, cancelled = 0;
  for (const m of o.finished_per_minute) { completed += m.completed; dead += m.dead; cancelled += m.cancelled; }
  const finished = completed + dead;
  const cards = h("div", { class: "cards" },
    live.map((s) => h("div", { class: "card", id: `count-${s}` }, h("div", { class: "n" }, o.live[s] || 0), h("div", { class: "k" }, s))),
    h("div", { class: "card" }, h("div", { class: "n" }, completed), h("div", { class: "k" }, "completed, last hour")),
    h("div", { class: "card" }, h("div", { class: "n" }, dead), h("div", { class: "k" }, "dead, last hour")),
    h("div", { class: "card" }, h("div", { class: "n" }, finished ? `${((100 * dead) / finished).toFixed(1)}%` : "—"), h("div", { class: "k" }, "failure rate, last hour")),
    h("div", { class: "card" }, h("div", { class: "n" }, o.oldest_due ? `${Math.round((Date.now() - new Date(o.oldest_due)) / 1000)} s` : "—"), h("div", { class: "k" }, "oldest waiting job is late by")));
  const ago = (t) => (t ? `${Math.max(0, Math.round((Date.now() - new Date(t)) / 1000))} s ago` : "not in the registry");
  show(h("h1", {}, "Overview"), cards, h("h2", {}, "Jobs finished per minute, last hour"), chart(o.finished_per_minute),
    h("h2", {}, "Worker hosts alive"),
    o.hosts.length
      ? h("table", { id: "hosts" }, h("tr", {}, ["host", "slots", "started", "last seen", "this tenant's running attempts"].map((c) => h("th", {}, c))),
        o.hosts.map((x) => h("tr", { "data-host": x.host_id }, h("td", {}, x.host_id), h("td", { class: "num" }, x.concurrency ?? "—"),
          h("td", {}, fmtTime(x.started_at)), h("td", {}, ago(x.seen_at)), h("td", { class: "num" }, x.running))))
      : h("p", { class: "note" }, "No worker host is alive: jobs wait until one starts (corral serve, or --mode worker)."));
}

// Stacked bars: completed, dead, cancelled per minute.
function chart(minutes) {
  const width = 720, height = 160, bar = width / minutes.length;
  const top = Math.max(1, ...minutes.map((m) => m.completed + m.dead + m.cancelled));
  const svg = h("svg", { class: "chart", width, height: height + 20, viewBox: `0 0 ${width} ${height + 20}` });
  minutes.forEach((m, i) => {
    let y = height;
    for (const kind of ["completed", "dead", "cancelled"]) {
      const hgt = (m[kind] / top) * height;
      if (hgt <= 0) continue;
      y -= hgt;
      svg.append(h("rect", { class: kind, x: i * bar + 1, y, width: bar - 2, height: hgt },
        h("title", {}, `${new Date(m.start).toLocaleTimeString()}: ${m[kind]} ${kind}`)));
    }
  });
  svg.append(h("text", { x: 0, y: height + 16, "font-size": 11 }, "60 min ago"), h("text", { x: width - 30, y: height + 16, "font-size": 11 }, "now"));
  return svg;
}

const FILTERS = ["state", "plugin", "queue", "error", "created_after", "created_before"];

async function jobsView(query) {
  if (needTenant()) return;
  const form = h("form", { class: "filters", id: "job-filters", onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const name of FILTERS) {
      const value = form.elements[name].value.trim();
      if (value) q.set(name, name.startsWith("created_") ? new Date(value).toISOString() : value);
    }
    location.hash = `#/jobs?${q}`;
  } },
  h("label", {}, "state", h("select", { name: "state" }, ["", "scheduled", "available", "running", "retrying", "completed", "dead", "cancelled"].map((s) => h("option", { value: s, selected: query.get("state") === s }, s || "any")))),
  h("label", {}, "plugin", h("input", { name: "plugin", value: query.get("plugin") || "" })),
  h("label", {}, "queue", h("input", { name: "queue", value: query.get("queue") || "" })),
  h("label", {}, "error contains", h("input", { name: "error", value: query.get("error") || "" })),
  h("label", {}, "created after", h("input", { name: "created_after", type: "datetime-local" })),
  h("label", {}, "created before", h("input", { name: "created_before", type: "datetime-local" })),
  h("button", { type: "submit", id: "apply-filters" }, "Filter"));
  const q = new URLSearchParams();
  for (const name of [...FILTERS, "cursor"]) if (query.get(name)) q.set(name, query.get(name));
  const list = await api("GET", `/v1/jobs?${q}`);
  const rows = list.jobs.map((j) => h("tr", { "data-job": j.id },
    h("td", {}, link(`#/jobs/${j.id}`, j.id)), h("td", {}, j.plugin), h("td", {}, j.queue), h("td", {}, stateTag(j.state)),
    h("td", { class: "num" }, `${j.attempt}/${j.max_attempts}`), h("td", {}, fmtTime(j.created_at)), h("td", { class: "error" }, j.error || "")));
  const more = [];
  if (list.next_cursor) {
    const next = new URLSearchParams(q); next.set("cursor", list.next_cursor);
    more.push(h("p", {}, link(`#/jobs?${next}`, "Older jobs →")));
  }
  const bulk = h("div", { class: "bar" });
  if (!query.get("state") || ["scheduled", "available", "running", "retrying"].includes(query.get("state"))) {
    bulk.append(bulkButton("cancel", "Cancel every matching unfinished job", selectorOf(query)));
  }
  show(h("h1", {}, "Jobs"), form, bulk,
    h("table", { id: "jobs" }, h("tr", {}, ["id", "plugin", "queue", "state", "attempt", "created", "error"].map((c) => h("th", {}, c))), rows),
    rows.length ? null : h("p", { class: "note", id: "no-jobs" }, "No jobs match (a filtered page looks at 10,000 jobs at most; follow the link below for older ones)."),
    more);
}

function selectorOf(query) {
  const s = {};
  for (const [from, to] of [["state", "state"], ["plugin", "plugin"], ["queue", "queue"], ["error", "error_contains"], ["created_after", "created_after"], ["created_before", "created_before"]]) {
    if (query.get(from)) s[to] = query.get(from);
  }
  return s;
}

// A bulk replay or cancel: the dry run's count first, then a confirmation,
// then requests until the cursor runs out.
function bulkButton(action, label, filter) {
  const status = h("span", { class: "note", "data-bulk-status": action });
  const button = h("button", { class: action === "cancel" ? "danger" : null, "data-bulk": action, onclick: async () => {
    try {
      const dry = await api("POST", `/v1/jobs/${action}`, { filter, dry_run: true });
      const count = `${dry.matched}${dry.matched_is_lower_bound ? "+" : ""}`;
      status.textContent = `${count} jobs match.`;
      if (dry.matched === 0) return;
      status.replaceChildren(`${count} jobs match. `, h("button", { "data-bulk-confirm": action, onclick: async () => {
        let cursor, done = 0;
        do {
          const r = await api("POST", `/v1/jobs/${action}`, { filter, cursor });
          done += r.jobs.length; cursor = r.next_cursor;
          status.textContent = `${action === "replay" ? "Replayed" : "Cancelled"} ${done}…`;
        } while (cursor);
        status.textContent = `${action === "replay" ? "Replayed" : "Cancelled"} ${done} jobs.`;
      } }, `Confirm: ${action} ${count}`));
    } catch (e) { status.textContent = e.message; }
  } }, label);
  return h("span", {}, button, " ", status);
}

async function jobView(id) {
  if (needTenant()) return;
  const job = await api("GET", `/v1/jobs/${encodeURIComponent(id)}`);
  const [attempts, logs] = await Promise.all([api("GET", `/v1/jobs/${id}/attempts`), api("GET", `/v1/jobs/${id}/logs`)]);
  const state = h("span", { id: "job-state" }, stateTag(job.state));
  const progress = h("span", { id: "job-progress" }, job.progress ? `${job.progress.percent}% ${job.progress.message}` : "");
  const message = h("p", { role: "status" });
  const act = (what) => async () => {
    try {
      const r = await api("POST", `/v1/jobs/${id}/${what}`);
      if (what === "replay") location.hash = `#/jobs/${r.id}`; else message.textContent = "Cancel requested.";
    } catch (e) { message.textContent = e.message; }
  };
  const attemptRows = attempts.attempts.map((a) => h("tr", {},
    h("td", { class: "num" }, a.attempt), h("td", {}, stateTag(a.outcome)), h("td", {}, a.message || ""),
    h("td", { class: "num" }, a.fuel_consumed), h("td", { class: "num" }, a.peak_memory_bytes), h("td", { class: "num" }, `${a.duration_ms} ms`),
    h("td", {}, a.host_id || ""),
    h("td", {}, a.http ? [`${a.http.total} requests`, h("ul", {}, a.http.calls.map((c) => h("li", {},
      `${c.method} ${c.host}${c.path || ""} → ${c.status || c.error || "?"}`)))] : "")));
  show(h("h1", {}, `Job ${job.id}`),
    h("p", {}, "State ", state, " ", progress, " · plugin ", job.plugin, ` v${job.version}`, " · queue ", job.queue,
      ` · attempt ${job.attempt}/${job.max_attempts}`, job.replay_of ? [" · replays ", link(`#/jobs/${job.replay_of}`, job.replay_of)] : null),
    h("div", { class: "bar" }, finished(job.state)
      ? h("button", { class: "quiet", id: "replay-job", onclick: act("replay") }, "Replay")
      : h("button", { class: "danger", id: "cancel-job", onclick: act("cancel") }, "Cancel"), message),
    h("h2", {}, "Input"), h("pre", { id: "job-input" }, JSON.stringify(job.input, null, 2)),
    h("h2", {}, "Result"), h("pre", { id: "job-result" }, job.result === undefined || job.result === null ? "—" : JSON.stringify(job.result, null, 2)),
    job.error ? [h("h2", {}, "Error"), h("pre", { id: "job-error", class: "error" }, job.error)] : null,
    h("h2", {}, "Attempts"),
    h("table", { id: "attempts" }, h("tr", {}, ["#", "outcome", "message", "fuel", "peak memory", "duration", "host", "outbound"].map((c) => h("th", {}, c))), attemptRows),
    h("h2", {}, "Log"),
    logs.logs.map((l) => [h("h3", {}, `Attempt ${l.attempt}${l.truncated ? ` (${l.dropped_bytes} bytes dropped)` : ""}`), h("pre", { class: "log" }, l.log)]));
  // Live state and progress while it runs; the stream ends when the job does.
  if (!finished(job.state)) {
    const events = new EventSource(`/v1/jobs/${id}/events`);
    events.addEventListener("state", (e) => {
      const j = JSON.parse(e.data);
      state.replaceChildren(stateTag(j.state));
      if (finished(j.state)) { events.close(); setTimeout(() => { if (route().parts[1] === id) render(); }, 300); }
    });
    events.addEventListener("progress", (e) => {
      const p = JSON.parse(e.data);
      progress.textContent = `${p.percent}% ${p.message}`;
    });
    events.onerror = () => events.close();
    closeView = () => events.close();
  }
}

async function deadView() {
  if (needTenant()) return;
  const dead = await api("GET", "/v1/dead-letters");
  const rows = dead.groups.map((g) => h("tr", {},
    h("td", {}, g.plugin), h("td", { class: "error" }, g.error), h("td", { class: "num" }, g.count), h("td", {}, fmtTime(g.newest_at)),
    h("td", {}, link(`#/jobs?${new URLSearchParams({ state: "dead", plugin: g.plugin, ...(g.error ? { error: g.error } : {}) })}`, "jobs"), " ",
      bulkButton("replay", "Replay all", { state: "dead", plugin: g.plugin, ...(g.error ? { error_contains: g.error } : {}) }))));
  show(h("h1", {}, "Dead letters"),
    h("p", { class: "note" }, "Dead jobs not yet replayed, by plugin and error (the newest 10,000). A replay is a new job; the dead one leaves this list."),
    h("div", { class: "bar" }, bulkButton("replay", "Replay every dead job", { state: "dead" })),
    h("table", { id: "dead-groups" }, h("tr", {}, ["plugin", "error", "jobs", "newest", ""].map((c) => h("th", {}, c))), rows),
    rows.length ? null : h("p", { class: "note" }, "No dead letters."));
}

// The upload form: a new plugin, or (with `fixed`) a new version of one.
function uploadForm(fixed) {
  const status = h("p", { id: "upload-status", role: "status" });
  const name = h("input", { name: "name", id: "upload-name", required: true, value: fixed || null, readonly: Boolean(fixed) });
  const file = h("input", { name: "file", id: "upload-file", type: "file", accept: ".wasm,application/wasm", required: true });
  const form = h("form", { class: "filters", id: "upload", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const bytes = await file.files[0].arrayBuffer();
      const p = await api("POST", `/v1/plugins/${encodeURIComponent(name.value.trim())}`, bytes, "application/wasm");
      status.className = ""; status.textContent = `Uploaded ${p.name} version ${p.version}.`;
      setTimeout(render, 500);
    } catch (err) { status.className = "error"; status.textContent = `${err.code}: ${err.message}`; }
  } }, h("label", {}, "name", name), h("label", {}, "component (.wasm)", file), h("button", { type: "submit" }, "Upload"));
  return [form, status];
}

const limitsText = (p) => `fuel ${p.limits.fuel}, memory ${p.limits.memory_bytes} B, ${p.limits.timeout_ms} ms, ${p.max_attempts} attempts`;
const allowText = (p) => ((p.http && p.http.allow) || []).map((a) => a.host || JSON.stringify(a)).join(", ");

async function pluginsView() {
  if (needTenant()) return;
  const list = await api("GET", "/v1/plugins");
  const rows = list.plugins.map((p) => h("tr", {},
    h("td", {}, link(`#/plugins/${encodeURIComponent(p.name)}`, p.name)), h("td", { class: "num" }, p.version), h("td", {}, h("code", {}, p.digest.slice(0, 19))),
    h("td", {}, limitsText(p)), h("td", {}, allowText(p)),
    h("td", {}, (p.config_keys || []).join(", ")), h("td", {}, fmtTime(p.created_at))));
  show(h("h1", {}, "Plugins"), h("h2", {}, "Upload a version"), uploadForm(null),
    h("table", { id: "plugins" }, h("tr", {}, ["name", "latest", "digest", "limits", "outbound allow-list", "config keys", "uploaded"].map((c) => h("th", {}, c))), rows));
}

// One plugin: every version, newest first; upload the next; delete one
// (refused while jobs or running workflow steps are pinned to it).
async function pluginView(name) {
  if (needTenant()) return;
  const list = await api("GET", `/v1/plugins/${encodeURIComponent(name)}`);
  const message = h("p", { id: "version-status", role: "status" });
  // The first click asks, the second deletes.
  const remove = (v) => async (e) => {
    const button = e.target;
    if (!button.dataset.armed) { button.dataset.armed = "1"; button.textContent = `Confirm: delete version ${v}`; return; }
    try { await api("DELETE", `/v1/plugins/${encodeURIComponent(name)}/${v}`); render(); }
    catch (e) { message.className = "error"; message.textContent = `${e.code}: ${e.message}`; }
  };
  show(h("h1", {}, `Plugin ${list.name}`), h("h2", {}, "Upload the next version"), uploadForm(list.name), message,
    h("table", { id: "versions" }, h("tr", {}, ["version", "digest", "size", "limits", "outbound allow-list", "config keys", "uploaded", ""].map((c) => h("th", {}, c))),
      list.versions.map((p) => h("tr", { "data-version": p.version }, h("td", { class: "num" }, p.version), h("td", {}, h("code", {}, p.digest)),
        h("td", { class: "num" }, `${p.size} B`), h("td", {}, limitsText(p)), h("td", {}, allowText(p)), h("td", {}, (p.config_keys || []).join(", ")),
        h("td", {}, fmtTime(p.created_at)), h("td", {}, h("button", { class: "danger", onclick: remove(p.version) }, "Delete"))))));
}

async function runsView() {
  if (needTenant()) return;
  const [flows, runs] = await Promise.all([api("GET", "/v1/workflows"), api("GET", "/v1/workflow-runs")]);
  show(h("h1", {}, "Workflows"),
    h("table", {}, h("tr", {}, ["workflow", "version", "steps"].map((c) => h("th", {}, c))),
      flows.workflows.map((w) => h("tr", {}, h("td", {}, w.name), h("td", { class: "num" }, w.version), h("td", {}, (w.steps || []).map((s) => s.name).join(", "))))),
    h("h2", {}, "Runs"),
    h("table", { id: "runs" }, h("tr", {}, ["run", "workflow", "state", "started", "error"].map((c) => h("th", {}, c))),
      runs.runs.map((r) => h("tr", {}, h("td", {}, link(`#/runs/${r.id}`, r.id)), h("td", {}, r.workflow), h("td", {}, stateTag(r.state)), h("td", {}, fmtTime(r.created_at)), h("td", { class: "error" }, r.error || "")))));
}

async function runView(id) {
  if (needTenant()) return;
  const run = await api("GET", `/v1/workflow-runs/${encodeURIComponent(id)}`);
  const message = h("p", { role: "status" });
  const state = h("span", { id: "run-state" });
  const drawing = h("div", { id: "run-drawing" });
  const steps = h("table", { id: "steps" });
  const draw = (r) => {
    state.replaceChildren(stateTag(r.state));
    drawing.replaceChildren(dag(r.steps));
    steps.replaceChildren(h("tr", {}, ["step", "plugin", "state", "job", "elements", "error"].map((c) => h("th", {}, c))),
      r.steps.map((s) => h("tr", {}, h("td", {}, s.name), h("td", {}, s.plugin), h("td", {}, stateTag(s.state)),
        h("td", {}, s.job_id ? link(`#/jobs/${s.job_id}`, s.job_id) : ""),
        h("td", { class: "num" }, s.items === null || s.items === undefined ? "" : `${s.items_done}/${s.items}`),
        h("td", { class: "error" }, s.error || ""))));
  };
  show(h("h1", {}, `Run ${run.id}`),
    h("p", {}, "Workflow ", run.workflow, ` v${run.workflow_version} · `, state),
    h("div", { class: "bar" }, h("button", { class: "danger", id: "cancel-run", onclick: async () => {
      try { await api("POST", `/v1/workflow-runs/${id}/cancel`); message.textContent = "Cancelled."; } catch (e) { message.textContent = e.message; }
    } }, "Cancel run"), message),
    drawing, steps);
  draw(run);
  // Until the run ends, its event stream redraws it on every change.
  if (run.state === "running") {
    const events = new EventSource(`/v1/workflow-runs/${encodeURIComponent(id)}/events`);
    events.addEventListener("run", (e) => {
      const r = JSON.parse(e.data);
      draw(r);
      if (r.state !== "running") events.close();
    });
    events.onerror = () => events.close();
    closeView = () => events.close();
  }
}

// The DAG: steps in columns by depth, an edge per dependency.
function dag(steps) {
  const depth = {};
  const depthOf = (name, seen = new Set()) => {
    if (depth[name] !== undefined) return depth[name];
    if (seen.has(name)) return 0;
    seen.add(name);
    const step = steps.find((s) => s.name === name);
    depth[name] = step && step.depends_on.length ? 1 + Math.max(...step.depends_on.map((d) => depthOf(d, seen))) : 0;
    return depth[name];
  };
  steps.forEach((s) => depthOf(s.name));
  const rows = {}, pos = {};
  for (const s of steps) { const d = depth[s.name]; rows[d] = (rows[d] || 0) + 1; pos[s.name] = { x: 20 + d * 190, y: 20 + (rows[d] - 1) * 60 }; }
  const width = 40 + (Math.max(0, ...Object.values(depth)) + 1) * 190, height = 40 + Math.max(1, ...Object.values(rows)) * 60;
  const svg = h("svg", { class: "dag", id: "dag", width, height, viewBox: `0 0 ${width} ${height}` });
  for (const s of steps) for (const d of s.depends_on) {
    if (!pos[d]) continue;
    svg.append(h("line", { x1: pos[d].x + 150, y1: pos[d].y + 20, x2: pos[s.name].x, y2: pos[s.name].y + 20 }));
  }
  for (const s of steps) {
    svg.append(h("g", { class: `step-${s.state}`, "data-step": s.name, "data-state": s.state },
      h("rect", { x: pos[s.name].x, y: pos[s.name].y, width: 150, height: 40, rx: 4 }),
      h("text", { x: pos[s.name].x + 8, y: pos[s.name].y + 17, "font-size": 12 }, s.name),
      h("text", { x: pos[s.name].x + 8, y: pos[s.name].y + 32, "font-size": 11 }, s.state)));
  }
  return svg;
}

async function schedulesView() {
  if (needTenant()) return;
  const list = await api("GET", "/v1/schedules");
  const toggle = (s) => async () => { await api("POST", `/v1/schedules/${encodeURIComponent(s.name)}/${s.paused ? "resume" : "pause"}`); render(); };
  show(h("h1", {}, "Schedules"),
    h("table", { id: "schedules" }, h("tr", {}, ["name", "cron", "time zone", "next tick", "state", ""].map((c) => h("th", {}, c))),
      list.schedules.map((s) => h("tr", {}, h("td", {}, link(`#/schedules/${s.name}`, s.name)), h("td", {}, h("code", {}, s.cron)), h("td", {}, s.timezone),
        h("td", {}, s.next_tick ? new Date(s.next_tick).toLocaleString(undefined, { timeZone: s.timezone }) : "—"),
        h("td", {}, s.paused ? "paused" : "active"), h("td", {}, h("button", { class: "quiet", onclick: toggle(s) }, s.paused ? "Resume" : "Pause"))))));
}

async function scheduleView(name) {
  if (needTenant()) return;
  const s = await api("GET", `/v1/schedules/${encodeURIComponent(name)}`);
  show(h("h1", {}, `Schedule ${s.name}`), h("p", {}, h("code", {}, s.cron), ` in ${s.timezone}; next `, s.next_tick ? new Date(s.next_tick).toLocaleString(undefined, { timeZone: s.timezone }) : "—"),
    h("h2", {}, "Recent ticks"),
    h("table", {}, h("tr", {}, ["tick", "fired", "started", "error"].map((c) => h("th", {}, c))),
      (s.recent_ticks || []).map((t) => h("tr", {}, h("td", {}, fmtTime(t.tick)), h("td", {}, fmtTime(t.fired_at)),
        h("td", {}, t.job_id ? link(`#/jobs/${t.job_id}`, "job") : t.run_id ? link(`#/runs/${t.run_id}`, "run") : ""), h("td", { class: "error" }, t.error || "")))));
}

async function tenantsView() {
  const list = await api("GET", "/v1/tenants");
  session.tenants = Promise.resolve(list.tenants.map((t) => t.id));
  show(h("h1", {}, "Tenants"),
    h("table", { id: "tenants" }, h("tr", {}, ["tenant", "created", ""].map((c) => h("th", {}, c))),
      list.tenants.map((t) => h("tr", {}, h("td", {}, link(`#/tenants/${encodeURIComponent(t.id)}`, t.id)), h("td", {}, fmtTime(t.created_at)),
        h("td", {}, h("button", { class: "quiet", onclick: () => pickTenant(t.id) }, "Act as"))))));
}

// The tenant an admin acts as: a cookie the API reads on tenant routes.
function pickTenant(id) {
  document.cookie = `corral_tenant=${encodeURIComponent(id)}; Path=/; SameSite=Strict`;
  session.tenant = id || null;
  if (location.hash !== "#/") location.hash = "#/"; else render();
}

// One tenant: its quotas (edited as JSON, checked by the API) and its keys.
async function tenantView(id) {
  const [tenant, keys] = await Promise.all([api("GET", `/v1/tenants/${encodeURIComponent(id)}`), api("GET", `/v1/tenants/${encodeURIComponent(id)}/keys`)]);
  const status = h("p", { role: "status", id: "tenant-status" });
  const quotas = h("textarea", { id: "quotas", rows: 14, cols: 60 }, JSON.stringify(tenant.quotas, null, 2));
  const save = async () => {
    try {
      const body = { quotas: JSON.parse(quotas.value) };
      const saved = await api("PATCH", `/v1/tenants/${encodeURIComponent(id)}`, body);
      quotas.value = JSON.stringify(saved.quotas, null, 2);
      status.className = ""; status.textContent = "Quotas saved.";
    } catch (e) { status.className = "error"; status.textContent = e.message; }
  };
  const newKey = async () => {
    try {
      const k = await api("POST", `/v1/tenants/${encodeURIComponent(id)}/keys`);
      status.className = "";
      status.replaceChildren("New key (shown this once; store it now): ", h("code", { id: "new-key" }, k.key));
    } catch (e) { status.className = "error"; status.textContent = e.message; }
  };
  const revoke = (key) => async () => {
    try { await api("DELETE", `/v1/tenants/${encodeURIComponent(id)}/keys/${encodeURIComponent(key)}`); render(); }
    catch (e) { status.className = "error"; status.textContent = e.message; }
  };
  show(h("h1", {}, `Tenant ${tenant.id}`), status,
    h("h2", {}, "Quotas"), quotas, h("p", {}, h("button", { id: "save-quotas", onclick: save }, "Save quotas")),
    h("h2", {}, "Keys"), h("p", {}, h("button", { id: "new-key-button", onclick: newKey }, "Create a key")),
    h("table", { id: "keys" }, h("tr", {}, ["key id", "created", "revoked", ""].map((c) => h("th", {}, c))),
      keys.keys.map((k) => h("tr", { "data-key": k.key_id, "data-revoked": Boolean(k.revoked_at) }, h("td", {}, h("code", {}, k.key_id)), h("td", {}, fmtTime(k.created_at)), h("td", {}, k.revoked_at ? fmtTime(k.revoked_at) : "—"),
        h("td", {}, k.revoked_at ? "" : h("button", { class: "danger", onclick: revoke(k.key_id) }, "Revoke"))))));
}

async function render() {
  closeView(); closeView = () => {};
  generation += 1;
  if (!session.kind) {
    try { Object.assign(session, await api("GET", "/ui/session")); } catch (e) { return e instanceof Stale ? undefined : signInView(); }
  }
  header();
  const { parts, query } = route();
  try {
    switch (parts[0] || "") {
      case "": return await overviewView();
      case "jobs": return await (parts[1] ? jobView(parts[1]) : jobsView(query));
      case "dead": return await deadView();
      case "plugins": return await (parts[1] ? pluginView(parts[1]) : pluginsView());
      case "runs": return await (parts[1] ? runView(parts[1]) : runsView());
      case "schedules": return await (parts[1] ? scheduleView(parts[1]) : schedulesView());
      case "tenants": return await (parts[1] ? tenantView(parts[1]) : tenantsView());
      default: return show(h("h1", {}, "Not found"));
    }
  } catch (e) {
    if (e instanceof Stale) return;
    if (e.status === 401) { session.kind = null; return signInView(e.message); }
    show(h("h1", {}, e.status === 404 ? "Not found" : "Error"), errorBox(e));
  }
}

// Opened by `corral serve --open` at `#code=…`: trade the one-time code
// for the admin's session, after taking it out of the address (and so
// out of the history).
async function start() {
  const code = /^#code=([0-9a-f]+)$/.exec(location.hash);
  if (code) {
    history.replaceState(null, "", location.pathname + "#/");
    try { Object.assign(session, await api("POST", "/ui/session", { code: code[1] })); }
    catch (e) { return signInView(`${e.message}: sign in with a key.`); }
  }
  render();
}

window.addEventListener("hashchange", render);
document.addEventListener("DOMContentLoaded", start);
