/* Server-sent events over fetch(): the job stream and streamed chat replies. fetch, not
 * EventSource, so the token travels in the Authorization header, never in the URL. */

import { ApiError, askForToken, authHeaders, responseError, unreachable } from "./api.js";
import { enc } from "./dom.js";

/** The blank-line separated blocks of a server-sent event stream, as they arrive. */
export async function* sseBlocks(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      yield buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
    }
  }
}

/** The JSON of a block's ``data:`` lines, or null (comments, keep-alives, bad JSON). */
export function parseSse(block) {
  const data = block.split("\n").filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).trimStart()).join("\n");
  if (!data) return null;
  try { return JSON.parse(data); } catch { return null; }
}

/** Follow a job's SSE stream from the start. On a dropped connection it reconnects with
 * ``?after=<last id>``, so nothing is missed or repeated. Resolves with the final ``end`` event. */
export async function followJob(jobId, { onEvent, onState, signal }) {
  let cursor = 0;
  while (!signal.aborted) {
    try {
      const response = await fetch(`/api/jobs/${enc(jobId)}/stream?after=${cursor}`,
        { headers: authHeaders({ Accept: "text/event-stream" }), signal });
      if (response.status === 401) { await askForToken(await responseError(response)); continue; }
      if (!response.ok) throw await responseError(response);
      onState("live");
      for await (const block of sseBlocks(response)) {
        const event = parseSse(block);
        if (!event) continue;
        if (event.type === "end") { onState("ended"); return event; }
        if (event.id > cursor) { cursor = event.id; onEvent(event); }
      }
    } catch (error) {
      if (signal.aborted) return null;
      if (error instanceof ApiError && error.status !== 0 && error.status < 500) throw error;
    }
    onState("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return null;
}

/** POST a conversation to /v1/chat/completions with stream: true; onPiece gets each text piece. */
export async function streamChat(body, onPiece, signal) {
  for (let attempt = 0; ; attempt += 1) {
    let response;
    try {
      response = await fetch("/v1/chat/completions", { method: "POST", signal, body: JSON.stringify({ ...body, stream: true }),
        headers: authHeaders({ "Content-Type": "application/json", Accept: "text/event-stream" }) });
    } catch (e) {
      if (signal.aborted) return;
      throw unreachable(e.message);
    }
    if (response.status === 401 && attempt < 3) { await askForToken(await responseError(response)); continue; }
    if (!response.ok) throw await responseError(response);
    for await (const block of sseBlocks(response)) {
      if (block.trim() === "data: [DONE]") return;
      const chunk = parseSse(block);
      const piece = chunk && chunk.choices && chunk.choices[0].delta.content;
      if (piece) onPiece(piece);
    }
    return;
  }
}
