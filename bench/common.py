"""What both benchmarks share: the repository root, the spoken text and the report header.

The speech itself comes from testkit.audio.synthesize_ru, as in the tests."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE_RATE = 16_000
SPEECH = (
    "Ничьих не требуя похвал, счастлив уж я надеждой сладкой, что дева с трепетом любви "
    "посмотрит, может быть, украдкой на песни грешные мои. У лукоморья дуб зелёный; златая цепь "
    "на дубе том: и днём и ночью кот учёный всё ходит по цепи кругом. Идёт направо — песнь "
    "заводит, налево — сказку говорит. Там чудеса: там леший бродит, русалка на ветвях сидит. "
)
"""Russian verse read by espeak-ng: real phonetics for the VAD, any length by repetition."""


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM) in MiB.

    Not ru_maxrss: a child started by fork + exec inherits its parent's maximum there, so a
    benchmark child would report the parent's memory (the checkpoint writer's, ~1.6 GB). VmHWM
    starts afresh at exec; writing "5" to /proc/self/clear_refs resets it.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _git_commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


_SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8")
"""CPU features that decide which kernels torch and ONNX Runtime can use."""


def _cpu_flags() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return "unknown"
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return " ".join(flag for flag in _SPEED_FLAGS if flag in present) or "none of note"
    return "unknown"


def report_header(extra: str = "") -> str:
    """The machine, the commit and the command line, for pasting beside the figures."""
    machine = (
        f"machine: {platform.platform()}, {_cpu_name()}, {os.cpu_count()} logical CPUs, "
        f"python {platform.python_version()}{extra}\ncpu flags: {_cpu_flags()}"
    )
    return f"{machine}\ncommit: {_git_commit()}\n{load_average()}"


def load_average() -> str:
    """The machine's load now: figures taken beside other busy processes are not comparable."""
    one, five, fifteen = os.getloadavg()
    return f"load average (1/5/15 min): {one:.2f} {five:.2f} {fifteen:.2f}"
