/* #/jobs/{id}: the live job page. It follows the job's SSE stream (history first, so a finished
 * job draws the same chart), shows curves, stats, events, log, resources, configuration and
 * artifacts, and offers exactly the actions the API's state machine allows from the status. */

import { api, invalidInput, loadMeta } from "../api.js";
import { lineChart } from "../chart.js";
import { append, badge, el, enc, errorBox, every, fill, section, showError, table, throttle } from "../dom.js";
import { fmt } from "../format.js";
import { followJob } from "../stream.js";
import { evaluationPanel } from "./job_evaluation.js";
import { exportPanel } from "./job_export.js";
import { jobProgress } from "./jobs.js";

const SERIES = [
  { key: "loss", label: "loss", color: "#2563eb", axis: "left" },
  { key: "eval_loss", label: "eval loss", color: "#dc6803", axis: "left", dash: [6, 4] },
  { key: "learning_rate", label: "learning rate", color: "#12b76a", axis: "right" },
];
const METRIC_KEYS = ["epoch", "loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_second", "eta_s",
  "samples_per_second", "mfu", "update_ratio"];
const capitalise = (word) => word.charAt(0).toUpperCase() + word.slice(1);

export async function pageJob(view, signal, jobId) {
  const [meta, first] = await Promise.all([loadMeta(), api("GET", `/api/jobs/${enc(jobId)}`)]);
  let job = first;
  const terminal = meta.terminal_statuses;
  const steps = new Map();
  const events = [];
  const logs = [];
  const diagnoses = [];
  const ui = jobLayout(job, meta, signal);
  append(view, ui.root);

  const renderJob = () => {
    ui.title.textContent = job.name || job.id;
    fill(ui.badge, badge(job.status, meta.job_statuses));
    ui.chatLink.hidden = job.status !== "completed";
    ui.regression.hidden = job.regression !== true;  // set by the job's automatic evaluation
    ui.evaluation.update(job);
    if (ui.requestedWhile && (job.status !== ui.requestedWhile || !job.requested_action)) {
      ui.actionResult.replaceChildren();  // "Pause requested" is answered (paused) or moot (failed)
      ui.requestedWhile = null;
    }
    for (const [action, button] of ui.buttons) {
      button.disabled = !action.when.includes(job.status);
      if (action.name === "resume") button.textContent = job.status === "created" ? "Queue" : action.label;
    }
    for (const [intervention, button] of ui.interventions) {
      const allowed = intervention.when.includes(job.status) && !job.requested_action;
      button.disabled = !allowed;
      if (intervention.input) intervention.input.disabled = !allowed;
    }
    const last = [...steps.values()].filter((m) => m.loss !== undefined).pop() || {};
    const progress = jobProgress(job);
    ui.progress.value = progress;
    ui.stats.progress.textContent = fmt.percent(progress);
    const max = (job.config.hyperparameters || {}).max_steps;
    ui.stats.step.textContent = `${job.global_step ?? last.step ?? 0}${max ? ` / ${max}` : ""}`;
    ui.stats.eta.textContent = terminal.includes(job.status) ? "done" : fmt.duration(last.eta_s);
    ui.stats.speed.textContent = last.tokens_per_second ? `${fmt.num(last.tokens_per_second, 3)} tok/s`
      + (last.samples_per_second ? ` · ${fmt.num(last.samples_per_second, 3)} samples/s` : "") : "–";
    ui.stats.mfu.textContent = typeof last.mfu === "number" ? `${(last.mfu * 100).toFixed(1)}%` : "–";
    ui.stats.update.textContent = typeof last.update_ratio === "number" ? fmt.num(last.update_ratio, 3) : "–";
    ui.stats.loss.textContent = fmt.num(last.loss);
    const evals = [...steps.values()].filter((m) => m.eval_loss !== undefined && m.eval_loss !== null);
    ui.stats.evalLoss.textContent = evals.length ? fmt.num(evals[evals.length - 1].eval_loss) : "–";
    ui.stats.attempts.textContent = `${job.attempts} of ${job.max_attempts}`;
    const stopping = job.status === "running" ? job.stopping : null;  // "pausing after step N"
    ui.stopping.hidden = !stopping;
    ui.stopping.textContent = stopping ? `${capitalise(stopping.action)}: stopping after `
      + (stopping.after_step != null ? `step ${stopping.after_step}` : "the running step")
      + ", once that step ends and its checkpoint is saved (however long the step takes)." : "";
    const waiting = job.status === "queued" ? job.wait_reason : null;  // no live worker can run it
    ui.waiting.hidden = !waiting;
    ui.waiting.textContent = waiting ? `Queued, ${waiting}.` : "";
    fill(ui.error, job.error ? errorBox(job.error) : "");
    ui.where.hidden = !job.provider || job.provider === "local";
    ui.interventionGroup.hidden = !ui.where.hidden;  // a provider's job takes no checkpoint, LR or stop-early request
    fill(ui.where, ui.where.hidden ? "" : whereItTrains(job));
  };
  const renderMetrics = throttle(() => {
    const rows = [...steps.values()].sort((a, b) => a.step - b.step);
    ui.chart.update(SERIES.map((s) => rows.filter((m) => typeof m[s.key] === "number").map((m) => [m.step, m[s.key]])));
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
      ui.requestedWhile = job.requested_action ? job.status : null;
    } catch (error) { showError(ui.actionResult, error); }
    renderJob();
  };

  ui.onIntervention = async (intervention) => {
    ui.actionResult.replaceChildren();
    let body;
    if (intervention.input) {
      const value = Number(intervention.input.value);
      if (!intervention.input.value || !Number.isFinite(value) || value <= 0) {
        showError(ui.actionResult, invalidInput("enter a learning rate, e.g. 1e-4", "a positive number such as 0.0001"));
        return;
      }
      body = { learning_rate: value };
    }
    try {
      const answer = await api("POST", `/api/jobs/${enc(job.id)}/${intervention.name.replaceAll("_", "-")}`, body);
      job = answer.job;
      fill(ui.actionResult, el("p", { class: "ok", role: "status" },
        `${intervention.label} requested (request ${answer.request.id}): the engine applies it at its next step `
        + `and answers with a ${answer.request.answer_event} event.`));
    } catch (error) { showError(ui.actionResult, error); }
    renderJob();
  };
  const renderHealth = () => {
    fill(ui.health, diagnoses.length ? el("ul", { class: "diagnoses" }, ...diagnoses.slice(-10).reverse().map((d) =>
      el("li", {}, el("span", { class: "tag" }, d.code), " ", el("strong", {}, `step ${d.step}: ${d.message}`),
        el("br"), el("span", { class: "muted" }, d.suggestion))))
      : el("p", { class: "muted" }, "No problems found (loss, gradients and numbers are checked at every logged step)."));
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
      if (d.type === "diagnosis" && d.data) { diagnoses.push(d.data); renderHealth(); }
      if (event.type === "status" || d.type === "stopping") refresh();
    } else if (event.type === "resources") {
      ui.resources.textContent = resourceLine(d);
    }
  };

  renderJob();
  renderHealth();
  loadArtifacts(job.id, ui.artifacts);
  every(5000, () => { if (!terminal.includes(job.status)) refresh(); }, signal);
  const end = await followJob(job.id, { onEvent, signal, onState: (s) => { ui.live.textContent = `stream: ${s}`; } });
  if (end && !signal.aborted) {
    await refresh();
    renderMetrics();
    loadArtifacts(job.id, ui.artifacts);
  }
}

