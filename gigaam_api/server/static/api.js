// The page's only contact with the server: the public HTTP API (README "API").
// /health, /v1/models and the jobs API under /v1/audio/transcriptions/jobs. Knows no DOM.

const JOBS = "/v1/audio/transcriptions/jobs";

/** An OpenAI-shaped error; status is 0 when the server could not be reached, null inside a stream. */
export class ApiError extends Error {
  constructor(status, error = {}, retryAfterS = null) {
    super(error.message || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = error.code ?? null;
    this.type = error.type ?? null;
    this.param = error.param ?? null;
    this.retryAfterS = retryAfterS;
  }
}

function authHeaders(key) {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function retryAfter(value) {
  const seconds = Number.parseInt(value ?? "", 10);
  return Number.isFinite(seconds) ? seconds : null;
}

function errorFromBody(status, text, retryAfterHeader) {
  let error = {};
  try {
    error = JSON.parse(text).error ?? {};
  } catch {
    error = { message: text.slice(0, 300) };
  }
  return new ApiError(status, error, retryAfter(retryAfterHeader));
}

async function call(path, key, init = {}) {
  let response;
  try {
    response = await fetch(path, {
      ...init,
      headers: { ...authHeaders(key), ...(init.headers ?? {}) },
      cache: "no-store",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { message: String(error.message || error) });
  }
  if (!response.ok) {
    throw errorFromBody(response.status, await response.text(), response.headers.get("Retry-After"));
  }
  return response;
}

/** GET /health (public): {status: "ok"|"loading"|"error", model, progress?, error?}. */
export async function getHealth() {
  let response;
  try {
    response = await fetch("/health", { cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, { message: String(error.message || error) });
  }
  return response.json();
}

/** GET /v1/models: resolves when the key (or no key) is accepted, throws ApiError 401 if not. */
export async function checkAccess(key) {
  const response = await call("/v1/models", key);
  return response.json();
}

/**
 * POST a file as a new job. XMLHttpRequest, because fetch cannot report upload progress.
 * Returns {done: Promise<status object>, abort()}; abort() rejects done with an AbortError.
 */
export function createJob(file, key, onUploadProgress) {
  const request = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    request.open("POST", JOBS);
    for (const [name, value] of Object.entries(authHeaders(key))) {
      request.setRequestHeader(name, value);
    }
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onUploadProgress(event.loaded, event.total);
    };
    request.onload = () => {
      if (request.status === 202 || request.status === 200) {
        resolve(JSON.parse(request.responseText));
      } else {
        reject(errorFromBody(request.status, request.responseText, request.getResponseHeader("Retry-After")));
      }
    };
    request.onerror = () => reject(new ApiError(0, { message: "network error" }));
    request.onabort = () => reject(new DOMException("upload cancelled", "AbortError"));
    const form = new FormData();
    form.append("file", file, file.name);
    request.send(form);
  });
  return { done, abort: () => request.abort() };
}

/** GET …/jobs/{id}: the status object. */
export async function getJob(id, key) {
  return (await call(`${JOBS}/${encodeURIComponent(id)}`, key)).json();
}

/** DELETE …/jobs/{id}: cancel; resolves to the status object. */
export async function cancelJob(id, key) {
  return (await call(`${JOBS}/${encodeURIComponent(id)}`, key, { method: "DELETE" })).json();
}

/** GET …/jobs/{id}/result in one OpenAI response_format (+ timestamp granularities), as text. */
export async function getResult(id, key, responseFormat, granularities = []) {
  const query = new URLSearchParams({ response_format: responseFormat });
  for (const granularity of granularities) query.append("timestamp_granularities[]", granularity);
  return (await call(`${JOBS}/${encodeURIComponent(id)}/result?${query}`, key)).text();
}

function readComment(comment, handlers) {
  const [kind, ...fields] = comment.trim().split(/\s+/);
  const values = {};
  for (const field of fields) {
    const [name, value] = field.split("=");
    if (value === undefined) values[""] = Number(name);
    else values[name] = Number(value);
  }
  if (kind === "queued" && Number.isFinite(values.position)) handlers.onQueued(values.position);
  if (kind === "progress" && Number.isFinite(values[""])) {
    handlers.onProgress(values[""], Number.isFinite(values.eta_s) ? values.eta_s : null);
  }
}

/** Returns true once the stream said [DONE]; throws ApiError for an `error` event. */
function readEvent(block, handlers) {
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) readComment(line.slice(1), handlers);
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (data.length === 0) return false;
  const payload = data.join("\n");
  if (payload === "[DONE]") return true;
  const event = JSON.parse(payload);
  if (event.type === "transcript.text.delta") handlers.onDelta(event.delta);
  else if (event.type === "error") throw new ApiError(null, event.error ?? {});
  return false;
}

/**
 * Follow GET …/jobs/{id}/events until [DONE]. Segments already done are replayed first, so a
 * reconnecting caller starts its text over. The stream is read with fetch (EventSource cannot send
 * the Authorization header). handlers: onDelta(text), onQueued(position), onProgress(p, etaS).
 * Throws ApiError (status 0 when the stream broke off early) or an AbortError via signal.
 */
export async function watchJob(id, key, handlers, signal) {
  const response = await call(`${JOBS}/${encodeURIComponent(id)}/events`, key, {
    headers: { Accept: "text/event-stream" },
    signal,
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, { message: String(error.message || error) });
    }
    if (chunk.done) throw new ApiError(0, { message: "the event stream ended early" });
    buffer += chunk.value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (readEvent(block, handlers)) {
        reader.cancel().catch(() => {});
        return;
      }
    }
  }
}
