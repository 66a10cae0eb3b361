"""The demo agent: a real program that works on a task the way a coding agent
does, without a model, so that ``factory demo`` and the tests see agents at
work without paying for one.

``python -m factory_tui.demo_agent [--prompt-file F]`` (else the prompt comes
on stdin), run in the task's git worktree. It reads the task's id and title
from the prompt's first line (``# T-3: Title``; ``FACTORY_TASK`` wins for the
id), prints Claude Code ``stream-json`` lines (system init, assistant text,
tool calls and their results, a final result with cost and tokens), writes a
new file named after the task (``<package>/t_3_title.py`` when the worktree
has a Python package, else ``notes/T-3.md``) and commits it.

Environment knobs:

- ``FACTORY_DEMO_SECONDS`` (default 6): how long the output is spread over.
- ``FACTORY_DEMO_FAIL_RATE`` (default 0.1): the chance that the run fails;
  then it still commits what it did, prints an error result and exits 1.
- ``FACTORY_DEMO_SEED``: makes the failure draw (and the made-up figures)
  repeatable.

Exit codes: 0 done, 1 failed, 2 cannot start (not a git repository, no
prompt, a bad knob; one line on stderr), 143 stopped by SIGTERM, 130 by
SIGINT. Standard library only: it must run wherever Python does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

NAME = "demo_agent"
MODEL = "factory-demo-agent"
# Used for the commit only when the repository has no identity configured.
FALLBACK_IDENTITY = ("factory demo agent", "demo-agent@factory.invalid")
DEFAULT_SECONDS = 6.0
DEFAULT_FAIL_RATE = 0.1
# Made-up prices per token, in the range a real model charges.
PRICE_IN, PRICE_OUT = 3e-6, 15e-6
# Module names stay readable; the task id keeps them unique anyway.
MAX_SLUG = 48
EXIT_FAILED, EXIT_CANNOT_START = 1, 2
EXIT_SIGNAL = {signal.SIGTERM: 143, signal.SIGINT: 130}

_HEADING = re.compile(r"^#\s+(\S+?):\s+(.+?)\s*$")


class CannotStart(Exception):
    """A reason the agent cannot begin; shown as one line on stderr."""


class GitFailed(Exception):
    """A git command that did not succeed; the run ends with an error result."""


class Stopped(BaseException):
    """Raised from the signal handler, so that whatever the agent is doing
    (sleeping, waiting on git) ends at once. A BaseException, so that no
    ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass
class Settings:
    seconds: float
    fail_rate: float
    seed: str | None


@dataclass
class Task:
    id: str
    title: str
    prompt: str


# --- the output stream ------------------------------------------------------------


