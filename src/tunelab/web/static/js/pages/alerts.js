/* #/alerts: alerts open now and past ones, the threshold form (one field per rule from the API),
 * and notification channels (add, test, remove). Rules, channel kinds, events and levels come from
 * GET /api/meta and GET /api/alerts/thresholds; nothing is copied here. */

import { api, loadMeta } from "../api.js";
import { append, el, every, field, fill, section, showError, table } from "../dom.js";
import { fmt } from "../format.js";

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

function alertRows(alerts) {
  return alerts.map((a) => el("tr", { "data-alert": a.id, "data-rule": a.rule },
    el("td", {}, el("span", { class: `badge level-${a.level}` }, a.level)),
    el("td", {}, a.message),
    el("td", {}, `${fmt.num(a.value)} ${a.unit}`),
    el("td", {}, `${fmt.num(a.threshold)} ${a.unit}`),
    el("td", {}, when(a.created_at)),
    el("td", {}, a.active ? "active" : `resolved ${when(a.resolved_at)}`)));
}

function thresholdForm(thresholds, onSaved, errors) {
  const inputs = thresholds.map((t) => ({
    rule: t.rule,
    value: el("input", { type: "number", step: "any", min: 0, name: t.rule, value: t.value, required: true }),
    enabled: el("input", { type: "checkbox", name: `${t.rule}-enabled`, checked: t.enabled }),
    t,
  }));
  const form = el("form", { class: "thresholds", "aria-label": "Alert thresholds" },
    inputs.map(({ value, enabled, t }) => el("div", { class: "threshold" },
      field(`${t.label} (${t.unit})`, value, `${t.description} Default ${fmt.num(t.default)}; fires at or above; ${t.level}.`),
      el("label", {}, enabled, ` check ${t.label.toLowerCase()}`))),
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Save thresholds")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { enabled: {} };
    for (const { rule, value, enabled } of inputs) {
      body[rule] = Number(value.value);
      body.enabled[rule] = enabled.checked;
    }
    try {
      await api("PUT", "/api/alerts/thresholds", body);
      errors.replaceChildren();
      await onSaved("Saved.");
    } catch (error) { showError(errors, error); }
  });
  return form;
}

function channelForm(meta, onAdded, errors) {
  const name = el("input", { name: "name", required: true, maxlength: 200, placeholder: "ops-slack" });
  const kind = el("select", { name: "kind" }, meta.notification_kinds.map((k) => el("option", { value: k }, k)));
  const url = el("input", { name: "url", type: "url", placeholder: "https://hooks.slack.com/services/…" });
  const to = el("input", { name: "to", placeholder: "ops@example.com, oncall@example.com" });
  const level = el("select", { name: "min_level" }, meta.notification_levels.map((l) => el("option", { value: l }, l)));
  const events = meta.notification_events.map((e) => el("input", { type: "checkbox", name: "events", value: e, checked: true }));
  const urlField = field("URL", url, "webhook and slack: where to POST");
  const toField = field("Email addresses", to, "email: comma-separated; the SMTP server is the server's TUNELAB_SMTP_* settings");
  const sync = () => { urlField.hidden = kind.value === "email"; toField.hidden = kind.value !== "email"; };
  kind.addEventListener("change", sync);
  sync();
  const form = el("form", { class: "channel-form", "aria-label": "Add a notification channel" },
    field("Channel name", name), field("Kind", kind), urlField, toField, field("Least level", level),
    el("fieldset", {}, el("legend", {}, "Events"), events.map((box) => el("label", {}, box, ` ${box.value}`))),
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Add channel")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: name.value, kind: kind.value, min_level: level.value,
      events: events.filter((box) => box.checked).map((box) => box.value) };
    if (kind.value === "email") body.to = to.value.split(",").map((s) => s.trim()).filter(Boolean);
    else body.url = url.value;
    try {
      await api("POST", "/api/notifications/channels", body);
      form.reset();
      sync();
      errors.replaceChildren();
      onAdded();
    } catch (error) { showError(errors, error); }
  });
  return form;
}

