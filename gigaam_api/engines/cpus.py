"""How many CPUs this process may use: the cgroup CPU quota (a compose `cpus:` limit), else the
affinity mask, else os.cpu_count(). The default of NUM_THREADS; no torch, no ONNX Runtime here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def available_cpus(cgroup_root: Path = CGROUP_ROOT, self_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """The CPUs this process can keep busy (at least 1): the smallest of the affinity mask and
    the cgroup quota rounded up (1.5 CPUs → 2 threads)."""
    if hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:  # macOS
        count = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, self_cgroup)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)


def cgroup_cpu_quota(cgroup_root: Path, self_cgroup: Path) -> float | None:
    """CPUs allowed by the cgroup (v2 `cpu.max`, or v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`)
    of this process and its ancestors; None when unlimited or unknown."""
    limits: list[float] = []
    for directory in _cgroup_directories(cgroup_root, self_cgroup):
        limit = _v2_limit(directory / "cpu.max")
        if limit is None:
            limit = _v1_limit(directory)
        if limit is not None:
            limits.append(limit)
    return min(limits) if limits else None


def _cgroup_directories(cgroup_root: Path, self_cgroup: Path) -> list[Path]:
    """The process's cgroup directories (v2 unified, and v1 cpu controllers), innermost first,
    then each ancestor up to the mount point."""
    relative: list[str] = []
    try:
        for line in self_cgroup.read_text(encoding="ascii").splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "" or "cpu" in controllers.split(","):  # v2: "0::/path"
                relative.append(path)
    except (OSError, ValueError):
        pass
    bases = [cgroup_root, cgroup_root / "cpu", cgroup_root / "cpu,cpuacct"]
    directories: list[Path] = []
    for base in bases:
        for path in relative or ["/"]:
            current = base / path.lstrip("/")
            while True:
                if current not in directories:
                    directories.append(current)
                if current == base:
                    break
                current = current.parent
    return directories


def _v2_limit(cpu_max: Path) -> float | None:
    try:
        quota, period = cpu_max.read_text(encoding="ascii").split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max" or float(period) <= 0:
        return None
    return float(quota) / float(period)


def _v1_limit(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text(encoding="ascii"))
        period = int((directory / "cpu.cfs_period_us").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:  # -1 means no limit
        return None
    return quota / period
