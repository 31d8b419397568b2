/* #/models: the model browser. Search the Hugging Face Hub and the local catalog
 * (GET /api/models?query=), filter by category (GET /api/meta model_categories) and
 * provider, see each model's family (its task: causal_lm, seq2seq, classification), downloads, likes,
 * size and licence, add a result to the collection
 * (POST /api/models with the guide's {id, name, provider, category}) or check whether it
 * can be used (GET /api/models/check/{id}); recommendations by use case below. */

import { api, loadMeta } from "../api.js";
import { append, el, enc, field, fill, section, showError, table } from "../dom.js";
import { fmt } from "../format.js";

function hubLine(hub) {
  if (!hub.searched) return "Showing models on this machine and in your collection; search to include the Hugging Face Hub.";
  if (hub.reached) return `Hugging Face Hub (${hub.endpoint}) searched: results by downloads, then local models.`;
  return `Hugging Face Hub not reached: ${hub.reason}. Showing local models only.`;
}

function checkText(check) {
  return `${check.available ? "Available" : "Not available"} (${check.status}): ${check.reason}${check.hint ? ` ${check.hint}` : ""}`;
}

export async function pageModels(view, signal) {
  const meta = await loadMeta();
  const query = el("input", { type: "search", maxlength: 200, placeholder: "llama, code, smol…" });
  const category = el("select", {}, el("option", { value: "" }, "All categories"),
    meta.model_categories.map((c) => el("option", { value: c }, c)));
  const providers = el("datalist", { id: "model-providers" });
  const provider = el("input", { type: "text", maxlength: 200, list: "model-providers", placeholder: "Meta, Mistral AI…" });
  const status = el("p", { class: "muted", role: "status", "aria-label": "Hub status" });
  const results = el("div", { "aria-live": "polite" });
  const notice = el("div", { "aria-live": "polite" });

  const add = async (m, button) => {
    try {
      const entry = await api("POST", "/api/models", { id: m.id, name: m.name, provider: m.provider, category: m.category });
      button.textContent = "In collection";
      button.disabled = true;
      fill(notice, el("p", { class: "ok", role: "status" }, `Added ${entry.id} to the collection (${entry.category}).`));
    } catch (error) { showError(notice, error); }
  };
  const check = async (m, slot) => {
    slot.textContent = "checking…";
    try { slot.textContent = checkText(await api("GET", `/api/models/check/${enc(m.id)}`)); } catch (error) { showError(slot, error); }
  };

  const row = (m) => {
    const checkSlot = el("div", { class: "muted small", "aria-label": `Availability of ${m.id}` });
    const addButton = el("button", { type: "button", disabled: m.in_collection }, m.in_collection ? "In collection" : "Add");
    addButton.addEventListener("click", () => add(m, addButton));
    return el("tr", { "data-model": m.id },
      el("td", {}, el("a", { href: `#/models/${enc(m.id)}` }, m.name), el("div", { class: "muted small" }, m.id),
        m.description ? el("div", { class: "muted small" }, m.description) : null, checkSlot),
      el("td", {}, m.provider || "–"), el("td", {}, m.category),
      el("td", { class: "model-task" }, m.task ? el("code", {}, m.task) : "–"), el("td", {}, m.parameters ?? "–"),
      el("td", {}, fmt.num(m.downloads)), el("td", {}, fmt.num(m.likes)), el("td", {}, m.license ?? "–"),
      el("td", {}, fmt.bytes(m.size_bytes)), el("td", {}, m.source + (m.available ? " · on this machine" : "")),
      el("td", { class: "actions" }, addButton,
        el("button", { type: "button", class: "secondary", onclick: () => check(m, checkSlot) }, "Check")));
  };

  const search = async (e) => {
    if (e) e.preventDefault();
    const params = new URLSearchParams();
    if (query.value.trim()) params.set("query", query.value.trim());
    if (category.value) params.set("category", category.value);
    if (provider.value.trim()) params.set("provider", provider.value.trim());
    status.textContent = query.value.trim() ? "Searching…" : "Loading…";
    try {
      const page = await api("GET", `/api/models?${params}`);
      if (signal.aborted) return;
      status.textContent = hubLine(page.hub);
      const known = new Set([...providers.options].map((o) => o.value));
      for (const m of page.data) if (m.provider && !known.has(m.provider)) { known.add(m.provider); append(providers, el("option", { value: m.provider })); }
      fill(results, page.data.length
        ? table(["Model", "Provider", "Category", "Family (task)", "Parameters", "Downloads", "Likes", "Licence", "Size", "Source", ""],
          page.data.map(row), "Model search results")
        : el("p", { class: "muted" }, "No models match."));
    } catch (error) { status.textContent = ""; showError(results, error); }
  };

  // Add any id (a Hub id not in the results, or a built-in) with the same body.
  const id = el("input", { type: "text", required: true, placeholder: "HuggingFaceTB/SmolLM2-360M-Instruct" });
  const label = el("input", { type: "text", maxlength: 200 });
  const addCategory = el("select", {}, el("option", { value: "" }, "derive from the model"),
    meta.model_categories.map((c) => el("option", { value: c }, c)));
  const addResult = el("div", { "aria-live": "polite" });
  const addById = async (e) => {
    e.preventDefault();
    try {
      const entry = await api("POST", "/api/models", { id: id.value.trim(), name: label.value.trim(), category: addCategory.value });
      fill(addResult, el("p", { class: "ok", role: "status" }, `Added ${entry.id} to the collection (${entry.category}).`));
      search();
    } catch (error) { showError(addResult, error); }
  };

  const useCase = el("select", {}, Object.entries(meta.model_use_cases).map(([key, text]) => el("option", { value: key }, text)));
  const recs = el("div", { "aria-live": "polite" });
  const recommend = async () => {
    try {
      const found = await api("GET", `/api/models/recommendations?use_case=${enc(useCase.value)}`);
      const items = found.recommendations[useCase.value] || [];
      fill(recs, el("ul", { "aria-label": "Recommended models" }, items.map((r) => el("li", {},
        el("strong", {}, r.name), ` (${r.id}, ${r.parameters}, ${r.provider}): ${r.reason}`,
        r.causal_lm ? null : el("span", { class: "muted" }, " Encoder model: not trained by tunelab's causal-LM trainer.")))));
    } catch (error) { showError(recs, error); }
  };
  useCase.addEventListener("change", recommend);

  append(view, el("h1", {}, "Models"),
    section("Browse and search",
      el("form", { class: "stack", role: "search", onsubmit: search },
        el("div", { class: "grid" }, field("Search models", query), field("Category", category), field("Provider", provider)),
        providers, el("div", { class: "actions" }, el("button", { type: "submit" }, "Search"))),
      status, notice, results),
    section("Add a model to the collection", el("form", { class: "stack", onsubmit: addById },
      el("div", { class: "grid" }, field("Model id (built-in or Hub org/name)", id), field("Display name", label),
        field("Collection category", addCategory)),
      el("div", { class: "actions" }, el("button", { type: "submit" }, "Add"))), addResult),
    section("Recommendations by use case", field("Use case", useCase), recs));
  category.addEventListener("change", () => search());
  await Promise.all([search(), recommend()]);
}
