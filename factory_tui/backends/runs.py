"""One agent run, on disk and as processes.

    .factory/runs/<task>/<attempt>/
        prompt.md       what the agent was asked
        run.json        argv, worktree, timeout, lease token, the supervisor's pid;
                        written before the agent starts (without the pid), so
                        that no crash can leave a run nobody knows about
        output.raw      the agent's stdout and stderr, as written
        transcript.log  the same, as readable lines
        agent.pid       the agent's pid
        exit.code       its exit status, written by the supervisor when it ends
        exit.json       how the run ended, written by the engine when it is done

The agent runs under a supervisor that is a three-line shell script: it
starts the agent with its output going to ``output.raw``, records its pid,
waits, and records its exit status. A shell costs a millisecond where a
Python supervisor costs twenty, and it is all that is needed: because the
agent writes to a file and its status lands in a file, the agent outlives
the engine that started it, and the next engine (after a crash, or taking
over from a console that quit) reads the same files and finishes the run.
The shell leads a process group of its own, and every process of the run
carries ``FACTORY_RUN`` in its environment, so stopping a run stops the agent
and everything it started, even what left the group (``processes.py``).

Run folders and their files are the owner's alone (0700 and 0600): prompts
and transcripts can hold anything an agent read or printed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from factory_tui.backends import faults, processes
from factory_tui.backends.agent_output import Progress, parser_for
from factory_tui.text import literal

SHELL = "/bin/sh"
# "$@" is the agent's argv, passed as arguments: never parsed by the shell.
# $1 is the umask the agent gets (the engine's own); the supervisor's files
# (output.raw, agent.pid, exit.code) are made under 077, the owner's alone.
RUN_SCRIPT = (
    "agent_umask=$1; shift; umask 077\n"
    '( umask "$agent_umask" && exec "$@" ) >> "$FACTORY_RUN/output.raw" 2>&1 < /dev/null &\n'
    'echo $! > "$FACTORY_RUN/agent.pid"\n'
    "wait $!\n"
    'echo $? > "$FACTORY_RUN/exit.code"\n'
)
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
# How long a stopped agent gets to exit after SIGTERM before SIGKILL.
GRACE_SECONDS = 1.0
# Output is parsed this much at a time. Every line of a chunk becomes several
# Python objects at once, so the chunk sets the engine's peak memory: 4 MB
# chunks of short lines took the engine past 200 MB; 256 KB keeps it near
# its idle size and is no slower.
CHUNK = 256 << 10
TRANSCRIPT_LINE_LIMIT = 10_000
PROGRESS_TEXT_LIMIT = 300
SUMMARY_LIMIT = 2000
FAILURE_LINES = 5
ICONS = {"text": "⏺", "tool": "⚙", "tool_result": "↳", "result": "✓", "error": "✗", "system": "·"}


def transcript_line(item: Progress) -> str:
    # No raw control character reaches the file: `tail -f transcript.log`
    # must be safe in a terminal (the raw stream stays in output.raw).
    text = literal(item.text.replace("\r", " ").replace("\n", " ⏎ "))
    if len(text) > TRANSCRIPT_LINE_LIMIT:
        text = text[: TRANSCRIPT_LINE_LIMIT - 1] + "…"
    return f"{ICONS.get(item.kind, '·')} {text}"


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, PRIVATE_FILE)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read."""
    with open(path, "w", encoding="utf-8", opener=_private) as handle:
        handle.write(text)


def append_private(path: Path):
    return open(path, "a", encoding="utf-8", opener=_private)


def make_run_dir(run_dir: Path) -> None:
    """The run folder and the folders above it up to ``runs/``, owner only."""
    for folder in (run_dir.parent.parent, run_dir.parent, run_dir):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            pass
        os.chmod(folder, PRIVATE_DIR)


