/* #/analytics: jobs per day (the shared lineChart), success rate, queue wait, CPU/GPU hours,
 * popular models and datasets, common hyperparameter choices; all from GET /api/analytics. */

import { api } from "../api.js";
import { lineChart } from "../chart.js";
import { append, el, field, fill, section, showError, table } from "../dom.js";
import { fmt } from "../format.js";

// one line per count of GET /api/analytics' jobs_per_day entries (its field names)
const LINES = [
  { label: "created", color: "#2563eb", axis: "left" },
  { label: "completed", color: "#16a34a", axis: "left" },
  { label: "failed", color: "#dc2626", axis: "left", dash: [6, 4] },
];

const stat = (label, value) => el("div", { class: "stat" }, el("dt", {}, label), el("dd", {}, value));

export async function pageAnalytics(view, signal) {
  const errors = el("div");
  const days = el("select", { name: "days" }, [7, 30, 90, 365].map((d) => el("option", { value: d, selected: d === 30 }, `${d} days`)));
  const cards = el("dl", { class: "stats", "aria-label": "Summary" });
  const chart = lineChart({
    label: "Jobs per day", xLabel: "days before today", integerX: true, signal, empty: "no days in the window",
    series: LINES });
  const perDay = el("div");
  const models = el("div");
  const datasets = el("div");
  const hyper = el("div");

  const load = async () => {
    try {
      const a = await api("GET", `/api/analytics?days=${encodeURIComponent(days.value)}`);
      const wait = a.queue_wait;
      fill(cards,
        stat("Jobs", fmt.num(a.totals.jobs)),
        stat("Success rate", a.success_rate === null ? "–" : `${fmt.num(a.success_rate, 4)}%`),
        stat("Completed / failed / cancelled", `${a.totals.completed} / ${a.totals.failed} / ${a.totals.cancelled}`),
        stat("Queue wait (median)", fmt.duration(wait.median_s)),
        stat("Queue wait (p95)", fmt.duration(wait.p95_s)),
        stat("CPU hours", fmt.num(a.compute.cpu_hours, 3)),
        stat("GPU hours", fmt.num(a.compute.gpu_hours, 3)));
      const last = a.jobs_per_day.length - 1;
      const points = (key) => a.jobs_per_day.map((d, i) => [i - last, d[key]]);
      chart.update(LINES.map((line) => points(line.label)));
      const active = a.jobs_per_day.filter((d) => d.created || d.completed || d.failed || d.cancelled).reverse();
      fill(perDay, active.length
        ? table(["date", "created", "ended completed", "ended failed", "ended cancelled"], active.map((d) => el("tr", {},
          el("td", {}, d.date), el("td", {}, d.created), el("td", {}, d.completed), el("td", {}, d.failed), el("td", {}, d.cancelled))), "Jobs per day")
        : el("p", { class: "muted" }, "No jobs in this window."));
      fill(models, a.popular_models.length
        ? table(["model", "jobs", "completed"], a.popular_models.map((m) => el("tr", {}, el("td", {}, m.model), el("td", {}, m.jobs), el("td", {}, m.completed))), "Popular models")
        : el("p", { class: "muted" }, "No jobs yet."));
      fill(datasets, a.popular_datasets.length
        ? table(["dataset", "jobs", "completed"], a.popular_datasets.map((d) => el("tr", {}, el("td", {}, d.dataset), el("td", {}, d.jobs), el("td", {}, d.completed))), "Popular datasets")
        : el("p", { class: "muted" }, "No jobs yet."));
      fill(hyper, a.hyperparameters.length
        ? table(["hyperparameter", "jobs that set it", "most common values"], a.hyperparameters.map((h) => el("tr", {},
          el("td", {}, h.name), el("td", {}, h.jobs), el("td", {}, h.values.map((v) => `${v.value} (${v.count})`).join(", ")))), "Common hyperparameter choices")
        : el("p", { class: "muted" }, "No hyperparameters set by jobs yet."));
      errors.replaceChildren();
    } catch (error) { showError(errors, error); }
  };
  days.addEventListener("change", load);
  append(view, el("h1", {}, "Analytics"), errors, field("Window", days), cards,
    section("Jobs per day", chart.node, perDay), section("Popular models", models),
    section("Popular datasets", datasets), section("Common hyperparameter choices", hyper));
  await load();
}
