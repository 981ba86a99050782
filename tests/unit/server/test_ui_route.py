"""GET / and /ui/*: the page's files, their security headers, UI_ENABLED, and the package data.

The page's behaviour is tested in a real browser (tests/browser); here only what the server
sends and what the files may contain.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gigaam_api.server.app import create_app
from gigaam_api.server.routes.ui import CONTENT_SECURITY_POLICY, STATIC_DIR
from gigaam_api.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
STATIC_FILES = sorted(path.name for path in STATIC_DIR.iterdir())


def _client(**overrides: object) -> TestClient:
    # no `with`: the lifespan (model loading) is not needed to serve files
    return TestClient(create_app(Settings(_env_file=None, **overrides)))  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["/", *(f"/ui/{name}" for name in STATIC_FILES)])
def test_page_and_assets_carry_the_security_headers(path: str) -> None:
    response = _client().get(path)
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_csp_allows_this_origin_only_and_nothing_inline() -> None:
    directives = dict(part.split(" ", 1) for part in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert "http" not in CONTENT_SECURITY_POLICY


def test_index_is_html_and_scripts_are_javascript_modules() -> None:
    client = _client()
    assert client.get("/").headers["content-type"].startswith("text/html")
    assert "javascript" in client.get("/ui/app.js").headers["content-type"]
    assert client.get("/ui/style.css").headers["content-type"].startswith("text/css")


def test_ui_disabled_serves_no_page() -> None:
    client = _client(ui_enabled=False)
    assert client.get("/").status_code == 404
    assert client.get("/ui/app.js").status_code == 404
    assert client.get("/openapi.json").status_code == 200  # the rest of the app is there


def test_page_is_not_part_of_the_openapi_schema() -> None:
    paths = _client().get("/openapi.json").json()["paths"]
    assert "/" not in paths


def test_static_files_fetch_nothing_from_outside_and_inline_nothing() -> None:
    index = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)", index), "inline script"
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", index), "inline style or handler"
    for name in STATIC_FILES:
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        # the SVG's XML namespace is a name, not a request
        urls = set(re.findall(r"https?://[^\s\"')]+", text)) - {"http://www.w3.org/2000/svg"}
        assert urls == set(), f"{name} refers to {urls}"


def test_every_file_the_page_refers_to_exists() -> None:
    referred: set[str] = set()
    for name in STATIC_FILES:
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        referred |= set(re.findall(r"/ui/([\w.-]+)", text))
        referred |= set(re.findall(r"from \"\./([\w.-]+)\"", text))
    assert referred == set(STATIC_FILES) - {"index.html"}  # each file is used, none missing


def test_wheel_ships_the_static_files(tmp_path: Path) -> None:
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {
            Path(name).name
            for name in archive.namelist()
            if name.startswith("gigaam_api/server/static/")
        }
    assert shipped == set(STATIC_FILES)
