/* The export panel of a job page: pick a format (the list is GET /api/meta's export_formats), start an
 * export (POST /api/jobs/{id}/exports answers at once), watch its stage and progress, download the .zip;
 * and download the standalone training script. "Push to the Hub" with a repo id also uploads the finished
 * export (the server's HF_TOKEN; the page never handles a token); the list shows the pushed URL or the
 * Hub's refusal. Exports need a completed job; until then the panel says so and checks again. */

import { api } from "../api.js";
import { badge, el, enc, errorBox, every, field, fill, showError, table } from "../dom.js";
import { fmt } from "../format.js";

const TERMINAL = ["completed", "failed"];

/** Fill ``slot`` with the export panel for ``job``; polls while the job or an export is unfinished. */
export function exportPanel(slot, job, meta, signal) {
  const formats = meta.export_formats || {};
  const select = el("select", {}, Object.keys(formats).map((name) => el("option", { value: name }, name)));
  const help = el("small", { class: "help" });
  const describe = () => { help.textContent = formats[select.value] || ""; };
  select.addEventListener("change", describe);
  describe();
  const message = el("div", { "aria-live": "polite" });
  const list = el("div", { "aria-live": "polite" });
  const repo = el("input", { type: "text", placeholder: "user/name", autocomplete: "off", spellcheck: "false" });
  const push = el("input", { type: "checkbox" });
  const isPublic = el("input", { type: "checkbox" });
  const hub = () => (push.checked ? { repo_id: repo.value.trim(), private: !isPublic.checked } : null);
  const start = el("button", { type: "button", onclick: () => startExport(job.id, select.value, hub(), message, refresh) }, "Export");
  const script = el("button", { type: "button", class: "quiet", onclick: () => downloadScript(job.id, message) }, "Download training script");
  const note = el("p", { class: "muted" });
  const hubControls = el("div", { class: "actions", role: "group", "aria-label": "Hub push" },
    field("Hub repository", repo, "Where to push: your Hub user or organisation and a name."),
    el("label", {}, push, " Push to the Hub"), el("label", {}, isPublic, " Public repository"));
  const controls = el("div", { class: "actions", role: "group", "aria-label": "Export" }, field("Export format", select), help, start, script);
  let status = job.status;
  let running = false;

  async function refresh() {
    try {
      if (status !== "completed") {
        status = (await api("GET", `/api/jobs/${enc(job.id)}`)).status;
      }
      const ready = status === "completed";
      note.hidden = ready;
      note.textContent = ready ? "" : `Exports are made from a completed job; this one is ${status}.`;
      start.disabled = !ready;
      const page = await api("GET", `/api/jobs/${enc(job.id)}/exports`);
      running = page.data.some((record) => !TERMINAL.includes(record.status));
      renderList(job.id, page.data, list, meta);
    } catch (error) { showError(list, error); }
  }

  fill(slot, el("section", { class: "card", "aria-label": "Export" }, el("h2", {}, "Export"), note, controls, hubControls, message, list));
  refresh();
  every(2000, () => { if (running || status !== "completed") refresh(); }, signal);
}

function renderList(jobId, records, slot, meta) {
  if (!records.length) { fill(slot, el("p", { class: "muted" }, "No exports yet.")); return; }
  const statuses = meta.job_statuses || [];
  fill(slot, table(["format", "status", "progress", "size", "hub", ""], records.slice().reverse().map((r) => el("tr", { "data-export": r.id },
    el("td", {}, el("code", {}, r.format)),
    el("td", {}, badge(r.status, statuses)),
    el("td", {}, el("progress", { max: 1, value: r.progress, "aria-label": `Export ${r.id} progress` }), " ", el("span", { class: "muted small" }, r.stage)),
    el("td", {}, r.size ? fmt.bytes(r.size) : "–"),
    el("td", { class: "hub-push" }, hubCell(r.push)),
    el("td", {}, r.status === "completed"
      ? el("button", { type: "button", class: "quiet", onclick: (event) => downloadExport(jobId, r, event.target) }, "Download")
      : r.error ? errorBox(r.error) : ""))), "Exports"));
}

/** Where the export was pushed (a link), why the Hub refused (the error and hint), or that it waits. */
function hubCell(push) {
  if (!push) return "–";
  if (push.status === "pushed") return el("a", { href: push.url, target: "_blank", rel: "noopener" }, push.url);
  if (push.status === "failed") return errorBox(push.error);
  return el("span", { class: "muted small" }, `${push.status}: ${push.repo_id}`);
}

async function startExport(jobId, format, hub, message, refresh) {
  fill(message);
  try {
    await api("POST", `/api/jobs/${enc(jobId)}/exports`, hub ? { format, push_to_hub: hub } : { format });
    await refresh();
  } catch (error) { showError(message, error); }
}

function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function downloadExport(jobId, record, button) {
  try {
    const response = await api("GET", `/api/jobs/${enc(jobId)}/exports/${record.id}/download`, undefined, { raw: true });
    save(await response.blob(), `${jobId}-${record.id}-${record.format}.zip`);
  } catch (error) { button.parentElement.append(errorBox(error)); }
}

async function downloadScript(jobId, message) {
  fill(message);
  try {
    const answer = await api("GET", `/api/jobs/${enc(jobId)}/exports/script`);
    save(new Blob([answer.script], { type: "text/x-python" }), answer.file_name);
  } catch (error) { showError(message, error); }
}
