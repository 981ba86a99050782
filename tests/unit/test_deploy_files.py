"""The deployment files state what the code expects: Dockerfile, docker-compose.yml, .env.example,
.dockerignore, the Makefile and .ci/run.

No Docker engine runs here, so the files are parsed and their key facts asserted; the healthcheck
command runs against a real local HTTP server and the Makefile's commands under a real `make`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

# PyYAML (a dev dependency) has no type stubs here.
import yaml  # type: ignore[import-untyped]

from gigaam_api.settings import Settings
from tests.fixtures.cdn import FakeCdn
from tests.fixtures.settings import isolated_settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def _dockerfile_stages() -> list[list[Instruction]]:
    """Instructions grouped by stage (a FROM starts one); stage 0 holds the ARGs before any FROM."""
    logical_lines: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical_lines.append(pending + line)
        pending = ""
    stages: list[list[Instruction]] = [[]]
    for line in logical_lines:
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append(Instruction(keyword.upper(), arguments.strip()))
    return stages


def _all_instructions() -> list[Instruction]:
    return [instruction for stage in _dockerfile_stages() for instruction in stage]


def _args(keyword: str, stage: list[Instruction]) -> list[str]:
    return [instruction.arguments for instruction in stage if instruction.keyword == keyword]


def _env(stage: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for arguments in _args("ENV", stage):
        for pair in shlex.split(arguments):
            name, _, value = pair.partition("=")
            values[name] = value
    return values


def _arg_defaults() -> dict[str, str]:
    defaults: dict[str, str] = {}
    for arguments in _args("ARG", _all_instructions()):
        name, _, value = arguments.partition("=")
        defaults[name] = value
    return defaults


def _script_default(name: str) -> str:
    """The `${NAME:-default}` / `${NAME-default}` default of a variable in scripts/install."""
    text = (ROOT / "scripts" / "install").read_text()
    match = re.search(rf"^{name}=\$\{{{name}:?-([^}}]*)\}}$", text, flags=re.MULTILINE)
    assert match, f"{name} not found in scripts/install"
    return match.group(1)


def _healthcheck_command(arguments: str) -> list[str]:
    _, _, exec_form = arguments.partition("CMD ")
    command = json.loads(exec_form)
    assert isinstance(command, list)
    return [str(part) for part in command]


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _service(name: str) -> dict[str, Any]:
    service = _compose()["services"][name]
    assert isinstance(service, dict)
    return service


def _settings_defaults() -> Settings:
    return isolated_settings()


# ------------------------------------------------------------------------------ Dockerfile


def test_dockerfile_builds_in_two_stages_on_slim_python_3_12_as_ci_tests() -> None:
    stages = _dockerfile_stages()
    froms = [stage[0].arguments for stage in stages[1:]]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    image = _arg_defaults()["PYTHON_IMAGE"]
    # Debian 12, as on CI: the image's ffmpeg is the one the tests ran against
    assert image == "python:3.12-slim-bookworm"
    assert "PYTHON=$(python_for 3.12) VENV=.venv-py312 scripts/install" in _ci_commands()
    assert ".venv-py312/bin/python -m pytest" in _ci_commands()


def test_builder_installs_cpu_torch_then_the_project_at_the_pinned_versions() -> None:
    defaults = _arg_defaults()
    assert defaults["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert defaults["TORCH_INDEX_URL"] == _script_default("TORCH_INDEX_URL")
    assert _script_default("CONSTRAINTS") == "constraints.txt"
    runs = " ".join(_args("RUN", _dockerfile_stages()[1]))
    torch_step = (
        'pip install -q --no-deps torch -c constraints.txt --index-url "${TORCH_INDEX_URL}"'
    )
    project_step = "pip install -q . -c constraints.txt"
    assert torch_step in runs
    # torch comes before the project, so the project's torch requirement is already met
    assert runs.index(torch_step) < runs.index(project_step)
    script = (ROOT / "scripts" / "install").read_text()
    assert 'install -q --no-deps torch -c "$CONSTRAINTS"' in script
    assert 'install -q -e . -c "$CONSTRAINTS"' in script


def test_runtime_runs_as_uid_and_gid_1000_with_ffmpeg_from_debian() -> None:
    runtime = _dockerfile_stages()[-1]
    runs = " ".join(_args("RUN", runtime))
    assert "apt-get install -y --no-install-recommends ffmpeg" in runs
    assert "groupadd --gid 1000" in runs
    assert "useradd --uid 1000 --gid 1000" in runs
    assert "mkdir -p /data/models /data/cache" in runs
    assert "chown -R 1000:1000 /data" in runs
    assert _args("USER", runtime) == ["1000:1000"]
    # USER comes before the entrypoint, so nothing runs as root at run time
    keywords = [instruction.keyword for instruction in runtime]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")


def test_runtime_keeps_weights_in_the_data_volume_and_exposes_the_port() -> None:
    runtime = _dockerfile_stages()[-1]
    env = _env(runtime)
    assert env["MODELS_DIR"] == "/data/models"
    assert env["MODELS_DIR"] == _service("gigaam-api")["environment"]["MODELS_DIR"]
    assert env["CACHE_DIR"] == "/data/cache"
    assert env["CACHE_DIR"] == _service("gigaam-api")["environment"]["CACHE_DIR"]
    assert env["PORT"] == "8000"
    # one volume for everything that persists: weights in /data/models, job results in /data/cache
    assert _args("VOLUME", runtime) == ['["/data"]']
    # Docker drops changes made below a VOLUME after it is declared: /data is chowned before
    chown = next(
        i for i, step in enumerate(runtime) if "chown -R 1000:1000 /data" in step.arguments
    )
    assert chown < [step.keyword for step in runtime].index("VOLUME")
    assert _args("EXPOSE", runtime) == [str(_settings_defaults().port)]
    assert json.loads(_args("ENTRYPOINT", runtime)[0]) == ["gigaam-api"]
    assert json.loads(_args("CMD", runtime)[0]) == ["serve"]


def test_no_weights_or_local_files_are_copied_into_the_image() -> None:
    copies = _args("COPY", _all_instructions())
    sources = [
        part for arguments in copies for part in arguments.split()[:-1] if not part.startswith("--")
    ]
    assert sorted(sources) == [
        "/opt/venv",
        "README.md",
        "constraints.txt",
        "gigaam_api",
        "pyproject.toml",
    ]
    assert _args("ADD", _all_instructions()) == []
    ignore = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    # everything is excluded, then only the inputs of `pip install . -c constraints.txt`
    assert ignore[0] == "*"
    assert sorted(line for line in ignore if line.startswith("!")) == [
        "!README.md",
        "!constraints.txt",
        "!gigaam_api/",
        "!pyproject.toml",
    ]


def test_healthcheck_waits_600_s_and_needs_only_python() -> None:
    (arguments,) = _args("HEALTHCHECK", _dockerfile_stages()[-1])
    assert "--start-period=600s" in arguments.split()
    command = _healthcheck_command(arguments)
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2]
    assert "/health" in command[2]


# ------------------------------------------------------------------------------ healthcheck, run


class _HealthHandler(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean."""


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HealthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _run_healthcheck(port: int) -> int:
    (arguments,) = _args("HEALTHCHECK", _dockerfile_stages()[-1])
    command = _healthcheck_command(arguments)
    command[0] = sys.executable
    env = {"PORT": str(port), "PATH": "/usr/bin:/bin"}
    return subprocess.run(command, env=env, capture_output=True, timeout=30).returncode


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command_passes_only_on_a_2xx_health(
    health_server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch, status: int, healthy: bool
) -> None:
    monkeypatch.setattr(_HealthHandler, "status", status)
    returncode = _run_healthcheck(health_server.server_address[1])
    assert (returncode == 0) is healthy


