/* #/new: the job form. Hyperparameter controls are generated from TrainConfig as the API
 * publishes it in its OpenAPI document (defaults, ranges, help) and laid out in the field groups
 * of GET /api/meta; methods, priorities and the default priority come from there too.
 * A Manual / Automated switch: Manual is this form (with "Load best configuration", which fills it
 * from GET /api/sweeps/best-configuration); Automated (automated.js) asks only a budget and starts
 * a sweep over proposed ranges. ``?mode=automated`` opens it in Automated mode. "Where it trains" lists
 * GET /api/providers (local first); a remote provider hides the fields of GET /api/meta `remote_refuses`. */

import { api, invalidInput, loadMeta } from "../api.js";
import { append, el, enc, field, showError } from "../dom.js";
import { automatedPanel } from "./automated.js";
import { estimatePanel } from "./estimate_panel.js";

/** The groups the form shows: "main" open, "advanced" folded. ("run" fields have their own
 * pickers above; "engine" is written by the engine.) */
const FORM_GROUPS = ["main", "advanced"];

/** The TrainConfig schema (defaults, ranges, help) from the API's OpenAPI document: one source
 * for the API, this form and the CLI. */
async function trainSchema() {
  const openapi = await api("GET", "/openapi.json");
  const schemas = (openapi.components && openapi.components.schemas) || {};
  return { schema: schemas.TrainConfig || { properties: {} }, defs: schemas, source: "the API's OpenAPI schema" };
}

/** Every scalar field of the schema by dotted name (sections flattened: ``lora.r``). */
function schemaFields({ schema, defs }) {
  const resolve = (prop) => {
    const ref = prop.$ref || (prop.allOf && prop.allOf[0] && prop.allOf[0].$ref);
    return ref ? defs[ref.split("/").pop()] : null;
  };
  const fields = new Map();
  const add = (name, prop) => { const f = toField(name, prop); if (f) fields.set(name, f); };
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    const nested = resolve(prop);
    if (nested) for (const [sub, subProp] of Object.entries(nested.properties || {})) add(`${name}.${sub}`, subProp);
    else add(name, prop);
  }
  return fields;
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
  return { f, control, wrapper, help: wrapper.querySelector(".help") };
}

