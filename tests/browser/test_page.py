"""The web page at / in real headless Chromium against a real server (the tiny random-weight
v3_ctc, real ffmpeg and Silero): a file goes in, live text and results come out, every error
reads clearly, cancel stops the job on the server, and the page works by keyboard, on a phone,
in Russian and in the dark. Random weights give nonsense text, so text is compared with what the
API returns for the same file, never with words.
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from gigaam_api.bootstrap import build_transcriber
from gigaam_api.server.routes.ui import CONTENT_SECURITY_POLICY
from gigaam_api.settings import Settings
from gigaam_api.types import DownloadProgress, Transcriber
from tests.browser.conftest import BrowserFactory, CuttableProxy, Page, fresh_copy
from tests.fixtures.audio import AUDIO_FORMAT_ARGS, encode
from tests.fixtures.server import (
    STRICT_API_KEY,
    RunningServer,
    ServerFactory,
    request_bytes,
    send_raw,
)

JOBS = "/v1/audio/transcriptions/jobs"

# Records what the page shows over time: every value the transcript box took and every status line.
_RECORDER = """
window.seen = {outputs: [], statuses: []};
const output = document.getElementById('output');
const native = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value');
Object.defineProperty(output, 'value', {
  get() { return native.get.call(this); },
  set(v) { window.seen.outputs.push(v); native.set.call(this, v); },
});
const status = document.getElementById('status');
new MutationObserver(() => window.seen.statuses.push(status.textContent))
  .observe(status, {childList: true, characterData: true, subtree: true});
"""


def _api(server: RunningServer, audio: Path, response_format: str, key: str = "") -> str:
    """The same file through the OpenAI endpoint: what the page must end up showing."""
    response = httpx.post(
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": (audio.name, audio.read_bytes())},
        data={"response_format": response_format},
        headers={"Authorization": f"Bearer {key}"} if key else {},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return response.text


def _probe_duration_s(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out)


def _clock(seconds: float) -> str:
    total = round(seconds)
    return f"{total // 60}:{total % 60:02d}"


def _job_id(page: Page) -> str:
    """The id of the page's current job, as the page keeps it for a reload to find it again."""
    saved = page.js("return JSON.parse(sessionStorage.getItem('gigaam-api.job'))")
    assert saved is not None, "the page holds no job"
    return str(saved["id"])


def _parse_srt(text: str) -> list[tuple[float, float, str]]:
    def seconds(stamp: str) -> float:
        hours, minutes, rest = stamp.split(":")
        whole, millis = rest.split(",")
        return int(hours) * 3600 + int(minutes) * 60 + int(whole) + int(millis) / 1000

    cues = []
    for number, block in enumerate(text.strip().split("\n\n"), start=1):
        index, times, *lines = block.split("\n")
        assert index == str(number)
        start, end = times.split(" --> ")
        cues.append((seconds(start), seconds(end), "\n".join(lines)))
    return cues


def test_page_and_assets_come_from_the_server_under_a_strict_csp(
    api_server: RunningServer, browser: BrowserFactory
) -> None:
    page = browser(api_server.base_url).open()
    assert page.js("return document.documentElement.lang") == "en"
    assert page.text("start") == "Transcribe"
    page.wait(lambda: page.text("model-info") == "Model: v3_ctc", "the model's name")
    urls = page.js("return performance.getEntriesByType('resource').map(e => e.name)")
    assert {url.rsplit("/", 1)[-1] for url in urls} >= {"app.js", "api.js", "i18n.js", "style.css"}
    assert all(url.startswith(api_server.base_url) for url in urls), urls
    for path in ("/", "/ui/app.js", "/ui/style.css"):
        headers = httpx.get(f"{api_server.base_url}{path}").headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert headers["x-content-type-options"] == "nosniff"
    # a CSP violation or a failed script would be logged here
    assert page.console_errors() == []
    assert page.visible("key-section") is False
    page.screenshot("home")


def test_speech_appears_live_and_matches_the_api(
    api_server: RunningServer, browser: BrowserFactory, speech_long: Path
) -> None:
    page = browser(api_server.base_url).open()
    page.js(_RECORDER)
    page.pick(speech_long)
    duration = _clock(_probe_duration_s(speech_long))
    page.wait(lambda: duration in page.text("file-info"), "the file's duration")
    assert (
        page.text("file-info")
        == f"speech_long.wav · {speech_long.stat().st_size / 1e6:.1f} MB · {duration}"
    )
    page.start()
    assert page.wait_done() == f"Done: {duration} of audio."
    final = page.output()
    assert final == _api(api_server, speech_long, "text")
    assert final.strip()
    outputs: list[str] = page.js("return window.seen.outputs")
    partial = [value for value in outputs if value and value != final]
    # the text grew segment by segment (several VAD chunks), each step a prefix of the result
    assert len(set(partial)) >= 2
    assert all(final.startswith(value) for value in partial)
    statuses: list[str] = page.js("return window.seen.statuses")
    assert any(s.startswith("Uploading the file…") for s in statuses)
    assert page.text("download") == "Download speech_long.txt"
    assert page.console_errors() == []
    page.screenshot("done-text")


