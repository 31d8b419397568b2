/* tunelab dashboard: a static single-page app over the public REST API.
 *
 * Rules that keep it safe and honest:
 * - every value from the server reaches the page as text (el() / textContent), never as markup;
 * - every action is one documented API call, so the dashboard can do nothing the API cannot;
 * - an API error is shown with its message and its hint, as the CLI prints them.
 * Sections: DOM helpers, formatting, API client, SSE reader, chart, router, pages.
 */
"use strict";

/* ---------------------------------------------------------------- DOM helpers */

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  return append(node, ...children);
}

/** Append children, skipping null/false (DOM append would insert the text "null"). */
function append(node, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace a node's children (same null-skipping as append). */
function fill(node, ...children) {
  node.replaceChildren();
  return append(node, ...children);
}

const $ = (selector, root = document) => root.querySelector(selector);
const enc = encodeURIComponent;
let uid = 0;
const nextId = (prefix) => `${prefix}-${++uid}`;

/** A labelled form control: the label names it (tests and screen readers find it by that name). */
function field(labelText, control, help) {
  control.id = control.id || nextId("f");
  const helpNode = help ? el("small", { class: "help", id: `${control.id}-help` }, help) : null;
  if (helpNode) control.setAttribute("aria-describedby", helpNode.id);
  return el("div", { class: "field" }, el("label", { for: control.id }, labelText), control, helpNode);
}

function table(headers, rows, label) {
  return el("table", { "aria-label": label },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows));
}

function section(title, ...children) {
  return el("section", { class: "card", "aria-label": title }, el("h2", {}, title), children);
}

const STATUSES = ["created", "queued", "running", "paused", "completed", "failed", "cancelled"];
const TERMINAL = ["completed", "failed", "cancelled"];

function badge(status) {
  const known = STATUSES.includes(status) ? status : "unknown";
  return el("span", { class: `badge status-${known}` }, status || "unknown");
}

function errorBox(error) {
  const details = (error && error.details) || {};
  const items = [];
  for (const problem of details.errors || []) items.push(String(problem));
  for (const problem of details.fields || []) items.push(`${problem.field}: ${problem.problem}`);
  if (Array.isArray(details.allowed)) items.push(`allowed: ${details.allowed.join(", ") || "none"}`);
  return el("div", { class: "error", role: "alert" },
    el("strong", { class: "error-message" }, (error && error.message) || String(error)),
    error && error.hint ? el("p", { class: "error-hint" }, "Hint: ", error.hint) : null,
    items.length ? el("ul", {}, items.map((item) => el("li", {}, item))) : null);
}

function showError(slot, error) {
  fill(slot, errorBox(error));
}

/** Run ``fn`` every ``ms`` until the page is left (``signal`` aborted). */
function every(ms, fn, signal) {
  const timer = setInterval(() => { if (!signal.aborted) fn(); }, ms);
  signal.addEventListener("abort", () => clearInterval(timer));
}

/** Coalesce many calls into one after ``ms`` (stream replays send hundreds of events). */
function throttle(fn, ms = 120) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    setTimeout(() => { pending = false; fn(); }, ms);
  };
}

/* ---------------------------------------------------------------- formatting */

const fmt = {
  num(v, digits = 4) {
    if (v === null || v === undefined || Number.isNaN(Number(v))) return "–";
    v = Number(v);
    if (Number.isInteger(v) || Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en");
    if (v !== 0 && Math.abs(v) < 1e-3) return v.toExponential(2);
    return String(Number(v.toPrecision(digits)));
  },
  bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
  },
  count(n) {
    if (n === null || n === undefined) return "–";
    for (const [size, unit] of [[1e9, "B"], [1e6, "M"], [1e3, "K"]]) {
      if (n >= size) return `${Number((n / size).toPrecision(3))}${unit}`;
    }
    return String(n);
  },
  duration(s) {
    if (s === null || s === undefined || !Number.isFinite(Number(s))) return "–";
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
    if (m) return `${m}m ${String(sec).padStart(2, "0")}s`;
    return `${sec}s`;
  },
  time(iso) { return iso ? new Date(iso).toLocaleString() : "–"; },
  percent(p) { return p === null || p === undefined ? "–" : `${Math.round(p * 100)}%`; },
};

/* ---------------------------------------------------------------- API client */

const TOKEN_KEY = "tunelab.token";

class ApiError extends Error {
  constructor(status, body) {
    const inner = (body && body.error) || {};
    super(inner.message || `the server answered HTTP ${status}`);
    this.status = status;
    this.code = inner.code || "http_error";
    this.hint = inner.hint || "";
    this.details = inner.details || null;
  }
}

const unreachable = (why) => new ApiError(0, { error: {
  code: "unreachable", message: `cannot reach the tunelab server (${why})`,
  hint: "check that `tunelab serve` is running and reload the page" } });

function authHeaders(extra = {}) {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

/** Call the API; on 401 ask for a token once and retry. Returns parsed JSON (or the Response). */
async function api(method, path, body, { raw = false } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const init = { method, headers: authHeaders() };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    let response;
    try { response = await fetch(path, init); } catch (e) { throw unreachable(e.message); }
    if (response.status === 401 && attempt < 3) {
      await askForToken(new ApiError(401, await response.json().catch(() => null)));
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    if (raw) return response;
    return response.status === 204 ? null : response.json();
  }
}

/** Multipart upload with progress (fetch cannot report upload progress; XHR can). */
function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const send = () => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", path);
      for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
      xhr.onerror = () => reject(unreachable("the upload was interrupted"));
      xhr.onload = () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch { body = null; }
        if (xhr.status === 401) {
          askForToken(new ApiError(401, body)).then(send, reject);
        } else if (xhr.status >= 200 && xhr.status < 300) {
          onProgress(1);
          resolve(body);
        } else reject(new ApiError(xhr.status, body));
      };
      xhr.send(form);
    };
    send();
  });
}

let pendingToken = null;

/** Show the token dialog; resolves once a token is saved, rejects when cancelled. */
function askForToken(error) {
  if (pendingToken) return pendingToken;
  const dialog = $("#token-dialog");
  $("#token-reason").textContent = error
    ? `${error.message}. ${error.hint}` : "Save the API token this browser sends with every request.";
  pendingToken = new Promise((resolve, reject) => {
    dialog.addEventListener("close", () => {
      pendingToken = null;
      if (dialog.returnValue === "save") resolve();
      else reject(error || new ApiError(401, null));
    }, { once: true });
  });
  $("#token-input").value = "";
  dialog.returnValue = "";
  dialog.showModal();
  return pendingToken;
}

function setupTokenDialog() {
  const dialog = $("#token-dialog");
  $("#token-form").addEventListener("submit", () => {
    localStorage.setItem(TOKEN_KEY, $("#token-input").value.trim());
  });
  $("#token-forget").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    dialog.close("forget");
  });
  $("#token-cancel").addEventListener("click", () => dialog.close("cancel"));
  $("#token-button").addEventListener("click", () => {
    askForToken(null).then(route, () => route());
  });
}

/* ---------------------------------------------------------------- SSE reader */