class Stream:
    """Writes stream-json lines, one flushed write per line, paced so that the
    whole run takes about ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.pause = 0.0
        self.session_id = str(uuid.uuid4())
        # True while a line is being written: a signal arriving then leaves a
        # partial line, which the stop line must not be glued onto.
        self.mid_line = False

    def emit(self, event: dict) -> None:
        line = json.dumps(event, ensure_ascii=False) + "\n"
        self.mid_line = True
        sys.stdout.write(line)
        sys.stdout.flush()
        self.mid_line = False

    def pace(self, steps: int) -> None:
        """Spread the run over ``steps`` equal pauses."""
        self.pause = self.seconds / steps if steps else 0.0

    def step(self) -> None:
        if self.pause > 0:
            time.sleep(self.pause)

    def say(self, text: str) -> None:
        self.emit(self._assistant([{"type": "text", "text": text}]))

    def tool(self, name: str, tool_input: dict, result: str, *, is_error: bool = False) -> None:
        call_id = "toolu_" + uuid.uuid4().hex[:20]
        self.emit(self._assistant([{"type": "tool_use", "id": call_id, "name": name, "input": tool_input}]))
        self.emit(
            {
                "type": "user",
                "message": {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": call_id, "content": result, "is_error": is_error}
                    ],
                },
                "session_id": self.session_id,
            }
        )

    def _assistant(self, content: list[dict]) -> dict:
        return {
            "type": "assistant",
            "message": {
                "id": "msg_" + uuid.uuid4().hex[:20],
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": content,
                "stop_reason": None,
            },
            "session_id": self.session_id,
        }


# --- reading the inputs -----------------------------------------------------------


def read_settings(environ: dict[str, str]) -> Settings:
    seconds = float_knob(environ, "FACTORY_DEMO_SECONDS", DEFAULT_SECONDS)
    if seconds < 0:
        raise CannotStart(f"FACTORY_DEMO_SECONDS must be 0 or more, not {seconds:g}")
    fail_rate = float_knob(environ, "FACTORY_DEMO_FAIL_RATE", DEFAULT_FAIL_RATE)
    if not 0 <= fail_rate <= 1:
        raise CannotStart(f"FACTORY_DEMO_FAIL_RATE must be between 0 and 1, not {fail_rate:g}")
    seed = environ.get("FACTORY_DEMO_SEED") or None
    return Settings(seconds=seconds, fail_rate=fail_rate, seed=seed)


def float_knob(environ: dict[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise CannotStart(f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(value):
        raise CannotStart(f"{name} must be a finite number, not {raw!r}")
    return value


def read_prompt(prompt_file: str | None) -> str:
    if prompt_file is not None:
        try:
            text = Path(prompt_file).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise CannotStart(f"prompt file not found: {prompt_file}") from None
        except OSError as error:
            raise CannotStart(f"cannot read prompt file {prompt_file}: {error.strerror or error}") from None
    else:
        text = sys.stdin.read()
    if not text.strip():
        raise CannotStart("the prompt is empty")
    return text


def task_from_prompt(prompt: str, task_id: str | None) -> Task:
    """The task's id and title from the prompt's heading (``# T-3: Title``,
    as factory_tui.backends.prompt writes it); anything else still works."""
    first = next((line for line in prompt.splitlines() if line.strip()), "")
    match = _HEADING.match(first)
    if match:
        found_id, title = match.group(1), match.group(2)
    else:
        found_id, title = None, first.lstrip("#").strip()
    return Task(id=task_id or found_id or "task", title=title[:200] or "untitled", prompt=prompt)


def git(cwd: Path, *args: str, identity: list[str] | None = None) -> str:
    """Runs git (argv, never a shell); its output, or GitFailed with git's
    own last line of complaint."""
    done = subprocess.run(
        ["git", *(identity or []), *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise GitFailed(f"git {args[0]} failed: {said[-1] if said else f'exit {done.returncode}'}")
    return done.stdout.strip()


def check_repository(cwd: Path) -> None:
    try:
        inside = git(cwd, "rev-parse", "--is-inside-work-tree")
    except FileNotFoundError:
        raise CannotStart("git is not installed (not found on PATH)") from None
    except GitFailed:
        inside = ""
    if inside != "true":
        raise CannotStart(f"not a git repository (or a bare one): {cwd}")


def identity_options(cwd: Path) -> list[str]:
    """``-c user.name=… -c user.email=…`` for what the repository lacks, so a
    commit works on a fresh machine; a configured identity is left alone."""
    options = []
    for key, fallback in zip(("user.name", "user.email"), FALLBACK_IDENTITY, strict=True):
        try:
            configured = git(cwd, "config", "--get", key)
        except GitFailed:
            configured = ""
        if not configured:
            options += ["-c", f"{key}={fallback}"]
    return options


# --- the work ---------------------------------------------------------------------


def slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "_".join(words)[:MAX_SLUG].strip("_")


def target_path(cwd: Path, task: Task) -> Path:
    """Where the change goes: a module in the worktree's first Python package,
    named after the task; else a note under notes/."""
    packages = sorted(
        child.name
        for child in cwd.iterdir()
        if child.is_dir()
        and not child.name.startswith(".")
        and child.name not in ("tests", "test")
        and (child / "__init__.py").is_file()
    )
    if packages:
        name = slug(f"{task.id} {task.title}") or "task"
        if not name[0].isalpha():
            name = "t_" + name
        return Path(packages[0]) / f"{name}.py"
    safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", task.id).lstrip(".") or "task"
    return Path("notes") / f"{safe_id}.md"


def write_change(cwd: Path, relative: Path, task: Task) -> tuple[str, int]:
    """Writes (or, on a later attempt, extends) the task's file; what was
    done, and the run's number for this file."""
    path = cwd / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    python = relative.suffix == ".py"
    # What a failing check asked for, as its report came back in the
    # prompt's feedback (the demo base's QA asks modules for __all__).
    exports = python and "__all__" in task.prompt
    if path.exists():
        existing = path.read_text(encoding="utf-8", errors="replace")
        run = existing.count("demo agent run ") + 1
        addition = f"\n# demo agent run {run}: revisited.\n" if python else f"\n- demo agent run {run}: revisited.\n"
        if exports and "__all__" not in existing:
            addition += '__all__ = ["describe"]\n'
        with path.open("a", encoding="utf-8") as handle:
            handle.write(addition)
        return "updated", run
    if python:
        # repr() keeps any title valid Python, whatever characters it holds.
        content = (
            '"""Written by the factory-tui demo agent for one task."""\n\n'
            + ('__all__ = ["describe"]\n\n' if exports else "")
            + f"TASK_ID = {task.id!r}\n"
            f"TITLE = {task.title!r}\n\n\n"
            "def describe() -> str:\n"
            '    return f"{TASK_ID}: {TITLE}"\n'
            "\n# demo agent run 1: created.\n"
        )
    else:
        asked = [line for line in task.prompt.splitlines()[1:] if line.strip()][:3]
        content = (
            f"# {task.id}: {task.title}\n\n"
            "Notes by the factory-tui demo agent.\n\n"
            + "".join(f"> {line}\n" for line in asked)
            + "\n- demo agent run 1: created.\n"
        )
    path.write_text(content, encoding="utf-8")
    return "created", 1