export async function pageAlerts(view, signal) {
  const errors = el("div");
  const summary = el("p", { class: "muted", role: "status" });
  const current = el("div");
  const past = el("div");
  const thresholds = el("div");
  const channels = el("div");
  const testResult = el("div", { role: "status" });
  const meta = await loadMeta();

  const loadAlerts = async () => {
    try {
      const [active, resolved] = await Promise.all([
        api("GET", "/api/alerts?state=active&limit=100"), api("GET", "/api/alerts?state=resolved&limit=50")]);
      fill(summary, `${active.active} active alert(s); ${resolved.total} resolved.`);
      const headers = ["level", "message", "value", "threshold", "fired", "state"];
      fill(current, active.data.length ? table(headers, alertRows(active.data), "Active alerts")
        : el("p", { class: "muted" }, "No active alerts."));
      fill(past, resolved.data.length ? table(headers, alertRows(resolved.data), "Past alerts")
        : el("p", { class: "muted" }, "No past alerts."));
    } catch (error) { showError(errors, error); }
  };
  // the form is drawn again from the server's answer after a save; the note says it was saved
  const loadThresholds = async (note = "") => {
    const answer = await api("GET", "/api/alerts/thresholds");
    fill(thresholds, el("p", { class: "muted", role: "status", "aria-label": "Thresholds saved" }, note),
      el("p", { class: "help" }, answer.interval_s > 0
      ? `Checked every ${fmt.num(answer.interval_s)} s by the server's monitor loop.`
      : "The monitor loop is off (TUNELAB_MONITOR_INTERVAL_S=0); use “Check now”."),
    thresholdForm(answer.thresholds, loadThresholds, errors));
  };
  const loadChannels = async () => {
    const answer = await api("GET", "/api/notifications/channels");
    const rows = answer.data.map((c) => el("tr", { "data-channel": c.id },
      el("td", {}, c.name), el("td", {}, c.kind),
      el("td", {}, c.config.url || (c.config.to || []).join(", ")),
      el("td", {}, c.events.join(", ")), el("td", {}, c.min_level),
      el("td", {}, c.last_error ? el("span", { class: "error-message" }, c.last_error) : c.last_sent_at ? `sent ${when(c.last_sent_at)}` : "–"),
      el("td", {},
        el("button", { type: "button", class: "quiet", onclick: () => sendTest(c.id) }, `Test ${c.name}`),
        el("button", { type: "button", class: "quiet danger", onclick: async () => {
          try { await api("DELETE", `/api/notifications/channels/${encodeURIComponent(c.id)}`); await loadChannels(); }
          catch (error) { showError(errors, error); }
        } }, `Remove ${c.name}`))));
    fill(channels, rows.length ? table(["name", "kind", "target", "events", "least level", "last delivery", ""], rows,
      "Notification channels") : el("p", { class: "muted" }, "No channels yet: alerts show here only."),
    channelForm(meta, loadChannels, errors));
  };
  const sendTest = async (channelId) => {
    try {
      const answer = await api("POST", "/api/notifications/test", channelId ? { channel_id: channelId } : {});
      fill(testResult, el("p", {}, `Test sent: ${answer.delivered} of ${answer.results.length} delivered.`),
        answer.results.filter((r) => !r.ok).map((r) => el("p", { class: "error-message" }, `${r.name}: ${r.error}`)));
      await loadChannels();
    } catch (error) { showError(errors, error); }
  };
  const checkNow = async () => {
    try {
      const answer = await api("POST", "/api/alerts/check");
      fill(testResult, el("p", {}, `Checked now: ${answer.count} new alert(s).`));
      await loadAlerts();
    } catch (error) { showError(errors, error); }
  };

  append(view, el("h1", {}, "Alerts"), errors, summary,
    el("div", { class: "actions" }, el("button", { type: "button", onclick: checkNow }, "Check now"),
      el("button", { type: "button", class: "quiet", onclick: () => sendTest(null) }, "Send a test to every channel")),
    testResult,
    section("Active alerts", current), section("Past alerts", past),
    section("Thresholds", thresholds), section("Notification channels", channels));
  await Promise.all([loadAlerts(), loadThresholds(), loadChannels()]);
  every(5000, loadAlerts, signal);
}
