"""Which process owns a run: the ``dvc`` process that stands for a pipeline execution, found by
walking up ``/proc``, and whether a recorded owner still runs.

A process is told apart from a later one with the same pid by its start time, so a reused pid
is another owner.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Owner:
    """A process on a host, told apart from a later process with the same pid by its start."""

    host: str
    pid: int
    start: str

    def tag(self) -> str:
        return f"{self.host}:{self.pid}:{self.start}"

    @classmethod
    def parse(cls, tag: str) -> Owner | None:
        parts = tag.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])


def _proc_stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time in clock ticks since boot) from /proc, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return int(fields[1]), fields[19]


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _is_dvc(argv: list[str]) -> bool:
    return any(os.path.basename(a) == "dvc" for a in argv[:2]) or argv[1:3] == ["-m", "dvc"]


def process_owner(pid: int | None = None) -> Owner:
    pid = os.getpid() if pid is None else pid
    stat = _proc_stat(pid)
    return Owner(socket.gethostname(), pid, stat[1] if stat else "")


def execution_owner() -> Owner:
    """The process that stands for this pipeline execution: the nearest ``dvc`` ancestor
    (``dvc repro``, ``dvc exp run``, a queue worker's ``dvc exp exec-run``), else this process
    (a stage run by hand is an execution of its own)."""
    pid = os.getppid()
    for _ in range(32):
        stat = _proc_stat(pid)
        if stat is None or pid <= 1:
            break
        if _is_dvc(_cmdline(pid)):
            return Owner(socket.gethostname(), pid, stat[1])
        pid = stat[0]
    return process_owner()


def is_alive(owner: Owner) -> bool | None:
    """Whether ``owner`` still runs; None when that cannot be told (another host)."""
    if owner.host != socket.gethostname():
        return None
    stat = _proc_stat(owner.pid)
    if stat is None:
        return False
    return not owner.start or stat[1] == owner.start
