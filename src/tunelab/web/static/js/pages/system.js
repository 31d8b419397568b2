/* #/system: CPU, RAM, disk and GPUs now, the workers (their GPUs, CPUs and RAM, heartbeat,
 * running jobs and leases, from GET /api/workers), the providers jobs can train on (GET /api/providers:
 * name, kind, URL, whether a key is set, never the key), CPU and RAM over the stored samples (the
 * shared chart component), versions. */

import { api } from "../api.js";
import { lineChart } from "../chart.js";
import { append, el, every, fill, section, showError, table } from "../dom.js";
import { fmt } from "../format.js";

export async function pageSystem(view, signal) {
  const cards = el("dl", { class: "stats" });
  const gpus = el("div");
  const workers = el("div");
  const providers = el("div");
  const chart = lineChart({
    label: "CPU and RAM use over recent samples", xLabel: "seconds since the first stored sample", integerX: false, signal,
    empty: "no stored samples yet", series: [
      { label: "CPU %", color: "#2563eb", axis: "left" },
      { label: "RAM used (GB)", color: "#7a5af8", axis: "right" },
    ] });
  const about = el("dl", { class: "facts", "aria-label": "Versions" });
  const errors = el("div");
  const meter = (label, used, total) => el("div", { class: "stat wide" }, el("dt", {}, label), el("dd", {},
    el("meter", { min: 0, max: total || 1, value: used || 0, "aria-label": label }), ` ${fmt.bytes(used)} / ${fmt.bytes(total)}`));
  const load = async () => {
    try {
      const [now, recent, known] = await Promise.all([api("GET", "/api/resources/current"),
        api("GET", "/api/resources/recent?limit=200"), api("GET", "/api/workers")]);
      fill(workers, known.data.length ? workerTable(known.data)
        : el("p", { class: "muted" }, "No worker has started against this store yet: run `tunelab worker` (or `tunelab serve`)."));
      fill(cards, el("div", { class: "stat" }, el("dt", {}, "CPU"), el("dd", {}, `${fmt.num(now.cpu_percent, 3)}%`)),
        meter("RAM", now.ram_used, now.ram_total), meter("Disk (tunelab home)", now.disk_used, now.disk_total));
      fill(gpus, (now.gpus || []).length
        ? table(["GPU", "name", "utilisation", "memory"], now.gpus.map((g) => el("tr", {}, el("td", {}, g.index), el("td", {}, g.name),
          el("td", {}, `${fmt.num(g.utilization_percent, 3)}%`), el("td", {}, `${fmt.bytes(g.memory_used)} / ${fmt.bytes(g.memory_total)}`))), "GPUs")
        : el("p", { class: "muted" }, "No GPU found (NVML not available)."));
      const samples = recent.data.filter((s) => s.created_at);
      const t0 = samples.length ? Date.parse(samples[0].created_at) : 0;
      const seconds = (s) => (Date.parse(s.created_at) - t0) / 1000;
      chart.update([
        samples.filter((s) => s.cpu_percent !== null).map((s) => [seconds(s), s.cpu_percent]),
        samples.filter((s) => s.ram_used).map((s) => [seconds(s), s.ram_used / 1e9]),
      ]);
      errors.replaceChildren();
    } catch (error) { showError(errors, error); }
  };
  append(view, el("h1", {}, "System"), errors, cards, section("GPUs", gpus), section("Workers", workers),
    section("Providers (where jobs train)", providers),
    section("Recent samples (taken by workers while jobs run)", chart.node), section("About", about));
  const [health, version, known] = await Promise.all([api("GET", "/api/health"), api("GET", "/api/version"),
    api("GET", "/api/providers")]);  // the server's settings: fixed while it runs
  fill(providers, providerTable(known.data));
  about.append(...[["status", health.status], ["tunelab", version.tunelab], ["python", version.python],
    ["FastAPI", version.fastapi], ["platform", version.platform]].map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
  await load();
  every(5000, load, signal);
}

/** One row per provider: ``local`` is this studio's engine; a remote one shows the setting its key goes in. */
function providerTable(rows) {
  const key = (p) => (p.kind === "local" ? "–" : p.key_set ? "yes" : `no (set ${p.key_setting})`);
  return table(["provider", "kind", "URL", "key set"], rows.map((p) => el("tr", {},
    el("td", {}, p.name), el("td", {}, p.kind), el("td", {}, p.url || (p.kind === "local" ? "this studio's engine" : "no URL set")),
    el("td", {}, key(p)))), "Providers");
}

/** One row per worker: state, what it can run, its heartbeat, and each running job with its lease. */
function workerTable(rows) {
  const state = (w) => (w.alive ? "live" : w.stopped_at ? "stopped" : "not answering");
  const jobs = (w) => (w.jobs.length ? w.jobs.map((j) => el("div", {}, el("a", { href: `#/jobs/${encodeURIComponent(j.id)}` }, j.name || j.id),
    ` step ${j.step ?? "–"}, lease until ${fmt.time(j.lease_expires_at)}`)) : "idle");
  return table(["worker", "state", "GPUs", "CPUs", "RAM", "last heartbeat", "running"], rows.map((w) => el("tr", {},
    el("td", {}, w.id), el("td", {}, state(w)),
    el("td", {}, w.gpus.length ? w.gpus.map((g) => `${g.name} (${fmt.bytes(g.memory_total)})`).join(", ") : (w.mps ? "Apple MPS" : "none")),
    el("td", {}, String(w.cpu_count)), el("td", {}, fmt.bytes(w.ram_total)), el("td", {}, fmt.time(w.heartbeat_at)),
    el("td", {}, jobs(w)))), "Workers");
}
