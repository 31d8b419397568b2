/* The job page's Evaluation panel: the automatic evaluation the worker runs after a completed job
 * (GET /api/evaluations?job_id=), tuned model against its base on the job's eval split, every metric
 * side by side (ROUGE-L first), the general-ability probe (kept, lost and gained against the base, each
 * lost answer listed) and the regression flag. It polls while the evaluation is on its way. */

import { api } from "../api.js";
import { el, enc, errorBox, every, fill, section, showError, table } from "../dom.js";
import { fmt } from "../format.js";
import { lostAnswers } from "./evaluations.js";

const LEAD = "rougeL";  // the identity quick start is judged on it; the rest in the registry's order (GET /api/meta)
const SETTLED = ["completed", "failed"];

/** The panel node and ``update(job)``, called whenever the page has a newer job. */
export function evaluationPanel(job, meta, signal) {
  const body = el("div", { "aria-live": "polite" });
  let current = job;
  let settled = false;
  const load = async () => {
    if (settled || signal.aborted) return;
    try {
      const page = await api("GET", `/api/evaluations?job_id=${enc(current.id)}&limit=10`);
      const latest = page.data.find((e) => e.source === "job") || page.data[0];
      settled = render(body, current, latest, meta);
    } catch (error) { showError(body, error); }
  };
  every(5000, load, signal);
  load();
  return {
    node: section("Evaluation", body),
    update(next) {
      const finished = next.status !== current.status;
      current = next;
      if (finished) { settled = false; load(); }
    },
  };
}

/** Draw the evaluation (or why there is none yet); true once nothing more will change. */
function render(body, job, evaluation, meta) {
  if (!evaluation) {
    fill(body, el("p", { class: "muted evaluation-pending" }, job.status === "completed"
      ? "No evaluation yet: the worker evaluates a completed job on its eval split (metrics and the general-ability "
        + "probe, against the base) unless output.evaluate is off."
      : "When the job completes, the worker evaluates it on its eval split and asks the general-ability probe, "
        + "tuned model against its base."));
    const off = ((job.config.hyperparameters || {}).output || {}).evaluate === false;
    return job.status !== "completed" || off;  // update() looks again when the status changes
  }
  const link = el("a", { href: `#/evaluations/${enc(evaluation.id)}` }, "every generation beside its reference");
  if (evaluation.status === "failed") {
    fill(body, errorBox(evaluation.error || { message: "the evaluation failed" }), el("p", { class: "muted" }, "See ", link, "."));
    return true;
  }
  if (!SETTLED.includes(evaluation.status)) {
    fill(body, el("p", { class: "muted evaluation-pending" }, `Evaluation ${evaluation.status}: the tuned model and its base `
      + "answer the eval split and the general-ability probe…"));
    return false;
  }
  const result = evaluation.summary || {};
  fill(body, regressionFlag(evaluation.regression), metricTable(result, meta), retention(result.retention),
    el("p", { class: "muted small" }, `${result.rows_evaluated ?? 0} eval rows, `, link, "."));
  return true;
}

function regressionFlag(regression) {
  if (regression === true) {
    return el("p", { class: "error evaluation-regression", role: "status" },
      "Regression: the tuned model answers fewer general-ability probe questions right than its base.");
  }
  if (regression === false) return el("p", { class: "ok evaluation-regression", role: "status" }, "No regression against the base.");
  return null;
}

function metricTable(result, meta) {
  const sides = result.summary || {};
  const tuned = sides.model || {};
  const base = sides.against || null;
  const names = Object.keys(tuned).filter((n) => typeof tuned[n] === "number" && n !== "eval_tokens");
  const order = [LEAD, ...(meta.metrics || []).map((m) => m.name).filter((n) => n !== LEAD)];
  const rank = (name) => (order.includes(name) ? order.indexOf(name) : order.length);
  names.sort((a, b) => rank(a) - rank(b));
  const rows = names.map((name) => {
    const change = base && typeof base[name] === "number" ? tuned[name] - base[name] : null;
    return el("tr", { "data-metric": name }, el("th", { scope: "row" }, name), el("td", { class: "metric-tuned" }, fmt.num(tuned[name])),
      el("td", { class: "metric-base" }, base ? fmt.num(base[name]) : "–"),
      el("td", {}, change === null ? "–" : `${change > 0 ? "+" : ""}${fmt.num(change)}`));
  });
  return table(["metric", "tuned", base ? "base" : "(no base)", "change"], rows, "Evaluation metrics");
}

function retention(r) {
  if (!r) return el("p", { class: "muted" }, "The general-ability probe was not asked (output.eval_probe is off).");
  const summary = r.base_correct === null
    ? `General-ability probe: the tuned model answers ${r.tuned_correct} of ${r.size} right (no base to compare with).`
    : `General-ability probe: the tuned model answers ${r.tuned_correct} of ${r.size} right, the base ${r.base_correct}; `
      + `kept ${r.kept ?? "–"}, lost ${r.lost.length}, gained ${r.gained.length}.`;
  return el("div", { class: "evaluation-retention" }, el("p", { class: "retention-summary" }, summary),
    lostAnswers(r.lost, { says: "tuned says", caption: "Lost probe answers" }));
}
