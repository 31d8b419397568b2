/* #/datasets: the guide's flow. Choosing a file previews it at once (POST /api/preview-csv:
 * statistics, columns, first rows, validation errors, tunelab's issues) before anything is
 * stored; then upload it with a name, a description and tags. Below, the stored datasets,
 * filterable by tag. Accepted file suffixes, file types and formats come from GET /api/meta,
 * so the picker offers what the server reads. */

import { api, loadMeta, upload } from "../api.js";
import { append, el, enc, field, fill, section, showError, table } from "../dom.js";
import { fmt } from "../format.js";

/** "JSON, JSONL, CSV" from the API's file types. */
const fileTypesText = (meta) => meta.file_types.map((t) => t.toUpperCase()).join(", ");

export async function pageDatasets(view) {
  const meta = await loadMeta();
  const file = el("input", { type: "file", accept: Object.keys(meta.file_suffixes).join(","), required: true });
  const name = el("input", { type: "text", maxlength: 200, placeholder: "from the file name" });
  const description = el("input", { type: "text", maxlength: 5000 });
  const tags = el("input", { type: "text", placeholder: "support, english" });
  const tagFilter = el("input", { type: "search", placeholder: "any tag" });
  const format = el("select", {}, el("option", { value: "" }, "detect"),
    meta.dataset_formats.map((f) => el("option", { value: f.name }, f.name)));
  const progress = el("progress", { max: 1, value: 0, "aria-label": "Upload progress" });
  const progressText = el("span", { class: "muted small" });
  const result = el("div", { "aria-live": "polite" });
  const list = el("tbody");
  const form = () => {
    const data = new FormData();
    data.append("file", file.files[0]);
    if (name.value.trim()) data.append("name", name.value.trim());
    if (description.value.trim()) data.append("description", description.value.trim());
    if (tags.value.trim()) data.append("tags", tags.value.trim());
    if (format.value) data.append("format", format.value);
    return data;
  };
  const send = async (path, done) => {
    if (!file.files.length) { showError(result, { message: "choose a file first", hint: fileTypesText(meta) }); return; }
    fill(result, el("p", { class: "muted" }, "Working…"));
    try {
      const answer = await upload(path, form(), (p) => { progress.value = p; progressText.textContent = `${Math.round(p * 100)}% sent`; });
      fill(result, ...done(answer));
    } catch (error) { showError(result, error); }
  };
  const check = () => send("/api/preview-csv", (preview) => previewView(preview));
  file.addEventListener("change", () => { if (file.files.length) check(); });
  const save = () => send("/api/datasets", (answer) => {
    loadList();
    return [el("p", { class: "ok", role: "status" }, `Stored ${answer.name}: version `, el("code", {}, answer.version.id),
      `, ${answer.version.num_rows} rows (${answer.version.format}). `, el("a", { href: `#/datasets/${enc(answer.id)}` }, "Open"),
      " · ", el("a", { href: `#/new?dataset=${enc(answer.version.id)}` }, "Train on it"))];
  });
  const loadList = async () => {
    const tag = tagFilter.value.trim();
    const page = await api("GET", `/api/datasets?limit=1000${tag ? `&tag=${enc(tag)}` : ""}`);
    fill(list, ...page.data.map((d) => el("tr", {},
      el("td", {}, el("a", { href: `#/datasets/${enc(d.id)}` }, d.name)),
      el("td", {}, (d.tags || []).map((t) => el("span", { class: "tag" }, t))),
      el("td", {}, el("code", {}, d.latest_version_id || "–")), el("td", {}, d.description || ""), el("td", {}, fmt.time(d.created_at)))));
    if (!page.data.length) list.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, tag ? `No dataset tagged ${tag}.` : "No datasets yet.")));
  };
  const fileHelp = `${fileTypesText(meta)}; detected formats: ${meta.dataset_formats.map((f) => f.name).join(", ")}.`;
  append(view, el("h1", {}, "Datasets"),
    section("Upload a dataset",
      el("form", { class: "stack", onsubmit: (e) => { e.preventDefault(); save(); } },
        el("div", { class: "grid" }, field("File", file, fileHelp),
          field("Name", name), field("Description", description), field("Tags", tags, "comma-separated"), field("Format", format)),
        el("div", { class: "actions" }, el("button", { type: "button", class: "quiet", onclick: check }, "Check without saving"),
          el("button", { type: "submit" }, "Upload"), progress, progressText)),
      result),
    section("Stored datasets", field("Filter by tag", tagFilter),
      table(["Name", "Tags", "Latest version", "Description", "Created"], list, "Datasets")));
  tagFilter.addEventListener("change", loadList);
  await loadList();
}

