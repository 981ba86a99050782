// What the page learns about the server before any job: is the model ready, is a key needed.

import * as api from "./api.js";
import { formatBytes, formatPercent, t } from "./i18n.js";
import { el, key, showBanner, sleep } from "./view.js";

const KEY_STORAGE = "gigaam-api.key";
const HEALTH_POLL_MS = 2000;

let watchingHealth = false;

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

/** Poll /health until the model is ready, showing download progress or a load failure. */
export async function watchHealth() {
  if (watchingHealth) return;
  watchingHealth = true;
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
    watchingHealth = false;
  }
}

/** A key the server took is kept in this browser, unless "Remember" is unticked. */
export function keyAccepted(usedKey) {
  if (!usedKey) return;
  if (el.remember.checked) localStorage.setItem(KEY_STORAGE, usedKey);
  else localStorage.removeItem(KEY_STORAGE);
}

export function askForKey(rejected) {
  el.keySection.hidden = false;
  el.keyHint.textContent = t(rejected ? "key_rejected" : "key_hint");
}

/** Fill in a remembered key, then ask /v1/models whether the server wants one (401). */
export async function checkKey() {
  el.key.value = localStorage.getItem(KEY_STORAGE) ?? "";
  el.remember.addEventListener("change", () => {
    if (!el.remember.checked) localStorage.removeItem(KEY_STORAGE);
  });
  try {
    await api.checkAccess(key());
    keyAccepted(key());
  } catch (error) {
    if (error.status === 401) askForKey(Boolean(key()));
  }
}
