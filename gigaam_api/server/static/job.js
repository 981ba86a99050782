// One transcription's life on the page: upload, follow its events live, fetch the result,
// cancel, and find it again after a reload.

import * as api from "./api.js";
import { formatClock, formatPercent, t } from "./i18n.js";
import { askForKey, keyAccepted, watchHealth } from "./server.js";
import {
  FORMATS, active, el, key, render, resetJob, selectedFormat, setProgress, setStatus, showError,
  showFileInfo, showLiveText, showQueued, showRunning, showStatusObject, sleep, state,
} from "./view.js";

const JOB_STORAGE = "gigaam-api.job"; // sessionStorage: a reload finds its job again
const RECONNECTS = 5;

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

/** Upload the picked file as a new job, then follow it to its result. */
export async function start(event) {
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

/** Show the finished job's result in the newly chosen format (fetched once per format). */
export function showChosenFormat() {
  if (state.job?.phase === "done") showResult(state.job).catch(fail);
}

/** Stop the upload or the job on the server (DELETE), keeping any text already shown. */
export async function cancel() {
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

/** After a reload: show this tab's last job again and follow it if it still runs. */
export async function resume() {
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
