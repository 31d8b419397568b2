/* #/models: the catalog and collection with size, architecture, context, licence, availability
 * and a LoRA memory estimate each; add a model to the collection. */

import { api } from "../api.js";
import { append, el, enc, field, fill, section, showError, table } from "../dom.js";
import { fmt } from "../format.js";
import { reload } from "../router.js";

export async function pageModels(view, signal) {
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
      reload();
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