def test_srt_download_parses_json_has_word_times_and_copy_copies(
    api_server: RunningServer, browser: BrowserFactory, speech_wav_short: Path
) -> None:
    page = browser(api_server.base_url).open()
    page.cdp(
        "Browser.grantPermissions",
        {
            "origin": api_server.base_url,
            "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
        },
    )
    page.pick(speech_wav_short)
    page.choose_format("srt")
    page.start()
    page.wait_done()
    expected_srt = _api(api_server, speech_wav_short, "srt")
    assert page.output() == expected_srt
    page.screenshot("done-srt")
    page.el("download").click()
    srt = page.downloaded("speech_short.srt").read_text(encoding="utf-8")
    assert srt == expected_srt
    cues = _parse_srt(srt)
    assert cues
    duration_s = _probe_duration_s(speech_wav_short)
    assert all(0 <= start <= end <= duration_s + 0.001 for start, end, _ in cues)  # ms stamps
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(cues))
    assert (
        " ".join(text.replace("\n", " ") for *_, text in cues)
        == _api(api_server, speech_wav_short, "text").strip()
    )

    page.choose_format("json")
    page.wait(lambda: page.output().startswith("{"), "the JSON result")
    result = json.loads(page.output())
    assert result["words"] and result["segments"]
    assert all(word["start"] <= word["end"] for word in result["words"])
    assert " ".join(word["word"] for word in result["words"]) == result["text"]
    page.el("download").click()
    assert json.loads(page.downloaded("speech_short.json").read_text("utf-8")) == result

    page.el("copy").click()
    page.wait(lambda: page.text("copied") == "Copied.", "the copy confirmation")
    clipboard = page.driver.execute_async_script(
        "navigator.clipboard.readText().then(arguments[0])"
    )
    assert clipboard == page.output()


def test_wrong_key_then_right_key_and_the_key_is_remembered(
    strict_server: RunningServer, browser: BrowserFactory, speech_wav_short: Path
) -> None:
    page = browser(strict_server.base_url).open()
    page.wait(lambda: page.visible("key-section"), "the key field")
    assert page.text("key-hint") == "This server needs a key (its API_KEY setting)."
    page.pick(speech_wav_short)
    page.start()
    assert page.wait_error() == "This server needs an API key: enter it above and try again."
    page.set_key("sk-wrong")
    page.start()
    page.wait(lambda: "not accepted" in page.text("error-title"), "the wrong-key message")
    assert page.text("error-title") == "The API key was not accepted: check it and try again."
    assert page.text("error-detail") == "Incorrect API key provided."
    assert page.js("return document.activeElement.id") == "key"
    page.screenshot("error-key")
    page.set_key(STRICT_API_KEY)
    page.start()
    page.wait_done()
    assert page.visible("error") is False
    assert page.output() == _api(strict_server, speech_wav_short, "text", STRICT_API_KEY)
    assert page.js("return localStorage.getItem('gigaam-api.key')") == STRICT_API_KEY

    page.open()  # a new visit: the key is filled in and accepted
    assert page.el("key").get_attribute("value") == STRICT_API_KEY
    page.pick(speech_wav_short)
    page.start()
    page.wait_done()


def test_dropped_non_audio_file_shows_its_error(
    api_server: RunningServer, browser: BrowserFactory
) -> None:
    page = browser(api_server.base_url).open()
    page.js(
        """
        const data = new DataTransfer();
        data.items.add(new File([arguments[0]], 'notes.txt', {type: 'text/plain'}));
        document.getElementById('drop').dispatchEvent(
          new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
        """,
        "Это не аудио, а просто текстовый файл.\n" * 200,
    )
    page.wait(lambda: "notes.txt" in page.text("file-info"), "the dropped file's name")
    page.start()
    assert page.wait_error() == "The server could not read audio from this file."
    assert page.text("error-detail")  # the server's own reason, as sent
    assert page.text("status") == ""  # the alert says it all
    assert page.visible("result") is False
    assert page.el("start").is_enabled()
    page.screenshot("error-not-audio")
    api_server.assert_clean()


