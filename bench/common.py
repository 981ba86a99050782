"""What both benchmarks share: the repository root, the spoken text and the report header."""

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


def speak(path: Path, repeats: int) -> Path:
    """SPEECH read `repeats` times by espeak-ng (Russian voice) into a wav file."""
    subprocess.run(["espeak-ng", "-v", "ru", "-w", str(path), SPEECH * repeats], check=True)
    return path


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


_FLAGS = {
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "amx_int8": "AMX-INT8",
}


def cpu_flags() -> str:
    """The instruction-set extensions that decide int8 and fp32 speed, as /proc/cpuinfo lists."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return "unknown"
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return ", ".join(name for flag, name in _FLAGS.items() if flag in present) or "none"
    return "unknown"


def report_header(extra: str = "") -> str:
    """The machine, the commit and the command line, for pasting beside the figures."""
    machine = (
        f"machine: {platform.platform()}, {_cpu_name()} ({cpu_flags()}), {os.cpu_count()} "
        f"logical CPUs, python {platform.python_version()}{extra}"
    )
    return f"{machine}\ncommit: {_git_commit()}"
