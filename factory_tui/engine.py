"""The engine: takes ready tasks from the execution log and runs a coding
agent on each, in the task's own git worktree, at most ``max_parallel`` at
once.

One engine per base (``backends/engine_lock.py``). It runs headless
(``factory run``) or inside the console, in a thread of its own. A run's
processes and files are ``backends/runs.py``'s: agents write to files, so
they outlive the engine, and an engine that starts finds the runs still in
progress and takes them over. Everything the engine does is written to the
log; the console reads it from there.

A busy log is a passing condition, never a reason to stop an agent or fail
a task: what must be written (a run's end) is retried until it is, what can
wait (a heartbeat, a claim, a line of progress) waits for the next round.
An engine never expires a lease of its own: it may merely have been asleep
(SIGSTOP, a laptop's suspend), and its runs are checked first. A log that
cannot be written at all (a full disk, a read-only file) stops the engine
with one line, its agents stopped and their tasks given back where it can.

No Textual here: the engine talks to its host through two plain callbacks.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from factory_tui.artifacts_model import RunOutcome
from factory_tui.backends import faults, processes
from factory_tui.backends.agents import AgentProfile, profile_for
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.engine_lock import EngineBusy, EngineLock, describe_holder
from factory_tui.backends.git_objects import loose_parents
from factory_tui.backends.locks import OperatorBusy, OperatorLock
from factory_tui.backends.loose_refs import plain_repository
from factory_tui.backends.mail_git import SyncLoop, start_sync_loop
from factory_tui.backends.mail_log import MailItem
from factory_tui.backends.prompt import (
    Conflicts,
    DependencyOutcome,
    MailNote,
    Prompt,
    PromptDocument,
    TaskMail,
    build_prompt,
)
from factory_tui.backends.run_diff import DiffSummary, parse_numstat, summarise
from factory_tui.backends.run_index import RunEnd, index_ended_run, index_run_files
from factory_tui.backends.run_retention import CollectionBusy, collect
from factory_tui.backends.runs import (
    AgentRun,
    RunOutput,
    describe_exit,
    make_run_dir,
    read_json,
    stop_run,
    write_json,
    write_private,
)
from factory_tui.backends.session import FactorySession
from factory_tui.backends.watcher import watch
from factory_tui.backends.worktrees import BranchCollision, MergeStatus, Prepared
from factory_tui.errors import FactoryError, LeaseLost, LogBusy, LogError, UnknownMessage, os_error_text
from factory_tui.model import FAILURE_TEXT_LIMIT, Action, Claim, State, Task, task_seq

__all__ = ["Engine", "EngineBusy", "EngineLock", "EngineStatus", "EngineThread", "describe_holder"]

LEASE_SECONDS = 60.0
# Cancellation must stop an agent within two seconds: look this often.
CHECK_SECONDS = 0.5
# How often the engine looks for requests to take and tasks to answer.
MAIL_ROUND_SECONDS = 1.0
# How long the engine's start waits for mail to be caught up before it
# claims work anyway.
MAIL_CATCH_UP_SECONDS = 10.0
REAP_SECONDS = 10.0
# Progress retention ([log] keep_progress_days): a pass at the start and
# then this often, and a pause between its batches (each one short write
# transaction), in which other writers take the lock.
PRUNE_SECONDS = 600.0
PRUNE_PAUSE = 0.02
PROGRESS_SECONDS = 1.0
PUMP_SECONDS = 0.2
# How soon the log's watch tells of a change: its native loop wakes this
# often. A new task is claimed ~17 ms after it is added (50 ms: ~60 ms); an
# idle engine takes ~0.7% of a core in all (50 ms: 0.4%, 5 ms: 1%).
LOG_WAKE_MS = 10
# While every slot is used, a change the log's watch reported waits for a
# free one, looked for this often (a job's end also wakes the scheduler).
WATCH_SECONDS = 0.05
# The engine's own busy timeout is short: it retries a busy log itself and
# keeps its rounds going meanwhile, instead of sitting in SQLite's wait.
ENGINE_BUSY_TIMEOUT_MS = 1000
# Backoff between tries of a write that must happen, while the log is busy.
BUSY_BACKOFF = (0.05, 1.0)
# Errors of the filesystem itself: no run can start, so the engine stops.
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


class EngineStopped(FactoryError):
    """The engine stopped itself: the log or the disk cannot be written."""


class _Busy:
    """What a one-try log call returns when the log was busy."""


BUSY = _Busy()

# Log calls that only read: they go through while another process holds the
# write lock (WAL), so their success says nothing about the lock being free.
_READS = frozenset({"has_ready", "live_tokens", "get_task", "list_tasks", "live_leases", "_prompt_for"})


@dataclass
class EngineStatus:
    mode: str
    running: list[str]
    max_parallel: int
    agent: str
    stopping: bool = False


@dataclass
class Check:
    """One QA check the engine runs (backends/qa_gate.py) in a worker
    thread, under the lease of the run it checks (or one ``claim_check``
    took when an earlier engine left it)."""

    task: Task
    token: str
    attempt: int
    # The agent's last words, for a judge; None: read from the log.
    summary: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


class StartedRun(NamedTuple):
    """What a job has once its agent started: the run and its output."""

    run: AgentRun
    output: RunOutput


@dataclass
class Job:
    """One agent run the engine is watching."""

    task: Task
    token: str
    attempt: int
    run_dir: Path
    profile: AgentProfile | None = None
    run: AgentRun | None = None
    output: RunOutput | None = None
    adopted: bool = False
    # The task branch's commit when the run began: a run that ends with the
    # branch still there, and nothing left to commit, did no work.
    start_head: str | None = None
    # The claim's secret, handed to the agent as FACTORY_TOKEN.
    secret: str | None = None
    # Merge conflicts the run was given to resolve first (the base branch
    # was merged into its branch before it began).
    conflicts: Conflicts | None = None
    # The run's diff summary, counted while its work was committed.
    diff: DiffSummary | None = None
    last_progress_at: float = 0.0
    # Wall-clock time, as leases are: a suspended machine's monotonic clock
    # stands still while the lease runs out.
    last_heartbeat: float = 0.0
    # lost (cancelled or reaped), shutdown, timeout, detached (left running).
    stop_reason: str | None = None
    signalled: bool = False
    # Set the moment our own supervisor exits (a pidfd; see _wait_for_exit).
    exited: asyncio.Event | None = None
    exit_fd: int | None = None

    @property
    def task_id(self) -> str:
        return self.task.id

    def started(self) -> StartedRun:
        """The run and its output. Both are set once the agent started
        (``Engine._launch``) or was taken over (``Engine._recover``); what
        follows a run (reading its output, concluding it) comes after that."""
        if self.run is None or self.output is None:
            raise RuntimeError(f"{self.task_id}: its run has not started")
        return StartedRun(self.run, self.output)


@dataclass
class _Closing:
    """What ``Engine._close_run`` found and did at a run's end."""

    failure: str | None
    cause: str | None
    broken: str | None = None
    # The task goes to QA's gate (the caller writes it to the log).
    qa: bool = False
    # (outcome, note, data, report) of the log write that ends the run.
    finish: tuple[State, str, dict, str] | None = None
    # What that write returned (the task, and the next claim made with
    # it), BUSY when the log was busy (the caller writes it then), None
    # when there was none.
    ended: tuple[Task, Claim | None] | _Busy | None = None
    # The run's lease was gone when its end was written: nothing changed.
    lost: LeaseLost | None = None
    reports: list[str] = field(default_factory=list)


def run_dir_for(base: FactoryBase, task_id: str, attempt: int) -> Path:
    return base.run_dir(task_id, attempt)


