/* #/advisor: fine-tuning or RAG? The lesson's decision framework over POST /api/advisor.
 * The inputs, their choices, defaults and help come from the API's OpenAPI schema
 * (AdviceRequest), so this page keeps no copy of them. */

import { api } from "../api.js";
import { append, el, field, fill, showError, table } from "../dom.js";

function control(name, prop) {
  const type = prop.anyOf ? prop.anyOf.find((t) => t.type !== "null") || {} : prop;
  let node;
  if (type.enum) node = el("select", {}, type.enum.map((v) => el("option", { value: v, selected: v === prop.default }, v)));
  else if (type.type === "boolean") node = el("input", { type: "checkbox", checked: prop.default === true });
  else node = el("input", { type: "number", min: type.minimum ?? 0, placeholder: "optional" });
  node.name = name;
  const label = name.replaceAll("_", " ");
  const wrapper = field(label.charAt(0).toUpperCase() + label.slice(1), node, prop.description || "");
  if (type.type === "boolean") wrapper.classList.add("check-field");
  return { name, node, wrapper, kind: type.enum ? "enum" : type.type };
}

function value({ node, kind }) {
  if (kind === "boolean") return node.checked;
  if (kind === "integer" || kind === "number") return node.value === "" ? null : Number(node.value);
  return node.value;
}

function showAdvice(slot, advice) {
  const label = advice.recommendation === "rag" ? "RAG" : "Fine-tuning";
  fill(slot,
    el("p", { class: "advice-recommendation" }, "Recommendation: ", el("strong", {}, label)),
    el("ul", { "aria-label": "Scores" },
      el("li", {}, `Fine-tuning score: ${advice.fine_tuning_score}`),
      el("li", {}, `RAG score: ${advice.rag_score}`),
      el("li", {}, `Confidence: ${Math.round(advice.confidence * 100)}%`),
      el("li", {}, advice.hybrid_feasible ? "A hybrid (fine-tuned model with retrieval) fits: the scores are close."
        : "A hybrid is not indicated: the scores are far apart."),
      el("li", {}, `Data volume used: ${advice.data_volume}`)),
    table(["factor", "to", "points", "why"], advice.reasons.map((r) => el("tr", {},
      el("td", {}, r.factor), el("td", {}, r.side), el("td", {}, String(r.points)), el("td", {}, r.why))), "Reasons"));
}

export async function pageAdvisor(view) {
  const openapi = await api("GET", "/openapi.json");
  const schema = ((openapi.components || {}).schemas || {}).AdviceRequest || { properties: {} };
  const controls = Object.entries(schema.properties).map(([name, prop]) => control(name, prop));
  const result = el("div", { "aria-live": "polite" });
  const submit = el("button", { type: "submit" }, "Advise");
  const onSubmit = async (e) => {
    e.preventDefault();
    const body = {};
    for (const c of controls) { const v = value(c); if (v !== null) body[c.name] = v; }
    try { showAdvice(result, await api("POST", "/api/advisor", body)); } catch (error) { showError(result, error); }
  };
  append(view, el("h1", {}, "Fine-tuning or RAG?"),
    el("p", { class: "muted" }, "The decision framework of the fine-tuning lesson: six factors score each side."),
    el("form", { class: "stack", onsubmit: onSubmit },
      el("div", { class: "grid" }, controls.map((c) => c.wrapper)),
      el("div", { class: "actions" }, submit)),
    result);
}
