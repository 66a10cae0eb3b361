"""The QA gate: what happens to a task between "its agent finished" and
"the operator reviews it".

``check_task`` runs, for one task in ``checking``, the scenarios of
``.factory/qa/`` that apply to its change (``qa_scenarios.applies`` on the
paths its diff touches), each against the commit its run left:

* ``test`` and ``verify``: ``qa_runner.check_test_scenario`` in a clean
  checkout, failures judged against the base branch's commit;
* ``eval``: the scenario's judge profile reads the task, its diff, its
  agent's last words and the scenario's body as the rubric
  (``qa_verdict.judge_prompt``);
* ``scenario``: the same, with the judge working in a clean checkout of the
  commit.

It then records every result (``record_qa``, once, at the end: a check
taken over after its engine died is never counted twice) and ends the check
(``conclude_check``): all required ones passing → review; else back to the
queue with a trimmed report as the next prompt's feedback while QA rounds
remain and ``[qa] on_fail`` is ``requeue``; else failed with the report.

A ``LeaseKeeper`` thread renews the check's lease while scenarios run (a
check longer than the lease must not be reaped), notices when the lease is
gone (the operator cancelled the task) and then stops what runs: the
command through the runner's ``cancel`` event, a judge by its run folder
(``FACTORY_RUN``). A check cancelled because the engine stops leaves the
task in ``checking`` without a lease (``stop_check``) for the next engine.

Blocking throughout: the engine calls it in a worker thread. No Textual.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from factory_tui.backends import processes
from factory_tui.backends.agents import AgentProfile, load_profiles
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.qa_checks import guarded_refs
from factory_tui.backends.qa_judge import run_judge
from factory_tui.backends.qa_runner import CleanCheckout, check_test_scenario
from factory_tui.backends.runs import GRACE_SECONDS, stop_members, stop_run
from factory_tui.config import FactoryConfig
from factory_tui.errors import FactoryError, LeaseLost, LogBusy
from factory_tui.model import Action, State, Task
from factory_tui.qa_model import COMMAND_KINDS, Gate, InvalidScenario, QaKind, QaResult, Scenario, Verdict
from factory_tui.qa_scenarios import applies, load_scenarios
from factory_tui.qa_verdict import judge_prompt, judge_template

# The report that goes back to the agent as feedback: small enough to read,
# large enough to say what failed and show the end of its output.
REPORT_LIMIT = 3000
TAIL_LINES = 12
TAIL_CHARS = 700
# How often the keeper looks whether the check is still ours: a cancelled
# task's QA stops within about this.
WATCH_SECONDS = 0.5
# A write that must happen (the results, the check's end) is tried this
# long while the log is busy.
MUST_WRITE_SECONDS = 300.0
NO_SCENARIO = "no QA scenario applies"


@dataclass(slots=True)
class GateDecision:
    """How a check ended: ``passed``, ``rejected``, ``failed``, ``stopped``
    (the engine stopped it; the task waits in checking) or ``lost`` (its
    lease was gone: the operator cancelled, or another engine took it)."""

    ended: str
    note: str = ""
    results: list[QaResult] = field(default_factory=list)


class LeaseKeeper(threading.Thread):
    """Keeps a check's lease alive from its own thread, and stops what the
    check runs once its lease is gone or ``cancel`` is set."""

    def __init__(self, log, token: str, task_id: str, lease_seconds: float, cancel: threading.Event) -> None:
        super().__init__(name=f"qa-lease-{task_id}", daemon=True)
        self.log = log
        self.token = token
        self.task_id = task_id
        self.lease_seconds = lease_seconds
        self.cancel = cancel
        self.lost = False
        # The folder of the judge at work, if any: stopped on cancel.
        self.judge_dir: Path | None = None
        self._done = threading.Event()
        self._last_beat = time.time()

    def run(self) -> None:
        while not self._done.wait(WATCH_SECONDS):
            if not self.lost:
                self._look()
            if self.cancel.is_set() and self.judge_dir is not None:
                stop_run(self.judge_dir)

    def _look(self) -> None:
        try:
            if time.time() - self._last_beat >= self.lease_seconds / 4:
                self.beat()
            elif self.log.get_task(self.task_id).state is not State.CHECKING:
                self._lose()
        except LeaseLost:
            self._lose()
        except FactoryError:
            pass  # a busy log: the next look tries again

    def beat(self) -> None:
        """Renew the lease now (LeaseLost when it is gone)."""
        self.log.heartbeat(self.token, lease_seconds=self.lease_seconds)
        self._last_beat = time.time()

    def _lose(self) -> None:
        self.lost = True
        self.cancel.set()

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)


def check_task(
    *,
    base: FactoryBase,
    config: FactoryConfig,
    log,
    worktrees,
    task: Task,
    attempt: int,
    token: str,
    lease_seconds: float,
    commit: str | None = None,
    base_commit: str | None = None,
    summary: str | None = None,
    cancel: threading.Event | None = None,
    report: Callable[[str], None] = lambda line: None,
) -> GateDecision:
    """Check ``task`` (in ``checking`` under ``token``) and end the check;
    see the module's docstring. ``commit`` defaults to the task branch's
    head, ``base_commit`` to the base branch's; ``summary`` is its agent's
    last words, for a judge."""
    cancel = cancel or threading.Event()
    keeper = LeaseKeeper(log, token, task.id, lease_seconds, cancel)
    keeper.start()
    try:
        # QA commands a dead engine left running for this task go first.
        _stop_stray_commands(base, task.id)
        commit = commit or worktrees.branch_head(task.id)
        if commit is None:
            raise FactoryError(f"{task.id} has no branch {worktrees.branch_for(task.id)} to check")
        base_commit = base_commit or _base_commit(base.root, worktrees.base_branch)
        profiles = load_profiles(config)
        found = load_scenarios(base.qa_dir, root=base.root, profiles=profiles)
        valid = [item for item in found if isinstance(item, Scenario)]
        invalid = sum(isinstance(item, InvalidScenario) for item in found)
        diff = worktrees.diff(task.id)
        changed = [item.path for item in diff]
        chosen = [scenario for scenario in valid if applies(scenario, changed, task.labels)]
        results: list[QaResult] = []
        stamp = time.strftime("%Y%m%dT%H%M%S") + f"{time.time_ns() // 1_000_000 % 1000:03d}"
        patches = "\n".join(item.patch for item in diff if item.patch)
        refs = guarded_refs(worktrees, task.id)
        for scenario in chosen:
            if cancel.is_set():
                break
            keeper.beat()
            out_dir = base.qa_run_dir(task.id, attempt, stamp, scenario.name)
            report(f"{task.id}: QA {scenario.name} ({scenario.kind})")
            result = _run_one(
                scenario, base=base, profiles=profiles, task=task, commit=commit, base_commit=base_commit,
                out_dir=out_dir, diff=patches, summary=summary or "", cancel=cancel, keeper=keeper, refs=refs,
            )
            results.append(result)
        if cancel.is_set():
            if keeper.lost:
                return GateDecision("lost", results=results)
            _must(log.stop_check, token)
            return GateDecision("stopped", results=results)
        _must(log.record_qa, token, results, attempt=attempt)
        return _conclude(log, config, task, token, commit, results, invalid, root=base.root)
    except LeaseLost:
        return GateDecision("lost")
    finally:
        keeper.stop()


def _run_one(
    scenario: Scenario, *, base: FactoryBase, profiles: dict[str, AgentProfile], task: Task, commit: str,
    base_commit: str | None, out_dir: Path, diff: str, summary: str, cancel: threading.Event,
    keeper: LeaseKeeper, refs: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
) -> QaResult:
    """One scenario's result; what goes wrong on our side is its ERROR.
    ``refs``: (watch, restore), the refs it may not rewind (qa_checks.guarded_refs)."""
    watch, restore = refs
    started = time.monotonic()
    output = _relative(out_dir, base.root)

    def result(verdict: Verdict, reason: str, **more) -> QaResult:
        return QaResult(
            scenario=scenario.name, version=scenario.version, kind=scenario.kind, gate=scenario.gate,
            verdict=verdict, reason=reason, commit=commit, base_commit=base_commit,
            duration=time.monotonic() - started, output=output, **more,
        )

    try:
        if scenario.kind in COMMAND_KINDS:
            return check_test_scenario(
                scenario, repo_root=base.root, commit=commit, base_commit=base_commit, out_dir=out_dir,
                work_dir=base.qa_work_dir, cancel=cancel, asked=f"{task.title}\n{task.body}",
                watch=watch, restore=restore,
            )
        profile = profiles.get(scenario.judge or "")
        if profile is None:
            return result(Verdict.ERROR, f"no judge profile {scenario.judge!r}")
        prompt = judge_prompt(
            judge_template(base.qa_dir, scenario.kind), scenario=scenario.name, task_title=task.title,
            task_body=task.body, diff=diff, last_words=summary, rubric=scenario.body,
        )
        keeper.judge_dir = out_dir
        try:
            if scenario.kind is QaKind.SCENARIO:
                clean = CleanCheckout(base.root, commit, base.qa_work_dir, watch=watch, restore=restore)
                with clean as checkout:
                    outcome = _judge(profile, prompt, checkout, out_dir, scenario, task)
                    moved = clean.moved()
                if moved:
                    return result(Verdict.ERROR, moved)
            else:
                out_dir.mkdir(parents=True, exist_ok=True)
                outcome = _judge(profile, prompt, out_dir, out_dir, scenario, task)
        finally:
            keeper.judge_dir = None
        if cancel.is_set():
            return result(Verdict.SKIP, "cancelled")
        return result(
            outcome.verdict, outcome.reason, attempts=max(1, len(outcome.votes)), cost_usd=outcome.cost_usd,
            input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens,
        )
    except (FactoryError, OSError) as error:
        return result(Verdict.ERROR, _one_line(str(error)))


def _judge(profile, prompt, cwd, out_dir, scenario, task):
    return run_judge(profile=profile, prompt=prompt, cwd=cwd, out_dir=out_dir, timeout=scenario.timeout,
                     votes=scenario.votes, task_id=task.id)


def _conclude(log, config: FactoryConfig, task: Task, token: str, commit: str, results: list[QaResult],
              invalid: int, *, root: Path) -> GateDecision:
    invalid_line = f"{invalid} invalid scenario files were not run" if invalid else ""
    blocking = [item for item in results if item.blocks]
    if not blocking:
        if results:
            advisory = sum(item.gate is Gate.ADVISORY and item.verdict not in (Verdict.PASS, Verdict.FLAKY, Verdict.SKIP)
                           for item in results)
            note = f"QA passed: {_count(len(results))}" + (f" ({advisory} advisory failed)" if advisory else "")
        else:
            note = NO_SCENARIO
        note = "\n".join(filter(None, [note, invalid_line]))
        _must(log.conclude_check, token, Action.PASS, note=note, commit=commit)
        return GateDecision("passed", note, results)
    rounds, _ = _must(log.qa_state, task.id)
    text = qa_report(blocking, base_root=root, extra=invalid_line)
    if config.qa.on_fail == "requeue" and rounds < config.qa.max_rounds:
        _must(log.conclude_check, token, Action.REJECT, note=text)
        return GateDecision("rejected", text, results)
    first = blocking[0]
    reason = f"QA failed: {first.scenario} {first.verdict}" + (f" ({first.reason})" if first.reason else "")
    if len(blocking) > 1:
        reason += f" and {len(blocking) - 1} more"
    _must(log.conclude_check, token, Action.FAIL, note=text,
          data={"failure": "qa", "reason": _one_line(reason)[:320]})
    return GateDecision("failed", text, results)


def qa_report(failing: list[QaResult], *, base_root: Path | None, extra: str = "") -> str:
    """The markdown report of the required scenarios that did not pass: each
    with its verdict, its reason and the last lines of its output, at most
    ``REPORT_LIMIT`` characters. It is the next prompt's feedback."""
    parts = [f"QA did not pass: {_count(len(failing))} required did not pass."]
    for item in failing:
        entry = f"- **{item.scenario}** ({item.kind}): {item.verdict}" + (f": {item.reason}" if item.reason else "")
        tail = _output_tail(base_root / item.output if base_root and item.output else None)
        if tail:
            # Indented, not fenced: output holding ``` cannot end the block.
            entry += "\n\n" + "\n".join("      " + line for line in tail.splitlines())
        parts.append(entry)
    if extra:
        parts.append(extra)
    text = "\n\n".join(parts)
    if len(text) > REPORT_LIMIT:
        text = text[: REPORT_LIMIT - 40].rstrip() + "\n\n[… the report is cut here]"
    return text