/** A cell of the preview: text as is, lists and objects (conversations, Parquet structs) as JSON. */
const cellText = (value) => (value !== null && typeof value === "object" ? JSON.stringify(value) : value ?? "");

/** The answer of POST /api/preview-csv: the guide's statistics, columns, first rows and
 * validation errors, then tunelab's structured issues (with row, line and hint). */
export function previewView(preview) {
  const stats = preview.statistics || {};
  const columns = preview.columns || [];
  const errors = preview.validation_errors || [];
  const issues = preview.issues || [];
  const facts = [["file", preview.filename], ["total rows", stats.total_rows], ["total columns", stats.total_columns],
    ["required columns", stats.has_required_columns ? "present" : "missing"], ["file type", preview.file_type],
    ["format", preview.format || "not recognised"]];
  return [
    el("h3", {}, "Preview of ", preview.filename),
    el("p", { role: "status" }, errors.length ? el("strong", { class: "bad" }, "Not usable as is: fix the validation errors below.")
      : el("strong", { class: "good" }, "Usable for training.")),
    el("dl", { class: "facts", "aria-label": "Dataset statistics" }, facts.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v ?? "–")))),
    el("h3", {}, `Columns (${columns.length})`),
    el("ul", { "aria-label": "Columns", class: "inline" }, columns.map((c) => el("li", {}, el("code", {}, c)))),
    el("h3", {}, `Validation errors (${errors.length})`),
    errors.length ? el("ul", { "aria-label": "Validation errors", class: "bad" }, errors.map((e) => el("li", {}, e)))
      : el("p", { class: "muted" }, "No validation errors."),
    el("h3", {}, `First rows (${(preview.data || []).length} of ${stats.total_rows ?? 0})`),
    table(columns, (preview.data || []).map((row) => el("tr", {},
      columns.map((c) => el("td", {}, el("pre", { class: "cell" }, cellText(row[c])))))), "Preview rows"),
    el("h3", {}, `Issues (${issues.length})`),
    issues.length ? table(["severity", "code", "message", "hint", "row", "line"], issues.map((i) => el("tr", { class: `sev-${i.severity === "error" ? "error" : "warning"}` },
      el("td", {}, i.severity), el("td", {}, el("code", {}, i.code)), el("td", {}, i.message), el("td", {}, i.hint), el("td", {}, i.row ?? "–"), el("td", {}, i.line ?? "–"))), "Validation issues")
      : el("p", { class: "muted" }, "No issues."),
  ];
}

/** A validation / quality report (preview or stored version) as tables. */
export function reportView(report) {
  const q = report.quality || {};
  const tokens = q.tokens || {};
  const facts = [["format", report.format], ["rows", q.rows], ["valid rows", q.valid_rows], ["invalid rows", q.invalid_rows],
    ["errors", report.errors], ["warnings", report.warnings], ["duplicates", q.duplicates], ["empty rows", q.empty_rows],
    ["tokens mean / p95 / max", `${fmt.num(tokens.mean)} / ${fmt.num(tokens.p95)} / ${fmt.num(tokens.max)}`],
    ["rows over max length", `${q.over_max_length ?? "–"} (max ${q.max_length ?? "–"})`],
    ["kinds", Object.entries(q.kinds || {}).map(([k, v]) => `${k}: ${v}`).join(", ")]];
  const issues = report.issues || [];
  return [
    el("p", {}, report.ok === false ? el("strong", { class: "bad" }, "Not usable as is: fix the errors below.")
      : el("strong", { class: "good" }, "Usable for training.")),
    el("dl", { class: "facts", "aria-label": "Quality facts" }, facts.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v ?? "–")))),
    el("h3", {}, `Issues (${issues.length})`),
    issues.length ? table(["severity", "code", "message", "hint", "row", "line"], issues.map((i) => el("tr", { class: `sev-${i.severity === "error" ? "error" : "warning"}` },
      el("td", {}, i.severity), el("td", {}, el("code", {}, i.code)), el("td", {}, i.message), el("td", {}, i.hint), el("td", {}, i.row ?? "–"), el("td", {}, i.line ?? "–"))), "Validation issues")
      : el("p", { class: "muted" }, "No issues."),
    el("h3", {}, "Preview"),
    table(["row", "kind", "tokens", "text"], (report.preview || []).slice(0, 8).map((p) => el("tr", {},
      el("td", {}, p.row), el("td", {}, p.kind), el("td", {}, p.tokens), el("td", {}, el("pre", { class: "cell" }, p.rendered)))), "Preview rows"),
  ];
}