/** Follow a job's SSE stream from ``cursor`` with the bearer header (EventSource cannot send one).
 * On a dropped connection it reconnects with ``?after=<last id>``, so nothing is missed or repeated.
 * Resolves with the final ``end`` event. */
async function followJob(jobId, { onEvent, onState, signal }) {
  let cursor = 0;
  while (!signal.aborted) {
    try {
      const response = await fetch(`/api/jobs/${enc(jobId)}/stream?after=${cursor}`,
        { headers: authHeaders({ Accept: "text/event-stream" }), signal });
      if (response.status === 401) { await askForToken(new ApiError(401, await response.json())); continue; }
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      onState("live");
      for await (const block of sseBlocks(response)) {
        const event = parseSse(block);
        if (!event) continue;
        if (event.type === "end") { onState("ended"); return event; }
        if (event.id > cursor) { cursor = event.id; onEvent(event); }
      }
    } catch (error) {
      if (signal.aborted) return null;
      if (error instanceof ApiError && error.status !== 0 && error.status < 500) throw error;
    }
    onState("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return null;
}

/** The blank-line separated blocks of a server-sent event stream, as they arrive. */
async function* sseBlocks(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      yield buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
    }
  }
}

function parseSse(block) {
  const data = block.split("\n").filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).trimStart()).join("\n");
  if (!data) return null;
  try { return JSON.parse(data); } catch { return null; }
}

/* ---------------------------------------------------------------- chart */

/** Draw line series on a canvas, no library: left axis for ``axis: "left"``, right for the rest.
 * series: [{label, color, axis, points: [[x, y], ...]}]. Sets data-points for tests. */
function drawChart(canvas, series, { xLabel = "step" } = {}) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 640, height = canvas.clientHeight || 260;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const pad = { left: 56, right: 64, top: 28, bottom: 32 };
  const plotW = width - pad.left - pad.right, plotH = height - pad.top - pad.bottom;
  const all = series.flatMap((s) => s.points);
  canvas.dataset.points = String(all.length);
  ctx.font = "12px system-ui, sans-serif";
  ctx.strokeStyle = "#d0d5dd";
  ctx.strokeRect(pad.left, pad.top, plotW, plotH);
  if (!all.length) {
    ctx.fillStyle = "#667085";
    ctx.fillText("waiting for the first metrics…", pad.left + 12, pad.top + plotH / 2);
    return;
  }
  const xs = all.map((p) => p[0]);
  const [x0, x1] = spread(Math.min(...xs), Math.max(...xs));
  const sx = (x) => pad.left + ((x - x0) / (x1 - x0)) * plotW;
  const scales = {};
  for (const axis of ["left", "right"]) {
    const ys = series.filter((s) => s.axis === axis).flatMap((s) => s.points.map((p) => p[1]));
    if (ys.length) scales[axis] = spread(Math.min(...ys), Math.max(...ys));
  }
  const sy = (axis, y) => { const [y0, y1] = scales[axis]; return pad.top + plotH - ((y - y0) / (y1 - y0)) * plotH; };
  drawAxes(ctx, { pad, plotW, plotH, x0, x1, scales, xLabel, series, integerX: xs.every(Number.isInteger) });
  for (const s of series) {
    if (!s.points.length) continue;
    ctx.strokeStyle = s.color;
    ctx.fillStyle = s.color;
    ctx.lineWidth = 2;
    ctx.setLineDash(s.dash || []);
    ctx.beginPath();
    s.points.forEach(([x, y], i) => (i ? ctx.lineTo(sx(x), sy(s.axis, y)) : ctx.moveTo(sx(x), sy(s.axis, y))));
    ctx.stroke();
    ctx.setLineDash([]);
    if (s.points.length < 40) {
      for (const [x, y] of s.points) { ctx.beginPath(); ctx.arc(sx(x), sy(s.axis, y), 3, 0, 2 * Math.PI); ctx.fill(); }
    }
  }
}

function spread(lo, hi) {
  if (lo === hi) { const d = Math.abs(lo) * 0.05 || 1; return [lo - d, hi + d]; }
  return [lo, hi];
}

/** Round tick values: a step of 1, 2 or 5 times a power of ten giving at most ``most`` ticks. */
function niceTicks(lo, hi, most = 5, integer = false) {
  const raw = (hi - lo) / most;
  const power = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= raw) || raw;
  if (integer) step = Math.max(1, Math.round(step));
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  const ticks = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(v);
  const label = (v) => (Math.abs(v) !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e6)
    ? v.toExponential(1) : v.toFixed(Math.min(decimals, 8)));
  return ticks.map((v) => [v, label(v)]);
}

function drawAxes(ctx, { pad, plotW, plotH, x0, x1, scales, xLabel, series, integerX }) {
  ctx.fillStyle = "#475467";
  ctx.strokeStyle = "#eaecf0";
  ctx.lineWidth = 1;
  for (const [axis, [y0, y1]] of Object.entries(scales)) {
    for (const [value, text] of niceTicks(y0, y1, 6)) {
      const y = pad.top + plotH - ((value - y0) / (y1 - y0)) * plotH;
      if (axis === "left" || !scales.left) {
        ctx.beginPath(); ctx.moveTo(pad.left, y); ctx.lineTo(pad.left + plotW, y); ctx.stroke();
      }
      ctx.textAlign = axis === "left" ? "right" : "left";
      ctx.fillText(text, axis === "left" ? pad.left - 6 : pad.left + plotW + 6, y + 4);
    }
  }
  ctx.textAlign = "center";
  for (const [value, text] of niceTicks(x0, x1, 6, integerX)) {
    ctx.fillText(text, pad.left + ((value - x0) / (x1 - x0)) * plotW, pad.top + plotH + 16);
  }
  ctx.fillText(xLabel, pad.left + plotW / 2, pad.top + plotH + 30);
  ctx.textAlign = "left";
  let x = pad.left;
  for (const s of series) {
    ctx.fillStyle = s.color;
    ctx.fillRect(x, 8, 14, 4);
    ctx.fillStyle = "#344054";
    const text = `${s.label}${s.axis === "right" ? " (right axis)" : ""}`;
    ctx.fillText(text, x + 18, 14);
    x += ctx.measureText(text).width + 36;
  }
}

/* ---------------------------------------------------------------- router */

