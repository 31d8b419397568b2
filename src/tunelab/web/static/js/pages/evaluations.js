/* #/evaluations: start an evaluation and list them; #/evaluations/ID: one evaluation with metric
 * cards (model against base or other models), retention (what the tuned model lost), the judge
 * summary, a per-row table of every side's generation beside the reference with rating buttons
 * for a chosen pair of sides, and the win rates the ratings add up to (GET .../ratings/summary).
 * Metric names, groups and evaluation statuses come from GET /api/meta; every value is set as text. */

import { api, loadMeta } from "../api.js";
import { append, badge, el, enc, every, field, fill, section, showError, table } from "../dom.js";
import { fmt } from "../format.js";

const DONE = ["completed", "failed"];

function regressionBadge(value) {
  if (value === true) return el("span", { class: "badge status-failed", title: "fewer probe answers right than the base" }, "regression");
  if (value === false) return el("span", { class: "badge status-completed" }, "no regression");
  return el("span", { class: "muted" }, "–");
}

function evaluationRow(e, statuses) {
  return el("tr", {},
    el("td", {}, el("a", { href: `#/evaluations/${enc(e.id)}` }, e.name || e.id), el("div", { class: "muted small" }, e.id)),
    el("td", {}, badge(e.status, statuses)),
    el("td", {}, e.job_id ? el("a", { href: `#/jobs/${enc(e.job_id)}` }, e.job_id) : e.source),
    el("td", {}, e.model), el("td", {}, e.summary && e.summary.against ? e.summary.against : (e.against || "–")),
    el("td", {}, e.dataset || "–"), el("td", {}, regressionBadge(e.regression)), el("td", {}, fmt.time(e.created_at)));
}

