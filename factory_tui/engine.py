"""The engine: takes ready tasks from the execution log and runs a coding
agent on each, in the task's own git worktree, at most ``max_parallel`` at
once.

One engine per base, guarded by ``.factory/engine.lock``. It runs headless
(``factory run``) or inside the console (in a thread of its own). Each run is
a supervisor process (``supervisor.py``) that starts the agent with its
output going to a file, so agents outlive the engine: an engine that starts
finds the runs still in progress and takes them over. Everything the engine
does is written to the log; the console reads it from there.

No Textual here: the engine talks to its host through two plain callbacks.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from factory_tui.backends.agent_output import OutputParser, Progress, parser_for
from factory_tui.backends.agents import AgentProfile, profile_for
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.prompt import DependencyOutcome, assemble_prompt
from factory_tui.backends.worktrees import Worktrees
from factory_tui.errors import FactoryError, LeaseLost
from factory_tui.model import Claim, State, Task, task_seq

SUPERVISOR = Path(__file__).with_name("supervisor.py")
LEASE_SECONDS = 60.0
# Cancellation must stop an agent within two seconds: look this often.
CHECK_SECONDS = 0.5
REAP_SECONDS = 10.0
PROGRESS_SECONDS = 1.0
PUMP_SECONDS = 0.2
PUMP_CHUNK = 4 << 20
TRANSCRIPT_LINE_LIMIT = 10_000
FAILURE_LINES = 5
DOCUMENT_LIMIT = 20

ICONS = {"text": "⏺", "tool": "⚙", "tool_result": "↳", "result": "✓", "error": "✗", "system": "·"}


class EngineBusy(FactoryError):
    """Another engine holds the base."""

    def __init__(self, holder: dict | None) -> None:
        self.holder = holder or {}
        who = describe_holder(self.holder)
        super().__init__(f"another engine is running on this base ({who})")


def describe_holder(holder: dict) -> str:
    if not holder:
        return "unknown process"
    return f"{holder.get('mode', 'engine')}, pid {holder.get('pid')} on {holder.get('host', '?')}"


class EngineLock:
    """``.factory/engine.lock``, held with flock for as long as the engine
    runs; the kernel lets go of it when the process dies, however it dies."""

    def __init__(self, base: FactoryBase) -> None:
        self.path = base.dir / "engine.lock"
        self._fd: int | None = None

    def acquire(self, mode: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise EngineBusy(holder) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "mode": mode, "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def holder(base: FactoryBase) -> dict | None:
        """Who holds the base's engine lock, or None if nobody does."""
        path = base.dir / "engine.lock"
        if not path.exists():
            return None
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_holder(fd) or {"mode": "engine"}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def _read_holder(fd: int) -> dict | None:
    try:
        data = os.pread(fd, 4096, 0)
        return json.loads(data) if data else None
    except (OSError, ValueError):
        return None


@dataclass
class EngineStatus:
    mode: str
    running: list[str]
    max_parallel: int
    agent: str
    stopping: bool = False


@dataclass
class Job:
    """One agent run the engine is watching."""

    task: Task
    token: str
    attempt: int
    run_dir: Path
    profile: AgentProfile | None = None
    parser: OutputParser | None = None
    process: asyncio.subprocess.Process | None = None
    supervisor_pid: int | None = None
    adopted: bool = False
    raw_offset: int = 0
    partial: bytes = b""
    last_lines: deque = field(default_factory=lambda: deque(maxlen=FAILURE_LINES))
    pending: tuple[str, dict] | None = None
    last_progress_at: float = 0.0
    last_heartbeat: float = 0.0
    stop_reason: str | None = None
    signalled: bool = False
    result_data: dict = field(default_factory=dict)

    @property
    def task_id(self) -> str:
        return self.task.id


def run_dir_for(base: FactoryBase, task_id: str, attempt: int) -> Path:
    return base.runs_dir / task_id / str(attempt)


def transcript_line(item: Progress) -> str:
    text = item.text.replace("\r", " ").replace("\n", " ⏎ ")
    if len(text) > TRANSCRIPT_LINE_LIMIT:
        text = text[: TRANSCRIPT_LINE_LIMIT - 1] + "…"
    return f"{ICONS.get(item.kind, '·')} {text}"


