/* #/new: the job form. Hyperparameter controls are generated from TrainConfig as the API
 * publishes it in its OpenAPI document (defaults, ranges, help) and laid out in the field groups
 * of GET /api/meta; methods, priorities and the default priority come from there too. */

import { api, invalidInput, loadMeta } from "../api.js";
import { append, el, enc, field, showError } from "../dom.js";

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

export async function pageNew(view, signal, query) {
  const wanted = new URLSearchParams(query || "");
  const [datasets, models, schema, meta] = await Promise.all([
    api("GET", "/api/datasets?limit=1000"), api("GET", "/api/models"), trainSchema(), loadMeta()]);
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
  const extra = el("textarea", { rows: 3, spellcheck: "false", placeholder: '{"max_rows": 200}' });
  const priority = el("select", {}, meta.priorities.map((p) => el("option", { value: p, selected: p === meta.default_priority }, p)));
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
  const [main, advanced] = controlsByGroup.map((group) => group.map((c) => c.wrapper));
  append(view, el("h1", {}, "New job"),
    el("form", { class: "stack", onsubmit: onSubmit, novalidate: false },
      el("fieldset", {}, el("legend", {}, "What to train"),
        el("div", { class: "grid" }, field("Job name", name), field("Dataset", dataset, datasets.data.length ? "The latest version of a stored dataset." : null),
          field("Model", model), field("Model path or Hub id", modelPath, "Overrides the catalog choice when filled."))),
      datasets.data.length ? null : el("p", { class: "muted" }, "No dataset yet: ", el("a", { href: "#/datasets" }, "upload one"), " first."),
      el("fieldset", {}, el("legend", {}, "Hyperparameters"),
        el("p", { class: "muted small" }, `Fields, defaults and ranges from ${schema.source}; only changed values are sent.`),
        el("div", { class: "grid" }, main),
        advanced.length ? el("details", {}, el("summary", {}, `${groups[1].label} (${advanced.length})`), el("div", { class: "grid" }, advanced)) : null,
        field("More hyperparameters (JSON)", extra, "Any other TrainConfig field, merged over the form.")),
      el("fieldset", {}, el("legend", {}, "Job"),
        el("div", { class: "grid" }, field("Priority", priority), field("Tags", tags, "Comma separated."),
          field("Max attempts", attempts), field("Timeout (seconds)", timeout),
          el("div", { class: "field check-field" }, el("label", { class: "check" }, saveModel, " Save the trained model")),
          field("Saved model name", modelName))),
      errors,
      el("div", { class: "actions" }, submit)));
}
