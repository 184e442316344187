"""What a process and all its descendants use: the server's CPU time and resident memory.

Triton's Python-backend models run in stub processes of their own, so a server's cost is its
whole tree's.
"""

from __future__ import annotations

import psutil


def tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants; empty if there is none or it is gone."""
    if not pid:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by a process and its descendants (Triton: its Python stubs)."""
    total = 0.0
    for process in tree(pid):
        try:
            times = process.cpu_times()
        except psutil.Error:  # a stub that exited meanwhile
            continue
        total += times.user + times.system
    return total


def tree_rss_mib(pid: int) -> float:
    """Resident MiB of a process and all its descendants; 0 if it is gone."""
    total = 0
    for process in tree(pid):
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20
