// The page's state and how it is shown: element lookups, status, progress, errors, buttons.
// No server calls (api.js does those) and no words of its own (i18n.js has them).

import { formatBytes, formatClock, formatPercent, t } from "./i18n.js";

// One choice on the page -> the OpenAI response_format asked from the jobs API and the file made.
export const FORMATS = {
  text: { responseFormat: "text", granularities: [], ext: "txt", type: "text/plain" },
  srt: { responseFormat: "srt", granularities: [], ext: "srt", type: "application/x-subrip" },
  vtt: { responseFormat: "vtt", granularities: [], ext: "vtt", type: "text/vtt" },
  json: {
    responseFormat: "verbose_json",
    granularities: ["word", "segment"],
    ext: "json",
    type: "application/json",
  },
};

export const el = Object.fromEntries(
  [
    "banner", "key-section", "key", "key-hint", "remember", "form", "drop", "file", "file-info",
    "start", "cancel", "job", "status", "progress", "error", "error-title", "error-detail",
    "result", "output", "copy", "download", "copied", "model-info",
  ].map((id) => [id.replace(/-(\w)/g, (_, c) => c.toUpperCase()), document.getElementById(id)]),
);

export const state = {
  file: null,
  fileDurationS: null,
  job: null, // {id, key, name, size, durationS, phase: uploading|queued|running|done|failed|cancelled}
  upload: null,
  stream: null,
  results: new Map(), // format -> the body shown and downloaded
};

export const active = () => ["uploading", "queued", "running"].includes(state.job?.phase);
export const selectedFormat = () => el.form.elements.format.value;
export const key = () => el.key.value.trim();
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function showBanner(text, isError = false) {
  el.banner.hidden = !text;
  el.banner.textContent = text;
  el.banner.classList.toggle("error", isError);
}

export function showFileInfo() {
  // the picked file, or after a reload the file of the job found again
  const file = state.file ?? state.job;
  if (!file) {
    el.fileInfo.textContent = "";
    return;
  }
  const duration = state.fileDurationS ?? state.job?.durationS;
  const parts = [file.name, formatBytes(file.size)];
  parts.push(duration == null ? t("duration_pending") : formatClock(duration));
  el.fileInfo.textContent = parts.join(" · ");
}

export function setStatus(text) {
  el.status.textContent = text;
}

export function setProgress(fraction) {
  el.progress.hidden = fraction == null;
  if (fraction != null) el.progress.value = Math.min(1, Math.max(0, fraction));
}

export function showQueued(position) {
  state.job.phase = "queued";
  setProgress(null);
  setStatus(position === 1 ? t("status_queued_next") : t("status_queued", { position }));
}

export function showRunning(fraction, etaS) {
  state.job.phase = "running";
  setProgress(fraction);
  const text = t("status_running", { percent: formatPercent(fraction) });
  setStatus(etaS == null ? text : `${text} · ${t("status_eta", { eta: formatClock(etaS) })}`);
}

/** Show what a jobs-API status object says (queued with its place, running with progress). */
export function showStatusObject(status) {
  if (status.duration_s != null) {
    state.job.durationS = status.duration_s;
    showFileInfo();
  }
  if (status.status === "queued") {
    if (status.queue_position != null) showQueued(status.queue_position);
    else setStatus(t("status_starting"));
  } else if (status.status === "running") {
    showRunning(status.progress ?? 0, status.eta_s ?? null);
  }
}

export function showLiveText(text) {
  const output = el.output;
  el.result.hidden = false;
  const atEnd = output.scrollTop + output.clientHeight >= output.scrollHeight - 8;
  output.value = text;
  if (atEnd) output.scrollTop = output.scrollHeight;
}

function errorTitle(error) {
  const code = error.code;
  if (error.status === 0) return t("err_network");
  if (error.status === 401 || code === "invalid_api_key") {
    return t(state.job?.key ? "err_key_wrong" : "err_key_missing");
  }
  if (error.status === 413 || code === "file_too_large") return t("err_too_large");
  if (code === "invalid_audio") return t("err_not_audio");
  if (code === "audio_too_long") return t("err_too_long");
  if (code === "queue_full") return t("err_busy", { seconds: error.retryAfterS ?? 5 });
  if (code === "model_loading") return t("err_loading");
  if (code === "model_unavailable") return t("err_model_failed");
  if (error.status === 404) return t("err_job_gone");
  if (error.status >= 500 || error.type === "server_error") return t("err_server");
  return t("err_bad_request");
}

/** An API error in the page's words, with the server's own message under it. */
export function showError(error) {
  el.error.hidden = false;
  el.errorTitle.textContent = errorTitle(error);
  el.errorDetail.textContent = error.message || "";
}

export function resetJob() {
  state.job = null;
  state.results.clear();
  el.job.hidden = false;
  el.error.hidden = true;
  el.output.value = "";
  el.result.hidden = true;
  el.copied.textContent = "";
  setProgress(null);
}

/** The download's name: the job's file with the format's extension (talk.mp3 -> talk.srt). */
export function outputName(format) {
  const name = state.job?.name ?? "transcript";
  const dot = name.lastIndexOf(".");
  return `${dot > 0 ? name.slice(0, dot) : name}.${FORMATS[format].ext}`;
}

/** Enable, disable and label the controls for the current state. */
export function render() {
  const busy = active();
  const done = state.job?.phase === "done";
  el.start.disabled = !state.file || busy;
  el.file.disabled = busy;
  el.drop.classList.toggle("disabled", busy);
  el.cancel.hidden = !busy;
  const ready = done && state.results.has(selectedFormat());
  el.copy.disabled = !ready;
  el.download.disabled = !ready;
  el.download.textContent = ready
    ? t("download_named", { name: outputName(selectedFormat()) })
    : t("download");
}