function newForm(meta, onCreated) {
  const model = el("input", { type: "text", required: true, placeholder: "job id, collection entry or built-in id", name: "model" });
  const data = el("input", { type: "text", placeholder: "stored dataset id or name", name: "data" });
  const against = el("input", { type: "text", placeholder: "default: the base of an adapter or job; several: a, b", name: "against" });
  const probe = el("input", { type: "checkbox", checked: true, name: "probe" });
  const judgeUrl = el("input", { type: "url", placeholder: "http://127.0.0.1:8001/v1", name: "judge_url" });
  const judgeModel = el("input", { type: "text", placeholder: "judge model name", name: "judge_model" });
  const chosen = new Set(meta.default_metrics);
  const boxes = meta.metrics.map((m) => el("label", { class: "check", title: m.description },
    el("input", { type: "checkbox", value: m.name, checked: chosen.has(m.name),
      onchange: (ev) => (ev.target.checked ? chosen.add(m.name) : chosen.delete(m.name)) }), " ", m.name));
  const errors = el("div");
  const submit = async (event) => {
    event.preventDefault();
    const body = { model: model.value.trim(), probe: probe.checked, metrics: meta.metrics.map((m) => m.name).filter((n) => chosen.has(n)) };
    if (data.value.trim()) body.data = data.value.trim();
    const others = against.value.split(",").map((name) => name.trim()).filter(Boolean);
    if (others.length) body.against = others.length === 1 ? others[0] : others;
    if (judgeUrl.value.trim()) body.judge = { url: judgeUrl.value.trim(), model: judgeModel.value.trim() || "default" };
    try {
      const created = await api("POST", "/api/evaluations", body);
      errors.replaceChildren();
      onCreated(created);
    } catch (error) { showError(errors, error); }
  };
  return el("form", { class: "card", "aria-label": "New evaluation", onsubmit: submit },
    el("h2", {}, "New evaluation"), errors,
    field("Model", model), field("Dataset", data, "Rows to score generations on (optional with the probe)."),
    field("Compare against", against, "One model, or several separated by commas: each gets its own column."),
    el("fieldset", {}, el("legend", {}, "Metrics"), boxes),
    el("label", { class: "check" }, probe, " General-ability probe (retention against the base)"),
    field("Judge URL", judgeUrl, "Optional: any OpenAI-compatible chat endpoint grades each reply 1-10."),
    field("Judge model", judgeModel),
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Evaluate")));
}

export async function pageEvaluations(view, signal, query) {
  const meta = await loadMeta();
  const job = new URLSearchParams(query || "").get("job");
  const body = el("tbody");
  const errors = el("div");
  const summary = el("p", { class: "muted", "aria-live": "polite" });
  const load = async () => {
    try {
      const page = await api("GET", `/api/evaluations?limit=200${job ? `&job_id=${enc(job)}` : ""}`);
      fill(body, ...page.data.map((e) => evaluationRow(e, meta.evaluation_statuses)));
      if (!page.data.length) body.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No evaluations yet.")));
      summary.textContent = `${page.count} evaluation${page.count === 1 ? "" : "s"}`;
      errors.replaceChildren();
    } catch (error) { showError(errors, error); }
  };
  append(view, el("h1", {}, "Evaluations"), job ? el("p", { class: "muted" }, "Evaluations of job ", el("a", { href: `#/jobs/${enc(job)}` }, job), " · ", el("a", { href: "#/evaluations" }, "all")) : null, errors,
    newForm(meta, (created) => { location.hash = `#/evaluations/${enc(created.id)}`; }),
    summary, table(["Name", "Status", "Job / source", "Model", "Against", "Dataset", "Retention", "Created"], body, "Evaluations"));
  await load();
  every(3000, load, signal);
}

function metricCards(meta, e) {
  const sides = (e.summary && e.summary.summary) || {};
  const names = [...meta.metrics.map((m) => m.name), "judge_score"].filter((n) => Object.values(sides).some((s) => n in s));
  const better = Object.fromEntries(meta.metrics.map((m) => [m.name, m.higher_is_better]));
  better.judge_score = true;
  const labelModel = e.summary.model || e.model;
  const labelAgainst = e.summary.against || e.against;
  return el("dl", { class: "stats", "aria-label": "Metrics" }, names.map((name) => {
    const mine = sides.model ? sides.model[name] : undefined;
    const other = sides.against ? sides.against[name] : undefined;
    const change = typeof mine === "number" && typeof other === "number" ? mine - other : null;
    const good = change === null || change === 0 ? "" : ((change > 0) === better[name] ? "better" : "worse");
    return el("div", { class: "stat metric-card", "data-metric": name },
      el("dt", {}, name),
      el("dd", {}, el("span", { class: "metric-model", title: labelModel }, fmt.num(mine)),
        sides.against ? el("span", { class: "muted" }, " vs ", el("span", { class: "metric-against", title: labelAgainst }, fmt.num(other))) : null,
        sideKeys(e).slice(2).map((side) => el("span", { class: "muted" }, " · ",
          el("span", { class: "metric-side", "data-side": side, title: sideLabels(e)[side] }, fmt.num(sides[side][name])))),
        change !== null ? el("div", { class: `small ${good}` }, `${change > 0 ? "+" : ""}${fmt.num(change)} (${good || "same"})`) : null));
  }));
}

function retentionSection(r) {
  if (!r) return null;
  const head = r.base_correct === null
    ? `${r.tuned_correct} of ${r.size} ${r.probe} probe answers right (no base to compare with).`
    : `The model answers ${r.tuned_correct} of ${r.size} ${r.probe} probe questions right; the base answers ${r.base_correct}.`;
  return section("Retention",
    el("p", { class: "retention-summary" }, head, " ", r.base_correct === null ? null : regressionBadge(r.regression)),
    lostAnswers(r.lost),
    r.gained.length ? el("p", { class: "muted" }, `Gained: ${r.gained.map((g) => g.question).join("; ")}`) : null);
}

/** The probe questions the base answered right and the model no longer does (or a line saying there are none).
 * Shared with the job page's panel, which heads the model's column "tuned says" under its own caption. */
export function lostAnswers(lost, { says = "model says", caption = "Lost answers" } = {}) {
  if (!lost.length) return el("p", { class: "muted" }, "Nothing the base answered right was lost.");
  return table(["lost question", "answer", "base said", says], lost.map((item) => el("tr", {},
    el("td", {}, item.question), el("td", {}, item.answer), el("td", {}, item.base), el("td", {}, item.tuned))), caption);
}

/** Side keys in order (model, against, against_2 ...): the evaluation's `sides`, else its summary's. */
function sideKeys(e) {
  const summary = e.summary || {};
  return Object.keys(summary.sides || summary.summary || {});
}

/** Side key -> the model's label (older evaluations name only model and against). */
function sideLabels(e) {
  const summary = e.summary || {};
  return { model: summary.model || e.model, against: summary.against || e.against, ...(summary.sides || {}) };
}

function judgeSection(j, keys) {
  if (!j) return null;
  return section("Judge", el("p", {}, `${j.model} at ${j.url}`),
    keys.filter((s) => j[s]).map((s) => el("p", { class: "judge-summary" },
      `${s}: mean ${fmt.num(j[s].judge_score)}, ${j[s].graded} graded, ${j[s].failed} not graded`,
      j[s].first_error ? el("span", { class: "error-hint" }, ` (${j[s].first_error})`) : null)));
}

function rowsTable(e, rating) {
  const rows = e.rows || [];
  if (!rows.length) return null;
  const labels = sideLabels(e);
  const keys = sideKeys(e).filter((side) => rows.some((r) => r.outputs && side in r.outputs));
  const key = (scores) => (scores ? ["rougeL", "bleu", "exact_match"].filter((k) => k in scores).map((k) => `${k} ${fmt.num(scores[k])}`).join(", ") : "");
  const judged = (r, side) => (r.judge && r.judge[side] ? (r.judge[side].score ?? `not graded: ${r.judge[side].error}`) : null);
  const headers = ["#", "prompt", "reference", ...keys.map((side) => (keys.length > 2 ? `${side}: ${labels[side]}` : side)),
    ...(rating ? ["rating"] : [])];
  return section("Rows", rating ? rating.controls : null, table(headers, rows.map((r) => el("tr", { "data-row": r.index },
    el("td", {}, r.index + 1), el("td", {}, r.prompt), el("td", {}, r.reference),
    keys.map((side) => el("td", { "data-side": side }, el("div", { class: "generation" }, r.outputs[side]),
      el("div", { class: "muted small" }, key((r.scores || {})[side])),
      judged(r, side) !== null ? el("div", { class: "muted small" }, "judge: ", String(judged(r, side))) : null)),
    rating ? el("td", { class: "rating-cell" }, rating.cell(r.index)) : null)),
  "Generations beside references"));
}

/** Rating buttons for a pair of sides (chosen above the rows when there are more than two) and the
 * win-rate table; each click is one POST /api/evaluations/{id}/ratings, then the summary reloads. */
function ratingPanel(e, meta, signal) {
  const labels = sideLabels(e);
  const keys = sideKeys(e).filter((side) => (e.rows || []).some((r) => r.outputs && side in r.outputs));
  if (keys.length < 2) return null;
  const pairs = keys.flatMap((a, i) => keys.slice(i + 1).map((b) => [a, b]));
  const choice = el("select", { name: "pair" }, pairs.map(([a, b]) => el("option", { value: `${a}|${b}` }, `${labels[a]} (${a}) vs ${labels[b]} (${b})`)));
  const comment = el("input", { type: "text", maxlength: 4000, placeholder: "optional, sent with the next rating", name: "comment" });
  const errors = el("div");
  const summary = el("div", { "aria-live": "polite" });
  const cells = new Map();
  let latest = [];
  const pair = () => choice.value.split("|");
  // a side's name on a button: its model's label, or its key when both sides show the same model
  const name = (side, other) => (labels[side] === labels[other] ? side : labels[side]);
  const buttonText = (verdict, [a, b]) => (verdict === "tie" ? "tie" : `${verdict === "better" ? name(a, b) : name(b, a)} better`);
  const verdictText = (a, b, verdict) => buttonText(verdict, [a, b]);
  const mark = () => {
    const [a, b] = pair();
    for (const [index, cell] of cells) {
      const found = latest.filter((r) => r.row_index === index && r.side_a === a && r.side_b === b)
        .sort((x, y) => String(x.updated_at).localeCompare(String(y.updated_at))).pop();
      fill(cell.state, found ? `rated: ${verdictText(a, b, found.verdict)}${found.comment ? ` (“${found.comment}”)` : ""}` : "");
      for (const [verdict, button] of cell.buttons) {
        button.setAttribute("aria-pressed", String(Boolean(found && found.verdict === verdict)));
        button.textContent = buttonText(verdict, [a, b]);
      }
    }
  };
  const load = async () => {
    try {
      const [list, result] = await Promise.all([api("GET", `/api/evaluations/${enc(e.id)}/ratings`),
        api("GET", `/api/evaluations/${enc(e.id)}/ratings/summary`)]);
      if (signal.aborted) return;
      latest = list.data;
      fill(summary, el("p", { class: "muted ratings-count" }, `${result.ratings} rating${result.ratings === 1 ? "" : "s"} on ${result.rows_rated} of ${result.rows} rows.`),
        table(["A", "B", "A wins", "B wins", "ties", "A's win rate", "95% interval"], result.pairs.map((p) => el("tr", { "data-pair": `${p.side_a}|${p.side_b}` },
          el("td", {}, p.label_a, el("div", { class: "muted small" }, p.side_a)), el("td", {}, p.label_b, el("div", { class: "muted small" }, p.side_b)),
          el("td", { class: "wins" }, p.wins), el("td", { class: "losses" }, p.losses), el("td", { class: "ties" }, p.ties),
          el("td", { class: "win-rate" }, p.win_rate === null ? "–" : fmt.percent(p.win_rate)),
          el("td", { class: "interval" }, p.interval ? `${fmt.percent(p.interval[0])} – ${fmt.percent(p.interval[1])}` : "–"))), "Win rates"));
      mark();
    } catch (error) { showError(errors, error); }
  };
  const rate = async (index, verdict) => {
    const [a, b] = pair();
    try {
      await api("POST", `/api/evaluations/${enc(e.id)}/ratings`, { row: index, side_a: a, side_b: b, verdict, comment: comment.value.trim() });
      comment.value = "";
      errors.replaceChildren();
    } catch (error) { showError(errors, error); }
    await load();
  };
  choice.addEventListener("change", mark);
  return {
    controls: el("div", { class: "filters" }, keys.length > 2 ? field("Rate the pair", choice) : null, field("Comment", comment), errors),
    cell(index) {
      const buttons = new Map(meta.rating_verdicts.map((verdict) => [verdict, el("button", { type: "button", class: "quiet", "aria-pressed": "false",
        "data-verdict": verdict, onclick: () => rate(index, verdict) }, buttonText(verdict, pair()))]));
      const state = el("div", { class: "muted small rating-state" });
      cells.set(index, { buttons, state });
      return el("div", { class: "actions", role: "group", "aria-label": `rate row ${index + 1}` }, [...buttons.values()], state);
    },
    summary: section("Win rates", el("p", { class: "muted" }, "From the ratings below: A's win rate is A wins / (A wins + B wins), ties apart, with a 95% Wilson interval."), summary),
    load,
  };
}

export async function pageEvaluation(view, signal, id) {
  const meta = await loadMeta();
  const content = el("div");
  const errors = el("div");
  append(view, el("p", {}, el("a", { href: "#/evaluations" }, "← Evaluations")), errors, content);
  let finished = false;
  const load = async () => {
    if (finished) return;
    try {
      const e = await api("GET", `/api/evaluations/${enc(id)}`);
      finished = DONE.includes(e.status);
      const sides = (e.summary && e.summary.summary) || {};
      const rating = e.status === "completed" ? ratingPanel(e, meta, signal) : null;
      fill(content,
        el("div", { class: "page-head" }, el("h1", {}, e.name || e.id), badge(e.status, meta.evaluation_statuses)),
        el("p", { class: "muted" }, `${e.id} · model ${e.summary.model || e.model}`,
          (e.summary.against || e.against) ? ` against ${e.summary.against || e.against}` : "",
          e.dataset ? ` · dataset ${e.dataset}` : "", e.job_id ? " · job " : "",
          e.job_id ? el("a", { href: `#/jobs/${enc(e.job_id)}` }, e.job_id) : null),
        e.error ? el("div", { class: "error", role: "alert" }, el("strong", { class: "error-message" }, e.error.message),
          e.error.hint ? el("p", { class: "error-hint" }, "Hint: ", e.error.hint) : null) : null,
        finished ? null : el("p", { class: "muted", "aria-live": "polite" }, `${e.status}…`),
        Object.keys(sides).length ? section("Metrics", metricCards(meta, e),
          el("p", {}, el("a", { href: `/api/evaluations/${enc(e.id)}/chart.svg`, download: `${e.id}.svg` }, "Download chart (SVG)"))) : null,
        retentionSection(e.summary.retention), judgeSection(e.summary.judge, sideKeys(e)),
        rating ? rating.summary : null, rowsTable(e, rating));
      errors.replaceChildren();
      if (rating) await rating.load();
    } catch (error) { showError(errors, error); finished = true; }
  };
  await load();
  every(2000, load, signal);
}