def program_missing(argv: list[str]) -> str | None:
    """Why the agent's program cannot be started, or None if it can."""
    program = argv[0]
    if os.sep in program:
        if not os.path.exists(program):
            return f"agent program not found: {program}"
        if not os.access(program, os.X_OK):
            return f"agent program is not executable: {program}"
        return None
    if shutil.which(program) is None:
        return f"agent program not found: {program}"
    return None


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
        lease_seconds: float | None = None,
        report: Callable[[str], None] | None = None,
        on_status: Callable[[EngineStatus], None] | None = None,
    ) -> None:
        self.base = base
        self.mode = mode
        self.once = once
        self.lease_seconds = lease_seconds or _lease_from_environment()
        # Leases that ran out are looked for this often (sooner with the
        # short leases tests use).
        self.reap_seconds = min(REAP_SECONDS, self.lease_seconds / 2)
        self._max_parallel = max_parallel
        self._report = report or (lambda line: None)
        self._on_status = on_status or (lambda status: None)
        self.worker = f"engine:{socket.gethostname()}:{os.getpid()}"
        self.jobs: dict[str, Job] = {}
        # QA checks in flight, by task.
        self.checks: dict[str, Check] = {}
        # Whether a task may wait in checking without a lease (an engine
        # stopped or died while checking it): looked for at start and after
        # each reaping, until none is found.
        self._checks_to_claim = True
        self.failures = 0
        self._stopping = False
        self._stop_agents = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._lock = EngineLock(base)
        self._running: set[asyncio.Task] = set()
        self._watcher: asyncio.Task | None = None
        # Mail over git with the peers that have a remote, in its own thread.
        self._mail_sync: SyncLoop | None = None
        # Claims of tasks whose previous run is still being stopped (the
        # task was cancelled and queued again meanwhile): started when that
        # run has ended, so that two agents never share a worktree.
        self._waiting: dict[str, Claim] = {}
        # git itself is not safe running two `worktree add`s (or an add and
        # a remove) at once in one repository: a command that lists the
        # worktrees reads another's half-written .git/worktrees/<id>/ and
        # dies ("failed to read …/commondir"). Runs start in parallel, so
        # the engine makes and removes worktrees one at a time.
        self._worktree_lock = threading.Lock()
        # Across processes, the same holds for an operator's approve or
        # clean: the engine's worktree changes take the operator lock too.
        self._operator_lock = OperatorLock(base.dir)
        self.agent_name = "?"
        # Why the engine stopped itself (the log or the disk cannot be
        # written), or None.
        self.fatal: str | None = None
        self._busy_since: float | None = None
        # Once stopping, writes that must happen are tried until this
        # (monotonic) time and then left: the lease expires, the next engine
        # finds the run and finishes it.
        self._stop_deadline = float("inf")
        # Retention ([artifacts] keep_runs) runs after a run ends, one
        # collection at a time; a run that ends meanwhile asks for another.
        self._collecting = False
        self._collect_again = False
        # Set when the engine is told to stop: a collection ends after the
        # file at hand (each one is whole or untouched either way).
        self._collect_cancel = threading.Event()
        # The first round indexes the run folders the log does not know (an
        # older factory-tui's); after that the engine indexes each run as it
        # ends, and a round reads the index alone.
        self._runs_synced = False
        # A pass of progress retention is at work (see _prune_progress).
        self._pruning = False

    # --- the host's handles -----------------------------------------------

    def request_stop(self, *, stop_agents: bool = True) -> None:
        """Stop taking tasks and end ``run``. ``stop_agents``: stop the
        running agents (their tasks go back to the queue, work committed);
        otherwise leave them to the next engine. Safe from any thread."""

        def stop() -> None:
            if not self._stopping:
                self._stop_deadline = time.monotonic() + self.lease_seconds
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
        self._wake = wake = asyncio.Event()
        self._lock.acquire(self.mode)
        try:
            # The same session the CLI and the console work through.
            self.session = FactorySession(self.base, busy_timeout_ms=ENGINE_BUSY_TIMEOUT_MS)
            self.config = self.session.config
            self.log = self.session.log
            self.worktrees = self.session.worktrees
            try:
                self.agent_name = profile_for(None, self.config).name
            except FactoryError:
                self.agent_name = "?"
            self._report(f"engine started ({self.mode}, up to {self.max_parallel} agents, default agent {self.agent_name})")
            self._mail_sync = start_sync_loop(self.base.root, self.config, self.base.inbox_dir, self._report,
                                              after=self.session.record_sync)
            try:
                await self._recover()
                self._publish()
                self._start_mail()
                # Mail that came while no engine ran reaches the first
                # prompts (an agent's replies): taken in before any claim,
                # for a while at most.
                await asyncio.to_thread(self._mail_caught_up.wait, MAIL_CATCH_UP_SECONDS)
                self._watcher = asyncio.ensure_future(self._watch_log(wake))
                await self._loop_until_done(wake)
            except LogError as error:
                self._fail_engine(str(error))
        finally:
            if self._watcher is not None:
                self._watcher.cancel()
            await self._stop_mail()
            if self._mail_sync is not None:
                # Ends a sync in progress too (its git is killed).
                await asyncio.to_thread(self._mail_sync.stop)
            try:
                await self._shutdown()
            finally:
                if hasattr(self, "session"):
                    self.session.close()
                self._lock.release()
        if self.fatal:
            raise EngineStopped(self.fatal)
        return 1 if self.once and self.failures else 0

    async def _loop_until_done(self, wake: asyncio.Event) -> None:
        """The rounds of work; ``wake`` (the engine's ``_wake``) ends a
        round's wait early."""
        last_check = last_reap = last_mail = last_retry = 0.0
        last_prune = -PRUNE_SECONDS
        while not self._stopping:
            # Cleared before the work, not after it: a wake-up that comes
            # while this round runs (a job ending) then starts the next
            # round at once instead of being lost.
            wake.clear()
            now = time.monotonic()
            # Our own runs first, so that a lease of ours whose time ran out
            # while this process slept is renewed (or its run concluded)
            # before anything is reaped.
            if now - last_check >= CHECK_SECONDS:
                last_check = now
                await self._check_jobs()
            if now - last_reap >= self.reap_seconds:
                # A tidy-up may have deleted the lock's description.
                await self._call(self._lock.describe)
                reaped = await self._try_log(self.log.reap_expired, actor=self.worker, keep=self._own_tokens())
                if reaped is not BUSY:
                    last_reap = now
                    self._checks_to_claim = True
                    for task_id in reaped:
                        self._report(f"{task_id}: lease expired, back to queued")
            if now - last_mail >= MAIL_ROUND_SECONDS:
                last_mail = now
                retry = now - last_retry >= self.config.mail.sync_interval
                if retry:
                    last_retry = now
                await self._mail_round(retry)
            if (self.config.log.keep_progress_days is not None and not self._pruning
                    and now - last_prune >= PRUNE_SECONDS):
                last_prune = now
                self._pruning = True
                self._spawn(self._prune_progress(self.config.log.keep_progress_days))
            # Checks left by an engine before this one first: their runs are done.
            await self._claim_checks()
            await self._fill_slots()
            if self.once and not self.jobs and not self._waiting and not self.checks:
                # A task still in checking (its dead engine's lease not yet
                # run out) is waited for, to be checked here.
                if (await self._try_log(self.log.has_ready) is False
                        and await self._try_log(self.log.list_tasks, [State.CHECKING], bodies=False) == []):
                    # What the runs just ended owe a requester (a task that
                    # failed) goes before this run exits, not at the next one.
                    await self._mail_round(retry=False)
                    break
            try:
                await asyncio.wait_for(wake.wait(), timeout=CHECK_SECONDS)
            except TimeoutError:
                pass

    def _own_tokens(self) -> set[str]:
        return ({job.token for job in self.jobs.values()} | {claim.token for claim in self._waiting.values()}
                | {check.token for check in self.checks.values()})

    def _slots_used(self) -> int:
        """Agent runs, and QA checks unless ``[qa] max_parallel`` gives them
        slots of their own."""
        checks = len(self.checks) if self.config.qa.max_parallel is None else 0
        return len(self.jobs) + len(self._waiting) + checks

    def _check_slot_free(self) -> bool:
        limit = self.config.qa.max_parallel
        if limit is None:
            return self._slots_used() < self.max_parallel
        return len(self.checks) < limit

    async def _fill_slots(self) -> None:
        while not self._stopping and self._slots_used() < self.max_parallel:
            # A read first: a claim takes the write lock even when it finds nothing.
            if await self._try_log(self.log.has_ready) is not True:
                return
            claim = await self._try_log(self.log.claim_next, self.worker, lease_seconds=self.lease_seconds)
            if claim is None or claim is BUSY:
                return
            faults.point("claim.made")
            self._start(claim)

    def _start(self, claim: Claim) -> None:
        previous = self.jobs.get(claim.task.id)
        if previous is not None:
            # The task was cancelled and queued again before its last run
            # ended. That run's lease is gone: stop it now, and start this
            # one when it has ended (and its work is committed).
            previous.stop_reason = previous.stop_reason or "lost"
            self._signal(previous)
            self._waiting[claim.task.id] = claim
            self._report(f"{claim.task.id}: claimed (attempt {claim.task.attempts}); waiting for its last run to stop")
            return
        job = Job(
            task=claim.task,
            token=claim.token,
            attempt=claim.task.attempts,
            run_dir=run_dir_for(self.base, claim.task.id, claim.task.attempts),
            secret=getattr(claim, "secret", None),
            last_heartbeat=time.time(),
        )
        self.jobs[job.task_id] = job
        self._report(f"{job.task_id}: claimed (attempt {job.attempt})")
        self._spawn(self._run_job(job))
        self._publish()

    async def _check_jobs(self) -> None:
        """Heartbeats, timeouts, and stopping agents whose task is no longer
        theirs (cancelled by the operator, or its lease reaped). A busy log
        only postpones a heartbeat to the next round."""
        if not self.jobs:
            return
        # The jobs whose tokens are asked about, and only those: a run that
        # starts while the log answers (a claim made with another run's end)
        # is not in the answer, and is looked at in the next round.
        asked = list(self.jobs.values())
        live = await self._try_log(self.log.live_tokens, [job.token for job in asked])
        now = time.time()
        for job in asked:
            if self.jobs.get(job.task_id) is not job:
                continue  # ended meanwhile
            if live is not BUSY and job.token not in live:
                if job.stop_reason is None:
                    job.stop_reason = "lost"
                    self._signal(job)
                continue
            if job.run is not None and job.stop_reason is None and job.run.overdue(now):
                job.stop_reason = "timeout"
                self._signal(job)
            if now - job.last_heartbeat >= self.lease_seconds / 4:
                try:
                    renewed = await self._try_log(self.log.heartbeat, job.token, lease_seconds=self.lease_seconds)
                except LeaseLost:
                    job.stop_reason = job.stop_reason or "lost"
                    self._signal(job)
                else:
                    if renewed is not BUSY:
                        job.last_heartbeat = now

    def _signal(self, job: Job) -> None:
        """Stop the job's agent (its whole process group), off the loop."""
        if job.signalled or job.run is None:
            return
        job.signalled = True
        self._spawn(self._call(job.run.stop))
        if self._wake is not None:
            self._wake.set()

    async def _shutdown(self) -> None:
        if self.jobs:
            if self._stop_agents:
                self._report(f"stopping {len(self.jobs)} agent(s)")
                for job in self.jobs.values():
                    job.stop_reason = job.stop_reason or "shutdown"
                    self._signal(job)
            else:
                # Leave the agents running for the next engine: stop watching.
                self._report(f"leaving {len(self.jobs)} agent(s) to the next engine")
                for job in self.jobs.values():
                    job.stop_reason = "detached"
            while self.jobs:
                await asyncio.sleep(0.05)
        # QA checks stop too: their tasks wait in checking for the next engine.
        if self.checks:
            self._report(f"stopping {len(self.checks)} QA check(s)")
        while self.checks:
            for check in self.checks.values():
                check.cancel.set()
            await asyncio.sleep(0.05)
        # Claims still waiting for a task's last run to end never started.
        for claim in list(self._waiting.values()):
            try:
                await self._log(self.log.release, claim.token, note="the engine stopped before this run began",
                                data={"run_started": False})
            except (LeaseLost, LogError):
                pass
        self._waiting.clear()
        # Retention after the last runs' ends: finished when the work is
        # done (`run --once`), cut short after the file at hand when the
        # engine was told to stop.
        if self._stopping:
            self._collect_cancel.set()
        while self._collecting:
            await asyncio.sleep(0.05)
        # A pass of progress retention ends after its batch at hand.
        while self._pruning:
            await asyncio.sleep(0.01)

    # --- one run ---------------------------------------------------------------

    async def _run_job(self, job: Job) -> None:
        try:
            if not job.adopted:
                try:
                    await self._launch(job)
                except OSError as error:
                    if job.run is not None:
                        raise
                    if error.errno in DISK_ERRORS:
                        # No run can start on a full or read-only disk: give
                        # the task back and stop, rather than fail every task.
                        self._fail_engine(f"cannot start {job.task_id}'s run: {os_error_text(error)}")
                        await self._give_back(job, f"not started: {os_error_text(error)}")
                        return
                    await self._fail_early(job, f"cannot start the run: {os_error_text(error)}")
                    return
                except FactoryError as error:
                    if job.run is not None or isinstance(error, LogError):
                        raise
                    if isinstance(error, OperatorBusy):
                        # Stopping while an operator's action held the base:
                        # not the task's fault.
                        await self._give_back(job, f"not started: {error}")
                        return
                    # Another plan's worktree is not ours to commit into.
                    await self._fail_early(job, str(error), save=not isinstance(error, BranchCollision))
                    return
            await self._follow(job)
            if job.stop_reason == "detached":
                return
            await self._conclude(job)
        except LogError:
            # The log cannot be written at all (the engine is stopping, see
            # _fail_engine): the agent was stopped with the others and its
            # lease will expire; the next engine concludes the run.
            pass
        except OSError as error:
            if error.errno not in DISK_ERRORS:
                await self._fail_early(job, f"engine error: {type(error).__name__}: {error}", cause="engine")
            else:
                # The disk, not the agent: no task is failed for it.
                self._fail_engine(f"cannot go on with {job.task_id}'s run: {os_error_text(error)}")
                await self._abandon(job, f"the engine stopped: {os_error_text(error)}")
        except Exception as error:  # an engine bug must not lose the task
            await self._fail_early(job, f"engine error: {type(error).__name__}: {error}", cause="engine")
        finally:
            self._unwatch_exit(job)
            if self.jobs.get(job.task_id) is job:
                del self.jobs[job.task_id]
            waiting = self._waiting.pop(job.task_id, None)
            if waiting is not None:
                if self._stopping:
                    self._waiting[job.task_id] = waiting  # _shutdown gives it back
                else:
                    self._start(waiting)
            self._publish()
            if self._wake is not None:
                self._wake.set()

    async def _launch(self, job: Job) -> None:
        task = job.task
        job.profile = profile_for(task.profile, self.config)
        job.output = RunOutput(job.run_dir, job.profile.output)
        # The prompt of a task without a branch is written from the log
        # while git makes the worktree: taken only if a new branch was
        # indeed made (a branch that ran before may have conflicts to
        # resolve first, which the prompt names).
        early: asyncio.Future[Prompt] | None = None
        if task.branch_start is None:
            # The plan never made a branch for it: the usual first run.
            early = asyncio.ensure_future(self._log(self._prompt_for, task, job.attempt, None))
        try:
            stopped, prepared = await self._call(self._open_worktree, task)
        except BaseException:
            _drop(early)
            raise
        if stopped:
            self._report(f"{task.id}: stopped what an earlier attempt left running ({stopped})")
        worktree = prepared.path
        if prepared.start is None:
            _drop(early)
            early = None
            # A branch that ran before: if it no longer merges into the
            # base, the base is merged into it now, for the agent to resolve.
            job.conflicts = await self._conflicts_first(task)
        if early is not None:
            built = await early
        else:
            built = await self._log(self._prompt_for, task, job.attempt, job.conflicts)
        prompt = built.text
        prompt_file = job.run_dir / "prompt.md"
        argv = job.profile.render_argv(prompt=prompt, prompt_file=prompt_file, task_id=task.id, worktree=worktree)
        env = dict(os.environ)
        env.update(job.profile.env)
        for key in ("FACTORY_TASK", "FACTORY_TOKEN", "FACTORY_RUN", "FACTORY_FAULTS"):
            env.pop(key, None)
        env["FACTORY_BASE"] = str(self.base.root)
        env["FACTORY_TASK"] = task.id
        if job.secret:
            # The agent's proof that it is this run's agent (backends/log.py
            # agent_for): an agent may note and propose, nothing more.
            env["FACTORY_TOKEN"] = job.secret
        # The agent can call `factory` itself: put this installation first.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])

        def start_head() -> None:
            job.start_head = self.worktrees.branch_head(task.id)

        def write_prompt() -> None:
            self._prepare_run_dir(job.run_dir)
            write_private(prompt_file, prompt)

        def start_agent() -> None:
            missing = program_missing(argv)
            if missing:
                raise FactoryError(missing)
            assert job.profile is not None
            record = {
                "task": task.id, "attempt": job.attempt, "token": job.token,
                "profile": job.profile.name, "output": job.profile.output,
                "start_head": job.start_head,
                "conflicts": list(job.conflicts.files) if job.conflicts else [],
            }
            job.run = AgentRun.start(job.run_dir, argv, cwd=worktree, env=env,
                                     timeout=job.profile.timeout, record=record)

        # One after the other in one worker call: the branch's start
        # recorded (from then on the branch is this plan's), the prompt
        # written, what the agent will know recorded (each document's
        # version and how much of it), and the agent started.
        await self._in_order(
            *([_LogWrite(self.log.record_branch_start, (task.id, prepared.start))]
              if prepared.start is not None else []),
            start_head,
            write_prompt,
            _LogWrite(self.log.record_prompt_documents, (task.id, job.attempt, built_documents(built))),
            start_agent,
        )
        self._report(f"{task.id}: {job.profile.name} started in {worktree.relative_to(self.base.root)}")

    def _open_worktree(self, task: Task) -> tuple[str, Prepared]:
        """The task's worktree, made if needed (worker thread). Nothing of
        an earlier attempt may still work in it (an engine killed while
        starting it, a run whose supervisor died): found by FACTORY_RUN and
        stopped first; returns which runs those were, for the report. A
        branch or worktree that this plan did not make (an earlier plan's
        T-1) is never taken over: BranchCollision fails the task with what
        to do, and nothing of it is touched."""
        stopped = self._stop_earlier_runs(task.id)
        prepared = self._locked(self.worktrees.prepare_for, task.id, owned=task.branch_start is not None)
        return stopped, prepared

    async def _conflicts_first(self, task: Task) -> Conflicts | None:
        """Before a re-run of a branch: the conflicts its agent must resolve
        first, if any. A merge left in progress is taken as it is; a branch
        that would conflict with the base now has the base merged into it
        (the markers left in the files, see Worktrees.merge_base_in); and
        files that a run before left with markers in them (the merge was
        concluded unresolved) are named again."""
        worktrees, task_id = self.worktrees, task.id
        base = worktrees.base_branch
        if await self._call(worktrees.merging, task_id):
            files = await self._call(worktrees.unmerged_files, task_id)
            return Conflicts(tuple(files), base) if files else None
        check = await self._call(worktrees.merge_check, task_id)
        if check.status is MergeStatus.CONFLICTS:
            files = await self._call(
                worktrees.merge_base_in, task_id, f"Merge {base} into {worktrees.branch_for(task_id)}")
            if files:
                shown = ", ".join(files[:10]) + (", …" if len(files) > 10 else "")
                await self._log(
                    self.log.add_note, task_id,
                    f"merged {base} into {worktrees.branch_for(task_id)} before this run: conflicts in "
                    f"{shown}, left for the agent to resolve",
                    actor=self.worker, data={"conflicts": files, "base": check.base},
                )
                self._report(f"{task_id}: {base} merged into its branch; conflicts in {shown} for the agent")
                return Conflicts(tuple(files), base)
            return None
        # Markers committed by an earlier run (the merge concluded without
        # being resolved): the newest record of conflicts says where.
        history = await self._log(self.log.events, task_id=task_id, kinds=["failed", "note"])
        named: list[object] = next((event.data["conflicts"] for event in reversed(history)
                                    if isinstance(event.data.get("conflicts"), list)), [])
        left = await self._call(worktrees.files_with_markers, task_id, [str(name) for name in named])
        return Conflicts(tuple(left), base, in_progress=False) if left else None

    def _stop_earlier_runs(self, task_id: str) -> str:
        """Stop every live process of any run of ``task_id`` (worker thread);
        returns which runs had any, for the report."""
        task_runs = self.base.task_runs_dir(task_id)
        if not task_runs.exists():
            return ""  # no run of it was ever started here: nothing to look for
        found = processes.of_task(task_runs)
        runs = sorted({item.run for item in found})
        for run in runs:
            stop_run(Path(run))
        return ", ".join(os.path.relpath(run, self.base.root) for run in runs)

    def _prepare_run_dir(self, run_dir: Path) -> None:
        """A new, private run folder. One that is there already cannot be
        this attempt's (each claim counts a new attempt): it is an earlier
        plan's, kept aside rather than mixed into this run."""
        if run_dir.exists():
            aside = run_dir.with_name(f"{run_dir.name}.earlier-{time.time_ns()}")
            run_dir.rename(aside)
            self._report(f"{run_dir.relative_to(self.base.root)} was there already; kept as {aside.name}")
        make_run_dir(run_dir)

    def _prompt_for(self, task: Task, attempt: int, conflicts: Conflicts | None = None) -> Prompt:
        full = self.log.get_task(task.id)
        # What ended the run before this one: an engine that stopped it
        # (its attempt given back) or died (its lease expired) is said as
        # such, never as the operator sending the task back.
        ends = self.log.events(task_id=task.id, kinds=RUN_BOUNDARIES, last=2)
        interrupted = None
        if len(ends) == 2 and ends[1].kind == "claimed":
            previous = ends[0]
            if previous.kind == "expired" or (
                previous.kind == "stopped" and previous.data.get("run_started", True)
            ):
                interrupted = previous.kind
        outcomes = []
        for dep in self.log.get_tasks(full.depends_on):
            finished = self.log.events(task_id=dep.id, kinds=["finished"], last=1)
            summary = None
            if finished:
                summary = finished[0].data.get("summary") or finished[0].note
            outcomes.append(DependencyOutcome(task=dep, summary=summary))
        return build_prompt(
            full,
            attempt=attempt,
            branch=self.worktrees.branch_for(task.id),
            dependencies=outcomes,
            feedback=full.feedback,
            documents=self._living_documents(full, attempt),
            interrupted=interrupted,
            conflicts=conflicts,
            mail=self._task_mail(full),
            documents_budget=self.config.artifacts.prompt_budget,
        )

    def _task_mail(self, task: Task) -> TaskMail:
        """The request ``task`` came from, and the messages to it received
        since its last run started (the claim before this run's); for a
        first run, all of them. One received while the last prompt was
        being written may show twice; none is left out."""
        claims = self.log.events(task_id=task.id, kinds=["claimed"], last=2)
        since = claims[0].at if len(claims) == 2 else None
        address = f"{self.config.name}/{task.id}"
        messages = tuple(_mail_note(item) for item in self.log.mail_to(address, since=since))
        request = None
        if task.source and task.source.startswith("mail:"):
            try:
                request = _mail_note(self.log.mail_message(task.source.removeprefix("mail:")))
            except UnknownMessage:
                request = None
        return TaskMail(address, request, messages)

    def _living_documents(self, task: Task, attempt: int) -> list[PromptDocument]:
        """The living documents that apply to ``task``, most specific
        first (backends/document_choice.py), each with its blob id. Only
        regular files inside the repository are read: a symlink that leads
        out of it (to ~/.ssh, say) never reaches a prompt, nor a FIFO that
        would block for ever (backends/documents.py)."""
        from factory_tui.backends.living_documents import current_documents, facts_for, for_prompt, wants_paths
        from factory_tui.backends.qa_checks import changed_paths

        documents = current_documents(self.base, self.log)
        changed: list[str] = []
        if attempt > 1 and wants_paths(documents) and self.worktrees.has_branch(task.id):
            # On a later attempt the branch's own changes say what it is about.
            try:
                changed = changed_paths(self.base.root, self.worktrees.base_branch, self.worktrees.branch_for(task.id))
            except FactoryError:
                changed = []
        return for_prompt(documents, facts_for(task, changed))[1]

    async def _follow(self, job: Job) -> None:
        """Read the agent's output as it comes until its run has ended."""
        run, output = job.started()
        while True:
            await self._pump(job)
            if job.stop_reason == "detached":
                return
            if job.stop_reason and not job.signalled:
                self._signal(job)
            if run.ended():
                break
            await self._wait_for_exit(job, PUMP_SECONDS)
            if run.ended() and job.stop_reason != "detached":
                break  # what is left to read, finish reads
        await self._call(output.finish)
        await self._flush_progress(job, force=True)

    async def _pump(self, job: Job) -> None:
        while await self._call(job.started().output.read):
            pass
        await self._flush_progress(job)

    async def _flush_progress(self, job: Job, *, force: bool = False) -> None:
        """The newest line of progress to the log, at most once a second.
        A busy log keeps it for the next try; it is never worth a wait."""
        if job.stop_reason:
            return
        now = time.monotonic()
        if not force and now - job.last_progress_at < PROGRESS_SECONDS:
            return
        output = job.started().output
        pending = output.take_progress()
        if pending is None:
            return
        job.last_progress_at = now
        text, data = pending
        try:
            written = await self._try_log(self.log.add_progress, job.token, text, data=data or None)
        except LeaseLost:
            job.stop_reason = job.stop_reason or "lost"
            return
        if written is BUSY and output.pending is None:
            output.pending = pending

    async def _conclude(self, job: Job) -> None:
        task_id = job.task_id
        run, output = job.started()
        code = run.exit_code()
        reason = job.stop_reason
        if reason == "shutdown" and code is not None:
            # The agent ended on its own before the stop reached it: its
            # result stands, rather than the task running all over again.
            reason = None
        failure = describe_exit(code)
        # What kind of failure it is (model.FAILURE_CAUSES), for the log.
        cause = "exit" if failure else None
        if failure is None and output.agent_failure:
            # The agent's own word counts, whatever its exit status: a run
            # that says it failed (is_error, a failed turn) never reaches
            # review as if it had worked.
            failure = f"the agent reported a failure: {output.agent_failure}"
            cause = "agent"
        if reason == "timeout":
            timeout = job.profile.timeout if job.profile else run.timeout
            failure = f"timed out after {timeout:g} s"
            cause = "timeout"
        # The run's end, up to its log write, in one worker call.
        try:
            closing = await self._call(self._close_run, job, code, reason, failure, cause)
        except LogError as error:
            self._fail_engine(str(error))  # not busy: the log cannot be written at all
            raise
        for line in closing.reports:
            self._report(line)
        failure, cause = closing.failure, closing.cause
        if reason in ("lost", "shutdown"):
            await self._conclude_stopped(job, reason, code, closing.broken)
            return
        try:
            if closing.lost is not None:
                raise closing.lost
            if closing.qa:
                await self._hand_to_qa(job, output.totals, output.summary)
            elif isinstance(closing.ended, tuple):
                assert closing.finish is not None
                if self._busy_since is not None:
                    self._log_free(self.log.finish)
                await self._after_finish(closing.ended, closing.finish[3])
            else:
                assert closing.finish is not None
                await self._finish(job, *closing.finish)
            if failure is not None:
                self.failures += 1
        except LeaseLost as error:
            self._report(f"{task_id}: {error}")
        if failure is None:
            outcome = RunOutcome.FINISHED
        else:
            outcome = RunOutcome.TIMED_OUT if cause == "timeout" else RunOutcome.FAILED
        await self._index_run(job, outcome, code)

    def _close_run(self, job: Job, code: int | None, reason: str | None, failure: str | None,
                   cause: str | None) -> _Closing:
        """The run's end up to its log write (worker thread): what the agent
        started and left behind stopped, the worktree looked at, exit.json
        written, the work committed, and then, for a run that ended on its
        own and needs no QA, the log told (review or failed) with the next
        ready task claimed in the same transaction when its slot frees. A
        busy log leaves that write to the caller (``ended`` is BUSY)."""
        task_id = job.task_id
        run, output = job.started()
        closing = _Closing(failure=failure, cause=cause)
        # What the agent started and left behind goes with it; a run whose
        # supervisor was killed may even leave the agent itself at work.
        if run.stop() and code is None and reason is None:
            closing.reports.append(f"{task_id}: its supervisor was gone; the agent it left was stopped")
        faults.point("conclude.begin")
        closing.broken = broken = self._broken_worktree(task_id)
        if broken and reason is None and failure is None:
            failure, cause = broken, "worktree"
        write_json(job.run_dir / "exit.json", {
            "exit_code": code, "timed_out": reason == "timeout",
            "stopped": reason in ("lost", "shutdown"), "failure": failure,
            "started": run.started, "agent_started": _mtime(job.run_dir / "agent.pid"),
            "agent_ended": _mtime(job.run_dir / "exit.code"), "ended": time.time(),
        })
        closing.failure, closing.cause = failure, cause
        if reason in ("lost", "shutdown"):
            return closing  # the rest is the caller's (_conclude_stopped)
        committed = self._commit_counted(job, f"factory: work left by {task_id}'s agent", closing.reports)
        markers: list[str] = []
        if failure is None and job.conflicts is not None:
            # The conflicts it was given must be resolved, or the branch
            # would land with git's markers in it.
            markers = self.worktrees.files_with_markers(task_id, job.conflicts.files)
            if markers:
                shown = ", ".join(markers[:10]) + (", …" if len(markers) > 10 else "")
                failure = (f"conflict markers remain in {shown}: the merge of "
                           f"{job.conflicts.base_branch} is not resolved")
                cause = "markers"
        if failure is None and not committed and job.start_head is not None:
            # Nothing new from this run, and nothing from earlier ones either:
            # there would be nothing to review.
            head = self.worktrees.branch_head(task_id)
            if head == job.start_head and not self.worktrees.branch_has_work(task_id):
                failure = "the agent finished without changing anything: there is no work to review"
                cause = "no-work"
        closing.failure, closing.cause = failure, cause
        if failure is None and self._qa_wanted():
            closing.qa = True  # the gate: the caller hands the task to QA
            return closing
        totals = output.totals
        data = {"run": str(job.run_dir.relative_to(self.base.root)), **totals}
        if output.summary:
            data["summary"] = output.summary
        if failure is None:
            note = "agent finished" + _summary(totals)
            closing.finish = (State.REVIEW, note, data, f"{task_id}: review ({note})")
        else:
            tail = " | ".join(output.last_lines)
            note = f"{failure}" + (f"; last output: {tail}" if tail else "")
            data.update({"failure": cause, "reason": failure[:FAILURE_TEXT_LIMIT * 2]})
            if cause == "exit":
                data["exit_code"] = code
            if markers:
                data["conflicts"] = markers
            closing.finish = (State.FAILED, note[:2000], data, f"{task_id}: failed ({failure})")
        outcome, note, data, _ = closing.finish
        try:
            if self._next_with_finish(job):
                closing.ended = self.log.finish_and_claim_next(
                    job.token, outcome, self.worker, note=note, data=data, lease_seconds=self.lease_seconds)
            else:
                closing.ended = (self.log.finish(job.token, outcome, note=note, data=data), None)
        except LogBusy:
            closing.ended = BUSY
        except LeaseLost as error:
            closing.lost = error
        return closing

    def _commit_counted(self, job: Job, message: str, reports: list[str]) -> bool:
        """``_commit_left_work`` at a run's end, with the run's diff summary
        counted by git while the commit is made (``job.diff``, for the run's
        index), when the branch grew from the base branch's commit and no
        hook may change what the commit holds; True if a commit was made."""
        task_id = job.task_id
        worktrees = self.worktrees
        if not worktrees.is_worktree(task_id):
            return False
        before = worktrees.branch_head(task_id)
        try:
            tip: str | None = worktrees.base_head()
        except FactoryError:
            tip = None
        if (before is None or tip is None or not worktrees.descends_without_git(tip, before)
                or not plain_repository(worktrees.common_dir, hook="post-commit")):
            return self._commit_left_work(task_id, message, reports)
        try:
            committed, numstat = worktrees.commit_all_counted(task_id, message, tip)
        except FactoryError as error:
            reports.append(f"{task_id}: could not commit the work left: {error}")
            return False
        head = worktrees.branch_head(task_id)
        # The count is the commit's when the commit is the one made on top
        # of the branch as it was (or, with nothing to commit, the branch).
        made = head is not None and (
            loose_parents(worktrees.common_dir / "objects", head) == [before] if committed else head == before)
        if numstat is not None and made and head is not None:
            job.diff = summarise(parse_numstat(numstat), tip, head)
        return committed

    def _commit_left_work(self, task_id: str, message: str, reports: list[str]) -> bool:
        """``_save_work`` in the worker thread: True if a commit was made;
        a failure to commit goes to ``reports``."""
        if not self.worktrees.is_worktree(task_id):
            return False
        try:
            return self.worktrees.commit_all(task_id, message)
        except FactoryError as error:
            reports.append(f"{task_id}: could not commit the work left: {error}")
            return False

    async def _conclude_stopped(self, job: Job, reason: str, code: int | None, broken: str | None) -> None:
        """The end of a run the engine stopped: its task cancelled or its
        lease lost (``lost``), or the engine stopping (``shutdown``)."""
        task_id = job.task_id
        await self._save_work(task_id, f"factory: work left when {task_id}'s agent was stopped")
        if reason == "lost":
            task = await self._log(self.log.get_task, task_id)
            if task.state is State.CANCELLED and self.worktrees.path_for(task_id).exists() and not broken:
                await self._call(self._locked, self.worktrees.remove, task_id)
                self._report(f"{task_id}: cancelled; agent stopped, work committed to {self.worktrees.branch_for(task_id)}")
                await self._log(self.log.add_note, task_id,
                                "agent stopped after the task was cancelled; its work is on the branch", actor=self.worker)
            else:
                self._report(f"{task_id}: lease lost; agent stopped")
            await self._index_run(job, RunOutcome.STOPPED, code)
            return
        await self._give_back(job, "the engine stopped; the agent's work is committed")
        self._report(f"{task_id}: agent stopped, back to queued")

    async def _hand_to_qa(self, job: Job, totals: dict, summary: str | None) -> None:
        """The gate: the task waits in checking, under the same lease, while
        its QA runs (and counts in the slots)."""
        task_id = job.task_id
        data = {"run": str(job.run_dir.relative_to(self.base.root)), **totals}
        if summary:
            data["summary"] = summary
        note = "agent finished" + _summary(totals) + "; QA checks it"
        await self._log(self.log.finish, job.token, State.CHECKING, note=note, data=data)
        self._report(f"{task_id}: checking ({note})")
        # Sharing the engine's slots, the check takes its run's.
        limit = self.config.qa.max_parallel
        if limit is None or len(self.checks) < limit:
            self._begin_check(Check(task=job.task, token=job.token, attempt=job.attempt,
                                    summary=summary or ""))
        else:
            # [qa] max_parallel checks run already: this one waits
            # in checking without a lease, taken up (claim_check)
            # when a QA slot is free.
            await self._log(self.log.stop_check, job.token,
                            note="waiting for a QA slot ([qa] max_parallel)")
            self._checks_to_claim = True
            self._report(f"{task_id}: waits for a QA slot")

    async def _finish(self, job: Job, outcome: State, note: str, data: dict, report: str) -> None:
        """End the run in review or failed. When its slot is the one that
        frees, the next ready task is claimed in the same transaction
        (``finish_and_claim_next``: one commit, both events) and started."""
        if not self._next_with_finish(job):
            await self._log(self.log.finish, job.token, outcome, note=note, data=data)
            self._report(report)
            return
        ended = await self._log(self.log.finish_and_claim_next, job.token, outcome, self.worker,
                                note=note, data=data, lease_seconds=self.lease_seconds)
        await self._after_finish(ended, report)

    async def _after_finish(self, ended: tuple[Task, Claim | None], report: str) -> None:
        """A run's end is in the log: say so, and start the task claimed
        with it, if any (given back when the engine began to stop meanwhile)."""
        self._report(report)
        claim = ended[1]
        if claim is None:
            return
        faults.point("claim.made")
        if self._stopping:
            # The engine began to stop while the claim was made: the task
            # goes back, as a stopping engine's claims do.
            try:
                await self._log(self.log.release, claim.token, note="the engine stopped before the run began",
                                data={"run_started": False})
            except (LeaseLost, LogError) as error:
                self._report(f"{claim.task.id}: {error}")
            return
        self._start(claim)

    def _next_with_finish(self, job: Job) -> bool:
        """Whether a run's end claims the next task with it: the engine goes
        on taking tasks, the run's slot is the one that frees, and no check
        an earlier engine left waits for a slot (those go first)."""
        return (not self._stopping and not self._checks_to_claim and self.jobs.get(job.task_id) is job
                and self._slots_used() - 1 < self.max_parallel)

    # --- run artifacts ------------------------------------------------------------

    async def _index_run(self, job: Job, outcome: RunOutcome, code: int | None) -> None:
        """The ended run into the log's index, its diff summary computed
        with git (a worker thread); then retention, in the background.
        Neither may touch the task: a failure here is reported, and the run
        is indexed from its folder when it is asked for."""
        totals = dict(job.output.totals) if job.output is not None else {}
        end = RunEnd(outcome, code, time.time(), totals)
        try:
            await self._call(self._index_ended_run, job, end)
        except (FactoryError, OSError) as error:
            self._report(f"{job.task_id}: its run was not indexed ({error}); it is read from its folder when asked for")
        self._collect_runs()

    def _index_ended_run(self, job: Job, end: RunEnd) -> None:
        # The branch's head from its ref file, and, when it grew from the
        # base branch's commit by a few fresh commits (the usual run), that
        # commit as their merge base: git runs only for the diff itself.
        worktrees = self.worktrees
        head = worktrees.branch_head(job.task_id)
        since = None
        if head is not None:
            try:
                tip = worktrees.base_head()
            except FactoryError:
                tip = None
            if tip is not None and worktrees.descends_without_git(tip, head):
                since = tip
        # Counted while the run's work was committed, if the branch is
        # still where that left it.
        diff = job.diff if job.diff is not None and head == job.diff.head else None
        index_ended_run(
            self.base, self.log, task_id=job.task_id, run_dir=job.run_dir, end=end,
            base_branch=worktrees.base_branch, branch=worktrees.branch_for(job.task_id),
            branch_start=job.task.branch_start, head=head, since=since, diff=diff,
        )

    def _collect_runs(self) -> None:
        """Apply [artifacts] keep_runs now, unless a collection is at work
        (it goes round once more when it is done)."""
        if self._collecting:
            self._collect_again = True
            return
        self._collecting = True
        self._spawn(self._collect_rounds())

    async def _collect_rounds(self) -> None:
        try:
            while True:
                self._collect_again = False
                artifacts = self.config.artifacts
                try:
                    # full=False: only runs the index says are due are looked
                    # at, so a round with nothing to do costs a read of the index.
                    report = await self._call(collect, self.base, self.log, keep_runs=artifacts.keep_runs,
                                              old_raw=artifacts.old_raw, apply=True, full=False,
                                              sync=not self._runs_synced, wait=0, cancel=self._collect_cancel)
                    self._runs_synced = True
                except CollectionBusy:
                    return  # an operator's gc is at work: it does the same
                except (FactoryError, OSError) as error:
                    self._report(f"runs' retention: {error}")
                    return
                if report.items:
                    self._report(f"runs' retention: {report.runs} run(s), freed {report.freed:,} bytes")
                for line in report.errors:
                    self._report(f"runs' retention: {line}")
                if not self._collect_again or self._stopping:
                    return
        finally:
            self._collecting = False

    async def _prune_progress(self, days: float) -> None:
        """A pass of progress retention: the progress lines older than
        ``days`` deleted a batch at a time, with a pause between batches so
        that agents' progress, the CLI and the console write in between
        (backends/log_upkeep.py). A busy log ends the pass: the next one
        goes on from where it stopped."""
        before = time.time() - days * 86400
        deleted = 0
        after = None
        try:
            while not self._stopping:
                step = await self._try_log(self.log.prune_progress, before, after=after)
                if step is BUSY:
                    break
                deleted += step.deleted
                if step.done:
                    break
                after = step.last_id
                await asyncio.sleep(PRUNE_PAUSE)
        except LogError:
            pass  # the engine stops (_try_log said why)
        finally:
            self._pruning = False
        if deleted:
            self._report(f"deleted {deleted:,} progress lines older than {days:g} days ([log] keep_progress_days)")

    def _index_qa_outputs(self, task_id: str, attempt: int) -> None:
        try:
            index_run_files(self.base, self.log, task_id, attempt)
        except (FactoryError, OSError) as error:
            self._report(f"{task_id}: its QA outputs were not indexed ({error})")

    # --- the QA gate ------------------------------------------------------------

    def _qa_wanted(self) -> bool:
        from factory_tui.backends.qa_gate import has_scenarios

        return has_scenarios(self.base, self.config)

    async def _claim_checks(self) -> None:
        """Take the checks an engine before this one left unfinished."""
        while self._checks_to_claim and not self._stopping and self._check_slot_free():
            claim = await self._try_log(self.log.claim_check, self.worker, lease_seconds=self.lease_seconds)
            if claim is BUSY:
                return
            if claim is None:
                self._checks_to_claim = False
                return
            self._report(f"{claim.task.id}: QA again (the check before it did not end)")
            self._begin_check(Check(task=claim.task, token=claim.token, attempt=claim.task.attempts))

    def _begin_check(self, check: Check) -> None:
        if self._stopping:
            check.cancel.set()  # left in checking at once, for the next engine
        self.checks[check.task.id] = check
        self._spawn(self._run_check(check))
        self._publish()

    async def _run_check(self, check: Check) -> None:
        from factory_tui.backends.qa_gate import check_task

        task_id = check.task.id
        try:
            if check.summary is None:
                check.summary = await self._log(self._last_words, task_id)
            decision = await self._call(
                check_task, base=self.base, config=self.config, log=self.log, worktrees=self.worktrees,
                task=check.task, attempt=check.attempt, token=check.token, lease_seconds=self.lease_seconds,
                summary=check.summary, cancel=check.cancel, report=self._report,
            )
            if decision.ended == "failed":
                self.failures += 1
            first = decision.note.splitlines()[0] if decision.note else ""
            self._report(f"{task_id}: QA {decision.ended}" + (f" ({first})" if first else ""))
        except LogError:
            pass  # the engine is stopping (_fail_engine); the check's lease runs out
        except Exception as error:  # an engine bug must not lose the task
            reason = f"engine error during QA: {type(error).__name__}: {error}"
            self._report(f"{task_id}: {reason}")
            try:
                await self._log(self.log.conclude_check, check.token, Action.FAIL, note=reason[:2000],
                                data={"failure": "engine", "reason": reason[:FAILURE_TEXT_LIMIT * 2]})
                self.failures += 1
            except (LeaseLost, FactoryError):
                pass
        finally:
            # What the check wrote into the run's folder, into the index.
            await self._call(self._index_qa_outputs, task_id, check.attempt)
            if self.checks.get(task_id) is check:
                del self.checks[task_id]
            # A slot is free: a check waiting for one is taken up.
            self._checks_to_claim = True
            self._publish()
            if self._wake is not None:
                self._wake.set()

    def _last_words(self, task_id: str) -> str:
        """What the agent of a check taken over said last (its run's summary)."""
        from factory_tui.backends.qa_checks import last_words

        return last_words(self.log, task_id)

    def _broken_worktree(self, task_id: str) -> str | None:
        """Why the task's worktree cannot hold its work any more (the agent
        deleted its ``.git``, or the whole folder), or None. The files left
        are kept where they are, and named."""
        path = self.worktrees.path_for(task_id)
        where = path.relative_to(self.base.root)
        if not path.exists():
            return f"the agent removed its worktree {where}; only what it committed is on {self.worktrees.branch_for(task_id)}"
        if self.worktrees.is_worktree(task_id):
            return None
        names = _some_files(path)
        listed = f": {', '.join(names)}" if names else " (it is empty)"
        return (f"the agent broke its worktree (its .git is gone); the files it left are kept in "
                f"{where}{listed}")

    async def _save_work(self, task_id: str, message: str) -> bool:
        """Commit whatever is left in the task's worktree, if it has one
        that works. True if a commit was made."""
        if not await self._call(self.worktrees.is_worktree, task_id):
            return False
        try:
            return await self._call(self.worktrees.commit_all, task_id, message)
        except FactoryError as error:
            self._report(f"{task_id}: could not commit the work left: {error}")
            return False

    async def _give_back(self, job: Job, note: str) -> None:
        """The run's task back to the queue (the engine is stopping): the
        run does not count as an attempt, and its folder is set aside for
        the next run of the same attempt."""
        try:
            await self._log(self.log.release, job.token, note=note,
                            data={"run_started": job.run is not None})
        except (LeaseLost, LogError) as error:
            self._report(f"{job.task_id}: {error}")
            return
        await self._call(_set_aside, job.run_dir)

    async def _abandon(self, job: Job, note: str) -> None:
        """Stop the run, commit what it left (where git still can) and give
        the task back: the engine cannot go on, through no fault of the task."""
        if job.run is not None:
            await self._call(job.run.stop)
        await self._save_work(job.task_id, f"factory: work left when {job.task_id}'s run was abandoned")
        await self._give_back(job, note)

    async def _fail_early(self, job: Job, reason: str, *, save: bool = True, cause: str = "start") -> None:
        """The run could not start (no worktree, no such agent program or
        profile), or the engine met a bug (``cause="engine"``): the task
        fails with the reason, after whatever the agent left is stopped and
        committed."""
        if job.run is not None:
            await self._call(job.run.stop)
        if save:
            await self._save_work(job.task_id, f"factory: work left by {job.task_id}'s run ({reason[:200]})")
        try:
            await self._log(self.log.finish, job.token, State.FAILED, note=reason[:2000],
                            data={"failure": cause, "reason": reason[:FAILURE_TEXT_LIMIT * 2]})
            self.failures += 1
            self._report(f"{job.task_id}: failed ({reason})")
        except (LeaseLost, FactoryError) as error:
            self._report(f"{job.task_id}: {error}")
        if job.run_dir.is_dir():
            # A run that never started has a folder (its prompt) all the same.
            await self._index_run(job, RunOutcome.FAILED, job.run.exit_code() if job.run else None)

    # --- starting again ------------------------------------------------------------

    async def _recover(self) -> None:
        """Take over runs an earlier engine left (it was killed, or the
        console handed them over), stop runs nobody holds a lease for, and
        send tasks whose agent is gone back to the queue."""
        running = await self._log(self.log.list_tasks, [State.RUNNING], bodies=False)
        leases = {task_id: token for token, task_id, _, _ in await self._log(self.log.live_leases)}
        adopted_dirs = set()
        for task in running:
            token = leases.get(task.id)
            if token is None:
                continue
            run_dir = run_dir_for(self.base, task.id, task.attempts)
            record = read_json(run_dir / "run.json") or {}
            # A record without the supervisor's pid: the engine died while
            # starting it; adopt finds the supervisor by FACTORY_RUN if it runs.
            run = await self._call(AgentRun.adopt, run_dir) if record and record.get("token") == token else None
            if run is not None and (run.exit_code() is not None or await self._call(run.supervisor_alive)):
                try:
                    # Renewed in this engine's name: the run's later events
                    # are ours, and an `adopted` event says who it was.
                    await self._log(self.log.adopt, token, self.worker, lease_seconds=self.lease_seconds)
                except LeaseLost:
                    continue
                job = Job(task=task, token=token, attempt=task.attempts, run_dir=run_dir,
                          run=run, adopted=True, start_head=record.get("start_head"),
                          last_heartbeat=time.time())
                try:
                    job.profile = profile_for(record.get("profile"), self.config)
                except FactoryError:
                    job.profile = None
                job.output = RunOutput(run_dir, record.get("output", "text"))
                if record.get("conflicts"):
                    job.conflicts = Conflicts(tuple(record["conflicts"]), self.worktrees.base_branch)
                self.jobs[task.id] = job
                adopted_dirs.add(run_dir)
                self._report(f"{task.id}: took over its running agent")
                self._spawn(self._adopted(job))
                continue
            # Its agent is gone (the machine restarted, or the engine died
            # between the claim and the start): give the task back, after
            # stopping anything of its runs, lest two agents share a worktree.
            if await self._call(self._stop_earlier_runs, task.id):
                self._report(f"{task.id}: its supervisor was gone; what its run left was stopped")
            await self._save_work(task.id, f"factory: work left when {task.id}'s agent was lost")
            try:
                await self._log(self.log.release, token, note="its agent was gone when the engine started; work committed",
                                data={"run_started": run_dir.is_dir()})
                self._report(f"{task.id}: agent gone, back to queued")
            except LeaseLost:
                pass
            else:
                await self._call(_set_aside, run_dir)
        await self._call(self._stop_strays, adopted_dirs)
        for task_id in await self._log(self.log.reap_expired, actor=self.worker, keep=self._own_tokens()):
            self._report(f"{task_id}: lease expired, back to queued")

    async def _adopted(self, job: Job) -> None:
        # Re-read everything written so far without reporting it as new.
        await self._call(job.started().output.replay)
        await self._run_job(job)

    def _stop_strays(self, adopted: set[Path]) -> None:
        """A run whose lease is gone (reaped while no engine ran) must not
        go on working in a worktree the next run will use: every process
        naming a run under runs/ that was not taken over is stopped."""
        prefix = str(self.base.runs_dir) + os.sep
        found = processes.find(lambda run: run.startswith(prefix))
        keep = {str(path) for path in adopted}
        for run in sorted({item.run for item in found} - keep):
            stop_run(Path(run))

    # --- noticing at once, not at the next poll -----------------------------------
    # Without these, a task added by another process waited for the next
    # CHECK_SECONDS round (0.5 s) to be claimed, and a finished run for the
    # next PUMP_SECONDS look (0.2 s) to be concluded: most of a short run's
    # time (benchmarks/bench_engine.py).

    def _start_mail(self) -> None:
        """Mail is taken into the log in a thread of its own: caught up
        with now, then followed as files arrive (backends/mail_ingest.py)."""
        self._mail_stop = threading.Event()
        self._mail_caught_up = threading.Event()

        def follow() -> None:
            try:
                self.session.watch_mail(self._mail_stop, report=self._report, caught_up=self._mail_caught_up)
            except Exception as error:  # mail must never take the engine down
                self._report(f"mail: stopped watching: {error}")
            finally:
                self._mail_caught_up.set()

        self._mail_thread = threading.Thread(target=follow, name="engine-mail", daemon=True)
        self._mail_thread.start()

    async def _mail_round(self, retry: bool) -> None:
        """Requests by policy, the outcome of tasks made from requests
        (backends/mail_requests.py), failed deliveries again (``retry``).
        Mail never takes the engine down: a failure is a line, and the next
        round tries again."""
        try:
            lines = await self._call(self.session.mail_round, retry=retry)
        except LogBusy:
            return
        except (FactoryError, OSError) as error:
            self._report(f"mail: {error}")
            return
        for line in lines:
            self._report(line)

    async def _stop_mail(self) -> None:
        thread = getattr(self, "_mail_thread", None)
        if thread is None:
            return
        self._mail_stop.set()
        await self._call(thread.join, 10)

    async def _watch_log(self, wake: asyncio.Event) -> None:
        """Wake the scheduler (set ``wake``) when the log's files change
        while a slot is free: another process added, re-queued or released
        a task. The log's folder is watched (backends/watcher.py, inotify
        through watchfiles) on a thread of its own, which hands each batch
        of changes to the loop; nothing polls the files."""
        path = self.base.log_path
        names = {path.name, path.name + "-wal"}
        paths = [path.with_name(name) for name in sorted(names)]
        last = _files_signature(paths)
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        stop = threading.Event()

        def follow() -> None:
            # A batch of writes (every page SQLite writes is an event) comes
            # as one set: one turn of the loop, not one each. The folder's
            # own files only: the worktrees and run folders under it change
            # with every run (a checkout, a commit, a transcript), and
            # watching them made every file git or an agent wrote an event
            # for this thread.
            for changes in watch(path.parent, stop=stop, step=CHECK_SECONDS, wake_ms=LOG_WAKE_MS,
                                 debounce_ms=LOG_WAKE_MS, recursive=False):
                if any(one.name in names for one in changes):
                    loop.call_soon_threadsafe(changed.set)

        thread = threading.Thread(target=follow, name="engine-log-watch", daemon=True)
        thread.start()
        try:
            while not self._stopping:
                await changed.wait()
                changed.clear()
                # While every slot is used nothing could be claimed (a job's
                # end wakes the scheduler anyway): whatever changed is found
                # by the look once one is free.
                while self._slots_used() >= self.max_parallel and not self._stopping:
                    await asyncio.sleep(WATCH_SECONDS)
                # Our own writes change the files too: the signature says
                # whether anything did since the last look.
                signature = _files_signature(paths)
                if signature != last:
                    last = signature
                    wake.set()
        finally:
            stop.set()

    async def _wait_for_exit(self, job: Job, timeout: float) -> None:
        """Sleep ``timeout``, or less if the job's supervisor exits first:
        a pidfd of our own supervisor (Linux 5.3 and later) turns readable
        the moment it ends. Elsewhere, and for an adopted run, a plain sleep."""
        process = job.started().run.process
        if process is not None and job.exit_fd is None:
            try:
                job.exit_fd = fd = os.pidfd_open(process.pid)
            except (AttributeError, OSError):
                job.exit_fd = -1  # not available: poll as before
            else:
                job.exited = exited = asyncio.Event()
                asyncio.get_running_loop().add_reader(fd, self._supervisor_exited, fd, exited)
        if job.exited is None:
            await asyncio.sleep(timeout)
            return
        try:
            await asyncio.wait_for(job.exited.wait(), timeout=timeout)
        except TimeoutError:
            pass

    @staticmethod
    def _supervisor_exited(fd: int, exited: asyncio.Event) -> None:
        # Once for all: the pidfd stays readable, and a reader left in place
        # would run on every turn of the loop.
        asyncio.get_running_loop().remove_reader(fd)
        exited.set()

    def _unwatch_exit(self, job: Job) -> None:
        if job.exit_fd is not None and job.exit_fd >= 0:
            try:
                asyncio.get_running_loop().remove_reader(job.exit_fd)
            finally:
                os.close(job.exit_fd)
        job.exit_fd = None
        job.exited = None

    # --- plumbing -----------------------------------------------------------------

    def _spawn(self, awaitable) -> None:
        # asyncio keeps only weak references to tasks: hold them until done.
        task = asyncio.ensure_future(awaitable)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _call(self, function, *args, **kwargs):
        """Backend work (SQLite, git, waiting on processes) off the loop."""
        return await asyncio.to_thread(function, *args, **kwargs)

    async def _in_order(self, *steps: Callable[[], object] | _LogWrite) -> None:
        """``steps`` one after the other in one worker call, rather than a
        hop off the loop and back for each. A log write among them that
        finds the log busy is waited out as ``_log`` does, and the steps
        after it go on in another call; a log that cannot be written at all
        stops the engine, as ``_log`` does."""
        remaining = list(steps)
        while remaining:
            try:
                done, wrote = await self._call(_run_until_busy, remaining)
            except LogError as error:
                if not isinstance(error, LogBusy):
                    self._fail_engine(str(error))
                raise
            if wrote is not None:
                self._log_free(wrote)
            if done == len(remaining):
                return
            busy = remaining[done]
            assert isinstance(busy, _LogWrite)
            await self._log(busy.function, *busy.args)
            remaining = remaining[done + 1:]

    async def _log(self, function, *args, **kwargs):
        """A log operation that must happen (a run's end, a release): a busy
        log is waited out with backoff, for as long as it takes while the
        engine runs (nobody else may expire our leases), and until the stop
        deadline once it is stopping. A log that cannot be written at all
        stops the engine."""
        delay, ceiling = BUSY_BACKOFF
        while True:
            try:
                result = await self._call(function, *args, **kwargs)
            except LogBusy:
                self._log_busy()
                if self._stopping and time.monotonic() > self._stop_deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, ceiling)
                continue
            except LogError as error:
                self._fail_engine(str(error))
                raise
            self._log_free(function)
            return result

    async def _try_log(self, function, *args, **kwargs):
        """A log operation that can wait for the next round: one try, and
        ``BUSY`` if the log was busy."""
        try:
            result = await self._call(function, *args, **kwargs)
        except LogBusy:
            self._log_busy()
            return BUSY
        except LogError as error:
            self._fail_engine(str(error))
            raise
        self._log_free(function)
        return result

    def _log_busy(self) -> None:
        if self._busy_since is None:
            self._busy_since = time.monotonic()
            self._report("the log is busy (another process holds its write lock); agents go on, writes wait")

    def _log_free(self, function) -> None:
        if self._busy_since is not None and getattr(function, "__name__", "") not in _READS:
            waited = time.monotonic() - self._busy_since
            self._busy_since = None
            self._report(f"the log is free again after {waited:.1f} s")

    def _fail_engine(self, message: str) -> None:
        """The log or the disk cannot be written: stop taking tasks, stop
        the agents (their work committed where git can still write) and give
        their tasks back where the log allows, then exit with ``message``."""
        if self.fatal is None:
            self.fatal = message
            self._report(f"stopping: {message}")
        self.request_stop(stop_agents=True)

    def _locked(self, function, *args, **kwargs):
        """Worktree creation and removal, one at a time, in this engine and
        against operators' actions in other processes (worker thread). An
        operator's slow approve is waited out, never taken for a failure."""
        doing = f"engine: {function.__name__.strip('_').replace('_', ' ')} {args[0] if args else ''}".strip()
        with self._worktree_lock:
            while True:
                try:
                    with self._operator_lock.held(doing, timeout=5.0):
                        return function(*args, **kwargs)
                except OperatorBusy:
                    if self._stopping:
                        raise

    def _publish(self) -> None:
        try:
            self._on_status(self.status())
        except Exception:  # the host's callback must not stop the engine
            pass