const ROUTES = [
  [/^#\/jobs\/([^/?]+)$/, "jobs", pageJob],
  [/^#\/jobs$/, "jobs", pageJobs],
  [/^#\/new(?:\?(.*))?$/, "new", pageNew],
  [/^#\/datasets\/([^/?]+)$/, "datasets", pageDataset],
  [/^#\/datasets$/, "datasets", pageDatasets],
  [/^#\/models\/(.+)$/, "models", pageModel],
  [/^#\/models$/, "models", pageModels],
  [/^#\/system$/, "system", pageSystem],
  [/^#\/chat(?:\?(.*))?$/, "chat", pageChat],
];
let leavePage = () => {};

async function route() {
  leavePage();
  const hash = location.hash || "#/jobs";
  const main = $("#main");
  const view = el("div", { class: "view" });
  fill(main, view);  // a fresh view: late answers for a page already left land nowhere
  const controller = new AbortController();
  leavePage = () => controller.abort();
  for (const [pattern, nav, page] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll("nav a")) {
      if (link.dataset.nav === nav) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    try {
      await page(view, controller.signal, ...match.slice(1).map((part) => (part ? decodeURIComponent(part) : "")));
    } catch (error) {
      if (!controller.signal.aborted) append(view, errorBox(error));
    }
    return;
  }
  append(view, el("h1", {}, "Not found"), el("p", {}, "There is no page ", el("code", {}, hash), ". ",
    el("a", { href: "#/jobs" }, "Go to the jobs")));
}

/* ---------------------------------------------------------------- page: jobs */

async function pageJobs(view, signal) {
  const status = el("select", {}, el("option", { value: "" }, "any"), STATUSES.map((s) => el("option", { value: s }, s)));
  const search = el("input", { type: "search", placeholder: "part of the name" });
  const tag = el("input", { type: "text", placeholder: "a tag" });
  const auto = el("input", { type: "checkbox", checked: true });
  const body = el("tbody");
  const summary = el("p", { class: "muted", "aria-live": "polite" });
  const errors = el("div");
  const load = async () => {
    const query = new URLSearchParams({ limit: "200" });
    if (status.value) query.append("status", status.value);
    if (search.value.trim()) query.set("search", search.value.trim());
    if (tag.value.trim()) query.set("tag", tag.value.trim());
    try {
      const page = await api("GET", `/api/jobs?${query}`);
      fill(body, ...page.data.map(jobRow));
      if (!page.data.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No jobs match. ", el("a", { href: "#/new" }, "Create one"), ".")));
      summary.textContent = `${page.count} job${page.count === 1 ? "" : "s"}${page.count > page.data.length ? `, newest ${page.data.length} shown` : ""}`;
      errors.replaceChildren();
    } catch (error) { showError(errors, error); }
  };
  for (const control of [status, tag]) control.addEventListener("change", load);
  search.addEventListener("input", throttle(load, 300));
  append(view, 
    el("div", { class: "page-head" }, el("h1", {}, "Jobs"), el("a", { class: "button", href: "#/new" }, "New job")),
    el("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); load(); } },
      field("Status", status), field("Search", search), field("Tag", tag),
      el("label", { class: "check" }, auto, " Auto refresh")),
    errors, summary,
    el("table", { "aria-label": "Jobs" },
      el("thead", {}, el("tr", {}, ["Name", "Status", "Progress", "Priority", "Step", "Created", "Tags"].map((h) => el("th", { scope: "col" }, h)))),
      body));
  await load();
  every(3000, () => { if (auto.checked) load(); }, signal);
}

function jobProgress(job) {
  if (job.status === "completed") return 1;
  if (job.progress !== null && job.progress !== undefined) return job.progress;
  const max = job.config && job.config.hyperparameters && job.config.hyperparameters.max_steps;
  return max && job.global_step ? Math.min(1, job.global_step / max) : 0;
}

function jobRow(job) {
  const progress = jobProgress(job);
  return el("tr", {},
    el("td", {}, el("a", { href: `#/jobs/${enc(job.id)}` }, job.name || job.id), el("div", { class: "muted small" }, job.id)),
    el("td", {}, badge(job.status)),
    el("td", {}, el("progress", { max: 1, value: progress, "aria-label": `progress of ${job.name || job.id}` }), " ", fmt.percent(progress)),
    el("td", {}, job.priority),
    el("td", {}, job.global_step ?? "–"),
    el("td", {}, fmt.time(job.created_at)),
    el("td", {}, (job.tags || []).map((t) => el("span", { class: "tag" }, t))));
}

/* ---------------------------------------------------------------- page: job detail */

const ACTIONS = [
  { name: "pause", label: "Pause", when: ["running"] },
  { name: "resume", label: "Resume", when: ["paused", "created"] },  // created: queue it
  { name: "cancel", label: "Cancel", when: ["created", "queued", "running", "paused"] },
  { name: "retry", label: "Retry", when: TERMINAL },
];
const SERIES = [
  { key: "loss", label: "loss", color: "#2563eb", axis: "left" },
  { key: "eval_loss", label: "eval loss", color: "#dc6803", axis: "left", dash: [6, 4] },
  { key: "learning_rate", label: "learning rate", color: "#12b76a", axis: "right" },
];
const METRIC_KEYS = ["epoch", "loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_second", "eta_s"];

async function pageJob(view, signal, jobId) {
  let job = await api("GET", `/api/jobs/${enc(jobId)}`);
  const steps = new Map();
  const events = [];
  const logs = [];
  const ui = jobLayout(job);
  append(view, ui.root);

  const renderJob = () => {
    ui.title.textContent = job.name || job.id;
    fill(ui.badge, badge(job.status));
    ui.chatLink.hidden = job.status !== "completed";
    for (const [action, button] of ui.buttons) {
      button.disabled = !action.when.includes(job.status);
      if (action.name === "resume") button.textContent = job.status === "created" ? "Queue" : "Resume";
    }
    const last = [...steps.values()].filter((m) => m.loss !== undefined).pop() || {};
    const progress = jobProgress(job);
    ui.progress.value = progress;
    ui.stats.progress.textContent = fmt.percent(progress);
    const max = (job.config.hyperparameters || {}).max_steps;
    ui.stats.step.textContent = `${job.global_step ?? last.step ?? 0}${max ? ` / ${max}` : ""}`;
    ui.stats.eta.textContent = TERMINAL.includes(job.status) ? "done" : fmt.duration(last.eta_s);
    ui.stats.speed.textContent = last.tokens_per_second ? `${fmt.num(last.tokens_per_second, 3)} tok/s` : "–";
    ui.stats.loss.textContent = fmt.num(last.loss);
    const evals = [...steps.values()].filter((m) => m.eval_loss !== undefined && m.eval_loss !== null);
    ui.stats.evalLoss.textContent = evals.length ? fmt.num(evals[evals.length - 1].eval_loss) : "–";
    ui.stats.attempts.textContent = `${job.attempts} of ${job.max_attempts}`;
    fill(ui.error, job.error ? errorBox(job.error) : "");
  };
  const renderMetrics = throttle(() => {
    const rows = [...steps.values()].sort((a, b) => a.step - b.step);
    drawChart(ui.canvas, SERIES.map((s) => ({ ...s,
      points: rows.filter((m) => typeof m[s.key] === "number").map((m) => [m.step, m[s.key]]) })));
    fill(ui.metrics, ...rows.slice(-15).reverse().map((m) => el("tr", {},
      el("td", {}, m.step), METRIC_KEYS.slice(0, 6).map((k) => el("td", {}, fmt.num(m[k]))))));
    renderJob();
  });
  const renderLog = throttle(() => {
    const stick = ui.log.scrollTop + ui.log.clientHeight >= ui.log.scrollHeight - 20;
    ui.log.textContent = logs.join("\n");
    if (stick) ui.log.scrollTop = ui.log.scrollHeight;
    fill(ui.events, ...events.slice(-30).reverse().map((e) =>
      el("li", {}, el("time", { datetime: e.at }, fmt.time(e.at)), " ", el("span", { class: "tag" }, e.kind), " ", e.text)));
  });
  const refresh = async () => {
    try { job = await api("GET", `/api/jobs/${enc(job.id)}`); renderJob(); } catch (error) { showError(ui.error, error); }
  };

  ui.onAction = async (action) => {
    ui.actionResult.replaceChildren();
    for (const [, button] of ui.buttons) button.disabled = true;
    try {
      const answer = await api("POST", `/api/jobs/${enc(job.id)}/${action.name}`);
      if (action.name === "retry") { location.hash = `#/jobs/${enc(answer.id)}`; return; }
      job = answer;
      const note = job.requested_action
        ? `${action.label} requested: the worker will act on it (the job is ${job.status} until then).`
        : `${action.label}: the job is now ${job.status}.`;
      fill(ui.actionResult, el("p", { class: "ok", role: "status" }, note));
    } catch (error) { showError(ui.actionResult, error); }
    renderJob();
  };

  const onEvent = (event) => {
    const d = event.data || {};
    if (event.type === "metrics" && typeof d.step === "number") {
      const entry = steps.get(d.step) || { step: d.step };
      for (const key of METRIC_KEYS) if (d[key] !== undefined && d[key] !== null) entry[key] = d[key];
      steps.set(d.step, entry);
      renderMetrics();
    } else if (event.type === "log") {
      logs.push(String(d.line ?? ""));
      if (logs.length > 500) logs.splice(0, logs.length - 500);
      renderLog();
    } else if (event.type === "status" || event.type === "event") {
      const text = event.type === "status" ? `${d.previous ?? "–"} → ${d.status}` : String(d.message ?? d.type ?? "");
      events.push({ at: event.created_at, kind: event.type === "status" ? "status" : String(d.type || "event"), text });
      renderLog();
      if (event.type === "status") refresh();
    } else if (event.type === "resources") {
      ui.resources.textContent = resourceLine(d);
    }
  };

  renderJob();
  drawChart(ui.canvas, SERIES.map((s) => ({ ...s, points: [] })));
  loadArtifacts(job.id, ui.artifacts);
  every(5000, () => { if (!TERMINAL.includes(job.status)) refresh(); }, signal);
  const end = await followJob(job.id, { onEvent, signal, onState: (s) => { ui.live.textContent = `stream: ${s}`; } });
  if (end && !signal.aborted) {
    await refresh();
    renderMetrics();
    loadArtifacts(job.id, ui.artifacts);
  }
}

function jobLayout(job) {
  const ui = { buttons: [], stats: {} };
  ui.title = el("h1", {}, job.name || job.id);
  ui.badge = el("span");
  ui.live = el("span", { class: "muted small", role: "status" }, "stream: connecting");
  ui.actionResult = el("div", { "aria-live": "polite" });
  ui.error = el("div");
  for (const action of ACTIONS) {
    ui.buttons.push([action, el("button", { type: "button", onclick: () => ui.onAction(action) }, action.label)]);
  }
  const stat = (key, label) => { ui.stats[key] = el("dd", {}, "–"); return el("div", { class: "stat" }, el("dt", {}, label), ui.stats[key]); };
  ui.progress = el("progress", { max: 1, value: 0, "aria-label": "Job progress" });
  ui.canvas = el("canvas", { class: "chart", role: "img", "aria-label": "Training curves: loss, eval loss and learning rate by step" });
  ui.metrics = el("tbody");
  ui.log = el("pre", { class: "log", role: "log", "aria-label": "Training log", tabindex: 0 });
  ui.events = el("ol", { class: "events", "aria-label": "Job events" });
  ui.resources = el("p", { class: "muted" }, "no resource sample yet");
  ui.artifacts = el("div");
  ui.root = el("div", {},
    el("p", {}, el("a", { href: "#/jobs" }, "← Jobs")),
    el("div", { class: "page-head" }, el("div", {}, ui.title, el("div", { class: "muted small" }, job.id, " · ", ui.live)), ui.badge),
    el("div", { class: "actions", role: "group", "aria-label": "Job actions" }, ui.buttons.map(([, b]) => b),
      (ui.chatLink = el("a", { class: "button", href: `#/chat?model=${enc(job.id)}`, hidden: true }, "Chat with the tuned model"))),
    job.description || (job.tags || []).length ? el("p", { class: "job-about" }, job.description || "", " ",
      (job.tags || []).map((t) => el("span", { class: "tag" }, t))) : null,
    ui.actionResult, ui.error,
    el("dl", { class: "stats" }, stat("step", "Step"),
      el("div", { class: "stat wide" }, el("dt", {}, "Progress"), el("dd", {}, ui.progress, " ", (ui.stats.progress = el("span", {}, "–")))),
      stat("eta", "ETA"), stat("speed", "Throughput"), stat("loss", "Loss"), stat("evalLoss", "Eval loss"), stat("attempts", "Attempts")),
    section("Training curves", ui.canvas),
    section("Metrics (latest steps)", el("table", { "aria-label": "Metrics" },
      el("thead", {}, el("tr", {}, ["step", "epoch", "loss", "eval loss", "learning rate", "grad norm", "tokens/s"].map((h) => el("th", { scope: "col" }, h)))),
      ui.metrics)),
    el("div", { class: "two" }, section("Events", ui.events), section("Log", ui.log)),
    section("Resources", ui.resources),
    section("Configuration", el("pre", { class: "config" }, JSON.stringify(job.config, null, 2))),
    section("Artifacts", ui.artifacts));
  return ui;
}

function resourceLine(r) {
  const parts = [`CPU ${fmt.num(r.cpu_percent, 3)}%`, `RAM ${fmt.bytes(r.ram_used)} / ${fmt.bytes(r.ram_total)}`];
  if (r.process_rss) parts.push(`training process ${fmt.bytes(r.process_rss)}`);
  for (const gpu of r.gpus || []) parts.push(`GPU ${gpu.index ?? ""} ${gpu.name ?? ""} ${fmt.num(gpu.utilization_percent, 3)}% · ${fmt.bytes(gpu.memory_used)} / ${fmt.bytes(gpu.memory_total)}`);
  return parts.join(" · ");
}

async function loadArtifacts(jobId, slot) {
  try {
    const page = await api("GET", `/api/jobs/${enc(jobId)}/artifacts`);
    if (!page.data.length) { fill(slot, el("p", { class: "muted" }, "No artifacts yet.")); return; }
    fill(slot, table(["file", "kind", "size", ""], page.data.map((a) => el("tr", {},
      el("td", {}, el("code", {}, a.path)), el("td", {}, a.kind), el("td", {}, fmt.bytes(a.size)),
      el("td", {}, el("button", { type: "button", class: "quiet", onclick: () => download(jobId, a, slot) }, "Download")))), "Artifacts"));
  } catch (error) { showError(slot, error); }
}

async function download(jobId, artifact, slot) {
  try {
    const response = await api("GET", `/api/jobs/${enc(jobId)}/artifacts/${artifact.id}`, undefined, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: artifact.path.split("/").pop() });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) { slot.prepend(errorBox(error)); }
}

/* ---------------------------------------------------------------- page: new job */

const MAIN_FIELDS = ["method", "max_steps", "epochs", "learning_rate", "batch_size", "gradient_accumulation_steps",
  "max_length", "scheduler", "warmup_ratio", "lora.r", "lora.alpha", "lora.dropout", "eval_split", "eval_steps",
  "save_steps", "max_rows", "output.evaluate", "seed"];
const NOT_FORM_FIELDS = new Set(["name", "model", "dataset", "engine"]);

/** The TrainConfig schema (defaults, ranges, help) as the API publishes it in its OpenAPI
 * document: one source for the API, this form and the CLI. */
async function trainSchema() {
  const openapi = await api("GET", "/openapi.json");
  const schemas = (openapi.components && openapi.components.schemas) || {};
  return { schema: schemas.TrainConfig || { properties: {} }, defs: schemas, source: "the API's OpenAPI schema" };
}

function schemaFields({ schema, defs }) {
  const resolve = (prop) => {
    const ref = prop.$ref || (prop.allOf && prop.allOf[0] && prop.allOf[0].$ref);
    return ref ? defs[ref.split("/").pop()] : null;
  };
  const fields = [];
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    if (NOT_FORM_FIELDS.has(name)) continue;
    const nested = resolve(prop);
    if (nested) {
      for (const [sub, subProp] of Object.entries(nested.properties || {})) fields.push(toField(`${name}.${sub}`, subProp));
    } else fields.push(toField(name, prop));
  }
  const known = fields.filter(Boolean);
  const rank = (f) => (MAIN_FIELDS.includes(f.name) ? MAIN_FIELDS.indexOf(f.name) : 1000);
  return known.sort((a, b) => rank(a) - rank(b)).map((f) => ({ ...f, advanced: rank(f) === 1000 }));
}

function toField(name, prop) {
  let type = prop;
  let nullable = false;
  if (prop.anyOf) {
    const solid = prop.anyOf.filter((t) => t.type !== "null");
    nullable = solid.length < prop.anyOf.length;
    if (solid.length !== 1) return null;
    type = solid[0];
  }
  const kind = type.enum ? "enum" : type.type;
  if (!["enum", "integer", "number", "boolean", "string"].includes(kind)) return null;
  return { name, kind, nullable, enum: type.enum, default: prop.default ?? null,
    min: type.minimum ?? type.exclusiveMinimum, max: type.maximum, help: prop.description || "" };
}

function fieldControl(f) {
  let control;
  if (f.kind === "boolean") control = el("input", { type: "checkbox", checked: f.default === true });
  else if (f.kind === "enum") {
    control = el("select", {}, f.nullable ? el("option", { value: "" }, "(default)") : null,
      f.enum.map((v) => el("option", { value: v, selected: v === f.default }, v)));
  } else if (f.kind === "string") control = el("input", { type: "text", value: f.default ?? "" });
  else {
    control = el("input", { type: "number", value: f.default ?? "", min: f.min, max: f.max,
      step: f.kind === "integer" ? 1 : "any", placeholder: f.default === null ? "default" : null });
  }
  control.name = f.name;
  const range = f.min !== undefined || f.max !== undefined ? ` Range ${f.min ?? "…"} to ${f.max ?? "…"}.` : "";
  const wrapper = field(f.name, control, `${f.help}${range}`);
  if (f.kind === "boolean") wrapper.classList.add("check-field");
  return { f, control, wrapper };
}

/** Only the fields the user changed travel; the server fills every default itself. */
function collectHyperparameters(controls, extraText) {
  const out = {};
  for (const { f, control } of controls) {
    let value;
    if (f.kind === "boolean") value = control.checked;
    else if (control.value === "") continue;
    else if (f.kind === "integer" || f.kind === "number") value = Number(control.value);
    else value = control.value;
    if (value === f.default) continue;
    const path = f.name.split(".");
    let target = out;
    for (const part of path.slice(0, -1)) target = target[part] = target[part] || {};
    target[path[path.length - 1]] = value;
  }
  if (extraText.trim()) {
    let extra;
    try { extra = JSON.parse(extraText); } catch (e) {
      throw new ApiError(422, { error: { code: "invalid_input", message: `More hyperparameters is not valid JSON (${e.message})`,
        hint: 'write a JSON object, e.g. {"max_rows": 100, "output": {"evaluate": false}}' } });
    }
    deepMerge(out, extra);
  }
  return out;
}

function deepMerge(target, source) {
  for (const [key, value] of Object.entries(source || {})) {
    if (value && typeof value === "object" && !Array.isArray(value) && typeof target[key] === "object") deepMerge(target[key], value);
    else target[key] = value;
  }
  return target;
}

async function pageNew(view, signal, query) {
  const wanted = new URLSearchParams(query || "");
  const [datasets, models, schema] = await Promise.all([
    api("GET", "/api/datasets?limit=1000"), api("GET", "/api/models"), trainSchema()]);
  const name = el("input", { type: "text", maxlength: 200, placeholder: "e.g. alpaca-lora" });
  const dataset = el("select", { required: true }, el("option", { value: "" }, "choose a dataset"),
    datasets.data.filter((d) => d.latest_version_id).map((d) => el("option",
      { value: d.latest_version_id, selected: [d.latest_version_id, d.id, d.name].includes(wanted.get("dataset")) }, d.name)));
  const model = el("select", {}, models.data.map((m) => el("option", { value: m.id, selected: m.id === wanted.get("model") }, m.name && m.name !== m.id ? `${m.name} (${m.id})` : m.id)));
  const modelPath = el("input", { type: "text", placeholder: "org/name or /path/to/model" });
  const controls = schemaFields(schema).map(fieldControl);
  const extra = el("textarea", { rows: 3, spellcheck: "false", placeholder: '{"max_rows": 200}' });
  const priority = el("select", {}, ["high", "medium", "low"].map((p) => el("option", { value: p, selected: p === "medium" }, p)));
  const tags = el("input", { type: "text", placeholder: "demo, lora" });
  const attempts = el("input", { type: "number", min: 1, max: 100, value: 3 });
  const timeout = el("input", { type: "number", min: 1, placeholder: "none" });
  const saveModel = el("input", { type: "checkbox", checked: true });
  const modelName = el("input", { type: "text", maxlength: 200, placeholder: "my-model" });
  const errors = el("div", { "aria-live": "polite" });
  const submit = el("button", { type: "submit" }, "Create job");

  const onSubmit = async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    submit.disabled = true;
    try {
      const body = {
        name: name.value.trim(), priority: priority.value, max_attempts: Number(attempts.value || 3),
        tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean),
        configuration: { model: modelPath.value.trim() || model.value, dataset: dataset.value,
          hyperparameters: collectHyperparameters(controls, extra.value) },
        save: { save_model: saveModel.checked, model_name: modelName.value.trim() || null },
      };
      if (timeout.value) body.timeout_s = Number(timeout.value);
      const job = await api("POST", "/api/jobs", body);
      location.hash = `#/jobs/${enc(job.id)}`;
    } catch (error) { showError(errors, error); submit.disabled = false; }
  };
  const main = controls.filter((c) => !c.f.advanced).map((c) => c.wrapper);
  const advanced = controls.filter((c) => c.f.advanced).map((c) => c.wrapper);
  append(view, el("h1", {}, "New job"),
    el("form", { class: "stack", onsubmit: onSubmit, novalidate: false },
      el("fieldset", {}, el("legend", {}, "What to train"),
        el("div", { class: "grid" }, field("Job name", name), field("Dataset", dataset, datasets.data.length ? "The latest version of a stored dataset." : null),
          field("Model", model), field("Model path or Hub id", modelPath, "Overrides the catalog choice when filled."))),
      datasets.data.length ? null : el("p", { class: "muted" }, "No dataset yet: ", el("a", { href: "#/datasets" }, "upload one"), " first."),
      el("fieldset", {}, el("legend", {}, "Hyperparameters"),
        el("p", { class: "muted small" }, `Fields, defaults and ranges from ${schema.source}; only changed values are sent.`),
        el("div", { class: "grid" }, main),
        advanced.length ? el("details", {}, el("summary", {}, `Advanced (${advanced.length})`), el("div", { class: "grid" }, advanced)) : null,
        field("More hyperparameters (JSON)", extra, "Any other TrainConfig field, merged over the form.")),
      el("fieldset", {}, el("legend", {}, "Job"),
        el("div", { class: "grid" }, field("Priority", priority), field("Tags", tags, "Comma separated."),
          field("Max attempts", attempts), field("Timeout (seconds)", timeout),
          el("div", { class: "field check-field" }, el("label", { class: "check" }, saveModel, " Save the trained model")),
          field("Saved model name", modelName))),
      errors,
      el("div", { class: "actions" }, submit)));
}

/* ---------------------------------------------------------------- page: datasets */

async function pageDatasets(view) {
  const file = el("input", { type: "file", accept: ".json,.jsonl,.csv,.tsv,.txt,.parquet", required: true });
  const name = el("input", { type: "text", maxlength: 200, placeholder: "from the file name" });
  const description = el("input", { type: "text", maxlength: 5000 });
  const format = el("select", {}, el("option", { value: "" }, "detect"),
    ["openai", "sharegpt", "alpaca", "prompt_completion", "question_answer", "input_output", "text", "preference"].map((f) => el("option", { value: f }, f)));
  const progress = el("progress", { max: 1, value: 0, "aria-label": "Upload progress" });
  const progressText = el("span", { class: "muted small" });
  const result = el("div", { "aria-live": "polite" });
  const list = el("tbody");
  const form = () => {
    const data = new FormData();
    data.append("file", file.files[0]);
    if (name.value.trim()) data.append("name", name.value.trim());
    if (description.value.trim()) data.append("description", description.value.trim());
    if (format.value) data.append("format", format.value);
    return data;
  };
  const send = async (path, done) => {
    if (!file.files.length) { showError(result, { message: "choose a file first", hint: "JSON, JSONL, CSV, TSV, TXT or Parquet" }); return; }
    fill(result, el("p", { class: "muted" }, "Working…"));
    try {
      const answer = await upload(path, form(), (p) => { progress.value = p; progressText.textContent = `${Math.round(p * 100)}% sent`; });
      fill(result, ...done(answer));
    } catch (error) { showError(result, error); }
  };
  const check = () => send("/api/datasets/preview", (report) => [el("h3", {}, "Check of ", report.path), ...reportView(report)]);
  const save = () => send("/api/datasets", (answer) => {
    loadList();
    return [el("p", { class: "ok", role: "status" }, `Stored ${answer.name}: version `, el("code", {}, answer.version.id),
      `, ${answer.version.num_rows} rows (${answer.version.format}). `, el("a", { href: `#/datasets/${enc(answer.id)}` }, "Open"),
      " · ", el("a", { href: `#/new?dataset=${enc(answer.version.id)}` }, "Train on it"))];
  });
  const loadList = async () => {
    const page = await api("GET", "/api/datasets?limit=1000");
    fill(list, ...page.data.map((d) => el("tr", {},
      el("td", {}, el("a", { href: `#/datasets/${enc(d.id)}` }, d.name)),
      el("td", {}, el("code", {}, d.latest_version_id || "–")), el("td", {}, d.description || ""), el("td", {}, fmt.time(d.created_at)))));
    if (!page.data.length) list.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No datasets yet.")));
  };
  append(view, el("h1", {}, "Datasets"),
    section("Upload a dataset",
      el("form", { class: "stack", onsubmit: (e) => { e.preventDefault(); save(); } },
        el("div", { class: "grid" }, field("File", file, "JSON, JSONL, CSV, TSV, TXT or Parquet; detected formats: OpenAI messages, ShareGPT, Alpaca, prompt/completion, text, preference pairs."),
          field("Name", name), field("Description", description), field("Format", format)),
        el("div", { class: "actions" }, el("button", { type: "button", class: "quiet", onclick: check }, "Check without saving"),
          el("button", { type: "submit" }, "Upload"), progress, progressText)),
      result),
    section("Stored datasets", table(["Name", "Latest version", "Description", "Created"], list, "Datasets")));
  await loadList();
}

/** A validation / quality report (preview or stored version) as tables. */
function reportView(report) {
  const q = report.quality || {};
  const tokens = q.tokens || {};
  const facts = [["format", report.format], ["rows", q.rows], ["valid rows", q.valid_rows], ["invalid rows", q.invalid_rows],
    ["errors", report.errors], ["warnings", report.warnings], ["duplicates", q.duplicates], ["empty rows", q.empty_rows],
    ["tokens mean / p95 / max", `${fmt.num(tokens.mean)} / ${fmt.num(tokens.p95)} / ${fmt.num(tokens.max)}`],
    ["rows over max length", `${q.over_max_length ?? "–"} (max ${q.max_length ?? "–"})`],
    ["kinds", Object.entries(q.kinds || {}).map(([k, v]) => `${k}: ${v}`).join(", ")]];
  const issues = report.issues || [];
  return [
    el("p", {}, report.ok === false ? el("strong", { class: "bad" }, "Not usable as is: fix the errors below.")
      : el("strong", { class: "good" }, "Usable for training.")),
    el("dl", { class: "facts", "aria-label": "Quality facts" }, facts.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v ?? "–")))),
    el("h3", {}, `Issues (${issues.length})`),
    issues.length ? table(["severity", "code", "message", "hint", "row", "line"], issues.map((i) => el("tr", { class: `sev-${i.severity === "error" ? "error" : "warning"}` },
      el("td", {}, i.severity), el("td", {}, el("code", {}, i.code)), el("td", {}, i.message), el("td", {}, i.hint), el("td", {}, i.row ?? "–"), el("td", {}, i.line ?? "–"))), "Validation issues")
      : el("p", { class: "muted" }, "No issues."),
    el("h3", {}, "Preview"),
    table(["row", "kind", "tokens", "text"], (report.preview || []).slice(0, 8).map((p) => el("tr", {},
      el("td", {}, p.row), el("td", {}, p.kind), el("td", {}, p.tokens), el("td", {}, el("pre", { class: "cell" }, p.rendered)))), "Preview rows"),
  ];
}

async function pageDataset(view, signal, id) {
  const dataset = await api("GET", `/api/datasets/${enc(id)}`);
  const versions = await api("GET", `/api/datasets/${enc(id)}/versions`);
  const report = el("div", {}, el("p", { class: "muted" }, "Loading the quality report…"));
  const rows = el("div", { class: "records" });
  const actionResult = el("div", { "aria-live": "polite" });
  const showVersion = async (versionId) => {
    try {
      const [quality, page] = await Promise.all([
        api("GET", `/api/datasets/${enc(id)}/quality?version=${enc(versionId)}`),
        api("GET", `/api/datasets/${enc(id)}/rows?version=${enc(versionId)}&limit=5`)]);
      fill(report, el("h3", {}, "Version ", el("code", {}, versionId)), ...reportView(quality));
      fill(rows, ...page.data.map((r) => el("pre", { class: "cell" }, recordText(r))));
    } catch (error) { showError(report, error); }
  };
  const repair = async () => {
    try {
      const answer = await api("POST", `/api/datasets/${enc(id)}/repair`, {});
      fill(actionResult, el("p", { class: "ok", role: "status" }, `New version ${answer.id}: ${answer.summary}`));
    } catch (error) { showError(actionResult, error); }
  };
  const remove = async () => {
    if (!window.confirm(`Delete dataset ${dataset.name} and all its versions?`)) return;
    try { await api("DELETE", `/api/datasets/${enc(id)}`); location.hash = "#/datasets"; } catch (error) { showError(actionResult, error); }
  };
  append(view, el("p", {}, el("a", { href: "#/datasets" }, "← Datasets")),
    el("div", { class: "page-head" }, el("h1", {}, dataset.name),
      el("div", { class: "actions" }, el("a", { class: "button", href: `#/new?dataset=${enc(dataset.latest_version_id || "")}` }, "Train on it"),
        el("button", { type: "button", class: "quiet", onclick: repair }, "Repair into a new version"),
        el("button", { type: "button", class: "danger", onclick: remove }, "Delete"))),
    dataset.description ? el("p", {}, dataset.description) : null, actionResult,
    section("Versions", table(["version", "format", "kind", "rows", "invalid", "note", "created", ""], versions.data.map((v) => el("tr", {},
      el("td", {}, el("code", {}, v.id)), el("td", {}, v.format), el("td", {}, v.kind), el("td", {}, v.num_rows), el("td", {}, v.num_invalid),
      el("td", {}, v.note), el("td", {}, fmt.time(v.created_at)),
      el("td", {}, el("button", { type: "button", class: "quiet", onclick: () => showVersion(v.id) }, "Report")))), "Versions")),
    section("Quality report", report), section("First records", rows));
  if (dataset.latest_version_id) await showVersion(dataset.latest_version_id);
}

function recordText(record) {
  if (Array.isArray(record.messages)) return record.messages.map((m) => `${m.role}: ${m.content}`).join("\n");
  return JSON.stringify(record, null, 2);
}

/* ---------------------------------------------------------------- page: models */

async function pageModels(view, signal) {
  const page = await api("GET", "/api/models");
  const id = el("input", { type: "text", required: true, placeholder: "HuggingFaceTB/SmolLM2-360M-Instruct or /models/my-model" });
  const label = el("input", { type: "text", maxlength: 200 });
  const result = el("div", { "aria-live": "polite" });
  const memory = new Map();
  const rows = page.data.map((m) => {
    memory.set(m.id, el("td", { class: "muted" }, "…"));
    return el("tr", {},
      el("td", {}, el("a", { href: `#/models/${enc(m.id)}` }, m.name && m.name !== m.id ? m.name : m.id), m.description ? el("div", { class: "muted small" }, m.description) : null),
      el("td", {}, m.source), el("td", {}, fmt.count(m.parameters)), el("td", {}, m.architecture ?? "–"),
      el("td", {}, fmt.num(m.context_length)), el("td", {}, m.licence ?? "–"),
      el("td", {}, m.available ? "yes" : "no"), memory.get(m.id));
  });
  const add = async (e) => {
    e.preventDefault();
    try {
      const entry = await api("POST", "/api/models", { id: id.value.trim(), name: label.value.trim() });
      fill(result, el("p", { class: "ok", role: "status" }, `Added ${entry.id} to the collection.`));
      route();
    } catch (error) { showError(result, error); }
  };
  append(view, el("h1", {}, "Models"),
    section("Catalog", table(["Model", "Source", "Parameters", "Architecture", "Context", "Licence", "Available", "LoRA memory (batch 8, 512 tokens)"], rows, "Models")),
    section("Add a model to the collection", el("form", { class: "stack", onsubmit: add },
      el("div", { class: "grid" }, field("Model id, Hub id or local folder", id), field("Display name", label)),
      el("div", { class: "actions" }, el("button", { type: "submit" }, "Add"))), result));
  for (const m of page.data.slice(0, 20)) {
    if (signal.aborted) return;
    try {
      const info = await api("GET", `/api/models/info?name=${enc(m.id)}`);
      const lora = info.memory.lora || {};
      memory.get(m.id).textContent = lora.total_bytes ? fmt.bytes(lora.total_bytes) : (lora.error && lora.error.message) || "–";
    } catch (error) { memory.get(m.id).textContent = error.message; }
  }
}

async function pageModel(view, signal, name) {
  const batch = el("input", { type: "number", min: 1, max: 4096, value: 8 });
  const length = el("input", { type: "number", min: 1, max: 1000000, value: 512 });
  const body = el("div");
  const load = async () => {
    try {
      const info = await api("GET", `/api/models/info?name=${enc(name)}&batch_size=${enc(batch.value)}&max_length=${enc(length.value)}`);
      const m = info.model;
      const facts = [["source", m.source], ["parameters", fmt.count(m.parameters)], ["architecture", m.architecture], ["model type", m.model_type],
        ["layers", m.num_layers], ["hidden size", m.hidden_size], ["heads", m.num_heads], ["context length", m.context_length],
        ["vocabulary", m.vocab_size], ["dtype", m.dtype], ["licence", m.licence], ["chat template", m.chat_template ? "yes" : "no"],
        ["Hub id", m.hub_id], ["available", m.available ? "yes" : "no"]];
      const memoryRows = Object.entries(info.memory).map(([method, e]) => e.error
        ? el("tr", {}, el("td", {}, method), el("td", { colspan: 6 }, e.error.message, " — ", e.error.hint))
        : el("tr", {}, el("td", {}, method), el("td", {}, fmt.count(e.trainable_parameters)), el("td", {}, fmt.bytes(e.weights_bytes)),
          el("td", {}, fmt.bytes(e.gradients_bytes)), el("td", {}, fmt.bytes(e.optimizer_bytes)), el("td", {}, fmt.bytes(e.activations_bytes)),
          el("td", {}, el("strong", {}, fmt.bytes(e.total_bytes)))));
      fill(body, 
        m.description ? el("p", {}, m.description) : null,
        el("dl", { class: "facts", "aria-label": "Model facts" }, facts.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v ?? "–")))),
        section("Memory estimate", table(["method", "trainable", "weights", "gradients", "optimizer", "activations", "total"], memoryRows, "Memory estimate")));
    } catch (error) { showError(body, error); }
  };
  append(view, el("p", {}, el("a", { href: "#/models" }, "← Models")),
    el("div", { class: "page-head" }, el("h1", {}, name), el("div", { class: "actions" },
      el("a", { class: "button", href: `#/chat?model=${enc(name)}` }, "Chat"),
      el("a", { class: "button", href: `#/new?model=${enc(name)}` }, "Train this model"))),
    el("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); load(); } },
      field("Batch size", batch), field("Max length (tokens)", length), el("button", { type: "submit" }, "Estimate")),
    body);
  await load();
}

