"""The hostile-input suite's server, its tally, and the table printed at the end of the run."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.fixtures.server import RunningServer, make_settings, start_server

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
"""Examples per strategy: small and fixed in CI (`make fuzz` runs more)."""

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same inputs on every run: CI cannot flake on a lucky draw
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=(
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ),
)
MAX_UPLOAD_MB = 1
IDLE_TIMEOUT_S = 3.0


@dataclass
class Tally:
    """Every answer the suite got, by strategy, and what was checked after each."""

    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    leak_checks: int = 0
    seconds: float = 0.0

    def count(self, strategy: str, status: int) -> None:
        self.statuses.setdefault(strategy, Counter())[status] += 1

    def table(self) -> str:
        lines = ["hostile inputs: answers by strategy (status: count)"]
        total: Counter[int] = Counter()
        for strategy, statuses in sorted(self.statuses.items()):
            total.update(statuses)
            shown = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
            lines.append(f"  {strategy:<26} {sum(statuses.values()):>5}   {shown}")
        server_errors = sum(n for status, n in total.items() if status >= 500)
        lines.append(
            f"  {'all':<26} {sum(total.values()):>5}   5xx: {server_errors}; clean-up checked "
            f"after {self.leak_checks} inputs (temp files, spool, ffmpeg, worker); "
            f"{self.seconds:.1f} s"
        )
        return "\n".join(lines)


TALLY = Tally()


@pytest.fixture(scope="module")
def fuzz_server(tiny_v3_ctc_checkpoint: Path, server_models_dir: Path) -> Iterator[RunningServer]:
    """MAX_UPLOAD_MB=1 (so a 10 GB body is cut fast), a short idle timeout, no heartbeat."""
    running = start_server(
        make_settings(
            tiny_v3_ctc_checkpoint,
            server_models_dir,
            max_upload_mb=MAX_UPLOAD_MB,
            upload_idle_timeout_s=IDLE_TIMEOUT_S,
            sync_heartbeat_s=0.0,
            max_queue=2,
        )
    )
    started = time.monotonic()
    yield running
    TALLY.seconds += time.monotonic() - started
    running.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.statuses:
        terminalreporter.write_line(TALLY.table())