# The events that begin or end a run, or send a task back: the one before a
# claim says how the run before it ended.
def built_documents(built: Prompt) -> list[tuple[str, str, int, int, bool]]:
    """The prompt's documents as the log records them: (name, blob, bytes
    shown, size, whole)."""
    return [(item.name, item.blob, item.shown, item.size, item.whole) for item in built.documents]


def _mail_note(item: MailItem) -> MailNote:
    return MailNote(item.key, item.sender, item.subject, item.body, item.kind, item.state)


RUN_BOUNDARIES = ("claimed", "stopped", "expired", "finished", "failed", "requeued",
                  "cancelled", "approved", "released", "held")


def _set_aside(run_dir: Path) -> None:
    """A run that did not count (the engine stopped it, or found it gone):
    its folder is kept as ``<attempt>.stopped`` (``.stopped-2`` …), so that
    the next run of the same attempt gets a folder of its own."""
    if not run_dir.is_dir():
        return
    for n in range(1, 1000):
        aside = run_dir.with_name(f"{run_dir.name}.stopped" + (f"-{n}" if n > 1 else ""))
        if aside.exists():
            continue
        try:
            run_dir.rename(aside)
        except OSError:
            pass  # a read-only disk: the next run sets it aside (_prepare_run_dir)
        return


