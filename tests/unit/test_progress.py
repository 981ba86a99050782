"""Progress and ETA from settled seconds, and how the CLI draws them."""

from __future__ import annotations

import io
import threading

import pytest

from gigaam_api.progress import (
    MIN_RATE_SAMPLE_S,
    Progress,
    ProgressBar,
    Ticker,
    describe_eta,
    describe_progress,
    estimate,
    render_bar,
)


def test_fraction_and_eta_from_the_rate_so_far() -> None:
    progress = estimate(processed_s=300.0, duration_s=1200.0, running_s=60.0)
    assert progress == Progress(0.25, 300.0, 1200.0, 180.0)  # 900 s left at 5 s of audio per s


@pytest.mark.parametrize(
    ("processed_s", "duration_s", "running_s", "expected"),
    [
        (5.0, None, 10.0, Progress(0.0, 5.0, None, None)),  # duration unknown
        (5.0, 0.0, 10.0, Progress(0.0, 5.0, None, None)),  # a container that says 0
        (0.0, 100.0, 10.0, Progress(0.0, 0.0, 100.0, None)),  # nothing settled yet
        (10.0, 100.0, MIN_RATE_SAMPLE_S / 2, Progress(0.1, 10.0, 100.0, None)),  # too early
        (120.0, 100.0, 10.0, Progress(1.0, 100.0, 100.0, 0.0)),  # decoded past the probe
    ],
)
def test_unknowns_stay_unknown(
    processed_s: float, duration_s: float | None, running_s: float, expected: Progress
) -> None:
    assert estimate(processed_s, duration_s, running_s) == expected


@pytest.mark.parametrize(
    ("eta_s", "text"),
    [(None, ""), (42.4, "eta 42 s"), (420.0, "eta 7 min"), (7500.0, "eta 2 h 5 min")],
)
def test_describe_eta(eta_s: float | None, text: str) -> None:
    assert describe_eta(eta_s) == text


def test_describe_progress() -> None:
    assert describe_progress(Progress(0.1, 12.0, 120.0, 90.0)) == "12 of 120 s, eta 2 min"
    assert describe_progress(Progress(0.1, 12.0, 120.0, None)) == "12 of 120 s"
    assert describe_progress(Progress(0.0, 12.0, None, None)) == "12 s"


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.0, "f.wav [..........]   0% 0 s"),
        (0.5, "f.wav [#####.....]  50% 0 s"),
        (1.0, "f.wav [##########] 100% 0 s"),
        (1.7, "f.wav [##########] 100% 0 s"),
        (None, "f.wav 0 s"),
    ],
)
def test_render_bar(fraction: float | None, expected: str) -> None:
    assert render_bar("f.wav", fraction, "0 s", width=10) == expected


def test_progress_without_a_terminal_prints_a_line_per_ten_percent() -> None:
    stream = io.StringIO()
    bar = ProgressBar("x", stream, interactive=False)
    for fraction in (0.05, 0.07, 0.15, 0.16, 0.95, 1.0):
        bar.update(fraction)
    bar.finish()
    percents = [line.split("]")[1].strip() for line in stream.getvalue().splitlines()]
    assert percents == ["5%", "15%", "95%", "100%"]


def test_progress_on_a_terminal_redraws_one_line() -> None:
    stream = io.StringIO()
    bar = ProgressBar("x", stream, interactive=True)
    bar.update(0.25)
    bar.update(0.5)
    bar.finish()
    output = stream.getvalue()
    assert output.count("\r") == 2
    assert output.endswith(render_bar("x", 0.5) + "\n")


def test_ticker_ticks_until_stopped() -> None:
    ticked = threading.Event()
    ticker = Ticker(ticked.set)
    assert ticked.wait(30)
    ticker.stop()
    ticked.clear()
    ticker.stop()  # idempotent
    assert not ticked.is_set()
