/* #/compare?ids=A,B,...: several jobs on one page, from one POST /api/jobs/compare. Their loss
 * (solid) and eval-loss (dashed) curves overlaid on one chart, one colour per job; their final
 * metrics side by side; and their hyperparameters with the ones that differ highlighted and first
 * (the API decides which differ, defaults filled in). Reached from the jobs list by selecting jobs. */

import { api } from "../api.js";
import { lineChart } from "../chart.js";
import { append, el, enc, fill, section, showError, table } from "../dom.js";
import { fmt } from "../format.js";

const COLOURS = ["#2563eb", "#dc6803", "#12b76a", "#7a5af8", "#e31b54", "#0e9384", "#475467", "#ca8504"];
const METRICS = ["loss", "eval_loss", "final_loss", "training_time"];
const FINALS = [
  ["final loss", (j) => j.loss.final], ["best loss", (j) => j.loss.best],
  ["final eval loss", (j) => j.eval_loss.final], ["best eval loss", (j) => j.eval_loss.best],
  ["training time", (j) => j.training_time.final, fmt.duration], ["steps logged", (j) => j.loss.steps.length],
];

/** A hyperparameter exactly as configured (0.0001, not a rounded 1.00e-4). */
const shown = (value) => (value === null || value === undefined ? "–" : typeof value === "object" ? JSON.stringify(value) : String(value));

/** A job's name, linked, underlined in its curve's colour (set through CSSOM: the CSP allows no style attribute). */
function jobHead(job, index) {
  const node = el("span", { class: "compare-job" }, el("a", { href: `#/jobs/${enc(job.id)}` }, job.name || job.id));
  node.style.borderBottom = `3px solid ${COLOURS[index % COLOURS.length]}`;
  return node;
}

function overlay(result, signal) {
  const series = result.jobs.flatMap((job, i) => [
    { label: `${job.name || job.id} loss`, color: COLOURS[i % COLOURS.length], axis: "left" },
    { label: `${job.name || job.id} eval loss`, color: COLOURS[i % COLOURS.length], axis: "left", dash: [6, 4] },
  ]);
  const chart = lineChart({ label: "Loss and eval loss of the compared jobs", series, empty: "no metrics logged yet", signal });
  const points = (m) => m.steps.map((step, k) => [step, m.values[k]]);
  chart.node.dataset.series = String(series.length);
  return { chart, data: result.jobs.flatMap((job) => [points(job.loss), points(job.eval_loss)]) };
}

function finalsTable(result) {
  return table(["metric", ...result.jobs.map((job, i) => jobHead(job, i))],
    FINALS.map(([name, pick, format = fmt.num]) => el("tr", {}, el("th", { scope: "row" }, name),
      result.jobs.map((job) => el("td", {}, format(pick(job)))))), "Final metrics");
}

function hyperTables(result) {
  const differing = new Set(result.differing);
  const names = [...new Set(result.jobs.flatMap((job) => Object.keys(job.hyperparameters)))].sort();
  const row = (name) => el("tr", { class: differing.has(name) ? "differs" : null, "data-name": name },
    el("th", { scope: "row" }, name), result.jobs.map((job) => el("td", {}, shown(job.hyperparameters[name]))));
  const heads = ["hyperparameter", ...result.jobs.map((job, i) => jobHead(job, i))];
  const same = names.filter((name) => !differing.has(name));
  return [
    differing.size ? table(heads, result.differing.map(row), "Hyperparameters that differ")
      : el("p", { class: "muted" }, "Every hyperparameter is the same in these jobs."),
    el("details", {}, el("summary", {}, `${same.length} hyperparameters the same in every job`),
      table(heads, same.map(row), "Hyperparameters the same")),
  ];
}

export async function pageCompare(view, signal, query) {
  const ids = (new URLSearchParams(query || "").get("ids") || "").split(",").map((id) => id.trim()).filter(Boolean);
  const errors = el("div");
  append(view, el("p", {}, el("a", { href: "#/jobs" }, "← Jobs")), el("h1", {}, "Compare jobs"), errors);
  if (ids.length < 2) {
    append(view, el("p", { class: "muted" }, "Select two or more jobs in the ", el("a", { href: "#/jobs" }, "jobs list"),
      " and press “Compare selected”."));
    return;
  }
  let result;
  try {
    result = await api("POST", "/api/jobs/compare", { job_ids: ids, metrics: METRICS });
  } catch (error) { showError(errors, error); return; }
  const { chart, data } = overlay(result, signal);
  const content = el("div");
  fill(content,
    el("p", { class: "muted" }, `${result.jobs.length} jobs: `, result.jobs.map((job, i) => [i ? ", " : "", jobHead(job, i), ` (${job.status})`])),
    section("Loss curves", el("p", { class: "muted small" }, "Solid: training loss; dashed: eval loss; one colour per job."), chart.node),
    section("Final metrics", finalsTable(result)),
    section("Hyperparameters", hyperTables(result)));
  append(view, content);
  chart.update(data);
}