/* ---------------------------------------------------------------- page: system */

async function pageSystem(view, signal) {
  const cards = el("dl", { class: "stats" });
  const gpus = el("div");
  const canvas = el("canvas", { class: "chart", role: "img", "aria-label": "CPU and RAM use over recent samples" });
  const about = el("dl", { class: "facts", "aria-label": "Versions" });
  const errors = el("div");
  const meter = (label, used, total) => el("div", { class: "stat wide" }, el("dt", {}, label), el("dd", {},
    el("meter", { min: 0, max: total || 1, value: used || 0, "aria-label": label }), ` ${fmt.bytes(used)} / ${fmt.bytes(total)}`));
  const load = async () => {
    try {
      const [now, recent] = await Promise.all([api("GET", "/api/resources/current"), api("GET", "/api/resources/recent?limit=200")]);
      fill(cards, el("div", { class: "stat" }, el("dt", {}, "CPU"), el("dd", {}, `${fmt.num(now.cpu_percent, 3)}%`)),
        meter("RAM", now.ram_used, now.ram_total), meter("Disk (tunelab home)", now.disk_used, now.disk_total));
      fill(gpus, (now.gpus || []).length
        ? table(["GPU", "name", "utilisation", "memory"], now.gpus.map((g) => el("tr", {}, el("td", {}, g.index), el("td", {}, g.name),
          el("td", {}, `${fmt.num(g.utilization_percent, 3)}%`), el("td", {}, `${fmt.bytes(g.memory_used)} / ${fmt.bytes(g.memory_total)}`))), "GPUs")
        : el("p", { class: "muted" }, "No GPU found (NVML not available)."));
      const samples = recent.data.filter((s) => s.created_at);
      const t0 = samples.length ? Date.parse(samples[0].created_at) : 0;
      drawChart(canvas, [
        { label: "CPU %", color: "#2563eb", axis: "left", points: samples.filter((s) => s.cpu_percent !== null).map((s) => [(Date.parse(s.created_at) - t0) / 1000, s.cpu_percent]) },
        { label: "RAM used (GB)", color: "#7a5af8", axis: "right", points: samples.filter((s) => s.ram_used).map((s) => [(Date.parse(s.created_at) - t0) / 1000, s.ram_used / 1e9]) },
      ], { xLabel: "seconds since the first stored sample" });
      errors.replaceChildren();
    } catch (error) { showError(errors, error); }
  };
  append(view, el("h1", {}, "System"), errors, cards, section("GPUs", gpus),
    section("Recent samples (taken by workers while jobs run)", canvas), section("About", about));
  const [health, version] = await Promise.all([api("GET", "/api/health"), api("GET", "/api/version")]);
  about.append(...[["status", health.status], ["tunelab", version.tunelab], ["python", version.python],
    ["FastAPI", version.fastapi], ["platform", version.platform]].map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
  await load();
  every(5000, load, signal);
}

/* ---------------------------------------------------------------- page: chat */

/** POST a conversation to /v1/chat/completions with stream: true; onPiece gets each text piece. */
async function streamChat(body, onPiece, signal) {
  for (let attempt = 0; ; attempt += 1) {
    let response;
    try {
      response = await fetch("/v1/chat/completions", { method: "POST", signal, body: JSON.stringify({ ...body, stream: true }),
        headers: authHeaders({ "Content-Type": "application/json", Accept: "text/event-stream" }) });
    } catch (e) {
      if (signal.aborted) return;
      throw unreachable(e.message);
    }
    if (response.status === 401 && attempt < 3) { await askForToken(new ApiError(401, await response.json().catch(() => null))); continue; }
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    for await (const block of sseBlocks(response)) {
      if (block.trim() === "data: [DONE]") return;
      const chunk = parseSse(block);
      const piece = chunk && chunk.choices && chunk.choices[0].delta.content;
      if (piece) onPiece(piece);
    }
    return;
  }
}

async function pageChat(view, signal, query) {
  const wanted = new URLSearchParams(query || "").get("model") || "";
  const listed = (await api("GET", "/v1/models")).data.map((m) => m.id);
  const ids = wanted && !listed.includes(wanted) ? [wanted, ...listed] : listed;  // a job id is not listed
  const model = el("select", {}, ids.map((id) => el("option", { value: id, selected: id === wanted }, id)));
  const system = el("input", { type: "text", placeholder: "optional, e.g. Answer briefly." });
  const temperature = el("input", { type: "number", min: 0, max: 2, step: 0.1, value: 0.7 });
  const maxTokens = el("input", { type: "number", min: 1, max: 8192, value: 256 });
  const prompt = el("textarea", { rows: 3, required: true, placeholder: "Write a message" });
  const send = el("button", { type: "submit" }, "Send");
  const log = el("ol", { class: "chat-log", "aria-label": "Conversation", "aria-live": "polite" });
  const errors = el("div");
  let turns = [];
  const bubble = (role, text) => el("li", { class: `turn ${role}` }, el("span", { class: "muted small" }, role === "user" ? "you" : model.value), el("p", {}, text));
  const reset = () => { turns = []; log.replaceChildren(); errors.replaceChildren(); };
  model.addEventListener("change", reset);
  const ask = async (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    errors.replaceChildren();
    turns.push({ role: "user", content: text });
    const question = bubble("user", text);
    log.append(question);
    prompt.value = "";
    const reply = bubble("assistant", "");
    const replyText = $("p", reply);
    log.append(reply);
    send.disabled = true;
    reply.setAttribute("aria-busy", "true");
    try {
      const messages = system.value.trim() ? [{ role: "system", content: system.value.trim() }, ...turns] : turns;
      await streamChat({ model: model.value, messages, temperature: Number(temperature.value), max_tokens: Number(maxTokens.value) },
        (piece) => { replyText.textContent += piece; }, signal);
      turns.push({ role: "assistant", content: replyText.textContent.trim() });
    } catch (error) {  // take the question back so it can be sent again
      turns.pop();
      question.remove();
      reply.remove();
      prompt.value = text;
      showError(errors, error);
    } finally {
      send.disabled = false;
      reply.removeAttribute("aria-busy");
    }
  };
  append(view, el("h1", {}, "Chat"),
    el("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
      field("Model", model), field("System prompt", system), field("Temperature", temperature, "0 always picks the likeliest word"),
      field("Max reply tokens", maxTokens), el("button", { type: "button", class: "quiet", onclick: reset }, "New conversation")),
    section("Conversation", log, errors,
      el("form", { class: "chat-input", onsubmit: ask }, field("Message", prompt), el("div", { class: "actions" }, send))));
}

/* ---------------------------------------------------------------- start */

setupTokenDialog();
window.addEventListener("hashchange", route);
route();
