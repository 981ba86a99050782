// The page: pick a file, follow its job live, show, copy and download the result.
// All server calls go through api.js; all words through i18n.js.

import * as api from "./api.js";
import { formatBytes, formatClock, formatPercent, t, translatePage } from "./i18n.js";

const KEY_STORAGE = "gigaam-api.key";
const JOB_STORAGE = "gigaam-api.job"; // sessionStorage: a reload finds its job again
const HEALTH_POLL_MS = 2000;
const RECONNECTS = 5;

// One choice on the page -> the OpenAI response_format asked from the jobs API and the file made.
const FORMATS = {
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

const el = Object.fromEntries(
  [
    "banner", "key-section", "key", "key-hint", "remember", "form", "drop", "file", "file-info",
    "start", "cancel", "job", "status", "progress", "error", "error-title", "error-detail",
    "result", "output", "copy", "download", "copied", "model-info",
  ].map((id) => [id.replace(/-(\w)/g, (_, c) => c.toUpperCase()), document.getElementById(id)]),
);

const state = {
  file: null,
  fileDurationS: null,
  job: null, // {id, key, name, size, durationS, phase: uploading|queued|running|done|failed|cancelled}
  upload: null,
  stream: null,
  results: new Map(),
  healthWatched: false,
};

const active = () => ["uploading", "queued", "running"].includes(state.job?.phase);
const selectedFormat = () => el.form.elements.format.value;
const key = () => el.key.value.trim();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- the server's model and key ---------------------------------------------------------------

function showBanner(text, isError = false) {
  el.banner.hidden = !text;
  el.banner.textContent = text;
  el.banner.classList.toggle("error", isError);
}

function describeLoading(health) {
  const progress = health.progress;
  if (!progress) return t("banner_loading");
  return t("banner_downloading", {
    file: progress.file,
    percent: progress.percent == null ? "…" : formatPercent(progress.percent / 100),
    done: formatBytes(progress.done_bytes),
    total: progress.total_bytes ? formatBytes(progress.total_bytes) : "?",
  });
}

async function watchHealth() {
  if (state.healthWatched) return;
  state.healthWatched = true;
  try {
    for (;;) {
      let health;
      try {
        health = await api.getHealth();
      } catch {
        showBanner(t("banner_unreachable"), true);
        await sleep(HEALTH_POLL_MS * 3);
        continue;
      }
      if (health.status === "ok") {
        showBanner("");
        el.modelInfo.textContent = t("model_info", { model: health.model });
        return;
      }
      if (health.status === "error") {
        showBanner(t("banner_failed", { error: health.error ?? "" }), true);
        return;
      }
      showBanner(describeLoading(health));
      await sleep(HEALTH_POLL_MS);
    }
  } finally {
    state.healthWatched = false;
  }
}

function keyAccepted(usedKey) {
  if (!usedKey) return;
  if (el.remember.checked) localStorage.setItem(KEY_STORAGE, usedKey);
  else localStorage.removeItem(KEY_STORAGE);
}

function askForKey(rejected) {
  el.keySection.hidden = false;
  el.keyHint.textContent = t(rejected ? "key_rejected" : "key_hint");
}

async function checkKey() {
  try {
    await api.checkAccess(key());
    keyAccepted(key());
  } catch (error) {
    if (error.status === 401) askForKey(Boolean(key()));
  }
}

// --- the chosen file --------------------------------------------------------------------------

function showFileInfo() {
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

function probeDuration(file) {
  // The browser reads the duration of what it can play; for the rest the job reports it later.
  const url = URL.createObjectURL(file);
  const media = document.createElement("audio");
  media.preload = "metadata";
  const done = () => {
    URL.revokeObjectURL(url);
    media.removeAttribute("src");
  };
  media.onloadedmetadata = () => {
    if (state.file === file && Number.isFinite(media.duration)) {
      state.fileDurationS = media.duration;
      showFileInfo();
    }
    done();
  };
  media.onerror = done;
  media.src = url;
}

function chooseFile(file) {
  if (!file || active()) return;
  state.file = file;
  state.fileDurationS = null;
  probeDuration(file);
  showFileInfo();
  render();
}

// --- the job ----------------------------------------------------------------------------------

function setStatus(text) {
  el.status.textContent = text;
}

function setProgress(fraction) {
  el.progress.hidden = fraction == null;
  if (fraction != null) el.progress.value = Math.min(1, Math.max(0, fraction));
}

function showQueued(position) {
  state.job.phase = "queued";
  setProgress(null);
  setStatus(position === 1 ? t("status_queued_next") : t("status_queued", { position }));
}

function showRunning(fraction, etaS) {
  state.job.phase = "running";
  setProgress(fraction);
  const text = t("status_running", { percent: formatPercent(fraction) });
  setStatus(etaS == null ? text : `${text} · ${t("status_eta", { eta: formatClock(etaS) })}`);
}

function showStatusObject(job) {
  if (job.duration_s != null) {
    state.job.durationS = job.duration_s;
    showFileInfo();
  }
  if (job.status === "queued") {
    if (job.queue_position != null) showQueued(job.queue_position);
    else setStatus(t("status_starting"));
  } else if (job.status === "running") {
    showRunning(job.progress ?? 0, job.eta_s ?? null);
  }
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

function showError(error) {
  el.error.hidden = false;
  el.errorTitle.textContent = errorTitle(error);
  el.errorDetail.textContent = error.message || "";
}

function fail(error) {
  if (state.job) state.job.phase = "failed";
  sessionStorage.removeItem(JOB_STORAGE);
  setProgress(null);
  setStatus("");
  showError(error);
  if (error.status === 401 || error.code === "invalid_api_key") {
    askForKey(false);
    el.key.focus();
  } else if (error.code === "model_loading") {
    watchHealth();
  }
  render();
}

function resetJob() {
  state.job = null;
  state.results.clear();
  el.job.hidden = false;
  el.error.hidden = true;
  el.output.value = "";
  el.result.hidden = true;
  el.copied.textContent = "";
  setProgress(null);
}

async function start(event) {
  event.preventDefault();
  if (!state.file || active()) return;
  resetJob();
  const { name, size } = state.file;
  const job = { id: null, key: key(), name, size, phase: "uploading", durationS: null };
  state.job = job;
  setStatus(t("status_uploading", { percent: formatPercent(0) }));
  setProgress(0);
  render();
  state.upload = api.createJob(state.file, job.key, (sent, total) => {
    setProgress(sent / total);
    setStatus(t("status_uploading", { percent: formatPercent(sent / total) }));
  });
  let created;
  try {
    created = await state.upload.done;
  } catch (error) {
    if (error.name !== "AbortError") fail(error);
    return;
  } finally {
    state.upload = null;
  }
  keyAccepted(job.key);
  job.id = created.id;
  sessionStorage.setItem(JOB_STORAGE, JSON.stringify({ id: job.id, name, size }));
  job.phase = "queued";
  setProgress(null);
  setStatus(t("status_starting"));
  showStatusObject(created);
  await follow(job);
}

async function follow(job) {
  let text = "";
  let failures = 0;
  for (;;) {
    const stream = new AbortController();
    state.stream = stream;
    let heard = false;
    text = ""; // the stream replays every finished segment first
    try {
      await api.watchJob(job.id, job.key, {
        onDelta: (delta) => {
          heard = true;
          text += delta;
          if (state.job === job) showLiveText(text);
        },
        onQueued: (position) => {
          heard = true;
          if (state.job === job) showQueued(position);
        },
        onProgress: (fraction, etaS) => {
          heard = true;
          if (state.job !== job) return;
          showRunning(fraction, etaS);
          learnDuration(job);
        },
      }, stream.signal);
      break;
    } catch (error) {
      if (stream.signal.aborted || state.job !== job) return;
      failures = heard ? 1 : failures + 1;
      // a broken connection (a phone asleep, a proxy timeout) is retried; the job runs on
      if (error.status !== 0 || failures > RECONNECTS) {
        fail(error);
        return;
      }
      setStatus(t("status_reconnecting"));
      await sleep(1000 * failures);
    } finally {
      if (state.stream === stream) state.stream = null;
    }
  }
  await finish(job, text);
}

async function learnDuration(job) {
  // Files the browser cannot play (wma, amr…) get their duration from the server once it runs.
  if (state.fileDurationS != null || job.durationS != null || job.askedDuration) return;
  job.askedDuration = true;
  try {
    const status = await api.getJob(job.id, job.key);
    if (status.duration_s != null && state.job === job) {
      job.durationS = status.duration_s;
      showFileInfo();
    }
  } catch {
    job.askedDuration = false;
  }
}

function showLiveText(text) {
  const output = el.output;
  el.result.hidden = false;
  const atEnd = output.scrollTop + output.clientHeight >= output.scrollHeight - 8;
  output.value = text;
  if (atEnd) output.scrollTop = output.scrollHeight;
}

async function finish(job, text) {
  try {
    const status = await api.getJob(job.id, job.key);
    if (status.duration_s != null) job.durationS = status.duration_s;
    await showResult(job);
  } catch (error) {
    if (state.job === job) fail(error);
    return;
  }
  if (state.job !== job) return;
  job.phase = "done";
  setProgress(null);
  const duration = formatClock(job.durationS ?? state.fileDurationS ?? 0);
  const spoken = (text ?? el.output.value).trim();
  setStatus(t(spoken ? "status_done" : "status_done_empty", { duration }));
  showFileInfo();
  render();
}

async function showResult(job) {
  const format = selectedFormat();
  if (!state.results.has(format)) {
    const { responseFormat, granularities } = FORMATS[format];
    let body = await api.getResult(job.id, job.key, responseFormat, granularities);
    if (format === "json") body = `${JSON.stringify(JSON.parse(body), null, 2)}\n`;
    state.results.set(format, body);
  }
  if (state.job === job) {
    el.output.value = state.results.get(format);
    el.result.hidden = false;
  }
  render();
}

async function cancel() {
  const job = state.job;
  if (!job || !active()) return;
  job.phase = "cancelled";
  sessionStorage.removeItem(JOB_STORAGE);
  state.upload?.abort();
  state.stream?.abort();
  setProgress(null);
  setStatus(t("status_cancelling"));
  render();
  if (job.id) {
    try {
      await api.cancelJob(job.id, job.key);
    } catch (error) {
      showError(error);
    }
  }
  if (state.job === job) setStatus(t("status_cancelled"));
}

async function resume() {
  let saved;
  try {
    saved = JSON.parse(sessionStorage.getItem(JOB_STORAGE) ?? "null");
  } catch {
    saved = null;
  }
  if (!saved?.id) return;
  const job = { ...saved, key: key(), phase: "queued", durationS: null };
  let status;
  try {
    status = await api.getJob(job.id, job.key);
  } catch {
    sessionStorage.removeItem(JOB_STORAGE); // gone (404), or not ours to see any more
    return;
  }
  if (state.job) return; // a new job was started meanwhile
  resetJob();
  state.job = job;
  showStatusObject(status);
  showFileInfo();
  render();
  if (status.status === "done") await finish(job, null);
  else if (status.status === "failed") fail(new api.ApiError(null, status.error ?? {}));
  else if (status.status === "cancelled") {
    job.phase = "cancelled";
    setStatus(t("status_cancelled"));
    render();
  } else await follow(job);
}

// --- copy and download ------------------------------------------------------------------------

function outputName(format) {
  const name = state.job?.name ?? "transcript";
  const dot = name.lastIndexOf(".");
  return `${dot > 0 ? name.slice(0, dot) : name}.${FORMATS[format].ext}`;
}

async function copyOutput() {
  const text = el.output.value;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // navigator.clipboard exists only on https and localhost; a LAN address over http lands here
    el.output.focus();
    el.output.select();
    if (!document.execCommand("copy")) {
      el.copied.textContent = t("err_copy");
      return;
    }
  }
  el.copied.textContent = t("copied");
}

function downloadOutput() {
  const format = selectedFormat();
  const body = state.results.get(format);
  if (body == null) return;
  const url = URL.createObjectURL(new Blob([body], { type: `${FORMATS[format].type};charset=utf-8` }));
  const link = document.createElement("a");
  link.href = url;
  link.download = outputName(format);
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// --- wiring -----------------------------------------------------------------------------------

function render() {
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

function onFormatChange() {
  el.copied.textContent = "";
  if (state.job?.phase === "done") showResult(state.job).catch(fail);
  render();
}

function wireDrop() {
  // A file dropped anywhere on the page is taken; the browser must not open it instead.
  const over = (event) => {
    event.preventDefault();
    el.drop.classList.add("over");
  };
  document.addEventListener("dragover", over);
  document.addEventListener("dragenter", over);
  document.addEventListener("dragleave", (event) => {
    if (event.relatedTarget === null) el.drop.classList.remove("over");
  });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    el.drop.classList.remove("over");
    chooseFile(event.dataTransfer?.files?.[0]);
  });
}

function init() {
  translatePage();
  el.key.value = localStorage.getItem(KEY_STORAGE) ?? "";
  el.file.addEventListener("change", () => chooseFile(el.file.files[0]));
  el.form.addEventListener("submit", start);
  el.form.addEventListener("change", (event) => {
    if (event.target.name === "format") onFormatChange();
  });
  el.cancel.addEventListener("click", cancel);
  el.copy.addEventListener("click", copyOutput);
  el.download.addEventListener("click", downloadOutput);
  el.remember.addEventListener("change", () => {
    if (!el.remember.checked) localStorage.removeItem(KEY_STORAGE);
  });
  wireDrop();
  render();
  watchHealth();
  checkKey();
  resume();
}

init();
