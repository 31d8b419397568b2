/* Hash routing: every page has a link that can be shared or reloaded. The routes come from
 * app.js, so pages can import ``reload`` from here without importing each other. */

import { $, append, el, errorBox, fill } from "./dom.js";

let routes = [];
let leavePage = () => {};

/** Render the page for the current hash into a fresh view; the previous page's signal aborts. */
export async function reload() {
  leavePage();
  const hash = location.hash || "#/jobs";
  const view = el("div", { class: "view" });
  fill($("#main"), view);  // a fresh view: late answers for a page already left land nowhere
  const controller = new AbortController();
  leavePage = () => controller.abort();
  for (const [pattern, nav, page] of routes) {
    const match = hash.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll("nav a")) {
      if (link.dataset.nav === nav) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    try {
      await page(view, controller.signal, ...match.slice(1).map((part) => (part ? decodeURIComponent(part) : "")));
    } catch (error) {
      if (!controller.signal.aborted) append(view, errorBox(error));
    }
    return;
  }
  append(view, el("h1", {}, "Not found"), el("p", {}, "There is no page ", el("code", {}, hash), ". ",
    el("a", { href: "#/jobs" }, "Go to the jobs")));
}

/** ``table``: [[hash pattern, nav name, page(view, signal, ...matches)], ...]. */
export function startRouter(table) {
  routes = table;
  window.addEventListener("hashchange", reload);
  reload();
}
