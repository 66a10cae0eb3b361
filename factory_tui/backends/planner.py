"""Running a planner: an agent profile started once, as a real subprocess,
with a prompt that names the file it must write the plan to.

    .factory/runs/plan/<stamp>/
        prompt.md        what the planner was asked
        run.json         argv, folder, timeout, the supervisor's pid
        output.raw       the planner's stdout and stderr, as written
        transcript.log   the same, as readable lines
        agent.pid, exit.code
        plan.md          the plan it wrote (the prompt names this file)
        draft.json       what came of it: imported (the draft's id, its
                         tasks and proposals) or refused (the reason)

A planner runs like an agent (``runs.AgentRun``): under a supervisor
shell, in a session of its own, in its run folder (it changes nothing
else), with ``FACTORY_RUN=<its folder>`` in its environment, so that
stopping it stops whatever it started, and so that a ``factory`` command it
runs is refused as an agent's whose run is not live: a planner may write a
plan, nothing more. The variables of the engine's own agent runs are not
passed on. It gets its profile's timeout; then it is stopped.

The plan it wrote is read only if it is a regular file (not a symlink, a
FIFO or a folder) of at most ``PLAN_LIMIT`` bytes, strictly as UTF-8.
"""

from __future__ import annotations

import os
import secrets
import signal
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from factory_tui.backends.agents import AgentProfile
from factory_tui.backends.runs import (
    GRACE_SECONDS,
    AgentRun,
    RunOutput,
    describe_exit,
    make_run_dir,
    write_json,
    write_private,
)
from factory_tui.errors import FactoryError
from factory_tui.text import one_line

PLAN_NAME = "plan.md"
PROMPT_NAME = "prompt.md"
RECORD_NAME = "draft.json"
# A plan of 10,000 tasks with bodies is a few MB; more is a planner gone wrong.
PLAN_LIMIT = 4 << 20
# Variables of the engine's agent runs (and of the test's fault points) a
# planner must not inherit: it is no task's agent.
AGENT_VARIABLES = ("FACTORY_TASK", "FACTORY_TOKEN", "FACTORY_RUN", "FACTORY_FAULTS")
POLL_SECONDS = 0.05


class PlannerFailed(FactoryError):
    """The planner did not give a plan that can be imported; nothing was."""


class _Stopped(BaseException):
    """SIGTERM while the planner runs: stop it, then end as asked."""


def plan_run_dir(runs_dir: Path, now: float | None = None) -> Path:
    """A new folder for one planner run: ``runs/plan/<stamp>``, the stamp
    the local time to the microsecond (so that the folders sort in the
    order the drafts ran, two in one second too) and a random suffix (two
    in one microsecond still differ)."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f".{int(now * 1_000_000) % 1_000_000:06d}"
    return runs_dir / "plan" / f"{stamp}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class PlannerRun:
    run_dir: Path
    plan_path: Path
    exit_code: int | None
    duration: float
    last_words: str  # the planner's last line of output (for a failure's reason)


def environment(profile: AgentProfile) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in AGENT_VARIABLES}
    env.update(profile.env)
    return env


def run_planner(*, profile: AgentProfile, prompt: str, run_dir: Path, shown: str) -> PlannerRun:
    """Start the planner and wait for it (at most its profile's timeout).
    ``shown``: how the run folder is named in messages. PlannerFailed if it
    could not start, did not end in time, or did not exit 0."""
    make_run_dir(run_dir)
    prompt_path = run_dir / PROMPT_NAME
    write_private(prompt_path, prompt)
    plan_path = run_dir / PLAN_NAME
    argv = profile.render_argv(prompt=prompt, prompt_file=prompt_path, task_id="", worktree=run_dir)
    started = time.monotonic()
    run = AgentRun.start(
        run_dir, argv, cwd=run_dir, env=environment(profile), timeout=profile.timeout,
        record={"kind": "planner", "profile": profile.name},
    )
    output = RunOutput(run_dir, profile.output)
    timed_out = stopped = False
    previous = _stop_on_sigterm()
    try:
        deadline = started + profile.timeout
        while not run.ended():
            output.read_all()
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(POLL_SECONDS)
    except _Stopped:
        stopped = True
    finally:
        # A timeout, ctrl+c or SIGTERM: the planner and all it started stop.
        if not run.ended():
            run.stop(GRACE_SECONDS)
        _restore(previous)
        output.finish()
    duration = time.monotonic() - started
    last = output.last_lines[-1] if output.last_lines else ""
    if stopped:
        raise PlannerFailed(f"stopped by SIGTERM: the planner ({profile.name}) was stopped; nothing imported "
                            f"(its files: {shown})")
    if timed_out:
        raise PlannerFailed(
            f"the planner ({profile.name}) did not finish within {profile.timeout:g} s and was stopped; "
            f"nothing imported (its files: {shown})"
        )
    code = run.exit_code()
    problem = describe_exit(code)
    if problem is not None:
        said = f": {one_line(last, 200)}" if last else ""
        why = problem.replace("agent", "the planner", 1)
        raise PlannerFailed(f"{why} ({profile.name}){said}; nothing imported (its files: {shown})")
    return PlannerRun(run_dir, plan_path, code, duration, last)


def _stop_on_sigterm():
    """While the planner runs, SIGTERM ends the wait (and stops the
    planner) instead of leaving it running on its own."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(_signum, _frame):
        raise _Stopped()

    return signal.signal(signal.SIGTERM, stop)


def _restore(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def read_plan(path: Path, *, shown: str) -> str:
    """The plan the planner wrote, read safely; PlannerFailed saying what is
    wrong with it (``shown``: the file as messages name it)."""
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise PlannerFailed(f"the planner wrote no plan ({shown} is missing); nothing imported") from None
    except OSError as error:
        if os.path.islink(path):
            raise PlannerFailed(f"the planner's plan {shown} is a symlink, not a file; nothing imported") from None
        raise PlannerFailed(f"cannot read the planner's plan {shown}: {error.strerror or error}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PlannerFailed(f"the planner's plan {shown} is not a regular file; nothing imported")
        if info.st_size > PLAN_LIMIT:
            raise PlannerFailed(
                f"the planner's plan {shown} is {_size(info.st_size)}, more than the {_size(PLAN_LIMIT)} "
                "a plan may be; nothing imported"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(PLAN_LIMIT + 1)
    finally:
        os.close(fd)
    if len(data) > PLAN_LIMIT:
        raise PlannerFailed(f"the planner's plan {shown} grew past {_size(PLAN_LIMIT)}; nothing imported")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise PlannerFailed(f"{shown}:{line}: not UTF-8 text; nothing imported") from None


def _size(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.0f} KB"
    return f"{n} bytes"


def record(run_dir: Path, data: dict) -> None:
    """``draft.json``: what came of the run (best effort: the log holds the
    truth, this is for whoever looks at the folder)."""
    try:
        write_json(run_dir / RECORD_NAME, data)
    except OSError:
        pass
