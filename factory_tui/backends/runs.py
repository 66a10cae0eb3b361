"""One agent run, on disk and as processes.

    .factory/runs/<task>/<attempt>/
        prompt.md       what the agent was asked
        run.json        argv, worktree, timeout, lease token, the supervisor's pid
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
The shell leads a process group of its own, so stopping a run stops the
agent and everything it started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from factory_tui.backends.agent_output import Progress, parser_for

SHELL = "/bin/sh"
# "$@" is the agent's argv, passed as arguments: never parsed by the shell.
RUN_SCRIPT = (
    '"$@" >> "$FACTORY_RUN/output.raw" 2>&1 < /dev/null &\n'
    'echo $! > "$FACTORY_RUN/agent.pid"\n'
    "wait $!\n"
    'echo $? > "$FACTORY_RUN/exit.code"\n'
)
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
    text = item.text.replace("\r", " ").replace("\n", " ⏎ ")
    if len(text) > TRANSCRIPT_LINE_LIMIT:
        text = text[: TRANSCRIPT_LINE_LIMIT - 1] + "…"
    return f"{ICONS.get(item.kind, '·')} {text}"


def write_json(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
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


def _members(pgid: int, run_dir: Path) -> list[int]:
    """The live processes of a run's process group. Each must name the run
    in its environment (FACTORY_RUN), so a reused pid is never taken for
    one of ours. Without /proc, the group's existence is all one can know."""
    try:
        os.killpg(pgid, 0)  # the quick answer when the group is empty
    except (ProcessLookupError, PermissionError):
        return []
    proc = Path("/proc")
    if not proc.is_dir():
        return [pgid]
    marker = f"FACTORY_RUN={run_dir}".encode()
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid or fields[0] in ("Z", "X"):
                continue
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                members.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return members


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
        run = {**record, "argv": argv, "cwd": str(cwd), "timeout": timeout, "started": started}
        env = {**env, "FACTORY_RUN": str(run_dir)}
        # A plain Popen in a session of its own: the run must outlive the
        # engine (asyncio kills the children it watches when its loop ends).
        process = subprocess.Popen(
            [SHELL, "-c", RUN_SCRIPT, "factory-run", *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # Written once the supervisor runs: an engine that dies before this
        # leaves no run.json, and the next one gives the task back.
        run["supervisor_pid"] = process.pid
        write_json(run_dir / "run.json", run)
        return cls(run_dir, process.pid, started, timeout, process)

    @classmethod
    def adopt(cls, run_dir: Path) -> AgentRun | None:
        """A run an earlier engine started, from its run.json."""
        run = read_json(run_dir / "run.json")
        if not run or not run.get("supervisor_pid"):
            return None
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
        return self.supervisor_pid in _members(self.supervisor_pid, self.run_dir)

    def ended(self) -> bool:
        if self.process is not None:
            # poll() also reaps our own supervisor: no zombie is left.
            return self.process.poll() is not None
        return self.exit_code() is not None or not self.supervisor_alive()

    def overdue(self, now: float) -> bool:
        return now > self.started + self.timeout

    def stop(self, grace: float = GRACE_SECONDS) -> bool:
        """SIGTERM the run's whole process group, SIGKILL what is left after
        ``grace``. Blocks: call it off the event loop. True if anything of
        it was running."""
        members = _members(self.supervisor_pid, self.run_dir)
        if not members:
            self._reap()
            return False
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self._reap()
            if not _members(self.supervisor_pid, self.run_dir):
                return True
            time.sleep(0.02)
        self._signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()
        return True

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.supervisor_pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

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
        with open(self.run_dir / "transcript.log", "a", encoding="utf-8") as transcript:
            transcript.write("\n".join(rendered) + "\n")
        for item, line in zip(items, rendered, strict=True):
            if item.data and item.kind in ("result", "error"):
                # The run's totals (cost, tokens, turns) go with its outcome.
                self.totals.update(item.data)
            if item.text.strip():
                self.last_lines.append(line)
            if item.kind == "text" and item.text.strip():
                self.summary = item.text.strip()[:SUMMARY_LIMIT]
        last = items[-1]
        self.pending = (rendered[-1][:PROGRESS_TEXT_LIMIT], dict(last.data) if last.data else {})


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
