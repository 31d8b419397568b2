/* The new-job form's Automated mode: only model, dataset and a budget (trials or minutes).
 * The ranges and the sentence explaining each come from POST /api/sweeps/propose (the bands live
 * in tunelab.sweeps.propose); "Start sweep" sends the same request with run: true, so what starts is
 * exactly what was shown. This module lays the answer out as text and never computes a range. */

import { api } from "../api.js";
import { el, enc, field, fill, section, showError, table } from "../dom.js";

/** The answer of POST /api/sweeps/propose as shown before anything starts: each field's choice and its reason.
 * Also the new-sweep page's proposal (sweeps.js). */
export function proposalSection(answer) {
  return section("Proposed search",
    table(["Field", "Choice", "Why"], answer.explanations.map((item) =>
      el("tr", { "data-field": item.field }, el("td", {}, item.field), el("td", {}, item.choice), el("td", {}, item.reason))), "Proposal"),
    el("p", { class: "muted small" }, `Model: ${answer.model_parameters ? `${answer.model_parameters.toLocaleString()} parameters` : "size unknown"}; `,
      `dataset: ${answer.dataset_rows.toLocaleString()} rows. Each trial is an ordinary job.`));
}

/** The Automated part and its button; ``readTarget()`` returns {model, dataset} from the form. */
export function automatedPanel(readTarget) {
  const kind = el("select", {}, el("option", { value: "trials" }, "trials"), el("option", { value: "minutes" }, "minutes"));
  const amount = el("input", { type: "number", min: 1, step: "any", value: 10 });
  const proposal = el("div", { class: "proposal", "aria-live": "polite" });
  const errors = el("div", { "aria-live": "polite" });
  const proposeButton = el("button", { type: "button", class: "secondary" }, "Propose ranges");
  const start = el("button", { type: "button" }, "Start sweep");

  const request = () => {
    const target = readTarget();
    const value = amount.value === "" ? null : Number(amount.value);
    return { model: target.model, dataset: target.dataset,
      n_trials: kind.value === "trials" ? value : null, budget_minutes: kind.value === "minutes" ? value : null };
  };
  const propose = async () => {
    errors.replaceChildren();
    try { fill(proposal, proposalSection(await api("POST", "/api/sweeps/propose", request()))); } catch (error) { proposal.replaceChildren(); showError(errors, error); }
  };
  proposeButton.addEventListener("click", propose);
  start.addEventListener("click", async () => {
    errors.replaceChildren();
    start.disabled = true;
    try {
      const answer = await api("POST", "/api/sweeps/propose", { ...request(), run: true });
      location.hash = `#/sweeps/${enc(answer.created.id)}`;
    } catch (error) { showError(errors, error); start.disabled = false; }
  });
  const node = el("fieldset", { "aria-label": "Automated configuration" }, el("legend", {}, "Automated search"),
    el("p", { class: "muted small" }, "Give only the model, the dataset and a budget: the learning rate, epochs and adapter rank are searched ",
      "in ranges proposed from the model's and the dataset's size, each with its reason."),
    el("div", { class: "grid" }, field("Search limit in", kind), field("Search limit", amount, "The budget: trials to run, or minutes after which no new trial starts.")),
    proposal, errors, el("div", { class: "actions" }, proposeButton, start));
  return { node, propose };
}
