/* #/sweeps (list), #/sweeps/new (Manual / Automated form) and #/sweeps/{id} (trials table, the
 * objective against each searched parameter, importances, best trial, "Train the best").
 * Samplers, pruners and directions are read from SweepConfig in the API's OpenAPI document. */

import { api } from "../api.js";
import { scatterChart } from "../chart.js";
import { append, el, enc, every, field, fill, section, showError, table } from "../dom.js";
import { fmt } from "../format.js";
import { proposalSection } from "./automated.js";

/** Trial states (Optuna's) drawn with the job status colours; sweep statuses share the job names. */
const TRIAL_COLOURS = { complete: "completed", pruned: "cancelled", fail: "failed" };
const num = (v) => (typeof v === "number" ? Number(v.toPrecision(4)).toString() : v === null || v === undefined ? "–" : String(v));

function stateBadge(state) {
  const kind = TRIAL_COLOURS[state] || (/^[a-z]+$/.test(state || "") ? state : "unknown");
  return el("span", { class: `badge status-${kind}` }, state);
}

/** SweepConfig's schema from /openapi.json: the enums of sampler, direction and pruner type. */
async function sweepSchema() {
  const openapi = await api("GET", "/openapi.json");
  const schemas = (openapi.components && openapi.components.schemas) || {};
  const props = (schemas.SweepConfig && schemas.SweepConfig.properties) || {};
  const pruner = (schemas.PrunerConfig && schemas.PrunerConfig.properties) || {};
  const enumOf = (prop) => (prop && (prop.enum || (prop.anyOf || []).flatMap((p) => p.enum || []))) || [];
  return { samplers: enumOf(props.sampler), directions: enumOf(props.direction), pruners: enumOf(pruner.type),
    defaults: { sampler: props.sampler && props.sampler.default, direction: props.direction && props.direction.default } };
}

export async function pageSweeps(view, signal) {
  const body = el("tbody");
  const errors = el("div");
  const load = async () => {
    try {
      const page = await api("GET", "/api/sweeps?limit=200");
      fill(body, ...page.data.map((s) => el("tr", {},
        el("td", {}, el("a", { href: `#/sweeps/${enc(s.id)}` }, s.name), el("div", { class: "muted small" }, s.id)),
        el("td", {}, stateBadge(s.status)), el("td", {}, s.sampler), el("td", {}, s.mode),
        el("td", {}, `${s.trials.total}${s.n_trials ? ` / ${s.n_trials}` : ""}`),
        el("td", {}, `${s.direction} ${s.objective}`), el("td", {}, num(s.best_value)), el("td", {}, fmt.time(s.created_at)))));
      if (!page.data.length) body.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No sweeps yet. ", el("a", { href: "#/sweeps/new" }, "Start one"), ".")));
      errors.replaceChildren();
    } catch (error) { showError(errors, error); }
  };
  append(view, el("div", { class: "page-head" }, el("h1", {}, "Sweeps"), el("a", { class: "button", href: "#/sweeps/new" }, "New sweep")),
    el("p", { class: "muted" }, "Hyperparameter searches whose trials are ordinary jobs (listed under Jobs, tagged sweep)."),
    errors, table(["Name", "Status", "Sampler", "Mode", "Trials", "Objective", "Best", "Created"], body, "Sweeps"));
  await load();
  every(3000, load, signal);
}

const EXAMPLE_SEARCH = { learning_rate: { low: 1e-5, high: 1e-3, log: true }, "lora.r": { choices: [8, 16, 32] } };

