/* #/experiments (list and a new-experiment form) and #/experiments/{name} (the traffic split and
 * per-variant results: requests, latency, tokens, good-rating rate with its 95% Wilson interval,
 * each variant's test against the control, the chi-square test over all). Everything shown is
 * GET /api/experiments[/{name}]; chat with an experiment as model "exp:NAME". */

import { api } from "../api.js";
import { append, el, enc, every, field, fill, section, showError, table } from "../dom.js";
import { fmt } from "../format.js";

const statusBadge = (status) => el("span", { class: `badge status-${status === "running" ? "running" : "cancelled"}` }, status);
const interval = (ci) => (ci ? `${fmt.percent(ci[0])} – ${fmt.percent(ci[1])}` : "–");
const pValue = (test) => (test ? `p = ${fmt.num(test.p_value, 3)}${test.significant ? " (significant)" : ""}` : "–");

function variantRow(index) {
  const name = el("input", { type: "text", maxlength: 64, required: true, value: index ? "tuned" : "control", "aria-label": `Variant ${index + 1} name` });
  const model = el("input", { type: "text", maxlength: 500, required: true, placeholder: "a model from /v1/models", "aria-label": `Variant ${index + 1} model` });
  const weight = el("input", { type: "number", min: 0, max: 1, step: "any", required: true, value: 0.5, "aria-label": `Variant ${index + 1} weight` });
  return { node: el("div", { class: "field-row" }, name, model, weight), read: () => ({ name: name.value.trim(), model: model.value.trim(), weight: Number(weight.value) }) };
}

function newExperimentForm(onCreated) {
  const errors = el("div");
  const name = el("input", { type: "text", maxlength: 64, required: true, placeholder: "e.g. greeting-ab" });
  const description = el("input", { type: "text", maxlength: 2000 });
  const rows = [variantRow(0), variantRow(1)];
  const list = el("div", {}, rows.map((r) => r.node));
  const add = el("button", { type: "button", class: "secondary", onclick: () => { const r = variantRow(rows.length); rows.push(r); list.append(r.node); } }, "Add variant");
  const form = el("form", { "aria-label": "New experiment" },
    field("Experiment name", name, "Chat with it as model exp:NAME."), field("Description", description),
    el("p", { class: "muted" }, "Variants: name, model and share of the traffic (the shares sum to 1)."), list, add,
    el("button", { type: "submit" }, "Create experiment"), errors);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await api("POST", "/api/experiments", { name: name.value.trim(), description: description.value, variants: rows.map((r) => r.read()) });
      errors.replaceChildren();
      onCreated(made);
    } catch (error) { showError(errors, error); }
  });
  return form;
}

export async function pageExperiments(view, signal) {
  const body = el("tbody");
  const errors = el("div");
  const load = async () => {
    try {
      const page = await api("GET", "/api/experiments");
      fill(body, ...page.data.map((e) => el("tr", {},
        el("td", {}, el("a", { href: `#/experiments/${enc(e.name)}` }, e.name), el("div", { class: "muted small" }, e.model)),
        el("td", {}, statusBadge(e.status)),
        el("td", {}, e.variants.map((v) => `${v.name} ${fmt.percent(v.weight)}`).join(" / ")),
        el("td", {}, fmt.num(e.results.requests)), el("td", {}, fmt.time(e.created_at)))));
      if (!page.data.length) body.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No experiments yet.")));
      errors.replaceChildren();
    } catch (error) { showError(errors, error); }
  };
  append(view, el("h1", {}, "Experiments"),
    el("p", { class: "muted" }, "A/B tests: requests for exp:NAME on /v1/chat/completions are split over the variants; ",
      "the same `user` always meets the same variant."),
    errors, table(["Name", "Status", "Split", "Requests", "Created"], body, "Experiments"),
    section("New experiment", newExperimentForm((made) => { location.hash = `#/experiments/${enc(made.name)}`; })));
  await load();
  every(5000, load, signal);
}

function resultsTable(results) {
  return table(["Variant", "Model", "Split", "Requests", "Share", "Mean latency", "Mean tokens", "Rated", "Good rate", "95% interval", "vs control"],
    results.variants.map((v, i) => el("tr", { "data-variant": v.name },
      el("td", {}, v.name), el("td", {}, v.model),
      el("td", {}, el("progress", { value: v.weight, max: 1, "aria-label": `${v.name} share of the traffic` }), ` ${fmt.percent(v.weight)}`),
      el("td", {}, fmt.num(v.requests)), el("td", {}, fmt.percent(v.share)),
      el("td", {}, v.mean_latency_s === null ? "–" : `${fmt.num(v.mean_latency_s, 3)} s`), el("td", {}, fmt.num(v.mean_completion_tokens, 3)),
      el("td", {}, fmt.num(v.rated)), el("td", {}, fmt.percent(v.good_rate)), el("td", {}, interval(v.ci95)),
      el("td", {}, i === 0 ? "control" : pValue(v.vs_control)))), "Per-variant results");
}

export async function pageExperiment(view, signal, name) {
  const errors = el("div");
  const head = el("div");
  const results = el("div");
  const overall = el("p");
  const stop = el("button", { type: "button", class: "secondary" }, "Stop experiment");
  const load = async () => {
    try {
      const e = await api("GET", `/api/experiments/${enc(name)}`);
      fill(head, el("h1", {}, `Experiment ${e.name} `, statusBadge(e.status)),
        el("p", { class: "muted" }, `Chat with model ${e.model}. `, e.description || ""),
        el("dl", { class: "stats", "aria-label": "Summary" },
          el("div", { class: "stat" }, el("dt", {}, "Requests"), el("dd", {}, fmt.num(e.results.requests))),
          el("div", { class: "stat" }, el("dt", {}, "Control"), el("dd", {}, e.results.control || "–"))));
      fill(results, resultsTable(e.results));
      const t = e.results.test;
      fill(overall, t ? `${t.test} over all variants: statistic ${fmt.num(t.statistic, 3)}, ${pValue(t)} at alpha ${t.alpha}.`
        : `No test yet: rate replies of at least two variants (thumbs, or a 1-5 score of ${e.results.good_score} or more counts as good).`);
      stop.hidden = e.status !== "running";
      errors.replaceChildren();
    } catch (error) { showError(errors, error); }
  };
  stop.addEventListener("click", async () => {
    try { await api("POST", `/api/experiments/${enc(name)}/stop`); await load(); } catch (error) { showError(errors, error); }
  });
  append(view, errors, head, section("Split and results", results, overall), stop);
  await load();
  every(5000, load, signal);
}
