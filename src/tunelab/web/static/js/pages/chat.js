/* #/chat?model=NAME: a conversation with a built-in model, a collection entry or a completed
 * job; the reply streams in; a failed request puts the message back with the error and hint. */

import { api } from "../api.js";
import { $, append, el, field, section, showError } from "../dom.js";
import { streamChat } from "../stream.js";

export async function pageChat(view, signal, query) {
  const asked = new URLSearchParams(query || "").get("model") || "";
  const listed = (await api("GET", "/v1/models")).data.map((m) => m.id);
  // A job id names its tuned model, listed as ft:<base>:<name>:<job id>: pick that entry, not a second one.
  const wanted = listed.includes(asked) ? asked : (listed.find((id) => id.startsWith("ft:") && id.endsWith(`:${asked}`)) || asked);
  const ids = wanted && !listed.includes(wanted) ? [wanted, ...listed] : listed;  // a job without an entry
  const model = el("select", {}, ids.map((id) => el("option", { value: id, selected: id === wanted }, id)));
  const system = el("input", { type: "text", placeholder: "optional, e.g. Answer briefly." });
  const temperature = el("input", { type: "number", min: 0, max: 2, step: 0.1, value: 0.7 });
  const maxTokens = el("input", { type: "number", min: 1, max: 8192, value: 256 });
  const prompt = el("textarea", { rows: 3, required: true, placeholder: "Write a message" });
  const send = el("button", { type: "submit" }, "Send");
  const log = el("ol", { class: "chat-log", "aria-label": "Conversation", "aria-live": "polite" });
  const errors = el("div");
  let turns = [];
  const bubble = (role, text) => el("li", { class: `turn ${role}` }, el("span", { class: "muted small" }, role === "user" ? "you" : model.value), el("p", {}, text));
  const reset = () => { turns = []; log.replaceChildren(); errors.replaceChildren(); };
  model.addEventListener("change", reset);
  const ask = async (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    errors.replaceChildren();
    turns.push({ role: "user", content: text });
    const question = bubble("user", text);
    log.append(question);
    prompt.value = "";
    const reply = bubble("assistant", "");
    const replyText = $("p", reply);
    log.append(reply);
    send.disabled = true;
    reply.setAttribute("aria-busy", "true");
    try {
      const messages = system.value.trim() ? [{ role: "system", content: system.value.trim() }, ...turns] : turns;
      await streamChat({ model: model.value, messages, temperature: Number(temperature.value), max_tokens: Number(maxTokens.value) },
        (piece) => { replyText.textContent += piece; }, signal);
      turns.push({ role: "assistant", content: replyText.textContent.trim() });
    } catch (error) {  // take the question back so it can be sent again
      turns.pop();
      question.remove();
      reply.remove();
      prompt.value = text;
      showError(errors, error);
    } finally {
      send.disabled = false;
      reply.removeAttribute("aria-busy");
    }
  };
  append(view, el("h1", {}, "Chat"),
    el("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
      field("Model", model), field("System prompt", system), field("Temperature", temperature, "0 always picks the likeliest word"),
      field("Max reply tokens", maxTokens), el("button", { type: "button", class: "quiet", onclick: reset }, "New conversation")),
    section("Conversation", log, errors,
      el("form", { class: "chat-input", onsubmit: ask }, field("Message", prompt), el("div", { class: "actions" }, send))));
}