function jobLayout(job, meta, signal) {
  const ui = { buttons: [], interventions: [], stats: {} };
  ui.title = el("h1", {}, job.name || job.id);
  ui.badge = el("span");
  ui.live = el("span", { class: "muted small", role: "status" }, "stream: connecting");
  ui.actionResult = el("div", { "aria-live": "polite" });
  ui.stopping = el("p", { class: "ok stopping", role: "status", hidden: true });
  ui.waiting = el("p", { class: "error wait-reason", role: "status", hidden: true });
  ui.error = el("div");
  ui.where = el("p", { class: "job-provider", role: "status", hidden: true });  // a remote provider's job
  for (const [name, when] of Object.entries(meta.actions)) {  // the moves and where each may start
    const action = { name, when, label: capitalise(name) };
    ui.buttons.push([action, el("button", { type: "button", onclick: () => ui.onAction(action) }, action.label)]);
  }
  for (const [name, when] of Object.entries(meta.interventions)) {  // checkpoint, learning rate, stop early
    const intervention = { name, when, label: capitalise(name.replaceAll("_", " ")) };
    const nodes = [];
    if (name === "learning_rate") {
      intervention.input = el("input", { type: "number", step: "any", min: "0", placeholder: "e.g. 0.0001",
        "aria-label": "New learning rate", class: "lr-input" });
      intervention.label = "Set learning rate";
      nodes.push(intervention.input);
    } else if (name === "checkpoint") intervention.label = "Checkpoint now";
    const button = el("button", { type: "button", class: "quiet", onclick: () => ui.onIntervention(intervention) }, intervention.label);
    nodes.push(button);
    ui.interventions.push([intervention, button, nodes]);
  }
  const stat = (key, label) => { ui.stats[key] = el("dd", {}, "–"); return el("div", { class: "stat" }, el("dt", {}, label), ui.stats[key]); };
  ui.progress = el("progress", { max: 1, value: 0, "aria-label": "Job progress" });
  ui.chart = lineChart({ label: "Training curves: loss, eval loss and learning rate by step", series: SERIES, signal });
  ui.metrics = el("tbody");
  ui.log = el("pre", { class: "log", role: "log", "aria-label": "Training log", tabindex: 0 });
  ui.events = el("ol", { class: "events", "aria-label": "Job events" });
  ui.resources = el("p", { class: "muted" }, "no resource sample yet");
  ui.artifacts = el("div");
  ui.evaluation = evaluationPanel(job, meta, signal);  // the automatic evaluation: metrics, probe retention, regression
  ui.root = el("div", {},
    el("p", {}, el("a", { href: "#/jobs" }, "← Jobs")),
    el("div", { class: "page-head" }, el("div", {}, ui.title, el("div", { class: "muted small" }, job.id, " · ", ui.live)), ui.badge),
    el("div", { class: "actions", role: "group", "aria-label": "Job actions" }, ui.buttons.map(([, b]) => b),
      (ui.chatLink = el("a", { class: "button", href: `#/chat?model=${enc(job.id)}`, hidden: true }, "Chat with the tuned model"))),
    (ui.interventionGroup = el("div", { class: "actions", role: "group", "aria-label": "Job interventions" },
      el("span", { class: "muted small" }, "While it runs:"), ui.interventions.flatMap(([, , nodes]) => nodes))),
    job.description || (job.tags || []).length ? el("p", { class: "job-about" }, job.description || "", " ",
      (job.tags || []).map((t) => el("span", { class: "tag" }, t))) : null,
    (ui.regression = el("p", { class: "error retention-flag", role: "status", hidden: true },
      "Retention regression: the tuned model answers fewer general-ability probe questions right than its base. ",
      el("a", { href: `#/evaluations?job=${enc(job.id)}` }, "See its evaluation"))),
    ui.where, ui.stopping, ui.waiting, ui.actionResult, ui.error,
    el("dl", { class: "stats" }, stat("step", "Step"),
      el("div", { class: "stat wide" }, el("dt", {}, "Progress"), el("dd", {}, ui.progress, " ", (ui.stats.progress = el("span", {}, "–")))),
      stat("eta", "ETA"), stat("speed", "Throughput"), stat("mfu", "MFU"), stat("update", "Update/weight"),
      stat("loss", "Loss"), stat("evalLoss", "Eval loss"), stat("attempts", "Attempts")),
    section("Training health", (ui.health = el("div", { "aria-live": "polite" }))),
    ui.evaluation.node,
    section("Training curves", ui.chart.node),
    section("Metrics (latest steps)", el("table", { "aria-label": "Metrics" },
      el("thead", {}, el("tr", {}, ["step", "epoch", "loss", "eval loss", "learning rate", "grad norm", "tokens/s"].map((h) => el("th", { scope: "col" }, h)))),
      ui.metrics)),
    el("div", { class: "two" }, section("Events", ui.events), section("Log", ui.log)),
    section("Resources", ui.resources),
    section("Configuration", el("pre", { class: "config" }, JSON.stringify(job.config, null, 2))),
    section("Artifacts", ui.artifacts),
    ((slot) => { exportPanel(slot, job, meta, signal); return slot; })(el("div")));
  return ui;
}

/** Where a remote job trains (the job's `provider` and `remote`): the provider, its job id once
 * created, and the tuned model's id there once it is done. */
function whereItTrains(job) {
  const remote = job.remote || {};
  return ["Trains on provider ", el("strong", {}, job.provider), remote.kind ? ` (${remote.kind})` : "",
    remote.job_id ? [" as remote job ", el("code", {}, remote.job_id)] : ": the remote job is not created yet",
    remote.status ? `, ${remote.status} there` : "",
    remote.fine_tuned_model ? ["; tuned model ", el("code", {}, remote.fine_tuned_model)] : "", "."];
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
