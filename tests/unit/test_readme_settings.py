"""The settings tables of README.md and README_ru.md are Settings: the same names, and each
documented default is the value Settings really takes (read as an environment file would be)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gigaam_api.settings import Settings
from tests.fixtures.settings import isolated_settings

ROOT = Path(__file__).resolve().parents[2]
HEADINGS = {"README.md": "## Settings", "README_ru.md": "## Настройки"}
_CODE = re.compile(r"`([^`]*)`")
_UNSET = re.compile(r"^\*\([^)]*\)\*$")  # "*(empty)*", "*(empty = CORS off)*"…
_OFFICIAL = {"official CDN", "официальный CDN"}
OFFICIAL_WEIGHTS_URL = Settings.model_fields["weights_url"].default


def table_rows(readme: str) -> list[tuple[str, str]]:
    """(names cell, default cell) of each row of the README's settings table."""
    text = (ROOT / readme).read_text()
    section = text.split(HEADINGS[readme] + "\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows, f"{readme}: no settings table under {HEADINGS[readme]!r}"
    cells = [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]
    return [(row[0], row[1]) for row in cells]


def documented_defaults(readme: str) -> dict[str, str | None]:
    """NAME -> the default as written (None: documented as unset/empty, or the official CDN)."""
    found: dict[str, str | None] = {}
    for names_cell, default_cell in table_rows(readme):
        names = _CODE.findall(names_cell)
        if _UNSET.match(default_cell) or default_cell in _OFFICIAL:
            values: list[str | None] = [None] * len(names)
        else:
            values = list(_CODE.findall(default_cell))
        assert len(values) == len(names), f"{readme}: {names_cell} | {default_cell}"
        for name, value in zip(names, values, strict=True):
            assert name not in found, f"{readme}: {name} is listed twice"
            found[name] = value
    return found


@pytest.mark.parametrize("readme", sorted(HEADINGS))
def test_the_table_lists_exactly_the_settings(readme: str) -> None:
    documented = documented_defaults(readme)
    assert sorted(documented) == sorted(name.upper() for name in Settings.model_fields)


@pytest.mark.parametrize("readme", sorted(HEADINGS))
@pytest.mark.usefixtures("no_settings_env")
def test_each_documented_default_is_the_real_default(readme: str, tmp_path: Path) -> None:
    defaults = isolated_settings().model_dump()
    documented = documented_defaults(readme)
    env_file = tmp_path / ".env"
    env_file.write_text(
        "".join(f"{name}={value}\n" for name, value in documented.items() if value is not None)
    )
    assert Settings(_env_file=env_file).model_dump() == defaults
    for name, value in documented.items():
        if value is None:  # documented as empty, unset or the official CDN
            default = defaults[name.lower()]
            assert not default or default == OFFICIAL_WEIGHTS_URL, name