def _supervisor_alive(pid: int | None, run_dir: Path) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        # A recycled pid is somebody else's process.
        try:
            return str(run_dir).encode() in cmdline.read_bytes()
        except OSError:
            return False
    return True


class Engine:
    """Runs the base's ready tasks until told to stop (or, with ``once``,
    until nothing is ready or running)."""

    def __init__(
        self,
        base: FactoryBase,
        *,
        mode: str = "headless",
        max_parallel: int | None = None,
        once: bool = False,
        lease_seconds: float = LEASE_SECONDS,
        report: Callable[[str], None] | None = None,
        on_status: Callable[[EngineStatus], None] | None = None,
    ) -> None:
        self.base = base
        self.mode = mode
        self.once = once
        self.lease_seconds = lease_seconds
        self._max_parallel = max_parallel
        self._report = report or (lambda line: None)
        self._on_status = on_status or (lambda status: None)
        self.worker = f"engine:{socket.gethostname()}:{os.getpid()}"
        self.jobs: dict[str, Job] = {}
        self.failures = 0
        self._stopping = False
        self._stop_agents = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._lock = EngineLock(base)
        self._running: set[asyncio.Task] = set()
        self.agent_name = "?"

    # --- the host's handles -----------------------------------------------

    def request_stop(self, *, stop_agents: bool = True) -> None:
        """Stop taking tasks and end ``run``. ``stop_agents``: stop the
        running agents (their tasks go back to the queue, work committed);
        otherwise leave them to the next engine. Safe from any thread."""

        def stop() -> None:
            self._stopping = True
            self._stop_agents = stop_agents
            if self._wake is not None:
                self._wake.set()

        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(stop)
        else:
            stop()

    @property
    def max_parallel(self) -> int:
        return self._max_parallel or self.config.max_parallel

    def status(self) -> EngineStatus:
        return EngineStatus(
            mode=self.mode,
            running=sorted(self.jobs, key=task_seq),
            max_parallel=self.max_parallel,
            agent=self.agent_name,
            stopping=self._stopping,
        )

    # --- the main loop ------------------------------------------------------

    async def run(self) -> int:
        """Returns the exit status for ``factory run``: 1 if ``once`` and a
        task failed, else 0."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._lock.acquire(self.mode)
        try:
            self.config = self.base.config()
            self.log = ExecutionLog.open(self.base.log_path)
            self.worktrees = Worktrees(
                self.base.root,
                base_branch=self.config.base_branch,
                merge=self.config.merge,
                copy=self.config.worktree_copy,
                setup=self.config.worktree_setup,
            )
            try:
                self.agent_name = profile_for(None, self.config).name
            except FactoryError:
                self.agent_name = "?"
            self._report(f"engine started ({self.mode}, up to {self.max_parallel} agents, default agent {self.agent_name})")
            await self._recover()
            self._publish()
            await self._loop_until_done()
        finally:
            try:
                await self._shutdown()
            finally:
                if hasattr(self, "log"):
                    self.log.close()
                self._lock.release()
        return 1 if self.once and self.failures else 0

    async def _loop_until_done(self) -> None:
        last_check = last_reap = 0.0
        while not self._stopping:
            now = time.monotonic()
            if now - last_reap >= REAP_SECONDS:
                last_reap = now
                for task_id in await self._call(self.log.reap_expired, actor=self.worker):
                    self._report(f"{task_id}: lease expired, back to queued")
            if now - last_check >= CHECK_SECONDS:
                last_check = now
                await self._check_jobs()
            await self._fill_slots()
            if self.once and not self.jobs and not await self._call(self.log.has_ready):
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=CHECK_SECONDS)
            except TimeoutError:
                pass

    async def _fill_slots(self) -> None:
        while not self._stopping and len(self.jobs) < self.max_parallel:
            if not await self._call(self.log.has_ready):
                return
            claim = await self._call(self.log.claim_next, self.worker, lease_seconds=self.lease_seconds)
            if claim is None:
                return
            self._start(claim)

    def _start(self, claim: Claim) -> None:
        job = Job(
            task=claim.task,
            token=claim.token,
            attempt=claim.task.attempts,
            run_dir=run_dir_for(self.base, claim.task.id, claim.task.attempts),
            last_heartbeat=time.monotonic(),
        )
        self.jobs[job.task_id] = job
        self._report(f"{job.task_id}: claimed (attempt {job.attempt})")
        self._spawn(self._run_job(job))
        self._publish()

    async def _check_jobs(self) -> None:
        """Heartbeats, and stopping agents whose task is no longer theirs
        (cancelled by the operator, or its lease reaped)."""
        if not self.jobs:
            return
        live = await self._call(self.log.live_tokens, [job.token for job in self.jobs.values()])
        now = time.monotonic()
        for job in list(self.jobs.values()):
            if job.token not in live:
                if job.stop_reason is None:
                    job.stop_reason = "lost"
                    self._signal(job)
                continue
            if now - job.last_heartbeat >= self.lease_seconds / 4:
                job.last_heartbeat = now
                try:
                    await self._call(self.log.heartbeat, job.token, lease_seconds=self.lease_seconds)
                except LeaseLost:
                    job.stop_reason = job.stop_reason or "lost"
                    self._signal(job)

    def _signal(self, job: Job) -> None:
        """Ask the job's supervisor to stop the agent."""
        if job.signalled or not job.supervisor_pid:
            return
        job.signalled = True
        try:
            os.kill(job.supervisor_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if self._wake is not None:
            self._wake.set()

    async def _shutdown(self) -> None:
        if not self.jobs:
            return
        if self._stop_agents:
            self._report(f"stopping {len(self.jobs)} agent(s)")
            for job in self.jobs.values():
                job.stop_reason = job.stop_reason or "shutdown"
                self._signal(job)
            while self.jobs:
                await asyncio.sleep(0.05)
        else:
            # Leave the agents running for the next engine: stop watching.
            self._report(f"leaving {len(self.jobs)} agent(s) to the next engine")
            for job in self.jobs.values():
                job.stop_reason = "detached"
            while self.jobs:
                await asyncio.sleep(0.05)

    # --- one run ---------------------------------------------------------------

    async def _run_job(self, job: Job) -> None:
        try:
            if not job.adopted:
                await self._launch(job)
            await self._follow(job)
            if job.stop_reason == "detached":
                return
            await self._conclude(job)
        except FactoryError as error:
            await self._fail_early(job, str(error))
        except Exception as error:  # an engine bug must not lose the task
            await self._fail_early(job, f"engine error: {type(error).__name__}: {error}")
        finally:
            self.jobs.pop(job.task_id, None)
            self._publish()
            if self._wake is not None:
                self._wake.set()

    async def _launch(self, job: Job) -> None:
        task = job.task
        job.profile = profile_for(task.profile, self.config)
        job.parser = parser_for(job.profile.output)
        worktree = await self._call(self.worktrees.create_for, task.id)
        prompt = await self._call(self._prompt_for, task, job.attempt)
        job.run_dir.mkdir(parents=True, exist_ok=True)
        prompt_file = job.run_dir / "prompt.md"
        prompt_file.write_text(prompt, encoding="utf-8")
        argv = job.profile.render_argv(prompt=prompt, prompt_file=prompt_file, task_id=task.id, worktree=worktree)
        run = {
            "task": task.id,
            "attempt": job.attempt,
            "token": job.token,
            "profile": job.profile.name,
            "output": job.profile.output,
            "argv": argv,
            "cwd": str(worktree),
            "timeout": job.profile.timeout,
            "started": time.time(),
        }
        _write_json(job.run_dir / "run.json", run)
        env = dict(os.environ)
        env.update(job.profile.env)
        env["FACTORY_BASE"] = str(self.base.root)
        env["FACTORY_TASK"] = task.id
        env["FACTORY_RUN"] = str(job.run_dir)
        # The agent can call `factory` itself: put this installation first.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        with open(job.run_dir / "supervisor.err", "ab") as errors:
            job.process = await asyncio.create_subprocess_exec(
                sys.executable, "-S", str(SUPERVISOR), str(job.run_dir),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,
            )
        job.supervisor_pid = job.process.pid
        run["supervisor_pid"] = job.process.pid
        _write_json(job.run_dir / "run.json", run)
        self._report(f"{task.id}: {job.profile.name} started in {worktree.relative_to(self.base.root)}")

    def _prompt_for(self, task: Task, attempt: int) -> str:
        full = self.log.get_task(task.id)
        outcomes = []
        for dep in self.log.get_tasks(full.depends_on):
            finished = self.log.events(task_id=dep.id, kinds=["finished"], last=1)
            outcomes.append(DependencyOutcome(task=dep, summary=finished[0].note if finished else None))
        documents = []
        if self.base.artifacts_dir.is_dir():
            for path in sorted(self.base.artifacts_dir.glob("*.md"))[:DOCUMENT_LIMIT]:
                try:
                    documents.append((path.name, path.read_text(encoding="utf-8", errors="replace")))
                except OSError:
                    continue
        return assemble_prompt(
            full,
            attempt=attempt,
            branch=self.worktrees.branch_for(task.id),
            dependencies=outcomes,
            feedback=full.feedback,
            documents=documents,
        )

    async def _follow(self, job: Job) -> None:
        """Read the agent's output as it comes until its supervisor is done."""
        exit_path = job.run_dir / "exit.json"
        while True:
            await self._pump(job)
            if job.stop_reason == "detached":
                return
            if job.stop_reason and not job.signalled:
                self._signal(job)
            if job.process is not None:
                try:
                    await asyncio.wait_for(job.process.wait(), timeout=PUMP_SECONDS)
                    break
                except TimeoutError:
                    continue
            else:
                if exit_path.exists() or not _supervisor_alive(job.supervisor_pid, job.run_dir):
                    break
                await asyncio.sleep(PUMP_SECONDS)
        await self._pump(job, final=True)

    async def _pump(self, job: Job, *, final: bool = False) -> None:
        raw = job.run_dir / "output.raw"
        while True:
            try:
                with open(raw, "rb") as handle:
                    handle.seek(job.raw_offset)
                    data = handle.read(PUMP_CHUNK)
            except FileNotFoundError:
                data = b""
            if not data:
                break
            job.raw_offset += len(data)
            await self._call(self._consume, job, data)
            if len(data) < PUMP_CHUNK:
                break
        if final:
            if job.partial:
                await self._call(self._consume, job, b"\n")
            items = job.parser.finish() if job.parser else []
            self._record(job, items)
        await self._flush_progress(job, force=final)

    def _consume(self, job: Job, data: bytes) -> None:
        """Parse a chunk of output into transcript lines (worker thread)."""
        data = job.partial + data
        lines = data.split(b"\n")
        job.partial = lines.pop()
        if len(job.partial) > 1 << 20:
            # A line without end: take it as it is rather than hold megabytes.
            lines.append(job.partial)
            job.partial = b""
        items: list[Progress] = []
        for line in lines:
            text = line.decode("utf-8", errors="replace").rstrip("\r")
            if job.parser is not None:
                items.extend(job.parser.feed(text))
        self._record(job, items)

    def _record(self, job: Job, items: list[Progress]) -> None:
        if not items:
            return
        rendered = [transcript_line(item) for item in items]
        with open(job.run_dir / "transcript.log", "a", encoding="utf-8") as transcript:
            transcript.write("\n".join(rendered) + "\n")
        for item, line in zip(items, rendered):
            if item.data and item.kind in ("result", "error"):
                # The run's totals (cost, tokens, turns) go with its outcome.
                job.result_data.update(item.data)
            if item.text.strip():
                job.last_lines.append(line)
        last = items[-1]
        job.pending = (rendered[-1][:300], dict(last.data) if last.data else {})

    async def _flush_progress(self, job: Job, *, force: bool = False) -> None:
        if job.pending is None or job.stop_reason:
            return
        now = time.monotonic()
        if not force and now - job.last_progress_at < PROGRESS_SECONDS:
            return
        text, data = job.pending
        job.pending = None
        job.last_progress_at = now
        try:
            await self._call(self.log.add_progress, job.token, text, data=data or None)
        except LeaseLost:
            job.stop_reason = job.stop_reason or "lost"

    async def _conclude(self, job: Job) -> None:
        task_id = job.task_id
        outcome = _read_json(job.run_dir / "exit.json") or {
            "error": "the run's supervisor ended without a result"
        }
        reason = job.stop_reason
        if reason in ("lost", "shutdown"):
            await self._save_work(task_id, f"factory: work left when {task_id}'s agent was stopped")
        if reason == "lost":
            task = await self._call(self.log.get_task, task_id)
            if task.state is State.CANCELLED and self.worktrees.path_for(task_id).exists():
                await self._call(self.worktrees.remove, task_id)
                self._report(f"{task_id}: cancelled; agent stopped, work committed to {self.worktrees.branch_for(task_id)}")
                await self._call(self.log.add_note, task_id, "agent stopped after the task was cancelled; its work is on the branch", actor=self.worker)
            else:
                self._report(f"{task_id}: lease lost; agent stopped")
            return
        if reason == "shutdown":
            try:
                await self._call(self.log.release, job.token, note="the engine stopped; the agent's work is committed")
            except LeaseLost:
                pass
            self._report(f"{task_id}: agent stopped, back to queued")
            return
        await self._save_work(task_id, f"factory: work left by {task_id}'s agent")
        data = {"run": str(job.run_dir.relative_to(self.base.root)), **job.result_data}
        if outcome.get("error"):
            failure = outcome["error"]
        elif outcome.get("timed_out"):
            timeout = job.profile.timeout if job.profile else "?"
            failure = f"timed out after {timeout:g} s" if isinstance(timeout, float) else "timed out"
        elif outcome.get("exit_code") == 0:
            failure = None
        elif outcome.get("signal"):
            failure = f"agent killed by signal {outcome['signal']}"
        else:
            failure = f"agent exited {outcome.get('exit_code')}"
        try:
            if failure is None:
                stat = await self._call(self.worktrees.diff_stat, task_id)
                files = f"{stat.files} file{'' if stat.files == 1 else 's'}"
                note = f"agent finished: {files} changed, +{stat.added} −{stat.removed}"
                await self._call(self.log.finish, job.token, State.REVIEW, note=note, data=data)
                self._report(f"{task_id}: review ({note})")
            else:
                tail = " | ".join(job.last_lines)
                note = f"{failure}" + (f"; last output: {tail}" if tail else "")
                await self._call(self.log.finish, job.token, State.FAILED, note=note[:2000], data=data)
                self.failures += 1
                self._report(f"{task_id}: failed ({failure})")
        except LeaseLost as error:
            self._report(f"{task_id}: {error}")

    async def _save_work(self, task_id: str, message: str) -> None:
        """Commit whatever is left in the task's worktree, if it has one."""
        if not self.worktrees.path_for(task_id).exists():
            return
        try:
            await self._call(self.worktrees.commit_all, task_id, message)
        except FactoryError as error:
            self._report(f"{task_id}: could not commit the work left: {error}")

    async def _fail_early(self, job: Job, reason: str) -> None:
        """The run could not start (no worktree, no such agent profile):
        the task fails with the reason."""
        if job.process is not None and job.process.returncode is None:
            self._signal(job)
        try:
            await self._call(self.log.finish, job.token, State.FAILED, note=reason[:2000])
            self.failures += 1
            self._report(f"{job.task_id}: failed ({reason})")
        except (LeaseLost, FactoryError) as error:
            self._report(f"{job.task_id}: {error}")

    # --- starting again ------------------------------------------------------------

    async def _recover(self) -> None:
        """Take over runs an earlier engine left (it was killed, or the
        console handed them over), stop runs nobody holds a lease for, and
        send tasks whose agent is gone back to the queue."""
        running = await self._call(self.log.list_tasks, [State.RUNNING], bodies=False)
        leases = {task_id: token for token, task_id, _, _ in await self._call(self.log.live_leases)}
        adopted_dirs = set()
        for task in running:
            token = leases.get(task.id)
            if token is None:
                continue
            run_dir = run_dir_for(self.base, task.id, task.attempts)
            run = _read_json(run_dir / "run.json")
            if run and run.get("token") == token:
                pid = run.get("supervisor_pid")
                if (run_dir / "exit.json").exists() or _supervisor_alive(pid, run_dir):
                    try:
                        await self._call(self.log.heartbeat, token, lease_seconds=self.lease_seconds)
                    except LeaseLost:
                        continue
                    job = Job(task=task, token=token, attempt=task.attempts, run_dir=run_dir,
                              supervisor_pid=pid, adopted=True, last_heartbeat=time.monotonic())
                    try:
                        job.profile = profile_for(run.get("profile"), self.config)
                    except FactoryError:
                        job.profile = None
                    job.parser = parser_for(run.get("output", "text"))
                    # The transcript is rebuilt from the raw output, so that it
                    # is whole whatever the last engine managed to write.
                    (run_dir / "transcript.log").unlink(missing_ok=True)
                    job.pending = None
                    self.jobs[task.id] = job
                    adopted_dirs.add(run_dir)
                    self._report(f"{task.id}: took over its running agent")
                    self._spawn(self._adopted(job))
                    continue
            # Its agent is gone (the machine restarted, or the engine died
            # between the claim and the start): give the task back.
            await self._save_work(task.id, f"factory: work left when {task.id}'s agent was lost")
            try:
                await self._call(self.log.release, token, note="its agent was gone when the engine started; work committed")
                self._report(f"{task.id}: agent gone, back to queued")
            except LeaseLost:
                pass
        await self._call(self._stop_stray_supervisors, adopted_dirs)
        for task_id in await self._call(self.log.reap_expired, actor=self.worker):
            self._report(f"{task_id}: lease expired, back to queued")

    async def _adopted(self, job: Job) -> None:
        # Re-read everything written so far without reporting it as new.
        await self._call(self._consume_quietly, job)
        await self._run_job(job)

    def _consume_quietly(self, job: Job) -> None:
        raw = job.run_dir / "output.raw"
        try:
            with open(raw, "rb") as handle:
                while chunk := handle.read(PUMP_CHUNK):
                    job.raw_offset += len(chunk)
                    self._consume(job, chunk)
        except FileNotFoundError:
            pass
        job.pending = None

    def _stop_stray_supervisors(self, adopted: set[Path]) -> None:
        """A supervisor whose run lost its lease (reaped while no engine ran)
        must not go on working in a worktree the next run will use."""
        if not self.base.runs_dir.is_dir():
            return
        for run_json in self.base.runs_dir.glob("*/*/run.json"):
            run_dir = run_json.parent
            if run_dir in adopted or (run_dir / "exit.json").exists():
                continue
            run = _read_json(run_json) or {}
            pid = run.get("supervisor_pid")
            if _supervisor_alive(pid, run_dir):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    # --- plumbing -----------------------------------------------------------------

    def _spawn(self, coroutine) -> None:
        # asyncio keeps only weak references to tasks: hold them until done.
        task = asyncio.ensure_future(coroutine)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _call(self, function, *args, **kwargs):
        """Backend work (SQLite, git) off the event loop."""
        return await asyncio.to_thread(function, *args, **kwargs)

    def _publish(self) -> None:
        try:
            self._on_status(self.status())
        except Exception:  # the host's callback must not stop the engine
            pass


class EngineThread(threading.Thread):
    """An engine inside another program (the console): its own thread and
    event loop, so that agents' output never competes with the screen's."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(name="factory-engine", daemon=True)
        self.engine = engine
        self.exit_status: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.exit_status = asyncio.run(self.engine.run())
        except BaseException as error:  # reported by the host, not lost
            self.error = error

    def stop(self, *, stop_agents: bool = True, timeout: float | None = None) -> None:
        self.engine.request_stop(stop_agents=stop_agents)
        self.join(timeout)


def _write_json(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(temporary, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
