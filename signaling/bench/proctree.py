"""CPU of process trees from /proc, for the benchmarks: a snapshot of every process (name,
parent, utime + stime), the trees in it, and the load average to print with each number."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


Table = dict[int, tuple[str, int, float]]


def _stat(pid: int) -> tuple[str, int, float]:
    """comm, parent pid and utime + stime (s) of ``pid``."""
    text = Path(f"/proc/{pid}/stat").read_text()
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def processes() -> Table:
    """Every live process: pid → (comm, parent pid, CPU seconds)."""
    found: Table = {}
    for pid in (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()):
        with contextlib.suppress(OSError, ValueError):  # gone meanwhile
            found[pid] = _stat(pid)
    return found


def descendants(table: Table, root: int) -> set[int]:
    """``root`` and every process under it."""
    tree = {root}
    while True:
        grown = tree | {pid for pid, (_, parent, _) in table.items() if parent in tree}
        if grown == tree:
            return tree
        tree = grown


def tree_roots(table: Table, ancestor: int, name: str) -> set[int]:
    """Processes under ``ancestor`` called ``name`` whose parent is not: e.g. the browser
    processes of every Chromium started, each with its renderers, GPU and utility processes."""

    def named(pid: int) -> bool:
        return table.get(pid, ("", 0, 0.0))[0] == name

    return {pid for pid in descendants(table, ancestor) if named(pid) and not named(table[pid][1])}


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
