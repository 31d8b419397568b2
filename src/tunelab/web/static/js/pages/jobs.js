/* #/jobs: the job list with status, progress, priority, step and tags; filters by status (the
 * API's statuses), name and tag; refreshes every 3 s unless turned off. Jobs ticked in the first
 * column (kept across refreshes) open side by side in #/compare. */

import { api, loadMeta } from "../api.js";
import { append, badge, el, enc, every, field, fill, showError, throttle } from "../dom.js";
import { fmt } from "../format.js";

/** Progress 0..1: the API's figure, else steps done over max_steps; completed is 1. */
export function jobProgress(job) {
  if (job.status === "completed") return 1;
  if (job.progress !== null && job.progress !== undefined) return job.progress;
  const max = job.config && job.config.hyperparameters && job.config.hyperparameters.max_steps;
  return max && job.global_step ? Math.min(1, job.global_step / max) : 0;
}

function jobRow(job, statuses, selected, onSelect) {
  const progress = jobProgress(job);
  return el("tr", {},
    el("td", {}, el("input", { type: "checkbox", checked: selected.has(job.id), "aria-label": `select ${job.name || job.id}`,
      onchange: (e) => onSelect(job.id, e.target.checked) })),
    el("td", {}, el("a", { href: `#/jobs/${enc(job.id)}` }, job.name || job.id), el("div", { class: "muted small" }, job.id)),
    el("td", {}, badge(job.status, statuses)),
    el("td", {}, el("progress", { max: 1, value: progress, "aria-label": `progress of ${job.name || job.id}` }), " ", fmt.percent(progress)),
    el("td", {}, job.priority),
    el("td", {}, job.global_step ?? "–"),
    el("td", {}, fmt.time(job.created_at)),
    el("td", {}, (job.tags || []).map((t) => el("span", { class: "tag" }, t))));
}

export async function pageJobs(view, signal) {
  const meta = await loadMeta();
  const status = el("select", {}, el("option", { value: "" }, "any"), meta.job_statuses.map((s) => el("option", { value: s }, s)));
  const search = el("input", { type: "search", placeholder: "part of the name" });
  const tag = el("input", { type: "text", placeholder: "a tag" });
  const auto = el("input", { type: "checkbox", checked: true });
  const body = el("tbody");
  const summary = el("p", { class: "muted", "aria-live": "polite" });
  const errors = el("div");
  const selected = new Set();
  const compare = el("a", { class: "button", href: "#/compare", hidden: true }, "Compare selected");
  const onSelect = (id, on) => {
    if (on) selected.add(id); else selected.delete(id);
    compare.hidden = selected.size < 2;
    compare.href = `#/compare?ids=${[...selected].map(enc).join(",")}`;
    compare.textContent = `Compare selected (${selected.size})`;
  };
  const load = async () => {
    const query = new URLSearchParams({ limit: "200" });
    if (status.value) query.append("status", status.value);
    if (search.value.trim()) query.set("search", search.value.trim());
    if (tag.value.trim()) query.set("tag", tag.value.trim());
    try {
      const page = await api("GET", `/api/jobs?${query}`);
      fill(body, ...page.data.map((job) => jobRow(job, meta.job_statuses, selected, onSelect)));
      if (!page.data.length) body.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No jobs match. ", el("a", { href: "#/new" }, "Create one"), ".")));
      summary.textContent = `${page.count} job${page.count === 1 ? "" : "s"}${page.count > page.data.length ? `, newest ${page.data.length} shown` : ""}`;
      errors.replaceChildren();
    } catch (error) { showError(errors, error); }
  };
  for (const control of [status, tag]) control.addEventListener("change", load);
  search.addEventListener("input", throttle(load, 300));
  append(view,
    el("div", { class: "page-head" }, el("h1", {}, "Jobs"), el("div", { class: "actions" }, compare, el("a", { class: "button", href: "#/new" }, "New job"))),
    el("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); load(); } },
      field("Status", status), field("Search", search), field("Tag", tag),
      el("label", { class: "check" }, auto, " Auto refresh")),
    errors, summary,
    el("table", { "aria-label": "Jobs" },
      el("thead", {}, el("tr", {}, ["Compare", "Name", "Status", "Progress", "Priority", "Step", "Created", "Tags"].map((h) => el("th", { scope: "col" }, h)))),
      body));
  await load();
  every(3000, () => { if (auto.checked) load(); }, signal);
}