export async function pageSweepNew(view, signal, query) {
  const wanted = new URLSearchParams(query || "");
  const [datasets, models, schema] = await Promise.all([api("GET", "/api/datasets?limit=1000"), api("GET", "/api/models"), sweepSchema()]);
  const mode = wanted.get("mode") === "manual" ? "manual" : wanted.get("mode") === "automated" ? "automated" : "automated";
  const name = el("input", { type: "text", maxlength: 200, placeholder: "e.g. lr-search" });
  const dataset = el("select", { required: true }, el("option", { value: "" }, "choose a dataset"),
    datasets.data.filter((d) => d.latest_version_id).map((d) => el("option",
      { value: d.latest_version_id, selected: [d.latest_version_id, d.id, d.name].includes(wanted.get("dataset")) }, d.name)));
  const model = el("select", {}, models.data.map((m) => el("option", { value: m.id, selected: m.id === wanted.get("model") }, m.id)));
  const modelPath = el("input", { type: "text", placeholder: "org/name or a server folder", value: wanted.get("model_path") || "" });
  const trials = el("input", { type: "number", min: 1, max: 1000, value: 10 });
  const minutes = el("input", { type: "number", min: 1, placeholder: "none" });
  const parallel = el("input", { type: "number", min: 1, max: 64, value: 1 });
  const hyper = el("textarea", { rows: 3, spellcheck: "false" }, '{"max_steps": 20, "eval_steps": 5}');
  const manual = el("input", { type: "radio", name: "mode", value: "manual", checked: mode === "manual" });
  const automated = el("input", { type: "radio", name: "mode", value: "automated", checked: mode === "automated" });
  const search = el("textarea", { rows: 6, spellcheck: "false" }, JSON.stringify(EXAMPLE_SEARCH, null, 2));
  const sampler = el("select", {}, schema.samplers.map((s) => el("option", { value: s, selected: s === schema.defaults.sampler }, s)));
  const direction = el("select", {}, schema.directions.map((d) => el("option", { value: d, selected: d === schema.defaults.direction }, d)));
  const objective = el("input", { type: "text", value: "eval_loss" });
  const pruner = el("select", {}, el("option", { value: "" }, "none"), schema.pruners.map((p) => el("option", { value: p }, p)));
  const manualPart = el("fieldset", {}, el("legend", {}, "Search space (manual)"),
    field("Ranges (JSON)", search, "TrainConfig field -> {low, high, log | step} or {choices: [...]}."),
    el("div", { class: "grid" }, field("Sampler", sampler), field("Objective", objective, "eval_loss or any logged metric."),
      field("Direction", direction), field("Pruner", pruner, "Needs eval_steps > 0 in the hyperparameters.")));
  const proposal = el("div", { class: "proposal", "aria-live": "polite" });
  const errors = el("div", { "aria-live": "polite" });
  const proposeButton = el("button", { type: "button" }, "Propose ranges");
  const submit = el("button", { type: "submit" }, "Start sweep");
  const showMode = () => {
    manualPart.hidden = !manual.checked;
    proposeButton.hidden = manual.checked;
    proposal.hidden = manual.checked;
  };
  const parseJson = (text, what) => {
    try { return text.trim() ? JSON.parse(text) : {}; } catch (error) { throw { message: `${what} is not valid JSON: ${error.message}`, hint: "fix the JSON" }; }
  };
  const common = () => ({ model: modelPath.value.trim() || model.value, dataset: dataset.value,
    hyperparameters: parseJson(hyper.value, "Fixed hyperparameters"), n_trials: trials.value ? Number(trials.value) : null,
    budget_minutes: minutes.value ? Number(minutes.value) : null, name: name.value.trim(), parallel: Number(parallel.value || 1) });
  const propose = async () => {
    errors.replaceChildren();
    try {
      fill(proposal, proposalSection(await api("POST", "/api/sweeps/propose", common())));
    } catch (error) { showError(errors, error); }
  };
  proposeButton.addEventListener("click", propose);
  const bestSlot = el("div", { "aria-live": "polite" });
  const bestButton = el("button", { type: "button", class: "secondary" }, "Load the best configuration so far");
  bestButton.addEventListener("click", async () => {
    errors.replaceChildren();
    try {
      const query = new URLSearchParams({ model: modelPath.value.trim() || model.value, dataset: dataset.value });
      const found = await api("GET", `/api/sweeps/best-configuration?${query}`);
      const { configuration, source } = found;
      hyper.value = JSON.stringify(configuration.hyperparameters, null, 2);
      fill(bestSlot, el("p", { class: "muted small best-source" }, `Loaded configuration ${configuration.id} (eval loss ${num(configuration.eval_loss)}) `,
        `from job ${source.job_id || "–"}`, source.sweep_id ? `, trial ${source.trial} of sweep ${source.sweep_id}` : ""));
    } catch (error) { showError(errors, error); }
  });
  const onSubmit = async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    submit.disabled = true;
    try {
      let created;
      if (manual.checked) {
        const body = { ...common(), search: parseJson(search.value, "Ranges"), sampler: sampler.value, objective: objective.value.trim(),
          direction: direction.value, pruner: pruner.value ? { type: pruner.value } : null };
        created = await api("POST", "/api/sweeps", body);
      } else {
        created = (await api("POST", "/api/sweeps/propose", { ...common(), run: true })).created;
      }
      location.hash = `#/sweeps/${enc(created.id)}`;
    } catch (error) { showError(errors, error); submit.disabled = false; }
  };
  manual.addEventListener("change", showMode);
  automated.addEventListener("change", showMode);
  append(view, el("h1", {}, "New sweep"),
    el("form", { class: "stack", onsubmit: onSubmit },
      el("fieldset", {}, el("legend", {}, "Configuration mode"),
        el("label", { class: "check" }, manual, " Manual: I give the ranges"),
        el("label", { class: "check" }, automated, " Automated: propose ranges from the model and dataset size")),
      el("fieldset", {}, el("legend", {}, "What to train"),
        el("div", { class: "grid" }, field("Sweep name", name), field("Dataset", dataset), field("Model", model),
          field("Model path or Hub id", modelPath, "Overrides the catalog choice when filled."))),
      el("fieldset", {}, el("legend", {}, "Budget"),
        el("div", { class: "grid" }, field("Trials", trials), field("Minutes", minutes, "No new trial starts after this."),
          field("Parallel trials", parallel)),
        field("Fixed hyperparameters (JSON)", hyper, "TrainConfig fields every trial shares."), bestButton, bestSlot),
      manualPart, proposal, errors, el("div", { class: "actions" }, proposeButton, submit)));
  showMode();
}