class _LogWrite(NamedTuple):
    """A log write that must happen, as a step of ``Engine._in_order``."""

    function: Callable[..., object]
    args: tuple = ()


def _run_until_busy(steps: list[Callable[[], object] | _LogWrite]) -> tuple[int, Callable[..., object] | None]:
    """Run ``steps`` in order (worker thread) until a log write finds the
    log busy: how many ran, and the last log write that did."""
    wrote = None
    for done, step in enumerate(steps):
        if isinstance(step, _LogWrite):
            try:
                step.function(*step.args)
            except LogBusy:
                return done, wrote
            wrote = step.function
        else:
            step()
    return len(steps), wrote


def _drop(pending: asyncio.Future | None) -> None:
    """A prompt written ahead that is not wanted: cancelled, and whatever
    it ends with taken, so that no error of it is reported as lost."""
    if pending is None:
        return
    pending.cancel()
    pending.add_done_callback(lambda done: done.cancelled() or done.exception())


def _lease_from_environment() -> float:
    """FACTORY_LEASE_SECONDS, for tests that must see a lease run out soon."""
    try:
        value = float(os.environ.get("FACTORY_LEASE_SECONDS", ""))
    except ValueError:
        return LEASE_SECONDS
    return value if 0.5 <= value <= 86_400 else LEASE_SECONDS



def _some_files(folder: Path, limit: int = 10) -> list[str]:
    """Up to ``limit`` file names under ``folder``, relative, for a message."""
    names: list[str] = []
    for here, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            names.append(os.path.relpath(os.path.join(here, name), folder))
            if len(names) >= limit:
                return names + ["…"]
    return names


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _summary(totals: dict) -> str:
    """`` · 4 turns · $0.0312`` from a run's totals, when the agent said."""
    parts = []
    if totals.get("turns"):
        parts.append(f"{totals['turns']} turns")
    if totals.get("cost_usd"):
        parts.append(f"${totals['cost_usd']:.4f}")
    return "".join(f" · {part}" for part in parts)


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


def _files_signature(paths: Iterable[Path]) -> tuple[tuple[int, int, int] | None, ...]:
    """What a stat says about each file (None when it is missing): any
    commit to the log changes its write-ahead log's size or time."""
    signature: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            signature.append(None)
        else:
            signature.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(signature)
