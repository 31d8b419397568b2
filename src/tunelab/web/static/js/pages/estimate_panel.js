/* The new-job form's live estimate: POST /api/estimate (debounced) whenever a value changes.
 * Shows the memory split as a bar, whether the config fits each device (this machine, then the
 * server's GPU table), the largest batch, time and cost, and the cheapest setup within a budget.
 * Every number is the server's; this module only lays it out (as text). Bar widths are set through
 * the CSSOM (node.style), which the dashboard's Content-Security-Policy allows. */

import { api } from "../api.js";
import { append, el, field, fill, showError, table } from "../dom.js";
import { fmt } from "../format.js";

const PARTS = [
  ["weights_bytes", "weights", "#2e90fa"],
  ["gradients_bytes", "gradients", "#f79009"],
  ["optimizer_bytes", "optimizer", "#9e77ed"],
  ["activations_bytes", "activations", "#12b76a"],
  ["overhead_bytes", "overhead", "#98a2b3"],
  ["loading_bytes", "loading", "#f04438"], // the load-time peak above training (stored + converted copy, CPU only)
];

const hours = (h) => (h === null || h === undefined ? "–" : fmt.duration(h * 3600));
const money = (v, currency) => (v === null || v === undefined ? "–" : `${v.toFixed(2)} ${currency}`);

function memoryBar(memory) {
  const bar = el("div", { class: "estimate-bar", role: "img",
    "aria-label": `Memory split: ${PARTS.map(([key, label]) => `${label} ${fmt.bytes(memory[key])}`).join(", ")}` });
  Object.assign(bar.style, { display: "flex", height: "1.25rem", borderRadius: "4px", overflow: "hidden",
    background: "#eaecf0", margin: ".5rem 0" });
  const legend = el("ul", { class: "estimate-legend", "aria-label": "Memory split" });
  Object.assign(legend.style, { display: "flex", gap: "1rem", flexWrap: "wrap", listStyle: "none", padding: "0" });
  for (const [key, label, colour] of PARTS) {
    const part = el("span", { "data-part": label, title: `${label}: ${fmt.bytes(memory[key])}` });
    Object.assign(part.style, { flexGrow: String(memory[key] || 0), flexBasis: "0", background: colour });
    bar.append(part);
    const swatch = el("span");
    Object.assign(swatch.style, { display: "inline-block", width: ".75rem", height: ".75rem", background: colour,
      marginRight: ".3rem" });
    legend.append(el("li", { "data-part": label }, swatch, `${label} ${fmt.bytes(memory[key])}`));
  }
  return [bar, legend];
}

function deviceRows(found) {
  return found.devices.map((d) => el("tr", { "data-device": d.name, "data-fits": d.fits ? "yes" : "no" },
    el("td", {}, d.name), el("td", {}, d.precision), el("td", {}, fmt.bytes(d.memory_bytes)),
    el("td", {}, fmt.bytes(d.needed_bytes)), el("td", {}, d.fits ? "fits" : "does not fit"),
    el("td", {}, String(d.largest_batch_size)), el("td", {}, String(d.gradient_accumulation_steps)),
    el("td", {}, hours(d.hours), d.step_seconds ? el("div", { class: "muted small" }, `${d.step_seconds.toPrecision(3)} s/step`) : null),
    el("td", {}, d.own ? "–" : money(d.cost_on_demand, found.currency)),
    el("td", {}, d.own ? "–" : money(d.cost_spot, found.currency))));
}

function render(slot, found) {
  const m = found.memory;
  const summary = el("p", { class: "estimate-summary" },
    `${fmt.count(found.parameters)} parameters, ${fmt.count(found.trainable_parameters)} trained; `,
    `batch ${m.batch_size} × ${m.max_length} tokens in ${m.precision}: `,
    el("strong", { "data-total": String(m.total_bytes) }, `${fmt.bytes(m.total_bytes)} on this machine`),
    ` (activations ${fmt.bytes(m.activations_with_checkpointing_bytes)} with gradient checkpointing, `,
    `${fmt.bytes(m.activations_without_checkpointing_bytes)} without).`);
  const cheapest = found.cheapest ? el("p", { class: "estimate-cheapest" },
    `Cheapest within ${found.budget} ${found.currency}: ${found.cheapest.device} (${found.cheapest.pricing}), `,
    `batch ${found.cheapest.batch_size} × ${found.cheapest.gradient_accumulation_steps}, `,
    `${hours(found.cheapest.hours)}, ${money(found.cheapest.cost, found.currency)}.`) : null;
  fill(slot, summary, memoryBar(m),
    table(["device", "precision", "memory", "needs", "fits", "max batch", "accum", "time", "on demand", "spot"],
      deviceRows(found), "Devices"),
    cheapest, found.notes.map((note) => el("p", { class: "muted small" }, note)));
}

/** The panel and its ``update()``; ``readConfig()`` returns the TrainConfig fields of the form. */
export function estimatePanel(readConfig, signal) {
  const rows = el("input", { type: "number", min: 1, placeholder: "for time and cost" });
  const budget = el("input", { type: "number", min: 0, step: "any", placeholder: "optional" });
  const status = el("p", { class: "muted small", role: "status", "aria-label": "Estimate status" });
  const result = el("div", { "aria-live": "polite" });
  const node = el("section", { class: "card", "aria-label": "Estimate" }, el("h2", {}, "Estimate"),
    el("div", { class: "grid" }, field("Training rows", rows, "Rows of the dataset; time and cost need them (or max_steps)."),
      field("Budget", budget, "Most you would pay; finds the cheapest GPU setup.")),
    status, result);
  let timer = null;
  let sequence = 0;
  const run = async () => {
    const mine = ++sequence;
    let body;
    try {
      body = { config: readConfig() };
    } catch (error) { showError(result, error); return; }
    if (rows.value) body.rows = Number(rows.value);
    if (budget.value !== "") body.budget = Number(budget.value);
    status.textContent = "Estimating…";
    try {
      const found = await api("POST", "/api/estimate", body);
      if (mine !== sequence || signal.aborted) return;
      render(result, found);
      status.textContent = `Estimate for batch size ${found.memory.batch_size}.`;
    } catch (error) {
      if (mine !== sequence) return;
      status.textContent = "No estimate.";
      showError(result, error);
    }
  };
  const update = () => { clearTimeout(timer); timer = setTimeout(run, 350); };
  append(node);
  rows.addEventListener("input", update);
  budget.addEventListener("input", update);
  signal.addEventListener("abort", () => clearTimeout(timer));
  return { node, update };
}