def test_russian_browser_gets_the_russian_page(
    api_server: RunningServer, browser: BrowserFactory, tmp_path: Path, speech_wav_short: Path
) -> None:
    page = browser(api_server.base_url, language="ru-RU").open()
    assert page.js("return document.documentElement.lang") == "ru"
    assert page.text("start") == "Распознать"
    assert page.text("key-label") == "Ключ API"
    page.wait(lambda: page.text("model-info") == "Модель: v3_ctc", "the model's name")
    bad = tmp_path / "заметки.txt"
    bad.write_text("Это не аудио.\n" * 100, encoding="utf-8")
    page.pick(bad)
    page.start()
    assert page.wait_error() == "Сервер не смог прочитать звук из этого файла."
    page.pick(speech_wav_short)
    page.choose_format("vtt")
    page.start()
    assert page.wait_done().startswith("Готово: ")
    assert page.output() == _api(api_server, speech_wav_short, "vtt")
    assert page.text("download") == "Скачать speech_short.vtt"
    page.screenshot("ru")


def test_too_large_file_shows_its_error(
    strict_server: RunningServer, browser: BrowserFactory, speech_long: Path
) -> None:
    assert speech_long.stat().st_size > 1024 * 1024  # strict_server's MAX_UPLOAD_MB=1
    page = browser(strict_server.base_url).open()
    page.set_key(STRICT_API_KEY)
    page.pick(speech_long)
    page.start()
    assert page.wait_error() == (
        "The file is larger than this server accepts (its MAX_UPLOAD_MB setting)."
    )
    strict_server.assert_clean()


@pytest.fixture
def held_slot(server_factory: ServerFactory, speech_wav_short: Path) -> Iterator[RunningServer]:
    """A server with MAX_QUEUE=1 whose one slot an unfinished upload holds until the test ends
    (no upload deadline: a slow browser start must not let the server cut it and free the slot)."""
    server = server_factory(max_queue=1, upload_idle_timeout_s=0.0, upload_min_rate_kib_s=0.0)
    request = httpx.Request(
        "POST",
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": ("a.wav", speech_wav_short.read_bytes(), "audio/wav")},
    )
    body = request.read()
    gate = threading.Event()

    def gated_body() -> Iterator[bytes]:
        yield body[:2048]
        gate.wait(120)
        yield body[2048:]

    sender = threading.Thread(
        target=httpx.post,
        args=(str(request.url),),
        kwargs={
            "content": gated_body(),
            "headers": {"content-type": request.headers["content-type"]},
            "timeout": 120,
        },
    )
    sender.start()
    try:
        yield server
    finally:
        gate.set()
        sender.join(120)
        server.wait_idle()


def test_busy_server_says_when_to_retry(
    held_slot: RunningServer, browser: BrowserFactory, speech_wav_short: Path
) -> None:
    page = browser(held_slot.base_url).open()
    page.wait(lambda: held_slot.runtime.worker.active == 1, "the held slot")
    page.pick(speech_wav_short)
    page.start()
    assert page.wait_error() == "The server is busy with other files. Try again in 5 s."


def test_loading_model_shows_download_progress_then_works(
    server_factory: ServerFactory, browser: BrowserFactory, speech_wav_short: Path
) -> None:
    release = threading.Event()

    def slow_factory(
        settings: Settings, on_progress: Callable[[DownloadProgress], None]
    ) -> Transcriber:
        on_progress(DownloadProgress("v3_ctc.ckpt", 219_000_000, 438_000_000))
        release.wait(120)
        return build_transcriber(settings, on_progress)

    server = server_factory(transcriber_factory=slow_factory, wait_ready=False)
    try:
        page = browser(server.base_url).open()
        expected = "Downloading the model: v3_ctc.ckpt, 50% (219 MB of 438 MB)."
        page.wait(lambda: page.text("banner") == expected, "the download progress")
        page.pick(speech_wav_short)
        page.start()
        assert page.wait_error() == (
            "The model is still loading; try again when it is ready (see above)."
        )
        page.screenshot("loading")
    finally:
        release.set()
    page.wait(lambda: not page.visible("banner"), "the banner to go")
    page.wait(lambda: page.text("model-info") == "Model: v3_ctc", "the model's name")
    page.start()
    page.wait_done()
    assert page.output() == _api(server, speech_wav_short, "text")


