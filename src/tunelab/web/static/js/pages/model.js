/* #/models/{id}: a model's facts and the memory estimate per method for a batch size and
 * length the user picks (the methods are the API's: one row per entry it answers). */

import { api } from "../api.js";
import { append, el, enc, field, fill, section, showError, table } from "../dom.js";
import { fmt } from "../format.js";

export async function pageModel(view, signal, name) {
  const batch = el("input", { type: "number", min: 1, max: 4096, value: 8 });
  const length = el("input", { type: "number", min: 1, max: 1000000, value: 512 });
  const body = el("div");
  const load = async () => {
    try {
      const info = await api("GET", `/api/models/info?name=${enc(name)}&batch_size=${enc(batch.value)}&max_length=${enc(length.value)}`);
      const m = info.model;
      const facts = [["source", m.source], ["parameters", fmt.count(m.parameters)], ["architecture", m.architecture], ["family (task)", m.task], ["model type", m.model_type],
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
