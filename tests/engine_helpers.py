"""What the engine's tests share: a small scripted agent driven by knobs,
profiles and factory.toml for it, running ``factory`` as a subprocess,
waiting for conditions, reading runs, and the fixtures ``agent``,
``record`` and ``tidy`` (registered for every test module by conftest)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from factory_tui.backends.agents import BUILTIN_PROFILES
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.operator import Operator
from factory_tui.model import Action, Event, NewTask, Task

ACTOR = "test:operator"

# A tiny coding agent, driven by knobs in its profile's env: it marks its
# start and end in a record file, leaves work uncommitted in the worktree
# (the engine must commit it), prints some lines, waits for a gate file to
# appear (so that a test decides when it ends, not a clock), sleeps, exits.
AGENT = r'''
import os, signal, subprocess, sys, time
from pathlib import Path

task = sys.argv[1]
knob = os.environ.get
if knob("AGENT_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
record = knob("AGENT_RECORD")


def mark(what):
    if record:
        with open(record, "a") as handle:
            handle.write(f"{what} {task} {time.time()!r}\n")


mark("start")
if knob("AGENT_ARGS_OUT"):
    # What the agent was given: its argv and the factory's variables.
    import json
    given = {"argv": sys.argv, "cwd": os.getcwd(),
             "env": {k: v for k, v in os.environ.items() if k.startswith("FACTORY_")}}
    Path(knob("AGENT_ARGS_OUT")).write_text(json.dumps(given))
if knob("AGENT_CALLS_FACTORY"):
    # An agent talks to the factory through the `factory` command on PATH.
    subprocess.run(["factory", "note", f"{task} says hello"], check=True)
    subprocess.run(["factory", "plan", "add", "--after", task, f"Follow up on {task}"], check=True)
if knob("AGENT_CHILD"):
    # A helper process in the agent's group that shrugs off SIGTERM.
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    Path(os.environ["FACTORY_RUN"], "child.pid").write_text(str(child.pid))
Path(f"work-{task}.txt").write_text(f"work on {task}\n")
if knob("AGENT_EDIT"):
    with open(knob("AGENT_EDIT"), "a") as handle:
        handle.write(f"a line from {task}\n")
for n in range(int(knob("AGENT_LINES", "3"))):
    print(f"{task} line {n}", flush=True)
gate = knob("AGENT_GATE")
if gate:
    # Hold on until the test opens the gate (or give up after a while).
    deadline = time.monotonic() + 300
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
time.sleep(float(knob("AGENT_SLEEP", "0")))
mark("end")
print(f"{task} done", end="", flush=True)  # the last line has no newline
sys.exit(int(knob("AGENT_EXIT", "0")))
'''

# Prints BIG_LINES lines of LINE_BYTES bytes each (about 50 MB) as fast as
# it can, then exits 0.
BIG_LINES = 540_000
LINE_BYTES = 94
BIG_AGENT = r'''
import sys
from pathlib import Path
Path("loud.txt").write_text("said a lot\\n")  # work to review, like any agent's
out = sys.stdout.buffer
pad = b"x" * 80
batch = []
for n in range(BIG_LINES):
    batch.append(b"line %07d %s\n" % (n, pad))
    if len(batch) == 10_000:
        out.write(b"".join(batch))
        batch.clear()
out.write(b"".join(batch))
out.flush()
'''.replace("BIG_LINES", str(BIG_LINES))


# --- helpers ----------------------------------------------------------------------


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + " }"
    raise TypeError(value)


def configure(
    base: FactoryBase,
    *,
    max_parallel: int = 2,
    default_agent: str = "demo",
    agents: dict[str, dict] | None = None,
    extra: str = "",
) -> None:
    """Rewrite the base's factory.toml: the demo profile plus ``agents``
    (and ``extra``, TOML tables appended as they are)."""
    lines = [
        'name = "engine test"',
        'base_branch = "main"',
        f"max_parallel = {max_parallel}",
        'merge = "ff"',
        f"default_agent = {toml_value(default_agent)}",
        "",
    ]
    for name, profile in {"demo": BUILTIN_PROFILES["demo"], **(agents or {})}.items():
        lines.append(f"[agents.{name}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in profile.items())
        lines.append("")
    base.config_path.write_text("\n".join(lines) + extra, encoding="utf-8")


def agent_profile(script: Path, *, timeout: float = 120, argv: list[str] | None = None, **knobs: str) -> dict:
    return {
        "argv": argv or ["{python}", str(script), "{task_id}"],
        "output": "text",
        "timeout": timeout,
        "env": {key: str(value) for key, value in knobs.items()},
    }


@pytest.fixture
def agent(tmp_path: Path) -> Path:
    path = tmp_path / "agent.py"
    path.write_text(AGENT, encoding="utf-8")
    return path


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return tmp_path / "record.txt"


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FACTORY_BASE", "FACTORY_TASK", "FACTORY_RUN", "FACTORY_TOKEN")}
    env.update({"FACTORY_DEMO_SECONDS": "0", "FACTORY_DEMO_FAIL_RATE": "0"})
    env.update(extra)
    return env


def factory_argv(base: FactoryBase, *args: str) -> list[str]:
    return [sys.executable, "-m", "factory_tui", "--base", str(base.root), *args]


def factory(base: FactoryBase, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``factory ARGS`` as a real subprocess; it must end within a generous limit."""
    done = subprocess.run(
        factory_argv(base, *args), capture_output=True, text=True,
        env=env or environment(), timeout=180, check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def start_factory(base: FactoryBase, *args: str, output: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(output, "wb") as handle:
        return subprocess.Popen(
            factory_argv(base, *args), stdin=subprocess.DEVNULL, stdout=handle,
            stderr=subprocess.STDOUT, env=env or environment(),
        )


def add(base: FactoryBase, title: str, *, body: str = "", priority: int = 0,
        after: tuple[str, ...] = (), profile: str | None = None) -> str:
    with ExecutionLog.open(base.log_path) as log:
        return log.add_task(
            NewTask(title=title, body=body, priority=priority, after=after, profile=profile),
            actor=ACTOR,
        ).id


def task(base: FactoryBase, task_id: str) -> Task:
    with ExecutionLog.open(base.log_path) as log:
        return log.get_task(task_id)


def events(base: FactoryBase, task_id: str | None = None, *kinds: str) -> list[Event]:
    with ExecutionLog.open(base.log_path) as log:
        return log.events(task_id=task_id, kinds=kinds or None)


def apply(base: FactoryBase, task_id: str, action: Action, note: str | None = None):
    with ExecutionLog.open(base.log_path) as log:
        return Operator(base, log).apply(task_id, action, actor=ACTOR, note=note)


def wait_for(condition: Callable[[], object], what: str, limit: float = 60.0):
    """Poll ``condition`` until it is truthy; fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def git(where: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(where), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def has_branch(root: Path, branch: str) -> bool:
    return subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
        capture_output=True, check=False,
    ).returncode == 0


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_state(pid) not in (None, "Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def run_dir(base: FactoryBase, task_id: str, attempt: int = 1) -> Path:
    return base.runs_dir / task_id / str(attempt)


def agent_pid(base: FactoryBase, task_id: str, attempt: int = 1) -> int:
    path = run_dir(base, task_id, attempt) / "agent.pid"
    return int(wait_for(lambda: path.exists() and path.read_text().strip(), f"{path}"))


def run_group(base: FactoryBase, task_id: str, attempt: int = 1) -> int:
    """The run's process group: its supervisor leads it, the agent is in it."""
    path = run_dir(base, task_id, attempt) / "run.json"
    wait_for(lambda: (json.loads(path.read_text()) if path.exists() else {}).get("supervisor_pid"), f"{path}")
    return json.loads(path.read_text())["supervisor_pid"]


def agent_printed(base: FactoryBase, task_id: str, text: str, attempt: int = 1) -> bool:
    raw = run_dir(base, task_id, attempt) / "output.raw"
    return raw.exists() and text in raw.read_text(errors="replace")


def starts(record: Path) -> list[str]:
    if not record.exists():
        return []
    return [line.split()[1] for line in record.read_text().splitlines() if line.startswith("start ")]


def no_traceback_anywhere(base: FactoryBase, *outputs: str) -> None:
    for text in outputs:
        assert "Traceback" not in text, text
    for event in events(base):
        assert "Traceback" not in (event.note or ""), event
    for path in base.runs_dir.glob("*/*/*"):
        if path.name in ("transcript.log", "exit.json"):
            assert "Traceback" not in path.read_text(errors="replace"), path


def stop_process(process: subprocess.Popen) -> None:
    """Tidy-up for a test that failed half-way: end what the test started."""
    if process.poll() is None:
        process.kill()
        process.wait()


def kill_agents(base: FactoryBase) -> None:
    for path in base.runs_dir.glob("*/*/run.json"):
        try:
            os.killpg(int(json.loads(path.read_text())["supervisor_pid"]), signal.SIGKILL)
        except (ProcessLookupError, ValueError, KeyError, PermissionError, TypeError):
            pass  # gone, or never recorded (a run marked but not started)


@pytest.fixture
def tidy(base: FactoryBase):
    """Processes a test started; killed at the end if still there, and any
    agent left behind with them, so that a failing test leaves nothing running."""
    started: list[subprocess.Popen | int] = []
    yield started
    for process in started:
        if isinstance(process, int):  # a pid that is not our child
            try:
                os.kill(process, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            stop_process(process)
    kill_agents(base)