def test_cancel_stops_the_job_on_the_server(
    api_server: RunningServer, browser: BrowserFactory, speech_ten_minutes: Path
) -> None:
    worker = api_server.runtime.worker
    cancelled_before = worker.cancelled
    page = browser(api_server.base_url).open()
    page.pick(speech_ten_minutes)
    page.start()
    page.wait(
        lambda: (
            page.output() and page.js("return document.getElementById('progress').value") > 0.05
        ),
        "live text and progress",
    )
    assert page.visible("progress")
    assert page.text("status").startswith("Transcribing… ")
    page.screenshot("running")
    job_id = _job_id(page)
    page.el("cancel").click()
    page.wait(lambda: page.text("status") == "Cancelled.", "the cancellation")
    job = httpx.get(f"{api_server.base_url}{JOBS}/{job_id}").json()
    assert job["status"] == "cancelled"
    assert job["processed_s"] < job["duration_s"]
    assert job["error"] is not None
    api_server.assert_clean()  # idle: no upload, spool or ffmpeg left behind
    assert worker.cancelled == cancelled_before + 1
    assert page.el("start").is_enabled()
    assert page.visible("cancel") is False


def _hold_worker(server: RunningServer, audio: Path) -> socket.socket:
    """Start a long sync request on a raw socket; closing the socket cancels it (JOB_GRACE_S=0)."""
    return send_raw(server, request_bytes(server, audio, {}))


def test_queue_position_shows_while_another_file_runs(
    api_server: RunningServer,
    browser: BrowserFactory,
    speech_ten_minutes: Path,
    speech_wav_short: Path,
    tmp_path: Path,
) -> None:
    page = browser(api_server.base_url).open()
    blocker = _hold_worker(api_server, speech_ten_minutes)
    try:
        page.wait(lambda: api_server.runtime.worker.current is not None, "the other file to start")
        short = fresh_copy(speech_wav_short, tmp_path)
        page.pick(short)
        page.start()
        page.wait(lambda: page.text("status") == "Waiting in line: next.", "the queue position")
        assert page.visible("cancel")
        page.screenshot("queued")
    finally:
        blocker.close()
    page.wait_done()
    assert page.output() == _api(api_server, short, "text")


def test_duration_the_browser_cannot_read_comes_from_the_server(
    api_server: RunningServer, browser: BrowserFactory, tmp_path: Path, speech_wav_short: Path
) -> None:
    wma = encode(speech_wav_short, tmp_path / "interview.wma", AUDIO_FORMAT_ARGS["wma"][1])
    page = browser(api_server.base_url).open()
    page.pick(wma)
    assert page.text("file-info").endswith(" · duration not known yet")
    page.start()
    page.wait_done()
    assert page.text("file-info").endswith(f" · {_clock(_probe_duration_s(wma))}")
    assert page.text("download") == "Download interview.txt"


def test_a_broken_event_stream_is_reopened_and_the_text_completes(
    api_server: RunningServer,
    browser: BrowserFactory,
    cuttable: Callable[[RunningServer], CuttableProxy],
    speech_ten_minutes: Path,
) -> None:
    proxy = cuttable(api_server)
    page = browser(proxy.base_url).open()
    page.js(_RECORDER)
    page.pick(speech_ten_minutes)
    page.start()
    page.wait(lambda: page.output(), "the first text")
    proxy.cut()
    page.wait_done()
    assert "Connection lost, reconnecting…" in page.js("return window.seen.statuses")
    assert page.visible("error") is False
    result = httpx.get(f"{api_server.base_url}{JOBS}/{_job_id(page)}/result?response_format=text")
    assert page.output() == result.text  # nothing lost or repeated by the reconnection


def test_a_reloaded_page_finds_its_job_again(
    api_server: RunningServer,
    browser: BrowserFactory,
    speech_ten_minutes: Path,
    speech_long: Path,
    tmp_path: Path,
) -> None:
    worker = api_server.runtime.worker
    completed_before = worker.completed  # the blocker below ends cancelled, not completed
    page = browser(api_server.base_url).open()
    blocker = _hold_worker(api_server, speech_ten_minutes)
    try:
        page.wait(lambda: worker.current is not None, "the other file to start")
        page.pick(fresh_copy(speech_long, tmp_path))
        page.start()
        page.wait(lambda: page.text("status") == "Waiting in line: next.", "the queue position")
        job_id = _job_id(page)
        page.driver.refresh()
        page.wait(lambda: page.text("status") == "Waiting in line: next.", "the job again")
        assert page.text("file-info").startswith("speech_long.wav · 2.2 MB · ")
    finally:
        blocker.close()
    page.wait_done()
    assert _job_id(page) == job_id
    result = httpx.get(f"{api_server.base_url}{JOBS}/{job_id}/result?response_format=text")
    assert page.output() == result.text
    assert page.text("download") == "Download speech_long.txt"
    api_server.wait_idle()
    assert worker.completed == completed_before + 1  # followed again, not started again


