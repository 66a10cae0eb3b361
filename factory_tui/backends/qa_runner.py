"""Running ``test`` and ``verify`` scenarios against one commit.

What it owns:

* ``CleanCheckout``: a detached git worktree of exactly one commit under
  ``.factory/qa-work/checkouts/``, removed on exit (even on an exception), so
  that QA sees what was committed and nothing an agent left lying in its own
  worktree, and never moves a branch. A checkout left behind by a killed
  process is removed by the next one (``sweep_checkouts``): each checkout's
  owner holds a flock on ``<name>.lock`` beside it, and the kernel lets go of
  that lock when the owner dies.

  Why a worktree and not ``git archive | tar -x``: measured on a 200-file
  repository, add + remove took 30 ms against 25 ms for archive + tar (and
  62 against 59 ms on this package's own repository), so the two cost the
  same within noise; but a worktree is the commit exactly (``export-ignore``
  and ``export-subst`` attributes would drop or rewrite files in an archive)
  and a git checkout, so a test suite that asks git about itself still works.

* ``run_command_scenario``: the scenario's argv (never a shell string) in that
  checkout, with a timeout and a cancel event; the command leads a process
  group of its own and carries ``FACTORY_QA_RUN=<out_dir>`` in its
  environment, so stopping it stops everything it started (``processes.py``,
  ``runs.stop_members``). When an attempt ends, whatever of it still lives
  is stopped, a daemon that left its session and its output among them. Its output (stdout and stderr together) goes to
  ``<out_dir>/output.log``, at most ``OUTPUT_HEAD + OUTPUT_TAIL`` bytes per
  attempt: the head as it comes, the tail at the end, and a line saying how
  much was cut between them.

  Placeholders in ``run``: ``{python}`` (this Python), ``{junit}`` (where the
  command may write JUnit XML; also ``$FACTORY_QA_JUNIT``), ``{commit}``
  (also ``$FACTORY_QA_COMMIT``) and ``{checkout}`` (the checkout's folder, also
  the working directory). Only these are replaced; any other braces are left
  as they are.

  Verdicts. ``test``: exit 0 is PASS, anything else FAIL; JUnit XML, when
  written, gives ``QaResult.tests`` and names the failing tests in the reason.
  ``verify``: when the scenario has ``expect`` or ``expect_not`` patterns,
  they alone decide (every ``expect`` must match the output, no ``expect_not``
  may; regular expressions searched with MULTILINE over the kept output, in a
  child process killed when the scenario's time is up: ``qa_patterns``), and
  the exit status is only reported; without patterns, exit 0 passes as for a
  test. Either kind: a FAIL is run again up to ``scenario.retries`` times and
  a later pass is FLAKY; a timeout or a command that cannot start is ERROR;
  a cancel is SKIP. JUnit XML that declares a DOCTYPE or entities is refused
  unread (ERROR): entity expansion is how XML files attack their readers.

* ``BaseResults`` and ``judge_against_base``: a ``test`` that fails on the
  task's commit is run on the base commit as well (once per base commit and
  scenario version, cached in ``qa-work/base/``), and the task is blamed only
  for what fails on its commit and did not already fail on the base:
  PASS_TO_PASS tests it broke and new tests that fail, and FAIL_TO_PASS
  tests its title or body asked to have fixed that still fail (qa_asked).
  A failure on both commits with no per-test results is ERROR, never a
  quiet pass. ``check_test_scenario`` wires the two.

No Textual here; git runs through GitPython's ``git.Git`` as argv lists.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import git

from factory_tui.actors import AGENT_VARIABLES
from factory_tui.backends import processes
from factory_tui.backends.locks import PathLock, worktree_admin
from factory_tui.backends.qa_patterns import PatternsFailed, PatternsTimedOut, search_patterns
from factory_tui.backends.runs import stop_members
from factory_tui.backends.worktrees import _one_line
from factory_tui.errors import FactoryError, os_error_text
from factory_tui.qa_asked import asked_tests, short_name
from factory_tui.qa_model import COMMAND_KINDS, QaKind, QaResult, Scenario, Verdict
from factory_tui.text import literal

CHECKOUTS = "checkouts"
BASE_CACHE = "base"
# Per attempt, the output log keeps this much of the start and of the end.
OUTPUT_HEAD = 1 << 20
OUTPUT_TAIL = 1 << 20
READ_CHUNK = 64 << 10
# How often a running command is looked at for a cancel (and, without a
# pidfd, for its exit).
TICK_SECONDS = 0.05
# A command that exited but whose pipe stays open (something it started
# escaped its process group and kept stdout) is waited for this long.
DRAIN_SECONDS = 1.0
# Times such a holder is looked for and stopped before the pipe is let go.
DRAIN_STOPS = 3
# How long a stopped command gets between SIGTERM and SIGKILL.
GRACE_SECONDS = 1.0
# A verify's patterns get what is left of its timeout, but at least this.
PATTERN_FLOOR_SECONDS = 2.0
# JUnit XML larger than this is not read (the verdict stands on the exit status).
JUNIT_LIMIT = 32 << 20
# Failing tests named in a reason, at most.
NAMED_TESTS = 3
REASON_LIMIT = 300
_HOSTILE_XML = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\{(python|junit|commit|checkout)\}")
_FAILING = frozenset({Verdict.FAIL.value, Verdict.ERROR.value})


class CheckoutFailed(FactoryError):
    """A commit could not be checked out for QA (it does not exist, git failed)."""


# --- the clean checkout -------------------------------------------------------------


def _git(repo_root: Path, *args: str) -> tuple[int, str, str]:
    """``git <args>`` in ``repo_root``: (status, stdout, stderr), never raising
    for git's own failures. A change to the worktree list holds the
    repository's worktree lock, shared with the agents' worktrees."""
    runner = git.Git(str(repo_root))
    changes_worktrees = args[:1] == ("worktree",) and args[1:2] != ("list",)
    try:
        with worktree_admin(repo_root) if changes_worktrees else nullcontext():
            status, out, err = runner.execute(
                ["git", "-C", str(repo_root), *args],
                with_extended_output=True,
                with_exceptions=False,
            )
    except git.GitCommandNotFound:
        raise FactoryError("git is not installed (or not on PATH)") from None
    return status, out, err


def _remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _remove_checkout(repo_root: Path, folder: Path) -> bool:
    """Remove a checkout and its registration; True if git needs a prune
    (the folder was removed without git)."""
    if folder.exists():
        status, _, _ = _git(repo_root, "worktree", "remove", "--force", "--force", str(folder))
        if status == 0 and not folder.exists():
            return False
        # git refused (the command broke the checkout's .git file, say):
        # the folder goes anyway, and its registration with a prune.
        _remove_folder(folder)
    return True


def sweep_checkouts(work_dir: Path, repo_root: Path) -> list[str]:
    """Remove the checkouts under ``work_dir/checkouts`` whose owner is gone
    (killed while checking); returns their names. A live owner holds its
    checkout's lock, so its checkout is never touched."""
    folder = Path(work_dir) / CHECKOUTS
    try:
        entries = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    names = {entry.removesuffix(".lock") for entry in entries if not entry.startswith(".")}
    removed: list[str] = []
    for name in sorted(names):
        lock = PathLock(folder / f"{name}.lock")
        if not lock.acquire(0):
            continue  # its owner is checking now
        try:
            _remove_checkout(repo_root, folder / name)
            (folder / f"{name}.lock").unlink(missing_ok=True)
        finally:
            lock.release()
        removed.append(name)
    if removed:
        _git(repo_root, "worktree", "prune")
    return removed


