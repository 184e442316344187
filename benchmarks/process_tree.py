"""What a process and all its descendants use: the server's CPU time and resident memory.

Triton's Python-backend models run in stub processes of their own, so a server's cost is its
whole tree's.
"""

from __future__ import annotations

import psutil


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by a process and its descendants (Triton: its Python stubs)."""
    if not pid:
        return 0.0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:  # a stub that exited meanwhile
            continue
        total += times.user + times.system
    return total


def tree_rss_mib(pid: int) -> float:
    """Resident MiB of a process and all its descendants; 0 if it is gone."""
    if not pid:
        return 0.0
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for process in tree:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20