def _focus_ring(page: Page) -> tuple[str, float]:
    """The outline drawn around the focused control (the drop zone for the hidden file input)."""
    style = page.js(
        """
        let node = document.activeElement;
        if (node.id === 'file') node = document.querySelector('.drop-label');
        const css = getComputedStyle(node);
        return [css.outlineStyle, parseFloat(css.outlineWidth)];
        """
    )
    return style[0], style[1]


def test_keyboard_only_with_visible_focus(
    api_server: RunningServer, browser: BrowserFactory, speech_wav_short: Path
) -> None:
    page = browser(api_server.base_url).open()
    keys = ActionChains(page.driver)

    def press(key: str) -> str:
        keys.send_keys(key).perform()
        focused = str(page.js("return document.activeElement.id || document.activeElement.name"))
        outline, width = _focus_ring(page)
        assert outline != "none" and width >= 2, f"no visible focus on {focused}"
        return focused

    press(Keys.TAB)  # the API docs link
    assert press(Keys.TAB) == "file"
    page.el("file").send_keys(str(speech_wav_short))  # what the file chooser would do
    page.wait(lambda: page.el("start").is_enabled(), "the start button")
    assert press(Keys.TAB) == "format"
    press(Keys.ARROW_RIGHT)
    assert page.js("return document.querySelector('input[name=format]:checked').value") == "srt"
    assert press(Keys.TAB) == "start"
    keys.send_keys(Keys.ENTER).perform()
    page.wait_done()
    assert page.output() == _api(api_server, speech_wav_short, "srt")
    page.el("output").click()  # then on by keyboard from the transcript
    assert press(Keys.TAB) == "copy"
    assert press(Keys.TAB) == "download"
    keys.send_keys(Keys.ENTER).perform()
    assert page.downloaded("speech_short.srt").read_text("utf-8") == page.output()


def test_controls_have_accessible_names(
    strict_server: RunningServer, browser: BrowserFactory, speech_wav_short: Path
) -> None:
    page = browser(strict_server.base_url).open()
    page.set_key(STRICT_API_KEY)
    page.pick(speech_wav_short)
    page.start()
    page.wait_done()
    nodes = page.cdp("Accessibility.getFullAXTree")["nodes"]
    roles = ("button", "textbox", "radio", "checkbox", "progressbar", "link")
    controls = [
        (node["role"]["value"], node.get("name", {}).get("value", ""))
        for node in nodes
        if not node.get("ignored") and node.get("role", {}).get("value") in roles
    ]
    assert {role for role, _ in controls} >= {"button", "textbox", "radio", "checkbox", "link"}
    assert all(name.strip() for _, name in controls), controls


def test_phone_width_layout(
    api_server: RunningServer, browser: BrowserFactory, speech_wav_short: Path
) -> None:
    page = browser(api_server.base_url).open()
    width = 390
    page.cdp(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 844, "deviceScaleFactor": 1, "mobile": True},
    )
    page.cdp("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    page.open()
    assert page.el("drop").text == "Choose an audio or video file"  # nothing to drag from
    page.pick(speech_wav_short)
    page.start()
    page.wait_done()
    assert page.js("return document.documentElement.scrollWidth") <= width
    boxes = page.js(
        """
        return [...document.querySelectorAll('.drop-label, .formats label, button, textarea')]
          .filter(e => e.offsetParent !== null)
          .map(e => { const r = e.getBoundingClientRect();
                      return [e.id || e.textContent.trim(), r.left, r.right, r.height]; });
        """
    )
    assert len(boxes) >= 8
    for name, left, right, height in boxes:
        assert left >= 0 and right <= width, f"{name} sticks out: {left}..{right}"
        assert height >= 40, f"{name} is too small to tap: {height}px"
    page.screenshot("phone")


def test_dark_and_light_follow_the_system(
    api_server: RunningServer, browser: BrowserFactory, speech_wav_short: Path
) -> None:
    page = browser(api_server.base_url).open()

    def background() -> str:
        return str(page.js("return getComputedStyle(document.body).backgroundColor"))

    for scheme, expected in (("light", "rgb(246, 247, 249)"), ("dark", "rgb(15, 18, 22)")):
        page.cdp(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        )
        assert background() == expected
    page.pick(speech_wav_short)
    page.choose_format("vtt")
    page.start()
    page.wait_done()
    page.screenshot("dark")