function trialsTable(sweep, trials) {
  const params = Object.keys(sweep.search);
  return table(["#", "State", "Job", "Step", ...params, sweep.objective],
    trials.map((t) => el("tr", { class: t.number === sweep.best_trial ? "best" : null },
      el("td", {}, String(t.number), t.number === sweep.best_trial ? " ★" : ""), el("td", {}, stateBadge(t.state), t.message ? el("div", { class: "muted small" }, t.message) : null),
      el("td", {}, t.job ? el("a", { href: `#/jobs/${enc(t.job.id)}` }, t.job.id) : "–"), el("td", {}, num(t.job && t.job.global_step)),
      ...params.map((p) => el("td", {}, num(t.params[p]))), el("td", {}, num(t.value)))), "Trials");
}

/** x for a parameter value: numbers as they are, other choices (names, switches) by their index. */
function xOf(spec, value) {
  if (typeof value === "number") return value;
  const choices = spec.choices || [];
  return choices.findIndex((c) => c === value);
}

export async function pageSweep(view, signal, sweepId) {
  const head = el("div");
  const best = el("div");
  const charts = el("div", { class: "grid charts" });
  const trialsSlot = el("div");
  const importance = el("div");
  const errors = el("div", { "aria-live": "polite" });
  let scatters = null;
  const load = async () => {
    try {
      const [sweep, trials] = await Promise.all([api("GET", `/api/sweeps/${enc(sweepId)}`), api("GET", `/api/sweeps/${enc(sweepId)}/trials`)]);
      const cancel = el("button", { type: "button", class: "secondary", onclick: async () => {
        try { await api("POST", `/api/sweeps/${enc(sweepId)}/cancel`); load(); } catch (error) { showError(errors, error); }
      } }, "Cancel sweep");
      fill(head, el("div", { class: "page-head" }, el("h1", {}, `Sweep ${sweep.name}`), sweep.status === "running" ? cancel : null),
        el("p", {}, stateBadge(sweep.status), ` ${sweep.sampler} sampler, ${sweep.mode} mode, ${sweep.direction} ${sweep.objective}, `,
          `${sweep.trials.total} trial(s) of ${sweep.n_trials ? sweep.n_trials : `${sweep.budget_minutes} minutes`}`,
          sweep.pruner ? `, ${sweep.pruner.type} pruner` : "", ` (${sweep.trials.complete} complete, ${sweep.trials.pruned} pruned, ${sweep.trials.fail} failed)`),
        sweep.proposal && sweep.proposal.explanations ? el("details", {}, el("summary", {}, "Why these ranges"),
          el("ul", {}, sweep.proposal.explanations.map((item) => el("li", {}, `${item.field}: ${item.choice} (${item.reason})`)))) : null);
      fill(trialsSlot, section("Trials", trialsTable(sweep, trials.data)));
      if (!scatters) {
        scatters = Object.entries(sweep.search).map(([name, spec]) => {
          const names = spec.choices && spec.choices.some((c) => typeof c !== "number");
          const chart = scatterChart({ label: `${sweep.objective} against ${name}`, xLabel: names ? `${name} (${spec.choices.join(", ")} as 0..${spec.choices.length - 1})` : name,
            yLabel: sweep.objective, log: Boolean(spec.log), signal });
          charts.append(el("div", {}, el("h3", {}, `${sweep.objective} against ${name}`), chart.node));
          return [name, spec, chart];
        });
      }
      const done = trials.data.filter((t) => t.value !== null && (t.state === "complete" || t.state === "pruned"));
      for (const [name, spec, chart] of scatters) chart.update(done.filter((t) => t.state === "complete").map((t) => [xOf(spec, t.params[name]), t.value]));
      if (sweep.best_trial !== null && sweep.best_trial !== undefined) {
        const answer = await api("GET", `/api/sweeps/${enc(sweepId)}/best`);
        const train = el("button", { type: "button", onclick: async () => {
          train.disabled = true;
          try {
            const job = await api("POST", `/api/sweeps/${enc(sweepId)}/train-best`, {});
            location.hash = `#/jobs/${enc(job.id)}`;
          } catch (error) { showError(errors, error); train.disabled = false; }
        } }, "Train the best");
        fill(best, section("Best trial",
          el("p", {}, `Trial ${answer.trial.number}: ${sweep.objective} ${num(answer.trial.value)} with `,
            el("code", {}, JSON.stringify(answer.trial.params))),
          el("p", {}, "Saved as configuration ", el("code", { class: "config-id" }, answer.configuration.id),
            " (mode automated; jobs can name it as configuration_id)."),
          train));
        const found = await api("GET", `/api/sweeps/${enc(sweepId)}/importances`);
        const rows = Object.entries(found.importances).map(([name, value]) => el("tr", {}, el("td", {}, name), el("td", {}, num(value))));
        fill(importance, section("Parameter importances", rows.length ? table(["Parameter", "Importance"], rows, "Importances")
          : el("p", { class: "muted" }, found.note || "not enough trials yet")));
      }
      errors.replaceChildren();
      return sweep;
    } catch (error) { showError(errors, error); return null; }
  };
  append(view, head, errors, best, section("Objective against each parameter", charts), trialsSlot, importance);
  let sweep = await load();
  every(3000, async () => { if (!sweep || sweep.status === "running") sweep = (await load()) || sweep; }, signal);
}
