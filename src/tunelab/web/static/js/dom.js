/* DOM helpers: every value from the server reaches the page as text (el() / textContent),
 * never as markup, so a hostile name or dataset row is shown, not run. */

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  return append(node, ...children);
}

/** Append children, skipping null/false (DOM append would insert the text "null"). */
export function append(node, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace a node's children (same null-skipping as append). */
export function fill(node, ...children) {
  node.replaceChildren();
  return append(node, ...children);
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const enc = encodeURIComponent;
let uid = 0;
const nextId = (prefix) => `${prefix}-${++uid}`;

/** A labelled form control: the label names it (tests and screen readers find it by that name). */
export function field(labelText, control, help) {
  control.id = control.id || nextId("f");
  const helpNode = help ? el("small", { class: "help", id: `${control.id}-help` }, help) : null;
  if (helpNode) control.setAttribute("aria-describedby", helpNode.id);
  return el("div", { class: "field" }, el("label", { for: control.id }, labelText), control, helpNode);
}

/** ``rows``: row elements, or a ``tbody`` the caller fills later (used as the body, never nested). */
export function table(headers, rows, label) {
  return el("table", { "aria-label": label },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    rows instanceof HTMLTableSectionElement ? rows : el("tbody", {}, rows));
}

export function section(title, ...children) {
  return el("section", { class: "card", "aria-label": title }, el("h2", {}, title), children);
}

/** A status badge; ``known`` (the API's job statuses) decides which colour classes exist. */
export function badge(status, known) {
  const kind = known.includes(status) ? status : "unknown";
  return el("span", { class: `badge status-${kind}` }, status || "unknown");
}

/** An API error as the CLI prints it: message, hint, and the details that help (fields, allowed moves). */
export function errorBox(error) {
  const details = (error && error.details) || {};
  const items = [];
  for (const problem of details.errors || []) items.push(String(problem));
  for (const problem of details.fields || []) items.push(`${problem.field}: ${problem.problem}`);
  if (Array.isArray(details.allowed)) items.push(`allowed: ${details.allowed.join(", ") || "none"}`);
  return el("div", { class: "error", role: "alert" },
    el("strong", { class: "error-message" }, (error && error.message) || String(error)),
    error && error.hint ? el("p", { class: "error-hint" }, "Hint: ", error.hint) : null,
    items.length ? el("ul", {}, items.map((item) => el("li", {}, item))) : null);
}

export function showError(slot, error) {
  fill(slot, errorBox(error));
}

/** Run ``fn`` every ``ms`` until the page is left (``signal`` aborted). */
export function every(ms, fn, signal) {
  const timer = setInterval(() => { if (!signal.aborted) fn(); }, ms);
  signal.addEventListener("abort", () => clearInterval(timer));
}

/** Coalesce many calls into one after ``ms`` (stream replays send hundreds of events). */
export function throttle(fn, ms = 120) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    setTimeout(() => { pending = false; fn(); }, ms);
  };
}
