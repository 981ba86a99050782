"""Shared fixtures live in tests/fixtures/; each module there is a pytest plugin."""

pytest_plugins = [
    "tests.fixtures.settings",
    "tests.fixtures.checkpoints",
    "tests.fixtures.cdn",
    "tests.fixtures.audio",
    "tests.fixtures.server",
    "tests.fixtures.processes",
]