/** Only the fields the user changed travel; the server fills every default itself. */
function collectHyperparameters(controls, extraText) {
  const out = {};
  for (const { f, control, wrapper } of controls) {
    if (wrapper.hidden) continue; // a field the chosen task does not use (followTask)
    let value;
    if (f.kind === "boolean") value = control.checked;
    else if (control.value === "") continue;
    else if (f.kind === "integer" || f.kind === "number") value = Number(control.value);
    else if (f.kind === "enum") value = f.enum.find((v) => String(v) === control.value) ?? control.value; // 2, not "2"
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
      throw invalidInput(`More hyperparameters is not valid JSON (${e.message})`,
        'write a JSON object, e.g. {"max_rows": 100, "output": {"evaluate": false}}');
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

/** Hide or show a field for one reason ("task", "provider"): it shows again once no reason is left,
 * so choosing a task cannot bring back a field the chosen provider cannot use. */
function hideFor(c, reason, hidden) {
  c.hiddenFor = c.hiddenFor || new Set();
  if (hidden) c.hiddenFor.add(reason); else c.hiddenFor.delete(reason);
  c.wrapper.hidden = c.hiddenFor.size > 0;
}

/** The task registry (GET /api/meta `tasks`): fields the chosen task does not use are hidden
 * (and not sent), and methods it cannot train are disabled in the method picker. `auto` hides
 * nothing: the engine reads the task from the model when the job starts. */
function followTask(byName, tasks) {
  const task = byName.get("task");
  if (!task) return;
  const show = () => {
    const spec = tasks.find((t) => t.name === task.control.value);
    const hidden = new Set(spec ? spec.not_applicable : []);
    for (const [name, c] of byName) hideFor(c, "task", hidden.has(name));
    const method = byName.get("method");
    if (method) {
      for (const option of method.control.options) option.disabled = Boolean(spec) && !spec.methods.includes(option.value);
      if (method.control.selectedOptions[0]?.disabled) {
        method.control.value = spec.methods.includes("lora") ? "lora" : spec.methods[0];
        method.control.dispatchEvent(new Event("change"));
      }
    }
    if (task.help) task.help.textContent = spec ? `${task.f.help} ${spec.description}` : task.f.help;
  };
  task.control.addEventListener("change", show);
  show();
}

/** The method's own facts from the registry (GET /api/meta): its description under the picker,
 * its default learning rate in the empty learning_rate box. */
function followMethod(byName, methods) {
  const method = byName.get("method");
  const rate = byName.get("learning_rate");
  if (!method) return;
  const show = () => {
    const spec = methods.find((m) => m.name === method.control.value);
    if (!spec) return;
    if (method.help) method.help.textContent = `${method.f.help} ${spec.description}`;
    if (rate) rate.control.placeholder = `${spec.default_learning_rate} (the method's default)`;
  };
  method.control.addEventListener("change", show);
  show();
}

/** "Where it trains": local first, then each provider configured on the server (GET /api/providers:
 * name and kind, never a key). A remote job cannot use the fields of GET /api/meta `remote_refuses`
 * (the job service refuses them with 422), so they are hidden (and not sent) and one line says why. */
function providerPicker(providers, refuses, byName) {
  const control = el("select", { name: "provider" }, providers.map((p) => el("option", { value: p.name },
    p.kind === "local" ? `${p.name} (this studio's engine)` : `${p.name} (${p.kind})`)));
  const note = el("p", { class: "muted small remote-note", role: "status", hidden: true });
  const show = () => {
    const chosen = providers.find((p) => p.name === control.value);
    const remote = Boolean(chosen) && chosen.kind !== "local";
    for (const name of Object.keys(refuses)) if (byName.has(name)) hideFor(byName.get(name), "provider", remote);
    note.hidden = !remote;
    note.textContent = remote ? `${chosen.name} trains elsewhere, so these do not apply: `
      + Object.entries(refuses).map(([name, why]) => `${name} (${why})`).join("; ") + "." : "";
  };
  control.addEventListener("change", show);
  show();
  return { control, note };
}

function resetControl({ f, control }) {
  if (f.kind === "boolean") control.checked = f.default === true;
  else control.value = f.default ?? "";
}

/** Put one loaded value into its control; false when the form has no control that can hold it. */
function setControl(c, value) {
  if (!c) return false;
  if (c.f.kind === "boolean") {
    if (typeof value !== "boolean") return false;
    c.control.checked = value;
    return true;
  }
  if (value !== null && typeof value === "object") return false;
  if (c.f.kind === "enum" && value !== null && !c.f.enum.includes(value)) return false;
  if (value === null && !c.f.nullable) return false;
  c.control.value = value === null ? "" : String(value);
  return true;
}

/** Fill the form with a saved configuration's hyperparameters: every control back to its default,
 * then each value into its control (sections by dotted name, ``lora.r``); what has no control (lists,
 * fields outside the form's groups) goes to the JSON box, so nothing of the configuration is lost. */
function applyHyperparameters(controls, byName, extra, hyperparameters) {
  for (const c of controls) resetControl(c);
  const rest = {};
  for (const [key, value] of Object.entries(hyperparameters || {})) {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [sub, inner] of Object.entries(value)) {
        if (!setControl(byName.get(`${key}.${sub}`), inner)) (rest[key] = rest[key] || {})[sub] = inner;
      }
    } else if (!setControl(byName.get(key), value)) rest[key] = value;
  }
  extra.value = Object.keys(rest).length ? JSON.stringify(rest, null, 2) : "";
  for (const name of ["task", "method"]) byName.get(name)?.control.dispatchEvent(new Event("change"));
}