# ------------------------------------------------------------------------------ docker-compose.yml


def test_compose_service_publishes_8000_with_the_named_data_volume() -> None:
    service = _service("gigaam-api")
    assert service["build"] == {"context": "."}
    assert service["image"] == "gigaam-api:latest"
    assert service["env_file"] == ".env"
    assert service["ports"] == ["8000:8000"]
    # a named volume starts with the image's /data, owned by UID 1000: no chown on a fresh host
    assert service["volumes"] == ["gigaam-api-data:/data"]
    assert _compose()["volumes"] == {"gigaam-api-data": {"name": "gigaam-api-data"}}
    assert service["restart"] == "unless-stopped"
    # the container's own paths win over a .env written for native runs
    assert service["environment"] == {
        "MODELS_DIR": "/data/models",
        "CACHE_DIR": "/data/cache",
        "HOST": "0.0.0.0",
        "PORT": "8000",
    }


def test_compose_healthcheck_is_the_dockerfile_one_with_a_600_s_start_period() -> None:
    healthcheck = _service("gigaam-api")["healthcheck"]
    assert healthcheck["start_period"] == "600s"
    (arguments,) = _args("HEALTHCHECK", _dockerfile_stages()[-1])
    assert healthcheck["test"] == ["CMD", *_healthcheck_command(arguments)]


