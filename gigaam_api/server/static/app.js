// The page's entry point: take a file (picked or dropped), wire the controls, copy and download.
// Modules: api.js (HTTP), i18n.js (words), view.js (state and display), server.js (model and
// key), job.js (one transcription).

import { t, translatePage } from "./i18n.js";
import { cancel, resume, showChosenFormat, start } from "./job.js";
import { checkKey, watchHealth } from "./server.js";
import { FORMATS, active, el, outputName, render, selectedFormat, showFileInfo, state } from "./view.js";

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

translatePage();
el.file.addEventListener("change", () => chooseFile(el.file.files[0]));
el.form.addEventListener("submit", start);
el.form.addEventListener("change", (event) => {
  if (event.target.name !== "format") return;
  el.copied.textContent = "";
  showChosenFormat();
  render();
});
el.cancel.addEventListener("click", cancel);
el.copy.addEventListener("click", copyOutput);
el.download.addEventListener("click", downloadOutput);
wireDrop();
render();
watchHealth();
checkKey();
resume();
