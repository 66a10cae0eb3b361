"""Finding the processes that belong to an agent's run.

Every process the engine starts for a run carries ``FACTORY_RUN=<run folder>``
in its environment, and so does everything those processes start unless they
clear their environment on purpose. A process may leave the run's process
group or session (``setsid``, a daemon's double fork), but it cannot leave
its initial environment: ``/proc/<pid>/environ`` still shows it. So a run's
processes are the live ones whose environment names the run, together with
their descendants (which catch a child started with ``env -i`` for as long as
its parent lives).

A QA command is found the same way by its own variable, ``FACTORY_QA_RUN``
(``QA_MARKER``): it is not an agent, so it must not carry ``FACTORY_RUN``,
which the CLI takes as an agent's identity.

Linux only (``/proc``); elsewhere the caller falls back to the process group.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
MARKER = b"FACTORY_RUN="
QA_MARKER = b"FACTORY_QA_RUN="


@dataclass(frozen=True, slots=True)
class RunProcess:
    pid: int
    ppid: int
    pgid: int
    # The run folder named in its environment, or the one of the ancestor it
    # was found through.
    run: str


def proc_available() -> bool:
    return PROC.is_dir()


def _read(path: str) -> bytes:
    """A whole /proc file; plain descriptors, no file object: a scan reads
    one or two files of every process on the machine."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _stat(pid: str) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) of a process, or None if it is gone."""
    try:
        data = _read(f"/proc/{pid}/stat")
    except OSError:
        return None
    try:
        fields = data.rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        return None


def run_of(pid: int | str, marker: bytes = MARKER) -> str | None:
    """The run folder a process names in its environment (``marker``: the
    variable's name and ``=``), if any."""
    try:
        environ = _read(f"/proc/{pid}/environ")
    except OSError:
        return None
    start = environ.find(marker)
    while start > 0 and environ[start - 1] != 0:
        start = environ.find(marker, start + 1)
    if start < 0:
        return None
    end = environ.find(b"\0", start)
    value = environ[start + len(marker) : end if end >= 0 else None]
    return os.fsdecode(value)


def is_live_member(pid: int, run_dir: Path) -> bool:
    """Whether ``pid`` runs (not a zombie) and names ``run_dir``."""
    stat = _stat(str(pid))
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return run_of(pid) == str(run_dir)


def find(belongs: Callable[[str], bool], marker: bytes = MARKER) -> list[RunProcess]:
    """The live processes whose ``FACTORY_RUN`` (or the variable ``marker``
    names) satisfies ``belongs``, and their live descendants."""
    if not proc_available():
        return []
    own = os.getpid()
    names = [name for name in os.listdir(PROC) if name.isdigit() and int(name) != own]
    # Environments first: the kernel makes an ``environ`` much faster than a
    # ``stat`` (which it formats from the task's state), and the usual
    # answer (a run that ended cleanly) is that no process names the run:
    # then no process table is needed. A zombie's environment reads empty.
    candidates: dict[str, str] = {}
    for name in names:
        run = run_of(name, marker)
        if run is not None and belongs(run):
            candidates[name] = run
    if not candidates:
        return []
    table: dict[int, tuple[int, int]] = {}
    marked: dict[int, str] = {}
    for name in names:
        stat = _stat(name)
        if stat is None or stat[0] in ("Z", "X"):
            continue
        pid = int(name)
        table[pid] = (stat[1], stat[2])
        if name in candidates:
            marked[pid] = candidates[name]
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found = dict(marked)
    stack = list(marked)
    while stack:
        parent = stack.pop()
        for child in children.get(parent, ()):
            if child not in found:
                found[child] = found[parent]
                stack.append(child)
    return [RunProcess(pid, table[pid][0], table[pid][1], run) for pid, run in sorted(found.items())]


def of_run(run_dir: Path) -> list[RunProcess]:
    """The live processes of one run."""
    wanted = str(run_dir)
    return find(lambda run: run == wanted)


def of_qa_run(out_dir: Path) -> list[RunProcess]:
    """The live processes of one QA command (``FACTORY_QA_RUN=<out_dir>``)."""
    wanted = str(out_dir)
    return find(lambda run: run == wanted, QA_MARKER)


def of_task(task_runs: Path) -> list[RunProcess]:
    """The live processes of any run of one task (``runs/<task>/*``)."""
    prefix = str(task_runs) + os.sep
    return find(lambda run: run.startswith(prefix))


def command_line(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            data = handle.read()
    except OSError:
        return []
    return [os.fsdecode(part) for part in data.split(b"\0")[:-1]]
