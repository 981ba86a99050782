"""NUM_THREADS's default: the cgroup CPU quota (v2 and v1, nested), else the affinity mask."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gigaam_api.engines.cpus import available_cpus, cgroup_cpu_quota


def _cgroup(tmp_path: Path, files: dict[str, str], membership: str) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    root.mkdir(parents=True)
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    self_cgroup = tmp_path / "self-cgroup"
    self_cgroup.write_text(membership)
    return root, self_cgroup


@pytest.mark.parametrize(
    ("files", "membership", "quota"),
    [
        ({"cpu.max": "200000 100000\n"}, "0::/\n", 2.0),  # compose cpus: 2 (v2, namespaced)
        ({"cpu.max": "150000 100000\n"}, "0::/\n", 1.5),
        ({"cpu.max": "max 100000\n"}, "0::/\n", None),  # no limit
        (  # the limit of an ancestor counts (v2, not namespaced)
            {"cpu.max": "max 100000", "system.slice/docker-1.scope/cpu.max": "max 100000",
             "system.slice/cpu.max": "300000 100000"},
            "0::/system.slice/docker-1.scope\n",
            3.0,
        ),
        (  # v1: cpu and cpuacct mounted together
            {"cpu,cpuacct/cpu.cfs_quota_us": "100000", "cpu,cpuacct/cpu.cfs_period_us": "100000"},
            "4:cpu,cpuacct:/\n0::/\n",
            1.0,
        ),
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, "1:cpu:/\n", None),
        ({}, "0::/\n", None),  # no cgroup files at all
    ],
)  # fmt: skip
def test_cgroup_quota(
    tmp_path: Path, files: dict[str, str], membership: str, quota: float | None
) -> None:
    assert cgroup_cpu_quota(*_cgroup(tmp_path, files, membership)) == quota


def test_available_cpus_is_the_quota_rounded_up_within_the_affinity_mask(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    half = _cgroup(tmp_path / "a", {"cpu.max": "50000 100000"}, "0::/")
    assert available_cpus(*half) == 1
    huge = _cgroup(tmp_path / "b", {"cpu.max": "6400000 100000"}, "0::/")
    assert available_cpus(*huge) == affinity  # never more threads than usable cores
    none = _cgroup(tmp_path / "c", {}, "garbage without colons")
    assert available_cpus(*none) == affinity
