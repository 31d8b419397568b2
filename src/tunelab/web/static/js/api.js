/* The API client: fetch with the bearer token, errors shaped as the API's one error body
 * (code, message, hint, details), and the token dialog a 401 opens. */

import { $ } from "./dom.js";
import { reload } from "./router.js";

const TOKEN_KEY = "tunelab.token";

export class ApiError extends Error {
  constructor(status, body) {
    const inner = (body && body.error) || {};
    super(inner.message || `the server answered HTTP ${status}`);
    this.status = status;
    this.code = inner.code || "http_error";
    this.hint = inner.hint || "";
    this.details = inner.details || null;
  }
}

export const unreachable = (why) => new ApiError(0, { error: {
  code: "unreachable", message: `cannot reach the tunelab server (${why})`,
  hint: "check that `tunelab serve` is running and reload the page" } });

/** A client-side problem in the same shape, so every page shows it like an API error. */
export const invalidInput = (message, hint) => new ApiError(422, { error: { code: "invalid_input", message, hint } });

export function authHeaders(extra = {}) {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

/** The ApiError of a failed response (its JSON error body, when it has one). */
export async function responseError(response) {
  return new ApiError(response.status, await response.json().catch(() => null));
}

/** Call the API; on 401 ask for a token once and retry. Returns parsed JSON (or the Response). */
export async function api(method, path, body, { raw = false } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const init = { method, headers: authHeaders() };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    let response;
    try { response = await fetch(path, init); } catch (e) { throw unreachable(e.message); }
    if (response.status === 401 && attempt < 3) {
      await askForToken(await responseError(response));
      continue;
    }
    if (!response.ok) throw await responseError(response);
    if (raw) return response;
    return response.status === 204 ? null : response.json();
  }
}

/** Multipart upload with progress (fetch cannot report upload progress; XHR can). */
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const send = () => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", path);
      for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
      xhr.onerror = () => reject(unreachable("the upload was interrupted"));
      xhr.onload = () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch { body = null; }
        if (xhr.status === 401) {
          askForToken(new ApiError(401, body)).then(send, reject);
        } else if (xhr.status >= 200 && xhr.status < 300) {
          onProgress(1);
          resolve(body);
        } else reject(new ApiError(xhr.status, body));
      };
      xhr.send(form);
    };
    send();
  });
}

let pendingToken = null;

/** Show the token dialog; resolves once a token is saved, rejects when cancelled. */
export function askForToken(error) {
  if (pendingToken) return pendingToken;
  const dialog = $("#token-dialog");
  $("#token-reason").textContent = error
    ? `${error.message}. ${error.hint}` : "Save the API token this browser sends with every request.";
  pendingToken = new Promise((resolve, reject) => {
    dialog.addEventListener("close", () => {
      pendingToken = null;
      if (dialog.returnValue === "save") resolve();
      else reject(error || new ApiError(401, null));
    }, { once: true });
  });
  $("#token-input").value = "";
  dialog.returnValue = "";
  dialog.showModal();
  return pendingToken;
}

export function setupTokenDialog() {
  const dialog = $("#token-dialog");
  $("#token-form").addEventListener("submit", () => {
    localStorage.setItem(TOKEN_KEY, $("#token-input").value.trim());
  });
  $("#token-forget").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    dialog.close("forget");
  });
  $("#token-cancel").addEventListener("click", () => dialog.close("cancel"));
  $("#token-button").addEventListener("click", () => {
    askForToken(null).then(reload, () => reload());
  });
}

let metaAnswer = null;

/** ``GET /api/meta`` once per page load: statuses, transitions, actions, priorities, dataset
 * formats, file suffixes, methods and field groups, so this code keeps no copy of any. A failed
 * call is not cached: the next page asks again (after a token prompt, say). */
export function loadMeta() {
  if (!metaAnswer) metaAnswer = api("GET", "/api/meta").catch((error) => { metaAnswer = null; throw error; });
  return metaAnswer;
}