def test_compose_resource_limits_are_offered_commented_out() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r"^\s*# mem_limit: \S+$", text, flags=re.MULTILINE)
    assert re.search(r"^\s*# cpus: \S+$", text, flags=re.MULTILINE)
    assert "mem_limit" not in _service("gigaam-api")


def test_download_weights_is_a_tools_profile_job_writing_to_the_same_volume() -> None:
    job = _service("download-weights")
    assert job["profiles"] == ["tools"]
    assert job["image"] == _service("gigaam-api")["image"]
    assert job["command"] == ["download"]
    assert job["volumes"] == _service("gigaam-api")["volumes"]
    assert job["environment"] == {"MODELS_DIR": "/data/models"}
    assert job["restart"] == "no"
    assert "profiles" not in _service("gigaam-api")


def test_compose_documents_the_bind_mount_with_its_chown() -> None:
    comments = " ".join(
        line.strip("# ")
        for line in (ROOT / "docker-compose.yml").read_text().splitlines()
        if line.startswith("#")
    )
    assert "`gigaam-api-data:/data`" in comments
    assert "`./data:/data`" in comments
    assert "mkdir -p data && sudo chown -R 1000:1000 data" in comments


# ------------------------------------------------------------------------------ .env.example

_SETTING_LINE = re.compile(r"^# ([A-Z][A-Z0-9_]*)=(.*)$")


def _env_example_settings() -> dict[str, tuple[str, str]]:
    """NAME -> (value, the comment line above it)."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    found: dict[str, tuple[str, str]] = {}
    for index, line in enumerate(lines):
        match = _SETTING_LINE.match(line)
        if match:
            assert match.group(1) not in found, f"{match.group(1)} is listed twice"
            found[match.group(1)] = (match.group(2), lines[index - 1])
    return found


def test_env_example_lists_exactly_the_settings_each_with_a_comment() -> None:
    listed = _env_example_settings()
    assert sorted(listed) == sorted(name.upper() for name in Settings.model_fields)
    for name, (_, comment) in listed.items():
        assert comment.startswith("# ") and not _SETTING_LINE.match(comment), name


@pytest.mark.usefixtures("no_settings_env")
def test_env_example_values_are_the_defaults(tmp_path: Path) -> None:
    uncommented = tmp_path / ".env"
    uncommented.write_text(
        "".join(f"{name}={value}\n" for name, (value, _) in _env_example_settings().items())
    )
    assert Settings(_env_file=uncommented).model_dump() == _settings_defaults().model_dump()


def test_env_example_explains_models_dir_for_native_and_docker_runs() -> None:
    text = (ROOT / ".env.example").read_text()
    assert "~/.cache/gigaam-api" in text
    assert "/data/models" in text


# ------------------------------------------------------------------------------ Makefile

_TARGETS = (
    "install",
    "install-dev",
    "run",
    "check",
    "pre-commit",
    "test",
    "test-integration",
    "test-all",
    "test-real",
    "bench",
    "download-weights-local",
    "build-docker",
    "up",
    "down",
    "logs",
    "download-weights",
    "clean",
)


def _make_recipes() -> dict[str, tuple[str, str]]:
    """target -> (its `##` help text, its recipe joined into one line)."""
    recipes: dict[str, tuple[str, str]] = {}
    current = ""
    for line in (ROOT / "Makefile").read_text().splitlines():
        target = re.match(r"^([.\w-]+):[^=]*?(?:## (.*))?$", line)
        if target:
            current = target.group(1)
            recipes[current] = (target.group(2) or "", "")
        elif line.startswith("\t") and current:
            help_text, recipe = recipes[current]
            recipes[current] = (help_text, recipe + " " + line.strip().rstrip("\\"))
    return recipes


def _make_dry_run(*args: str) -> list[str]:
    """The commands `make -n` would run, one per line."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = result.stdout.replace("\\\n", " ").splitlines()
    return [" ".join(line.split()) for line in lines if line.strip()]