export async function pageNew(view, signal, query) {
  const wanted = new URLSearchParams(query || "");
  const [datasets, models, schema, meta, providers] = await Promise.all([
    api("GET", "/api/datasets?limit=1000"), api("GET", "/api/models"), trainSchema(), loadMeta(), api("GET", "/api/providers")]);
  const name = el("input", { type: "text", maxlength: 200, placeholder: "e.g. alpaca-lora" });
  const dataset = el("select", { required: true }, el("option", { value: "" }, "choose a dataset"),
    datasets.data.filter((d) => d.latest_version_id).map((d) => el("option",
      { value: d.latest_version_id, selected: [d.latest_version_id, d.id, d.name].includes(wanted.get("dataset")) }, d.name)));
  const model = el("select", {}, models.data.map((m) => el("option", { value: m.id, selected: m.id === wanted.get("model") }, m.name && m.name !== m.id ? `${m.name} (${m.id})` : m.id)));
  const modelPath = el("input", { type: "text", placeholder: "org/name or /path/to/model" });
  const fields = schemaFields(schema);
  const groups = FORM_GROUPS.map((g) => meta.field_groups.find((group) => group.name === g) || { name: g, label: g, fields: [] });
  const controlsByGroup = groups.map((group) => group.fields.filter((n) => fields.has(n)).map((n) => fieldControl(fields.get(n))));
  const controls = controlsByGroup.flat();
  const byName = new Map(controls.map((c) => [c.f.name, c]));
  followMethod(byName, meta.methods);
  followTask(byName, meta.tasks || []);
  const where = providerPicker(providers.data, meta.remote_refuses || {}, byName);
  const extra = el("textarea", { rows: 3, spellcheck: "false", placeholder: '{"max_rows": 200}' });
  const priority = el("select", {}, meta.priorities.map((p) => el("option", { value: p, selected: p === meta.default_priority }, p)));
  const tags = el("input", { type: "text", placeholder: "demo, lora" });
  const attempts = el("input", { type: "number", min: 1, max: 100, value: 3 });
  const timeout = el("input", { type: "number", min: 1, placeholder: "none" });
  const saveModel = el("input", { type: "checkbox", checked: true });
  const modelName = el("input", { type: "text", maxlength: 200, placeholder: "my-model" });
  const errors = el("div", { "aria-live": "polite" });
  const submit = el("button", { type: "submit" }, "Create job");
  const target = () => ({ model: modelPath.value.trim() || model.value, dataset: dataset.value });
  const automated = automatedPanel(target);
  const manualMode = el("input", { type: "radio", name: "config-mode", value: "manual", checked: wanted.get("mode") !== "automated" });
  const automatedMode = el("input", { type: "radio", name: "config-mode", value: "automated", checked: wanted.get("mode") === "automated" });
  const bestSource = el("div", { class: "best-source muted small", "aria-live": "polite" });
  const bestButton = el("button", { type: "button", class: "secondary" }, "Load best configuration");

  const onSubmit = async (e) => {
    e.preventDefault();
    if (automatedMode.checked) { automated.propose(); return; } // Enter in Automated mode proposes, never creates a job
    errors.replaceChildren();
    submit.disabled = true;
    try {
      const body = {
        name: name.value.trim(), priority: priority.value, max_attempts: Number(attempts.value || 3),
        tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean), provider: where.control.value,
        configuration: { model: modelPath.value.trim() || model.value, dataset: dataset.value,
          hyperparameters: collectHyperparameters(controls, extra.value) },
        save: { save_model: saveModel.checked, model_name: modelName.value.trim() || null },
      };
      if (timeout.value) body.timeout_s = Number(timeout.value);
      const job = await api("POST", "/api/jobs", body);
      location.hash = `#/jobs/${enc(job.id)}`;
    } catch (error) { showError(errors, error); submit.disabled = false; }
  };
  const [main, advanced] = controlsByGroup.map((group) => group.map((c) => c.wrapper));
  // The live estimate (estimate_panel.js): the same config the job would get, re-estimated on every change.
  const estimate = estimatePanel(() => ({ model: modelPath.value.trim() || model.value,
    ...collectHyperparameters(controls, extra.value) }), signal);
  // "Load best configuration": the lowest eval loss over completed jobs and sweep trials for this model
  // and dataset (tunelab.sweeps.service.best_for), poured into the Manual form.
  bestButton.addEventListener("click", async () => {
    errors.replaceChildren();
    bestSource.replaceChildren();
    try {
      const found = await api("GET", `/api/sweeps/best-configuration?${new URLSearchParams(target())}`);
      const { configuration, source } = found;
      applyHyperparameters(controls, byName, extra, configuration.hyperparameters);
      bestSource.textContent = `Loaded configuration ${configuration.id} (eval loss ${Number(configuration.eval_loss.toPrecision(4))}) `
        + `from job ${source.job_id || "–"}${source.sweep_id ? `, trial ${source.trial} of sweep ${source.sweep_id}` : ""}.`;
      estimate.update();
    } catch (error) { showError(errors, error); }
  });
  const manualPart = el("div", { class: "stack" });
  const showMode = () => {
    manualPart.hidden = !manualMode.checked;
    automated.node.hidden = manualMode.checked;
    name.closest(".field").hidden = !manualMode.checked; // a sweep names its trials itself
    where.control.closest(".field").hidden = !manualMode.checked; // and trains them here
  };
  manualMode.addEventListener("change", showMode);
  automatedMode.addEventListener("change", showMode);
  append(manualPart,
      el("fieldset", {}, el("legend", {}, "Hyperparameters"),
        el("p", { class: "muted small" }, `Fields, defaults and ranges from ${schema.source}; only changed values are sent.`),
        where.note,
        el("div", { class: "actions" }, bestButton), bestSource,
        el("div", { class: "grid" }, main),
        advanced.length ? el("details", {}, el("summary", {}, `${groups[1].label} (${advanced.length})`), el("div", { class: "grid" }, advanced)) : null,
        field("More hyperparameters (JSON)", extra, "Any other TrainConfig field, merged over the form.")),
      estimate.node,
      el("fieldset", {}, el("legend", {}, "Job"),
        el("div", { class: "grid" }, field("Priority", priority), field("Tags", tags, "Comma separated."),
          field("Max attempts", attempts), field("Timeout (seconds)", timeout),
          el("div", { class: "field check-field" }, el("label", { class: "check" }, saveModel, " Save the trained model")),
          field("Saved model name", modelName))),
      errors,
      el("div", { class: "actions" }, submit));
  append(view, el("h1", {}, "New job"),
    el("p", {}, el("a", { class: "button secondary", href: "#/sweeps/new?mode=automated", onclick: (e) => {
      e.currentTarget.href = `#/sweeps/new?mode=automated&model=${enc(model.value)}&model_path=${enc(modelPath.value.trim())}&dataset=${enc(dataset.value)}`;
    } }, "Automated: search hyperparameters")),
    el("form", { class: "stack", onsubmit: onSubmit, novalidate: false, oninput: estimate.update, onchange: estimate.update },
      el("fieldset", {}, el("legend", {}, "Configuration mode"),
        el("label", { class: "check" }, manualMode, " Manual: I set the hyperparameters"),
        el("label", { class: "check" }, automatedMode, " Automated: search them for me (model, dataset, a limit)")),
      el("fieldset", {}, el("legend", {}, "What to train"),
        el("div", { class: "grid" }, field("Job name", name), field("Dataset", dataset, datasets.data.length ? "The latest version of a stored dataset." : null),
          field("Model", model), field("Model path or Hub id", modelPath, "Overrides the catalog choice when filled."),
          field("Where it trains", where.control, "This studio's engine, or a remote provider configured on the server (see System)."))),
      datasets.data.length ? null : el("p", { class: "muted" }, "No dataset yet: ", el("a", { href: "#/datasets" }, "upload one"), " first."),
      manualPart, automated.node));
  showMode();
  estimate.update();
}
