/* #/datasets/{id}: versions, the quality report and first records of any version, repair into
 * a new version, delete, "Train on it". */

import { api } from "../api.js";
import { append, el, enc, fill, section, showError, table } from "../dom.js";
import { fmt } from "../format.js";
import { reportView } from "./datasets.js";

export async function pageDataset(view, signal, id) {
  const dataset = await api("GET", `/api/datasets/${enc(id)}`);
  const versions = await api("GET", `/api/datasets/${enc(id)}/versions`);
  const report = el("div", {}, el("p", { class: "muted" }, "Loading the quality report…"));
  const rows = el("div", { class: "records" });
  const actionResult = el("div", { "aria-live": "polite" });
  const showVersion = async (versionId) => {
    try {
      const [quality, page] = await Promise.all([
        api("GET", `/api/datasets/${enc(id)}/quality?version=${enc(versionId)}`),
        api("GET", `/api/datasets/${enc(id)}/rows?version=${enc(versionId)}&limit=5`)]);
      fill(report, el("h3", {}, "Version ", el("code", {}, versionId)), ...reportView(quality));
      fill(rows, ...page.data.map((r) => el("pre", { class: "cell" }, recordText(r))));
    } catch (error) { showError(report, error); }
  };
  const repair = async () => {
    try {
      const answer = await api("POST", `/api/datasets/${enc(id)}/repair`, {});
      fill(actionResult, el("p", { class: "ok", role: "status" }, `New version ${answer.id}: ${answer.summary}`));
    } catch (error) { showError(actionResult, error); }
  };
  const remove = async () => {
    if (!window.confirm(`Delete dataset ${dataset.name} and all its versions?`)) return;
    try { await api("DELETE", `/api/datasets/${enc(id)}`); location.hash = "#/datasets"; } catch (error) { showError(actionResult, error); }
  };
  append(view, el("p", {}, el("a", { href: "#/datasets" }, "← Datasets")),
    el("div", { class: "page-head" }, el("h1", {}, dataset.name),
      el("div", { class: "actions" }, el("a", { class: "button", href: `#/new?dataset=${enc(dataset.latest_version_id || "")}` }, "Train on it"),
        el("button", { type: "button", class: "quiet", onclick: repair }, "Repair into a new version"),
        el("button", { type: "button", class: "danger", onclick: remove }, "Delete"))),
    dataset.description ? el("p", {}, dataset.description) : null,
    (dataset.tags || []).length ? el("p", { "aria-label": "Tags" }, dataset.tags.map((t) => el("span", { class: "tag" }, t))) : null,
    actionResult,
    section("Versions", table(["version", "format", "kind", "rows", "invalid", "note", "created", ""], versions.data.map((v) => el("tr", {},
      el("td", {}, el("code", {}, v.id)), el("td", {}, v.format), el("td", {}, v.kind), el("td", {}, v.num_rows), el("td", {}, v.num_invalid),
      el("td", {}, v.note), el("td", {}, fmt.time(v.created_at)),
      el("td", {}, el("button", { type: "button", class: "quiet", onclick: () => showVersion(v.id) }, "Report")))), "Versions")),
    section("Quality report", report), section("First records", rows));
  if (dataset.latest_version_id) await showVersion(dataset.latest_version_id);
}

function recordText(record) {
  if (Array.isArray(record.messages)) return record.messages.map((m) => `${m.role}: ${m.content}`).join("\n");
  return JSON.stringify(record, null, 2);
}