def test_makefile_has_every_target_with_help() -> None:
    recipes = _make_recipes()
    for target in (*_TARGETS, "help"):
        assert recipes[target][0], f"make {target} has no '## help' text"
    phony = re.search(r"^\.PHONY:((?:.*\\\n)*.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert phony
    assert set(_TARGETS) <= set(phony.group(1).replace("\\", " ").split())


def test_makefile_test_targets_split_the_suite() -> None:
    assert _make_dry_run("test") == [".venv/bin/python -m pytest tests/unit"]
    assert _make_dry_run("test-integration") == [".venv/bin/python -m pytest tests/integration"]
    assert _make_dry_run("test-all") == [".venv/bin/python -m pytest"]
    assert _make_dry_run("test-real") == [
        ".venv/bin/python -m pytest -m real_weights tests/real_weights"
    ]
    assert _make_dry_run("check") == ["scripts/check"]
    assert _make_dry_run("pre-commit") == [
        ".venv/bin/ruff format .",
        ".venv/bin/ruff check --fix .",
        ".venv/bin/mypy",
        ".venv/bin/python -m pytest tests/unit",
    ]


def test_makefile_installs_the_server_alone_or_with_the_test_tools() -> None:
    assert _make_dry_run("install") == ["scripts/install"]
    assert _make_dry_run("install-dev") == ["WITH_TEST_TOOLS=1 scripts/install"]


def test_build_docker_targets_linux_amd64_unless_told_otherwise() -> None:
    assert _make_dry_run("build-docker") == [
        "docker build --platform linux/amd64 -t gigaam-api:latest ."
    ]
    assert _make_dry_run("build-docker", "PLATFORM=linux/arm64") == [
        "docker build --platform linux/arm64 -t gigaam-api:latest ."
    ]


def test_makefile_commands_match_the_documented_ones() -> None:
    (run,) = _make_dry_run("run")
    assert run == (
        ".venv/bin/uvicorn --factory gigaam_api.server.app:create_app --reload "
        "--reload-dir gigaam_api --no-access-log --host 127.0.0.1 --port 8000"
    )
    recipes = {target: " ".join(recipe.split()) for target, (_, recipe) in _make_recipes().items()}
    assert "-m bench.bench_engines" in recipes["bench"]
    assert "-m bench.bench_pipeline" in recipes["bench"]
    # `run SERVICE ARGS` replaces the service's command, so the recipe names `download` itself
    assert recipes["download-weights"].endswith(
        "run --rm --build download-weights download $(MODELS)"
    )
    assert recipes["download-weights-local"] == "$(VENV)/gigaam-api download $(MODELS)"


def test_no_make_target_sets_a_setting() -> None:
    """Settings come from the environment, then .env, then the defaults; make passes them on.

    HOST and PORT are the one exception, documented: they are where `make run`'s development
    server (uvicorn --reload) listens, 127.0.0.1:8000 unless given on make's command line.
    """
    lines = (ROOT / "Makefile").read_text().splitlines()
    code = "\n".join(line for line in lines if not line.startswith("#"))
    for name in set(Settings.model_fields) - {"host", "port"}:
        assert not re.search(rf"\b{name.upper()}\s*[:?]?=", code), name


def test_models_dir_from_the_environment_reaches_the_cli_through_make_with_home_expanded(
    tmp_path: Path, fake_cdn: FakeCdn
) -> None:
    settings = {name.upper() for name in Settings.model_fields}
    env = {name: value for name, value in os.environ.items() if name.upper() not in settings}
    env |= {
        "HOME": str(tmp_path / "home"),
        "MODELS_DIR": "~/weights",
        "WEIGHTS_URL": fake_cdn.url,  # serves nothing: the download stops at its 404
    }
    venv = f"VENV={Path(sys.executable).parent}"
    result = subprocess.run(
        ["make", "-C", str(ROOT), "download-weights-local", "MODELS=v1_ctc", venv],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode != 0
    assert "v1_ctc.ckpt failed: HTTP 404" in result.stderr
    # the CLI created MODELS_DIR before fetching: ~ became the home directory, not a ./~ folder
    assert (tmp_path / "home" / "weights").is_dir()
    assert not (ROOT / "~").exists()


# ------------------------------------------------------------------------------ .ci/run


def _ci_commands() -> str:
    return (ROOT / ".ci" / "run").read_text()


def test_ci_fails_on_any_failing_step_and_never_excuses_pytest() -> None:
    ci = _ci_commands()
    assert "set -euo pipefail" in ci.splitlines()
    assert "|| true" not in ci
    assert "$?" not in ci  # no `|| [ $? -eq 5 ]`: pytest's "no tests collected" is a failure
    steps = [line for line in ci.splitlines() if line and not line.startswith(("#", " "))]
    assert "scripts/check" in steps
    assert "PYTHON=$(python_for 3.11) scripts/check-floors" in steps