class CleanCheckout:
    """``with CleanCheckout(repo_root, commit, work_dir) as folder:`` a
    detached checkout of exactly ``commit`` at ``folder``, removed on exit.

    The checkout is detached, but it shares the repository's refs: a
    command in it can ``git branch -f factory/T-1 HEAD~1`` or
    ``git update-ref -d refs/heads/main``. ``watch`` names the refs that
    must not be rewound or deleted meanwhile (the task's branch, the base
    branch); ``moved()`` says which were, and puts back those in
    ``restore`` (the task's branch: nothing else rewinds it, and its commits
    would be lost) when nothing moved them again since. A fast-forward is
    not counted: an approve moves the base branch that way while a check
    runs, and an agent its own branch. QA cannot stop a command from
    writing outside its checkout (it is the operator's own command,
    tracked in git); it can see that it did not take the work away."""

    def __init__(self, repo_root: Path, commit: str, work_dir: Path, *, watch: tuple[str, ...] = (),
                 restore: tuple[str, ...] = ()) -> None:
        self.repo_root = Path(repo_root)
        self.commit = commit
        self.work_dir = Path(work_dir)
        self.watch = tuple(dict.fromkeys((*watch, *restore)))
        self.restore = frozenset(restore)
        self._heads: dict[str, str | None] = {}
        self.name = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.path = self.work_dir / CHECKOUTS / self.name
        self._lock = PathLock(self.work_dir / CHECKOUTS / f"{self.name}.lock")

    def __enter__(self) -> Path:
        (self.work_dir / CHECKOUTS).mkdir(parents=True, exist_ok=True)
        sweep_checkouts(self.work_dir, self.repo_root)
        # The lock before the folder: a sweeper never finds a checkout
        # without its owner's lock on it.
        self._lock.acquire(0)
        try:
            status, _, err = _git(
                self.repo_root, "worktree", "add", "--detach", "--quiet", str(self.path), self.commit,
            )
            if status != 0:
                raise CheckoutFailed(f"cannot check out {self.commit[:12]} for QA: {_one_line(err)}")
            self._heads = {ref: self._head(ref) for ref in self.watch}
        except BaseException:
            self._clean()
            raise
        return self.path

    def __exit__(self, *exc: object) -> None:
        self._clean()

    def _head(self, ref: str) -> str | None:
        status, out, _ = _git(self.repo_root, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
        return out.strip() if status == 0 and out.strip() else None

    def _rewound(self, old: str, new: str | None) -> bool:
        if new == old:
            return False
        if new is None:
            return True
        status, _, _ = _git(self.repo_root, "merge-base", "--is-ancestor", old, new)
        return status != 0

    def moved(self) -> str | None:
        """What a command in the checkout did to the watched refs since it
        was made (a rewind, a move elsewhere, a deletion), or None; the refs
        in ``restore`` are put back first (only if still where it left them)."""
        said: list[str] = []
        for ref, old in self._heads.items():
            if old is None:
                continue
            new = self._head(ref)
            if not self._rewound(old, new):
                continue
            change = f"deleted {ref} (at {old[:10]})" if new is None else f"moved {ref} from {old[:10]} to {new[:10]}"
            if ref in self.restore:
                status, _, _ = _git(self.repo_root, "update-ref", "-m", "factory QA: put back what a scenario moved",
                                    ref, old, new or "0" * len(old))
                change += "; put back" if status == 0 else "; it moved again since, left as it is"
            said.append(change)
        return "the scenario " + "; ".join(said) if said else None

    def _clean(self) -> None:
        try:
            if _remove_checkout(self.repo_root, self.path):
                _git(self.repo_root, "worktree", "prune")
        finally:
            (self.work_dir / CHECKOUTS / f"{self.name}.lock").unlink(missing_ok=True)
            self._lock.release()


# --- one command -----------------------------------------------------------------


class _Capture:
    """One attempt's output: the head written to the log as it comes, the
    tail held back to be written at the end, and both kept as text for
    ``verify``'s patterns."""

    def __init__(self, log) -> None:
        self.log = log
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_size = 0
        self.cut = 0

    def feed(self, data: bytes) -> None:
        room = OUTPUT_HEAD - len(self.head)
        if room > 0:
            taken = data[:room]
            self.head += taken
            self.log.write(taken)
            data = data[room:]
        if not data:
            return
        self.tail.append(data)
        self.tail_size += len(data)
        while self.tail_size > OUTPUT_TAIL:
            first = self.tail[0]
            excess = self.tail_size - OUTPUT_TAIL
            if len(first) <= excess:
                self.tail.popleft()
                self.tail_size -= len(first)
                self.cut += len(first)
            else:
                self.tail[0] = first[excess:]
                self.tail_size -= excess
                self.cut += excess

    def finish(self) -> str:
        tail = b"".join(self.tail)
        marker = b""
        if self.cut:
            marker = f"\n[… {self.cut:,} bytes of output cut here …]\n".encode()
            self.log.write(marker)
        self.log.write(tail)
        return (bytes(self.head) + marker + tail).decode("utf-8", "replace")


@dataclass(slots=True)
class _Attempt:
    """How one run of the command went."""

    ended: str  # "exited" | "timeout" | "cancelled" | "not-started"
    code: int | None = None
    output: str = ""
    problem: str = ""  # why it could not start


def _argv(scenario: Scenario, values: dict[str, str]) -> list[str]:
    return [_PLACEHOLDER.sub(lambda match: values[match.group(1)], arg) for arg in scenario.run]


def _environment(extra: Mapping[str, str] | None, values: dict[str, str], out_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    # A QA command is not an agent: it must not act under an agent's token.
    for name in AGENT_VARIABLES:
        env.pop(name, None)
    env.update(extra or {})
    env["FACTORY_QA_JUNIT"] = values["junit"]
    env["FACTORY_QA_COMMIT"] = values["commit"]
    env["FACTORY_QA_RUN"] = str(out_dir)
    return env


def _members(out_dir: Path, pgid: int) -> Callable[[], list[processes.RunProcess]]:
    def members() -> list[processes.RunProcess]:
        if processes.proc_available():
            return processes.of_qa_run(out_dir)
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [processes.RunProcess(pgid, 0, pgid, str(out_dir))]
    return members


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _run_once(
    argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float, out_dir: Path,
    log, cancel: threading.Event | None,
) -> _Attempt:
    try:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    except FileNotFoundError:
        return _Attempt("not-started", problem=f"command not found: {argv[0]}")
    except PermissionError:
        return _Attempt("not-started", problem=f"command cannot be run (permission denied): {argv[0]}")
    except OSError as error:
        return _Attempt("not-started", problem=f"command cannot be run: {argv[0]}: {error.strerror or error}")
    capture = _Capture(log)
    assert process.stdout is not None
    pipe = process.stdout.fileno()
    os.set_blocking(pipe, False)
    selector = selectors.DefaultSelector()
    selector.register(pipe, selectors.EVENT_READ, "pipe")
    # A pidfd turns readable when the command exits: no polling for it.
    pidfd: int | None = None
    try:
        pidfd = os.pidfd_open(process.pid)
        selector.register(pidfd, selectors.EVENT_READ, "exit")
    except (AttributeError, OSError):
        pidfd = None
    deadline = time.monotonic() + timeout
    ended = ""
    pipe_open = True
    try:
        while not ended:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                ended = "timeout"
                break
            if cancel is not None and cancel.is_set():
                ended = "cancelled"
                break
            for key, _ in selector.select(min(TICK_SECONDS, remaining)):
                if key.data == "pipe":
                    pipe_open = _read(pipe, capture)
                    if not pipe_open:
                        selector.unregister(pipe)
            # Exited, but not reaped yet (the pid cannot be reused): what it
            # left in its group goes with it.
            if _exited(process.pid):
                _kill_group(process.pid)
                process.wait()
                ended = "exited"
        if ended != "exited":
            stop_members(_members(out_dir, process.pid), process.pid, GRACE_SECONDS,
                         reap=lambda: None)
            _kill_group(process.pid)
            process.wait()
        # What is still in the pipe; a process that left the group and holds
        # it open is found by its environment and stopped.
        drain_until = time.monotonic() + DRAIN_SECONDS
        stops = 0
        while pipe_open:
            if time.monotonic() > drain_until:
                if stops == DRAIN_STOPS:
                    break  # not found (no /proc?): the pipe is let go
                stop_members(_members(out_dir, process.pid), None, GRACE_SECONDS)
                stops += 1
                drain_until = time.monotonic() + DRAIN_SECONDS
            if selector.select(TICK_SECONDS):
                pipe_open = _read(pipe, capture)
    finally:
        if process.returncode is None:
            # Our side failed (the output could not be written: a full disk):
            # the command is not left running.
            _kill_group(process.pid)
            process.wait()
        # What it started and let go of its output (a daemon: fork, setsid,
        # fork again, stdout to /dev/null) is still in the environment's
        # sight: stopped now, so that nothing of the scenario outlives it or
        # holds its checkout.
        if processes.proc_available():
            stop_members(lambda: processes.of_qa_run(out_dir), None, GRACE_SECONDS)
        selector.close()
        if pidfd is not None:
            os.close(pidfd)
        process.stdout.close()
    return _Attempt(ended, process.returncode, capture.finish())


def _read(pipe: int, capture: _Capture) -> bool:
    """Read what is there; False at the end of the output."""
    try:
        data = os.read(pipe, READ_CHUNK)
    except BlockingIOError:
        return True
    if not data:
        return False
    capture.feed(data)
    return True


def _exited(pid: int) -> bool:
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True



def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited {code}"


def _last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return ""


def _short(text: str) -> str:
    text = literal(text)
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


def _tests(count: int) -> str:
    return f"{count} test" if count == 1 else f"{count} tests"


def _named(names: list[str]) -> str:
    shown = ", ".join(names[:NAMED_TESTS])
    if len(names) > NAMED_TESTS:
        shown += f" and {len(names) - NAMED_TESTS} more"
    return shown


# --- JUnit ---------------------------------------------------------------------


class JunitRefused(Exception):
    """JUnit XML that declares a DOCTYPE or entities: never parsed."""


def read_junit(path: Path) -> dict[str, str] | None:
    """Per-test verdicts from a JUnit XML file (``classname::name`` →
    PASS/FAIL/ERROR/SKIP), or None when there is no file or it cannot be
    read. Raises ``JunitRefused`` for a document with a DOCTYPE or entities."""
    try:
        if path.stat().st_size > JUNIT_LIMIT:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if _HOSTILE_XML.search(data):
        raise JunitRefused("JUnit XML refused: it declares a DOCTYPE or entities")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        return None
    rank = {"PASS": 0, "SKIP": 1, "FAIL": 2, "ERROR": 3}
    tests: dict[str, str] = {}
    for case in root.iter("testcase"):
        name = case.get("name") or "?"
        classname = case.get("classname")
        key = f"{classname}::{name}" if classname else name
        if case.find("error") is not None:
            verdict = "ERROR"
        elif case.find("failure") is not None:
            verdict = "FAIL"
        elif case.find("skipped") is not None:
            verdict = "SKIP"
        else:
            verdict = "PASS"
        # The same name twice (a rerun plugin): the worse counts.
        if rank[verdict] >= rank.get(tests.get(key, "PASS"), 0):
            tests[key] = verdict
    return tests


# --- verdicts -------------------------------------------------------------------


def _judge_test(attempt: _Attempt, tests: dict[str, str]) -> tuple[Verdict, str]:
    failing = [name for name, verdict in tests.items() if verdict in _FAILING]
    if attempt.code == 0:
        return Verdict.PASS, f"passed ({_tests(len(tests))})" if tests else "exited 0"
    if failing:
        return Verdict.FAIL, f"{_tests(len(failing))} failed: {_named(failing)}"
    last = _last_line(attempt.output)
    return Verdict.FAIL, _describe_exit(attempt.code) + (f": {last}" if last else "")


def _judge_verify(scenario: Scenario, attempt: _Attempt, *, seconds: float) -> tuple[Verdict, str]:
    """``seconds``: how long the patterns may take to search (what is left
    of the scenario's timeout, at least ``PATTERN_FLOOR_SECONDS``)."""
    exit_text = _describe_exit(attempt.code)
    if not scenario.expect and not scenario.expect_not:
        if attempt.code == 0:
            return Verdict.PASS, exit_text
        last = _last_line(attempt.output)
        return Verdict.FAIL, exit_text + (f": {last}" if last else "")
    try:
        report = search_patterns(attempt.output, scenario.expect, scenario.expect_not, seconds=seconds)
    except PatternsTimedOut as error:
        return Verdict.ERROR, (f"{error}: a pattern that backtracks without end on this output "
                               "(nested repeats such as (a+)+ are the usual cause)")
    except PatternsFailed as error:
        return Verdict.ERROR, str(error)
    problems = [f"expected {pattern!r} not found" for pattern in report.missing]
    problems += [f"{pattern!r} found" for pattern in report.found]
    if problems:
        return Verdict.FAIL, f"{exit_text}; " + "; ".join(problems)
    met = len(scenario.expect) + len(scenario.expect_not)
    return Verdict.PASS, f"{exit_text}; all {met} expectations met"


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def run_command_scenario(
    scenario: Scenario,
    *,
    repo_root: Path,
    commit: str,
    base_commit: str | None,
    out_dir: Path,
    work_dir: Path,
    env: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
    watch: tuple[str, ...] = (),
    restore: tuple[str, ...] = (),
) -> QaResult:
    """Run a ``test`` or ``verify`` scenario on ``commit`` in a clean checkout
    and say what it found. Output goes to ``out_dir`` (made if missing).
    ``watch`` and ``restore``: refs the command must not rewind or delete
    (``CleanCheckout``); if it does, the result is ERROR, whatever it said."""
    if scenario.kind not in COMMAND_KINDS:
        raise FactoryError(f"{scenario.name} is a {scenario.kind} scenario: it has no command to run")
    started = time.monotonic()
    out_dir = Path(out_dir)

    def result(verdict: Verdict, reason: str, attempts: int = 1, tests: dict | None = None) -> QaResult:
        return QaResult(
            scenario=scenario.name, version=scenario.version, kind=scenario.kind, gate=scenario.gate,
            verdict=verdict, reason=_short(reason), commit=commit, base_commit=base_commit,
            duration=time.monotonic() - started, attempts=attempts,
            output=_relative(out_dir, repo_root), tests=dict(tests or {}),
        )

    if not scenario.run:
        return result(Verdict.ERROR, "no command to run (run: is empty)")
    if cancel is not None and cancel.is_set():
        return result(Verdict.SKIP, "cancelled")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return _attempts(scenario, commit=commit, repo_root=repo_root, out_dir=out_dir,
                         work_dir=work_dir, env=env, cancel=cancel, result=result,
                         checkout=CleanCheckout(repo_root, commit, work_dir, watch=watch, restore=restore))
    except CheckoutFailed as error:
        return result(Verdict.ERROR, str(error))
    except OSError as error:
        # Our side could not write (the output, the checkout): the command
        # was stopped and its checkout removed on the way out.
        return result(Verdict.ERROR, f"QA could not write its output: {os_error_text(error)}")


def _attempts(
    scenario: Scenario, *, commit: str, repo_root: Path, out_dir: Path, work_dir: Path,
    env: Mapping[str, str] | None, cancel: threading.Event | None,
    result: Callable[..., QaResult], checkout: CleanCheckout,
) -> QaResult:
    """Run the command until it passes, errs, or has failed ``1 + retries``
    times; the result of the last attempt, FLAKY for a pass after a failure."""
    tries = 1 + max(scenario.retries, 0)
    first_failure = ""
    with open(out_dir / "output.log", "wb") as log, checkout as folder:
        for number in range(1, tries + 1):
            junit = out_dir / f"junit-{number}.xml"
            junit.unlink(missing_ok=True)
            values = {"python": sys.executable, "junit": str(junit), "commit": commit, "checkout": str(folder)}
            argv = _argv(scenario, values)
            # "attempt 1 of 2" read as if a second run were coming whatever
            # the first gave: a retry happens only after a failure.
            heading = f"try {number} of at most {tries}" if tries > 1 else "run"
            log.write(f"── {heading}: {shlex.join(argv)}\n".encode())
            log.flush()
            began = time.monotonic()
            attempt = _run_once(
                argv, cwd=folder, env=_environment(env, values, out_dir), timeout=scenario.timeout,
                out_dir=out_dir, log=log, cancel=cancel,
            )
            moved = checkout.moved()
            if moved:
                log.write(f"\n── {moved}\n".encode())
                return result(Verdict.ERROR, moved, number)
            ending = attempt.problem or _describe_exit(attempt.code)
            if attempt.ended in ("timeout", "cancelled"):
                ending = f"stopped ({'timed out' if attempt.ended == 'timeout' else 'cancelled'}), {ending}"
            log.write(f"\n── {ending}\n".encode())
            if attempt.ended == "not-started":
                return result(Verdict.ERROR, attempt.problem, number)
            if attempt.ended == "cancelled":
                return result(Verdict.SKIP, "cancelled", number)
            if attempt.ended == "timeout":
                return result(Verdict.ERROR, f"did not finish within {scenario.timeout:g} s", number)
            try:
                tests = read_junit(junit) or {}
            except JunitRefused as refused:
                return result(Verdict.ERROR, str(refused), number)
            if scenario.kind is QaKind.TEST:
                verdict, reason = _judge_test(attempt, tests)
            else:
                left = began + scenario.timeout - time.monotonic()
                verdict, reason = _judge_verify(scenario, attempt, seconds=max(left, PATTERN_FLOOR_SECONDS))
            if verdict is Verdict.PASS and number > 1:
                return result(
                    Verdict.FLAKY,
                    f"failed on attempt 1 ({first_failure}), passed on attempt {number}",
                    number, tests,
                )
            if verdict is not Verdict.FAIL or number == tries:
                if verdict is Verdict.FAIL and number > 1:
                    reason += f" (all {number} attempts failed)"
                return result(verdict, reason, number, tests)
            first_failure = first_failure or reason
    raise AssertionError("unreachable")  # pragma: no cover


# --- the base branch --------------------------------------------------------------


# Base results worth keeping: a timeout or a cancel says nothing about the base.
_CACHEABLE = frozenset({Verdict.PASS, Verdict.FAIL, Verdict.FLAKY})


class BaseResults:
    """The base commit's result of each ``test`` scenario, in
    ``<work_dir>/base/<base_commit>-<version>.json``: run once per base commit
    and scenario version. The first process to need one runs it under a lock
    on ``<file>.lock``; any other waits for it and reads the file."""

    def __init__(self, work_dir: Path) -> None:
        self.folder = Path(work_dir) / BASE_CACHE

    def path(self, base_commit: str, scenario: Scenario) -> Path:
        return self.folder / f"{base_commit}-{scenario.version}.json"

    def output_dir(self, base_commit: str, scenario: Scenario) -> Path:
        return self.folder / f"{base_commit}-{scenario.version}"

    def get(self, base_commit: str, scenario: Scenario) -> QaResult | None:
        try:
            return QaResult.from_json(json.loads(self.path(base_commit, scenario).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def get_or_run(self, base_commit: str, scenario: Scenario, run: Callable[[], QaResult]) -> QaResult:
        """The cached result, or ``run()``'s (kept when it says something
        about the base: PASS, FAIL or FLAKY)."""
        found = self.get(base_commit, scenario)
        if found is not None:
            return found
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = PathLock(self.path(base_commit, scenario).with_suffix(".lock"))
        # Another process running it: wait as long as the run may take.
        wait = scenario.timeout * (1 + max(scenario.retries, 0)) + 30.0
        locked = lock.acquire(wait)
        try:
            found = self.get(base_commit, scenario)
            if found is not None:
                return found
            fresh = run()
            if locked and fresh.verdict in _CACHEABLE:
                self._write(self.path(base_commit, scenario), fresh)
            return fresh
        finally:
            lock.release()

    @staticmethod
    def _write(path: Path, result: QaResult) -> None:
        # Whole or not at all: a reader never sees half a file.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
        try:
            temporary.write_text(json.dumps(result.to_json(), indent=1), encoding="utf-8")
            os.replace(temporary, path)
        except OSError:
            # A cache that cannot be written (a full disk) is only not kept.
            temporary.unlink(missing_ok=True)


def judge_against_base(head: QaResult, base: QaResult, asked: str = "") -> QaResult:
    """The task's verdict once what already fails on the base branch is set
    aside: with per-test results, FAIL only for tests that fail on ``head``
    and did not fail on ``base`` (passed, were skipped, or did not exist),
    and for tests failing on both that the task asked to have fixed
    (``asked``: its title and body; see qa_asked). A failure on both
    commits without per-test results to tell them apart is ERROR: nothing
    says whether the task is to blame (a command that cannot even start
    fails on both). A passing ``head`` keeps its verdict, and its reason
    names the asked-for tests it fixed."""
    fixed = [
        name for name in asked_tests(asked, head.tests)
        if head.tests[name] == Verdict.PASS.value and base.tests.get(name) in _FAILING
    ]
    fixed_note = f"fixed as asked: {_named([short_name(name) for name in fixed])}" if fixed else ""
    if head.verdict is not Verdict.FAIL:
        if fixed_note and head.verdict is Verdict.PASS:
            return replace(head, base_commit=base.commit, reason=_short(f"{head.reason}; {fixed_note}"))
        return head
    judged = replace(head, base_commit=base.commit)
    if base.verdict not in _CACHEABLE:
        return replace(judged, reason=_short(f"{head.reason} (the base branch could not be checked: {base.reason})"))
    failing = [name for name, verdict in head.tests.items() if verdict in _FAILING]
    if failing and base.tests:
        already = [name for name in failing if base.tests.get(name) in _FAILING]
        still = asked_tests(asked, already)
        broken = [name for name in failing if name not in already]
        excused = [name for name in already if name not in still]
        parts = []
        if broken:
            parts.append(f"{_tests(len(broken))} failed: {_named(broken)}")
        if still:
            parts.append(f"asked to fix, still failing: {_named([short_name(name) for name in still])}")
        notes = [note for note in (
            f"already failing on the base branch: {_named(excused)}" if excused else "", fixed_note,
        ) if note]
        if parts:
            reason = "; ".join(parts) + (f" ({'; '.join(notes)})" if notes else "")
            return replace(judged, reason=_short(reason))
        reason = f"passes but for tests {notes[0]}" + (f"; {fixed_note}" if fixed_note else "")
        return replace(judged, verdict=Verdict.PASS, reason=_short(reason))
    if base.verdict is Verdict.FAIL:
        return replace(
            judged, verdict=Verdict.ERROR,
            reason=_short(
                "fails on the base branch too and reports no per-test results, so the task cannot be "
                "judged: have the command write JUnit to {junit}"
                + (f" ({_last_line(head.reason)})" if head.reason else "")
            ),
        )
    return judged


def check_test_scenario(
    scenario: Scenario,
    *,
    repo_root: Path,
    commit: str,
    base_commit: str | None,
    out_dir: Path,
    work_dir: Path,
    env: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
    asked: str = "",
    watch: tuple[str, ...] = (),
    restore: tuple[str, ...] = (),
) -> QaResult:
    """Run a command scenario on ``commit``; a failing ``test`` is then
    judged against ``base_commit`` (run there once, cached). ``asked`` is
    the task's title and body: a test it names is blamed when it still
    fails, and credited when it now passes (which takes the base's run too,
    from the cache when it is there)."""
    started = time.monotonic()
    head = run_command_scenario(
        scenario, repo_root=repo_root, commit=commit, base_commit=base_commit, out_dir=out_dir,
        work_dir=work_dir, env=env, cancel=cancel, watch=watch, restore=restore,
    )
    if scenario.kind is not QaKind.TEST:
        return head
    if head.verdict is not Verdict.FAIL and not (
        head.verdict is Verdict.PASS and asked_tests(asked, head.tests)
    ):
        return head
    if not base_commit or base_commit == commit:
        return head
    cache = BaseResults(work_dir)
    base = cache.get_or_run(
        base_commit, scenario,
        lambda: run_command_scenario(
            scenario, repo_root=repo_root, commit=base_commit, base_commit=None,
            out_dir=cache.output_dir(base_commit, scenario), work_dir=work_dir, env=env, cancel=cancel,
            watch=watch, restore=restore,
        ),
    )
    if cancel is not None and cancel.is_set():
        return replace(head, verdict=Verdict.SKIP, reason="cancelled")
    # The base's run (when it was not cached) is part of what this check took.
    return replace(judge_against_base(head, base, asked), duration=time.monotonic() - started)