def write_json(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    write_private(temporary, json.dumps(data, indent=1))
    os.replace(temporary, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _engine_umask() -> str:
    """This process's umask, read without changing it (os.umask would, for
    a moment, under the engine's other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return line.split()[1]
    except OSError:
        pass
    return "022"


@dataclass
class AgentRun:
    """The processes of one run: the supervisor shell (leader of the run's
    process group) and the agent under it."""

    run_dir: Path
    supervisor_pid: int
    started: float
    timeout: float
    process: subprocess.Popen | None = None  # ours when we started it

    @classmethod
    def start(
        cls, run_dir: Path, argv: list[str], *, cwd: Path, env: dict[str, str],
        timeout: float, record: dict,
    ) -> AgentRun:
        started = time.time()
        run = {**record, "argv": argv, "cwd": str(cwd), "timeout": timeout, "started": started,
               "supervisor_pid": None}
        env = {**env, "FACTORY_RUN": str(run_dir)}
        # The record is on disk before anything starts: an engine that dies
        # from here on leaves a run the next engine finds (by FACTORY_RUN, if
        # the supervisor's pid never made it into the record) and never a
        # second agent in the same worktree.
        write_json(run_dir / "run.json", run)
        faults.point("run.marked")
        # A plain Popen in a session of its own: the run must outlive the
        # engine (asyncio kills the children it watches when its loop ends).
        process = subprocess.Popen(
            [SHELL, "-c", RUN_SCRIPT, "factory-run", _engine_umask(), *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        faults.point("run.spawned")
        run["supervisor_pid"] = process.pid
        write_json(run_dir / "run.json", run)
        return cls(run_dir, process.pid, started, timeout, process)

    @classmethod
    def adopt(cls, run_dir: Path) -> AgentRun | None:
        """A run an earlier engine started, from its run.json."""
        run = read_json(run_dir / "run.json")
        if not run:
            return None
        if not run.get("supervisor_pid"):
            # Marked but not recorded: the engine died while starting it.
            # Its supervisor, if it runs, leads a session of its own and runs
            # our script: find it by the run's name in its environment.
            pid = find_supervisor(run_dir)
            if pid is None:
                return None
            run["supervisor_pid"] = pid
            write_json(run_dir / "run.json", run)
        return cls(run_dir, int(run["supervisor_pid"]), float(run.get("started", 0)), float(run.get("timeout", 3600)))

    @property
    def agent_pid(self) -> int | None:
        return _read_int(self.run_dir / "agent.pid")

    def exit_code(self) -> int | None:
        """The agent's exit status as its supervisor recorded it (128 + N
        when a signal N ended it); None while it runs, or when the
        supervisor itself was stopped or killed first."""
        return _read_int(self.run_dir / "exit.code")

    def supervisor_alive(self) -> bool:
        """Whether the supervisor itself runs: only then will the agent's
        exit status be recorded, so only then is the run worth taking over."""
        if not processes.proc_available():
            return _group_exists(self.supervisor_pid)
        return processes.is_live_member(self.supervisor_pid, self.run_dir)

    def ended(self) -> bool:
        if self.process is not None:
            # poll() also reaps our own supervisor: no zombie is left.
            return self.process.poll() is not None
        return self.exit_code() is not None or not self.supervisor_alive()

    def overdue(self, now: float) -> bool:
        return now > self.started + self.timeout

    def members(self) -> list[processes.RunProcess]:
        """The run's live processes: every one that names the run in its
        environment, whatever its group or session, and their children."""
        if not processes.proc_available():
            if not _group_exists(self.supervisor_pid):
                return []
            pid = self.supervisor_pid
            return [processes.RunProcess(pid, 0, pid, str(self.run_dir))]
        return processes.of_run(self.run_dir)

    def stop(self, grace: float = GRACE_SECONDS) -> bool:
        """SIGTERM every process of the run, SIGKILL what is left after
        ``grace``. Blocks: call it off the event loop. True if anything of
        it was running."""
        stopped = stop_members(self.members, self.supervisor_pid, grace, reap=self._reap)
        if stopped and self.process is not None:
            self.process.wait()
        return stopped

    def _reap(self) -> None:
        if self.process is not None:
            self.process.poll()


@dataclass
class RunOutput:
    """Follows ``output.raw`` as it grows: parses it into readable lines in
    ``transcript.log``, keeps the last few for a failure's reason, the run's
    totals (cost, tokens) and the newest line of progress."""

    run_dir: Path
    output_format: str
    offset: int = 0
    partial: bytes = b""
    last_lines: deque = field(default_factory=lambda: deque(maxlen=FAILURE_LINES))
    totals: dict = field(default_factory=dict)
    pending: tuple[str, dict] | None = None
    # The agent's last words (its last message): what the run produced, in
    # the prompts of the tasks that depend on this one.
    summary: str | None = None
    # Why the agent itself says its run failed (its last outcome was a
    # failure), or None: an agent may exit 0 having failed.
    agent_failure: str | None = None

    def __post_init__(self) -> None:
        self.parser = parser_for(self.output_format)

    def read(self) -> bool:
        """Read and parse what came since the last call (up to a chunk).
        True if a whole chunk was read: call again."""
        try:
            with open(self.run_dir / "output.raw", "rb") as handle:
                handle.seek(self.offset)
                data = handle.read(CHUNK)
        except FileNotFoundError:
            return False
        if not data:
            return False
        self.offset += len(data)
        self._consume(data)
        return len(data) == CHUNK

    def read_all(self) -> None:
        while self.read():
            pass

    def finish(self) -> None:
        """The run is over: the last line (even without its newline) and
        what the parser held back."""
        self.read_all()
        if self.partial:
            self._consume(b"\n")
        self._record(self.parser.finish())

    def replay(self) -> None:
        """Rebuild the transcript from the raw output, for a run taken over
        from another engine: whole whatever the last engine managed to write,
        and nothing reported twice as progress."""
        (self.run_dir / "transcript.log").unlink(missing_ok=True)
        self.read_all()
        self.pending = None

    def take_progress(self) -> tuple[str, dict] | None:
        pending, self.pending = self.pending, None
        return pending

    def _consume(self, data: bytes) -> None:
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        if len(self.partial) > 1 << 20:
            # A line without end: take it as it is rather than hold megabytes.
            lines.append(self.partial)
            self.partial = b""
        items: list[Progress] = []
        for line in lines:
            items.extend(self.parser.feed(line.decode("utf-8", errors="replace").rstrip("\r")))
        self._record(items)

    def _record(self, items: list[Progress]) -> None:
        if not items:
            return
        rendered = [transcript_line(item) for item in items]
        with append_private(self.run_dir / "transcript.log") as transcript:
            transcript.write("\n".join(rendered) + "\n")
        for item, line in zip(items, rendered, strict=True):
            if item.data and item.kind in ("result", "error"):
                # The run's totals (cost, tokens, turns) go with its outcome.
                self.totals.update(item.data)
            if item.text.strip():
                self.last_lines.append(line)
            if item.kind == "text" and item.text.strip():
                self.summary = item.text.strip()[:SUMMARY_LIMIT]
            if item.outcome == "failed":
                self.agent_failure = literal(item.text)[:SUMMARY_LIMIT]
            elif item.outcome == "succeeded":
                self.agent_failure = None
        last = items[-1]
        self.pending = (rendered[-1][:PROGRESS_TEXT_LIMIT], dict(last.data) if last.data else {})


def find_supervisor(run_dir: Path) -> int | None:
    """The live supervisor of a run whose pid was never recorded: the
    process naming the run that leads its own group and runs our script."""
    for found in processes.of_run(run_dir):
        argv = processes.command_line(found.pid)
        if found.pgid == found.pid and argv[:3] == [SHELL, "-c", RUN_SCRIPT]:
            return found.pid
    return None


def stop_members(
    members: Callable[[], list[processes.RunProcess]], group: int | None, grace: float,
    *, reap: Callable[[], None] = lambda: None,
) -> bool:
    """SIGTERM the processes ``members()`` finds, SIGKILL what is left after
    ``grace`` (and whatever they started meanwhile). True if any was found."""
    found = members()
    if not found:
        reap()
        return False
    stop_processes(found, group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        reap()
        if not members():
            return True
        time.sleep(0.02)
    # A process forking as fast as it can is caught on a later look.
    for _ in range(50):
        left = members()
        if not left:
            break
        stop_processes(left, group, signal.SIGKILL)
        reap()
        time.sleep(0.02)
    return True


def stop_run(run_dir: Path, grace: float = GRACE_SECONDS) -> bool:
    """Stop whatever of a run still lives, found by ``FACTORY_RUN`` alone
    (a run whose supervisor's pid was never recorded, or an earlier
    attempt's leftovers)."""
    return stop_members(lambda: processes.of_run(run_dir), None, grace)


def stop_processes(members: list[processes.RunProcess], group: int | None, signum: int) -> None:
    """Send ``signum`` to each process (and to the run's group, which holds
    what was started but not yet seen), and wake stopped ones so that they
    can act on it."""
    signals = (signum,) if signum == signal.SIGKILL else (signum, signal.SIGCONT)
    for sig in signals:
        if group is not None and any(member.pgid == group for member in members):
            try:
                os.killpg(group, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for member in members:
            try:
                os.kill(member.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def describe_exit(code: int | None) -> str | None:
    """Why a run failed, from its exit status; None for success."""
    if code == 0:
        return None
    if code is None:
        return "the run's supervisor ended without a result"
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        return f"agent killed by {name}"
    return f"agent exited {code}"