def _output_tail(folder: Path | None) -> str:
    """The last lines a scenario's run printed (a command's output.log, or
    a judge's last answer)."""
    if folder is None or not folder.is_dir():
        return ""
    candidates = [folder / "output.log", *sorted(folder.glob("answer-*.txt"), reverse=True)]
    for path in candidates:
        try:
            with open(path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - 8 * TAIL_CHARS))
                data = handle.read()
        except OSError:
            continue
        lines = [line for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]
        text = "\n".join(lines[-TAIL_LINES:])
        return text[-TAIL_CHARS:]
    return ""


def _must(function, *args, **kwargs):
    """A log write that must happen: a busy log is waited out, for a while."""
    deadline = time.monotonic() + MUST_WRITE_SECONDS
    delay = 0.05
    while True:
        try:
            return function(*args, **kwargs)
        except LogBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _stop_stray_commands(base: FactoryBase, task_id: str) -> None:
    prefix = str(base.task_runs_dir(task_id)) + os.sep
    stop_members(lambda: processes.find(lambda run: run.startswith(prefix), processes.QA_MARKER), None,
                 GRACE_SECONDS)


def _base_commit(root: Path, branch: str) -> str | None:
    import git

    try:
        return git.Git(str(root)).rev_parse("--verify", "-q", f"refs/heads/{branch}^{{commit}}").strip() or None
    except git.GitCommandError:
        return None


def has_scenarios(base: FactoryBase, config: FactoryConfig) -> bool:
    """Whether the gate has anything to run: QA is on and at least one
    scenario file is valid."""
    if not config.qa.enabled:
        return False
    try:
        profiles = load_profiles(config)
    except FactoryError:
        return False
    return any(isinstance(item, Scenario)
               for item in load_scenarios(base.qa_dir, root=base.root, profiles=profiles))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _count(n: int) -> str:
    return f"{n} scenario" + ("" if n == 1 else "s")


def _one_line(text: str) -> str:
    return " ".join(text.split())


__all__ = ["GateDecision", "LeaseKeeper", "check_task", "has_scenarios", "qa_report"]
