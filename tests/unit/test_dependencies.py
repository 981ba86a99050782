"""pyproject.toml, constraints.txt and constraints-dev.txt agree with the code and with the venv.

The package imports only what it declares, every declared requirement has a floor (which
scripts/check-floors installs and tests), and the constraints files pin exactly the packages the
project pulls in. The tests marked `pins` also check that this venv holds the pinned versions, so
CI tests what the Docker image ships; scripts/check-floors leaves them out.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable, Set
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCAL_PACKAGES = {"gigaam_api", "tests", "bench", "testkit"}
CUDA_RUNTIME = re.compile(r"nvidia-.*|cuda-.*|triton")
"""PyPI's Linux torch (CI's Python 3.12 venv) brings its CUDA runtime; the CPU builds of the image
and of the Python 3.11 venv have none, so these are never pinned."""


def _pyproject_requirements(extra: str | None = None) -> list[Requirement]:
    with (ROOT / "pyproject.toml").open("rb") as stream:
        project = tomllib.load(stream)["project"]
    specs = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return [Requirement(spec) for spec in specs]


def _pins(file_name: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / file_name).read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name] = version
    return pins


def _closure(roots: Iterable[Requirement]) -> set[str]:
    """The installed distributions that `roots` need, directly or not, on this interpreter."""
    needed: set[str] = set()
    pending = list(roots)
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in needed or CUDA_RUNTIME.fullmatch(name):
            continue
        needed.add(name)
        extras = {"", *requirement.extras}
        for spec in importlib.metadata.requires(name) or []:
            child = Requirement(spec)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
                pending.append(child)
    return needed


def _third_party_imports(*folders: str) -> dict[str, set[Path]]:
    """Top-level module -> the files importing it, for every absolute non-stdlib import."""
    found: dict[str, set[Path]] = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.partition(".")[0]
                    if top not in sys.stdlib_module_names and top not in LOCAL_PACKAGES:
                        found.setdefault(top, set()).add(path.relative_to(ROOT))
    return found


def _undeclared(imports: dict[str, set[Path]], declared: Set[str]) -> list[str]:
    providers = importlib.metadata.packages_distributions()
    problems = []
    for module, files in sorted(imports.items()):
        distributions = {canonicalize_name(name) for name in providers.get(module, [])}
        if not distributions & declared:
            where = ", ".join(sorted(str(path) for path in files))
            problems.append(
                f"{module} (from {sorted(distributions) or 'nothing installed'}) in {where}"
            )
    return problems


# ------------------------------------------------------------------------------ declarations


def test_the_package_imports_only_declared_runtime_dependencies() -> None:
    declared = {canonicalize_name(r.name) for r in _pyproject_requirements()}
    assert _undeclared(_third_party_imports("gigaam_api"), declared) == []


def test_tests_benches_and_testkit_import_only_declared_dependencies() -> None:
    declared = {
        canonicalize_name(r.name)
        for r in [*_pyproject_requirements(), *_pyproject_requirements("dev")]
    }
    assert _undeclared(_third_party_imports("tests", "bench", "testkit"), declared) == []


@pytest.mark.parametrize("extra", [None, "dev"])
def test_every_requirement_has_a_floor_for_check_floors(extra: str | None) -> None:
    for requirement in _pyproject_requirements(extra):
        floors = [spec for spec in requirement.specifier if spec.operator == ">="]
        assert len(floors) == 1, f"{requirement} needs exactly one >= floor"


# ------------------------------------------------------------------------------ constraints files


@pytest.mark.parametrize("file_name", ["constraints.txt", "constraints-dev.txt"])
def test_constraints_are_exact_sorted_normalised_pins(file_name: str) -> None:
    lines = [
        line for line in (ROOT / file_name).read_text().splitlines() if not line.startswith("#")
    ]
    names = []
    for line in lines:
        name, _, version = line.partition("==")
        assert name == canonicalize_name(name), line
        assert str(Version(version)) == version, line
        names.append(name)
    assert names == sorted(set(names)), f"{file_name}: keep one line per package, sorted by name"


def test_a_package_is_pinned_in_one_file_only() -> None:
    assert set(_pins("constraints.txt")) & set(_pins("constraints-dev.txt")) == set()


@pytest.mark.pins
def test_constraints_pin_exactly_the_runtime_packages() -> None:
    needed = _closure(_pyproject_requirements())
    pinned = set(_pins("constraints.txt"))
    assert sorted(needed - pinned) == [], "not pinned: add name==version lines (or scripts/pin)"
    assert sorted(pinned - needed) == [], "pinned but no longer needed: remove these lines"


@pytest.mark.pins
def test_dev_constraints_pin_exactly_what_the_test_tools_add() -> None:
    runtime = _closure(_pyproject_requirements())
    needed = _closure(_pyproject_requirements("dev")) - runtime
    pinned = set(_pins("constraints-dev.txt"))
    assert sorted(needed - pinned) == [], "not pinned: add name==version lines (or scripts/pin)"
    assert sorted(pinned - needed) == [], "pinned but no longer needed: remove these lines"


@pytest.mark.pins
@pytest.mark.parametrize("file_name", ["constraints.txt", "constraints-dev.txt"])
def test_the_venv_holds_the_pinned_versions(file_name: str) -> None:
    installed = {
        name: importlib.metadata.version(name).partition("+")[0]  # 2.13.0+cpu is torch==2.13.0
        for name in _pins(file_name)
    }
    assert installed == _pins(file_name), "reinstall with scripts/install (or update the pins)"