def run(cwd: Path, task: Task, settings: Settings, stream: Stream) -> int:
    rng = random.Random(settings.seed) if settings.seed is not None else random.Random()
    fails = rng.random() < settings.fail_rate
    # One pause after each line but the result: six of them, seven on failure.
    stream.pace(7 if fails else 6)
    started = time.monotonic()
    relative = target_path(cwd, task)
    identity = identity_options(cwd)

    stream.emit(
        {
            "type": "system",
            "subtype": "init",
            "cwd": str(cwd),
            "session_id": stream.session_id,
            "model": MODEL,
            "tools": ["Bash", "Read", "Write"],
            "permissionMode": "acceptEdits",
        }
    )
    stream.step()
    stream.say(f"Working on {task.id}: {task.title}. Looking at the worktree first.")
    stream.step()
    status = git(cwd, "status", "--short", "--branch")
    stream.tool("Bash", {"command": "git status --short --branch", "description": "See the worktree"}, status)
    stream.step()
    plan = "go on with" if (cwd / relative).exists() else "add"
    stream.say(f"I'll {plan} `{relative.as_posix()}` for this task.")
    stream.step()
    action, attempt = write_change(cwd, relative, task)
    stream.tool(
        "Write",
        {"file_path": str(cwd / relative), "content": "…"},
        f"File {action} successfully at: {cwd / relative}",
    )
    stream.step()
    message = f"{task.id}: {task.title}" + (f" (run {attempt})" if attempt > 1 else "")
    # -f: the file is the agent's own work, even where a .gitignore covers it.
    git(cwd, "add", "-f", "--", relative.as_posix())
    git(cwd, "commit", "-q", "-m", message, identity=identity)
    sha = git(cwd, "rev-parse", "--short", "HEAD")
    stream.tool(
        "Bash",
        {"command": f"git add {relative.as_posix()} && git commit -m {json.dumps(message, ensure_ascii=False)}"},
        f"[{sha}] {message}",
    )
    stream.step()
    turns = 4
    if fails:
        stream.tool(
            "Bash",
            {"command": "python -m pytest -q"},
            "FAILED tests/test_demo.py::test_task - AssertionError: the demo agent was told to fail",
            is_error=True,
        )
        stream.step()
        stream.say("A check fails and I cannot fix it in this run; stopping with what I have committed.")
        turns += 1
    else:
        stream.say(f"Done: {action} `{relative.as_posix()}` and committed it as {sha}.")
    stream.emit(_result(task, stream, rng, fails=fails, turns=turns, started=started, sha=sha))
    return EXIT_FAILED if fails else 0


