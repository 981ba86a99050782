"""Real headless Chromium (Debian's chromium + chromium-driver) driven by Selenium against a real
uvicorn server, and a `Page` helper that speaks in the page's own terms.

Each test gets a new browser with an empty profile (no saved key, no cache). Screenshots go to
build/screenshots/ (see README "Web page" for refreshing the copies in docs/).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from tests.fixtures.audio import stitch
from tests.fixtures.server import RunningServer

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS_DIR = ROOT / "build" / "screenshots"
WAIT_S = 120.0

# As root Chromium needs --no-sandbox; the background-networking flags keep it from calling out
# (this machine's closed network refuses those connections).
_CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)


class Page:
    """The web page in one browser: open it, pick files, press buttons, read what it shows."""

    def __init__(self, driver: webdriver.Chrome, download_dir: Path, base_url: str) -> None:
        self.driver = driver
        self.download_dir = download_dir
        self.base_url = base_url

    # --- navigation and waiting
    def open(self, base_url: str | None = None) -> Page:
        if base_url is not None:
            self.base_url = base_url
        self.driver.get(f"{self.base_url}/")
        self.wait(lambda: self.js("return document.readyState") == "complete", "the page to load")
        return self

    def wait(self, condition: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
        """Poll `condition` until it is truthy; the failure message names `what`."""
        return WebDriverWait(self.driver, timeout_s, poll_frequency=0.05).until(
            lambda _: condition(), message=f"timed out waiting for {what}"
        )

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def cdp(self, command: str, params: dict[str, Any] | None = None) -> Any:
        return self.driver.execute_cdp_cmd(command, params or {})

    # --- elements
    def el(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id: str) -> str:
        return str(self.js("return document.getElementById(arguments[0]).textContent", element_id))

    def visible(self, element_id: str) -> bool:
        return self.el(element_id).is_displayed()

    def output(self) -> str:
        return str(self.js("return document.getElementById('output').value"))

    # --- actions
    def pick(self, path: Path) -> None:
        """What the file chooser does: give the hidden file input a file."""
        self.el("file").send_keys(str(path))
        self.wait(lambda: path.name in self.text("file-info"), "the file's name to show")

    def choose_format(self, value: str) -> None:
        self.driver.find_element(By.CSS_SELECTOR, f"input[name=format][value={value}]").click()

    def set_key(self, key: str) -> None:
        """Type into the key field, once the page has found that the server wants one."""
        self.wait(lambda: self.visible("key-section"), "the key field")
        field = self.el("key")
        field.clear()
        field.send_keys(key)

    def start(self) -> None:
        self.el("start").click()

    def wait_done(self) -> str:
        """Until the job is done and its result shown; returns the status line."""
        self.wait(lambda: not self.el("download").get_attribute("disabled"), "the result")
        return self.text("status")

    def wait_error(self) -> str:
        """Until an error is shown; returns its headline."""
        self.wait(lambda: self.visible("error"), "an error message")
        return self.text("error-title")

    def console_errors(self) -> list[str]:
        return [
            entry["message"]
            for entry in self.driver.get_log("browser")  # type: ignore[no-untyped-call]
            if entry["level"] in ("SEVERE", "ERROR")
        ]

    def screenshot(self, name: str) -> Path:
        """The whole page as build/screenshots/<name>.png."""
        SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
        metrics = self.cdp("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.cdp(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": metrics["width"],
                    "height": metrics["height"],
                    "scale": 1,
                },
            },
        )
        path = SCREENSHOTS_DIR / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def downloaded(self, name: str) -> Path:
        """Until the browser has finished saving `name` in the download folder."""
        path = self.download_dir / name
        self.wait(lambda: path.exists() and path.stat().st_size > 0, f"the download {name}")
        return path


BrowserFactory = Callable[..., Page]


@pytest.fixture
def browser() -> Iterator[BrowserFactory]:
    """new(base_url, language="en-US", width=1000, height=900) -> a Page in a fresh Chromium."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run scripts/install as root"
    assert Path(CHROMEDRIVER).exists(), "chromium-driver is missing: run scripts/install as root"
    drivers: list[webdriver.Chrome] = []
    folders: list[Path] = []

    def new(
        base_url: str, *, language: str = "en-US", width: int = 1000, height: int = 900
    ) -> Page:
        profile = Path(tempfile.mkdtemp(prefix="gigaam-ui-profile-"))
        downloads = Path(tempfile.mkdtemp(prefix="gigaam-ui-downloads-"))
        folders.extend((profile, downloads))
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in _CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        options.add_argument(f"--lang={language}")
        options.add_experimental_option(
            "prefs",
            {
                "intl.accept_languages": language,
                "download.default_directory": str(downloads),
                "download.prompt_for_download": False,
            },
        )
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        drivers.append(driver)
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        return Page(driver, downloads, base_url)

    yield new
    for driver in drivers:
        driver.quit()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


_copies = itertools.count(1)


def fresh_copy(audio: Path, folder: Path) -> Path:
    """`audio` (a 16-bit wav) with one sample one step apart, a different one each call, under
    the same name in `folder`: other bytes, so the server's job sharing (same audio and options,
    same job) cannot hand a test the job another test ran."""
    data = bytearray(audio.read_bytes())
    data[-2 * next(_copies)] ^= 1  # the low byte of a sample near the end
    copy = folder / audio.name
    copy.write_bytes(data)
    return copy


@pytest.fixture(scope="session")
def _speech_ten_minutes(audio_dir: Path, speech_long: Path) -> Path:
    return stitch([speech_long] * 8, audio_dir / "speech_ten_minutes.wav")


@pytest.fixture
def speech_ten_minutes(_speech_ten_minutes: Path, tmp_path: Path) -> Path:
    """speech_long eight times (about 9 min), fresh for this test: still running when a test
    presses Cancel, cuts the connection or waits behind it."""
    return fresh_copy(_speech_ten_minutes, tmp_path)


class CuttableProxy:
    """A loopback TCP proxy in front of a server whose open connections a test can cut at once,
    as a dropped Wi-Fi or a proxy timeout would."""

    def __init__(self, target_url: str) -> None:
        host, port = target_url.removeprefix("http://").split(":")
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Reset every connection open now; new ones are served as before."""
        with self._lock:
            cut, self._open = self._open, []
        for sock in cut:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._listener.close()
        self.cut()


@pytest.fixture
def cuttable() -> Iterator[Callable[[RunningServer], CuttableProxy]]:
    """proxy(server) -> a CuttableProxy in front of it, closed after the test."""
    proxies: list[CuttableProxy] = []

    def start(server: RunningServer) -> CuttableProxy:
        proxies.append(CuttableProxy(server.base_url))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.close()
