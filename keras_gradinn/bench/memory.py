"""Resident memory of the running process, for the benchmark records (Linux, macOS).

Only the standard library: the scale benchmark's Gaussian-process child
imports this without TensorFlow, so that what it measures is its own.
"""

from __future__ import annotations

import os
import resource
import sys

__all__ = ["peak_rss_mib", "rss_mib", "ru_maxrss_mib", "status_rss_mib"]


def rss_mib() -> float:
    """Current resident memory of this process in MiB (Linux)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def ru_maxrss_mib() -> float:
    """`getrusage`'s peak resident memory in MiB; see `peak_rss_mib` for why it overstates."""
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB.

    On Linux `ru_maxrss` survives `exec`: a child started from a parent that
    holds 700 MiB (TensorFlow) reports at least that much. The high-water
    mark of the process's own memory map (`VmHWM`) does not carry the
    parent's, so it is used where available.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return ru_maxrss_mib()


def status_rss_mib(pid: int) -> float:
    """Current resident memory of process `pid` in MiB, or 0 if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