def _result(
    task: Task, stream: Stream, rng: random.Random, *, fails: bool, turns: int, started: float, sha: str
) -> dict:
    # Made-up figures in a believable range; the seed makes them repeatable.
    input_tokens = len(task.prompt) // 4 + rng.randint(800, 2_000)
    cache_read = rng.randint(5_000, 20_000)
    output_tokens = rng.randint(300, 1_500)
    cost = round(input_tokens * PRICE_IN + cache_read * PRICE_IN / 10 + output_tokens * PRICE_OUT, 6)
    return {
        "type": "result",
        "subtype": "error_during_execution" if fails else "success",
        "is_error": fails,
        "duration_ms": int((time.monotonic() - started) * 1000),
        "duration_api_ms": 0,
        "num_turns": turns,
        "result": (
            "The demo agent was told to fail (FACTORY_DEMO_FAIL_RATE); its work so far is committed."
            if fails
            else f"Committed {sha} for {task.id}."
        ),
        "session_id": stream.session_id,
        "total_cost_usd": cost,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cache_read,
            "output_tokens": output_tokens,
        },
    }


# --- the program ------------------------------------------------------------------


def _on_signal(signum: int, frame: object) -> None:
    raise Stopped(signum)


def _stop_line(stream: Stream | None, signum: int) -> None:
    name = signal.Signals(signum).name
    event = {
        "type": "result",
        "subtype": "error_during_execution",
        "is_error": True,
        "num_turns": 0,
        "result": f"stopped by {name}",
        "session_id": stream.session_id if stream else "",
    }
    try:
        prefix = "\n" if stream is not None and stream.mid_line else ""
        sys.stdout.write(prefix + json.dumps(event) + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # nobody is reading any more; stopping is all that is left


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m factory_tui.demo_agent",
        description="A demo coding agent: commits a small change and prints Claude stream-json.",
    )
    parser.add_argument("--prompt-file", help="the prompt (default: read from stdin)")
    args = parser.parse_args(argv)
    stream: Stream | None = None
    for signum in EXIT_SIGNAL:
        signal.signal(signum, _on_signal)
    try:
        try:
            settings = read_settings(dict(os.environ))
            cwd = Path.cwd()
            check_repository(cwd)
            prompt = read_prompt(args.prompt_file)
        except CannotStart as error:
            print(f"{NAME}: {error}", file=sys.stderr)
            return EXIT_CANNOT_START
        task = task_from_prompt(prompt, os.environ.get("FACTORY_TASK") or None)
        stream = Stream(settings.seconds)
        try:
            return run(cwd, task, settings, stream)
        except (GitFailed, OSError) as error:
            if isinstance(error, BrokenPipeError):
                raise
            # Like a real agent that gives up: an error result, then exit 1.
            reason = str(error) if isinstance(error, GitFailed) else f"cannot write: {error}"
            stream.emit(
                {
                    "type": "result",
                    "subtype": "error_during_execution",
                    "is_error": True,
                    "num_turns": 1,
                    "result": reason,
                    "session_id": stream.session_id,
                }
            )
            return EXIT_FAILED
    except Stopped as stop:
        # A second signal while the stop line goes out must not interrupt it.
        for signum in EXIT_SIGNAL:
            signal.signal(signum, signal.SIG_IGN)
        _stop_line(stream, stop.signum)
        return EXIT_SIGNAL.get(signal.Signals(stop.signum), 128 + stop.signum)
    except BrokenPipeError:
        # The reader went away; keep Python's exit flush from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
