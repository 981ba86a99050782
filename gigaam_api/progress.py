"""How far a transcription has got, and when it should end, from one source: the settled seconds.

`Transcription.processed_s` and the probed duration give the fraction; the rate so far gives
the ETA. The server (jobs API, SSE comments, /health) and the CLI all use `estimate`, so every
view agrees; the CLI draws it with `ProgressBar`. Standard library only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

_BAR_WIDTH = 30
_LINE_STEP_PERCENT = 10
TICK_S = 0.5
"""How often the CLI redraws a local run's progress."""
MIN_RATE_SAMPLE_S = 1.0
"""No ETA until the run has gone this long and settled some audio: the first rate is noise."""


@dataclass(frozen=True)
class Progress:
    """fraction in 0..1 (0 while the duration is unknown); eta_s None while unknown."""

    fraction: float
    processed_s: float
    duration_s: float | None
    eta_s: float | None


def estimate(processed_s: float, duration_s: float | None, running_s: float) -> Progress:
    """Progress of a run that has settled `processed_s` of `duration_s` in `running_s` seconds.

    Args:
        processed_s: audio seconds settled so far (Transcription.processed_s).
        duration_s: the probed (or decoded) duration; None or 0 when unknown.
        running_s: wall seconds since the run started.
    """
    known = duration_s if duration_s and duration_s > 0 else None
    if known is None:
        return Progress(0.0, processed_s, None, None)
    done_s = min(max(processed_s, 0.0), known)
    fraction = done_s / known
    eta_s = None
    if done_s > 0 and running_s >= MIN_RATE_SAMPLE_S:
        eta_s = (known - done_s) * running_s / done_s
    return Progress(fraction, done_s, known, eta_s)


def describe_eta(eta_s: float | None) -> str:
    """'eta 42 s', 'eta 7 min', 'eta 2 h 5 min'; '' while unknown."""
    if eta_s is None:
        return ""
    seconds = round(eta_s)
    if seconds < 60:
        return f"eta {seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"eta {minutes} min"
    return f"eta {minutes // 60} h {minutes % 60} min"


def describe_progress(progress: Progress) -> str:
    """'123 of 456 s, eta 5 min' (just '123 s' while the duration is unknown)."""
    if progress.duration_s is None:
        return f"{progress.processed_s:.0f} s"
    detail = f"{progress.processed_s:.0f} of {progress.duration_s:.0f} s"
    eta = describe_eta(progress.eta_s)
    return f"{detail}, {eta}" if eta else detail


def render_bar(
    label: str, fraction: float | None, detail: str = "", width: int = _BAR_WIDTH
) -> str:
    """One progress line: `label [#####.....]  42% detail` (no bar when the total is unknown)."""
    if fraction is None:
        return f"{label} {detail}".rstrip()
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(fraction * width)
    bar = "#" * filled + "." * (width - filled)
    return f"{label} [{bar}] {int(fraction * 100):3d}% {detail}".rstrip()


class ProgressBar:
    """Progress on stderr: redrawn in place on a terminal, one line per 10 % otherwise (logs)."""

    def __init__(self, label: str, stream: TextIO, interactive: bool) -> None:
        self._label = label
        self._stream = stream
        self._interactive = interactive
        self._next_percent = 0
        self._drawn = False

    def update(self, fraction: float | None, detail: str = "") -> None:
        line = render_bar(self._label, fraction, detail)
        if self._interactive:
            self._stream.write(f"\r\x1b[K{line}")
            self._drawn = True
        elif fraction is not None and fraction * 100 >= self._next_percent:
            self._stream.write(line + "\n")
            self._next_percent = (
                int(fraction * 100) // _LINE_STEP_PERCENT + 1
            ) * _LINE_STEP_PERCENT
        self._stream.flush()

    def finish(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


class Ticker:
    """Calls `tick` every TICK_S in a thread until stop() (which waits for it; idempotent)."""

    def __init__(self, tick: Callable[[], None]) -> None:
        self._tick = tick
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gigaam-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(TICK_S):
            self._tick()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
