// Russian and English strings, chosen by the browser's language, and locale-aware number formats.

const STRINGS = {
  en: {
    title: "gigaam-api: speech to text",
    tagline: "Russian speech to text, on this server.",
    api_docs: "API docs",
    key_label: "API key",
    key_hint: "This server needs a key (its API_KEY setting).",
    key_rejected: "The saved key was not accepted: enter the right one.",
    key_remember: "Remember it in this browser",
    drop_title: "Drop an audio or video file here",
    drop_or: "or press to choose one",
    drop_touch: "Choose an audio or video file",
    format_legend: "Result as",
    format_text: "Text",
    format_srt: "SRT subtitles",
    format_vtt: "VTT subtitles",
    format_json: "JSON with word times",
    start: "Transcribe",
    cancel: "Cancel",
    output_label: "Transcript",
    copy: "Copy",
    copied: "Copied.",
    download: "Download",
    download_named: "Download {name}",
    progress_label: "Progress",
    duration_pending: "duration not known yet",
    status_uploading: "Uploading the file… {percent}",
    status_queued: "Waiting in line, place {position}.",
    status_queued_next: "Waiting in line: next.",
    status_starting: "Starting…",
    status_running: "Transcribing… {percent}",
    status_eta: "about {eta} left",
    status_reconnecting: "Connection lost, reconnecting…",
    status_done: "Done: {duration} of audio.",
    status_done_empty: "Done: no speech was found in {duration} of audio.",
    status_cancelling: "Cancelling…",
    status_cancelled: "Cancelled.",
    banner_loading: "The model is loading; transcription starts working when it is ready.",
    banner_downloading: "Downloading the model: {file}, {percent} ({done} of {total}).",
    banner_failed: "The model failed to load: {error}",
    banner_unreachable: "The server does not answer.",
    model_info: "Model: {model}",
    err_key_missing: "This server needs an API key: enter it above and try again.",
    err_key_wrong: "The API key was not accepted: check it and try again.",
    err_too_large: "The file is larger than this server accepts (its MAX_UPLOAD_MB setting).",
    err_not_audio: "The server could not read audio from this file.",
    err_too_long: "The recording is longer than this server accepts (its MAX_AUDIO_SECONDS setting).",
    err_busy: "The server is busy with other files. Try again in {seconds} s.",
    err_loading: "The model is still loading; try again when it is ready (see above).",
    err_model_failed: "The model failed to load; the server log says why.",
    err_bad_request: "The server refused the request.",
    err_server: "The server had an error.",
    err_network: "Cannot reach the server.",
    err_job_gone: "The server no longer has this job.",
    err_copy: "Copying failed: select the text and copy it by hand.",
  },
  ru: {
    title: "gigaam-api: распознавание речи",
    tagline: "Распознавание русской речи на этом сервере.",
    api_docs: "Документация API",
    key_label: "Ключ API",
    key_hint: "Серверу нужен ключ (его настройка API_KEY).",
    key_rejected: "Сохранённый ключ не подошёл: введите верный.",
    key_remember: "Запомнить в этом браузере",
    drop_title: "Перетащите сюда аудио- или видеофайл",
    drop_or: "или нажмите, чтобы выбрать",
    drop_touch: "Выберите аудио- или видеофайл",
    format_legend: "Результат",
    format_text: "Текст",
    format_srt: "Субтитры SRT",
    format_vtt: "Субтитры VTT",
    format_json: "JSON со временем слов",
    start: "Распознать",
    cancel: "Отменить",
    output_label: "Расшифровка",
    copy: "Копировать",
    copied: "Скопировано.",
    download: "Скачать",
    download_named: "Скачать {name}",
    progress_label: "Ход работы",
    duration_pending: "длительность пока неизвестна",
    status_uploading: "Загружаем файл… {percent}",
    status_queued: "В очереди, место {position}.",
    status_queued_next: "В очереди: следующий.",
    status_starting: "Начинаем…",
    status_running: "Распознаём… {percent}",
    status_eta: "осталось около {eta}",
    status_reconnecting: "Связь прервалась, переподключаемся…",
    status_done: "Готово: {duration} аудио.",
    status_done_empty: "Готово: в {duration} аудио речь не найдена.",
    status_cancelling: "Отменяем…",
    status_cancelled: "Отменено.",
    banner_loading: "Модель загружается; распознавание заработает, когда она будет готова.",
    banner_downloading: "Скачивается модель: {file}, {percent} ({done} из {total}).",
    banner_failed: "Модель не загрузилась: {error}",
    banner_unreachable: "Сервер не отвечает.",
    model_info: "Модель: {model}",
    err_key_missing: "Серверу нужен ключ API: введите его выше и попробуйте снова.",
    err_key_wrong: "Ключ API не подошёл: проверьте его и попробуйте снова.",
    err_too_large: "Файл больше, чем принимает этот сервер (его настройка MAX_UPLOAD_MB).",
    err_not_audio: "Сервер не смог прочитать звук из этого файла.",
    err_too_long: "Запись длиннее, чем принимает этот сервер (его настройка MAX_AUDIO_SECONDS).",
    err_busy: "Сервер занят другими файлами. Попробуйте через {seconds} с.",
    err_loading: "Модель ещё загружается; попробуйте, когда она будет готова (см. выше).",
    err_model_failed: "Модель не загрузилась; причина в журнале сервера.",
    err_bad_request: "Сервер отклонил запрос.",
    err_server: "На сервере произошла ошибка.",
    err_network: "Не удаётся связаться с сервером.",
    err_job_gone: "Этой задачи на сервере больше нет.",
    err_copy: "Скопировать не получилось: выделите текст и скопируйте вручную.",
  },
};

function pickLanguage() {
  for (const tag of navigator.languages?.length ? navigator.languages : [navigator.language]) {
    const base = String(tag || "").toLowerCase().split("-")[0];
    if (base in STRINGS) return base;
  }
  return "en";
}

export const lang = pickLanguage();
const strings = STRINGS[lang];

/** The string `key` in the page's language, with {name} placeholders filled from `values`. */
export function t(key, values = {}) {
  const template = strings[key] ?? STRINGS.en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

/** Fill every [data-i18n] element's text and [data-i18n-label] element's aria-label. */
export function translatePage(root = document) {
  document.documentElement.lang = lang;
  document.title = t("title");
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-label]")) {
    node.setAttribute("aria-label", t(node.dataset.i18nLabel));
  }
}

const numbers = new Intl.NumberFormat(lang, { maximumFractionDigits: 1 });
const percents = new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 0 });
const UNITS = { en: ["B", "KB", "MB", "GB"], ru: ["Б", "КБ", "МБ", "ГБ"] }[lang];

export function formatBytes(bytes) {
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${numbers.format(unit === 0 ? value : Math.round(value * 10) / 10)} ${UNITS[unit]}`;
}

export function formatPercent(fraction) {
  return percents.format(Math.min(1, Math.max(0, fraction)));
}

/** Seconds as m:ss or h:mm:ss. */
export function formatClock(seconds) {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}
