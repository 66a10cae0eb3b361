"""QA asked for outside the engine's gate: the operator's ``factory qa run``
(and the console's twin), and QA's say in an approval.

What it owns:

* ``required_scenarios`` / ``applying``: the base's valid scenarios, and
  those that apply to a task's change (its diff against the base branch).
* ``run_scenarios``: run scenarios now against one commit, each in a clean
  checkout (``test``/``verify`` through ``qa_runner.check_test_scenario``,
  ``eval``/``scenario`` through a judge agent), output under the base's run
  folders.
* ``standing``: whether a task's required QA has passed on its branch's
  current head. ``checked_commit`` (set by the gate when a check passes) is
  the shortcut; otherwise every required scenario that applies must have a
  passing row in ``qa_runs`` for this task and that exact commit (a run on
  demand counts). An operator's own commit on the branch makes it stale.
* ``recheck``: the required ``test`` scenarios run again on a merge commit
  before it lands, when the base branch moved since the task's QA; main is
  never fast-forwarded to a result that fails them. ``trial_merge`` makes
  that merge as a commit object only (no worktree, no ref), so the tests
  can run on it before the operator lock is taken; ``same_merge`` tells,
  under the lock, whether the merge about to land is the one checked.

No Textual.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from factory_tui.backends.base import FactoryBase
from factory_tui.errors import FactoryError
from factory_tui.qa_model import JUDGED_KINDS, PASSING, Gate, QaKind, QaResult, Scenario, Verdict

if TYPE_CHECKING:
    import git


def _git_errors() -> type[git.GitCommandError]:
    # GitPython costs ~0.1 s to import: only a check that runs git needs it.
    import git

    return git.GitCommandError


class QaNotPassed(FactoryError):
    """Approve refused: the task's required QA has not passed on its head."""


class RecheckFailed(FactoryError):
    """The merge result failed a required test: nothing landed."""


class MergeMoved(FactoryError):
    """The base branch or the task's branch moved after the merge was
    checked: what would land is not what was tested."""


def trial_merge(root: Path, base_sha: str, head: str, message: str) -> str | None:
    """A merge commit of ``head`` into ``base_sha`` (first parent the base),
    made without a worktree and pointed to by no ref (``git merge-tree
    --write-tree``, git 2.38+); None when they conflict or git cannot."""
    repo = _git(root)
    try:
        tree = repo.merge_tree("--write-tree", base_sha, head).splitlines()[0].strip()
        return repo.commit_tree(tree, "-p", base_sha, "-p", head, "-m", message).strip() or None
    except (_git_errors(), IndexError):
        return None


def same_merge(root: Path, checked: str, merge_commit: str) -> bool:
    """Whether ``merge_commit`` holds exactly what ``checked`` held: the
    same tree on the same parents."""
    try:
        show = _git(root).show
        shape = "--format=%T %P"
        return (show("-s", shape, checked).strip() == show("-s", shape, merge_commit).strip())
    except _git_errors():
        return False


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a task's required QA stands on its branch head."""

    head: str
    required: tuple[str, ...]  # names of the required scenarios that apply
    passed: bool
    checked: str | None  # the commit the gate last passed (checked_commit)
    base_commit: str | None  # the base commit the passing QA compared with
    missing: tuple[str, ...] = ()  # required scenarios without a pass on head


def valid_scenarios(base: FactoryBase) -> list[Scenario]:
    """The base's scenarios that can be run (invalid files are never run)."""
    try:
        if not any(path.suffix == ".md" for path in base.qa_dir.iterdir()):
            return []  # no QA here: the scenario reader (YAML, markdown) is not even loaded
    except OSError:
        return []
    from factory_tui.backends.agents import load_profiles
    from factory_tui.qa_scenarios import load_scenarios

    profiles = load_profiles(base.config())
    return [item for item in load_scenarios(base.qa_dir, root=base.root, profiles=profiles)
            if isinstance(item, Scenario)]


def _git(root: Path) -> git.Git:
    import git

    return git.Git(str(root))


def changed_paths(root: Path, base_ref: str, head: str) -> list[str]:
    """The files ``head`` changed since it left ``base_ref``."""
    try:
        out = _git(root).diff("--name-only", "-z", "--no-renames", f"{base_ref}...{head}")
    except _git_errors() as error:
        raise FactoryError(f"cannot list what {head[:10]} changed: {error.stderr.strip() or error}") from None
    return [name for name in out.split("\0") if name]


def applying(scenarios: Sequence[Scenario], paths: Sequence[str], labels: Sequence[str] = ()) -> list[Scenario]:
    from factory_tui.qa_scenarios import applies

    return [item for item in scenarios if applies(item, paths, labels)]


def merge_base(root: Path, one: str, other: str) -> str | None:
    try:
        return _git(root).merge_base(one, other).strip() or None
    except _git_errors():
        return None


def standing(log, base: FactoryBase, task_id: str, *, head: str, base_branch: str,
             scenarios: Sequence[Scenario] | None = None) -> Standing | None:
    """Whether the task's required QA passed on ``head``; None when the
    base has no valid scenario at all (no QA: approve as before)."""
    scenarios = valid_scenarios(base) if scenarios is None else list(scenarios)
    if not scenarios:
        return None
    labels = log.get_task(task_id).labels
    required = [item for item in applying(scenarios, changed_paths(base.root, base_branch, head), labels)
                if item.gate is Gate.REQUIRED]
    names = tuple(item.name for item in required)
    _, checked = log.qa_state(task_id)
    # The newest row of each scenario on this very commit.
    newest: dict[str, QaResult] = {}
    for row in log.qa_runs(task_id=task_id, limit=1000):
        if row.result.commit == head and row.result.scenario not in newest:
            newest[row.result.scenario] = row.result
    bases = [result.base_commit for result in newest.values() if result.base_commit]
    base_commit = bases[0] if bases else merge_base(base.root, base_branch, head)
    if checked == head:
        return Standing(head, names, True, checked, base_commit)
    missing = tuple(name for name in names
                    if name not in newest or newest[name].verdict not in PASSING)
    return Standing(head, names, not missing, checked, base_commit, missing)


def last_words(log, task_id: str) -> str:
    """What the task's agent said last: the summary its latest run ended
    with (the ``finished`` or ``checking`` event), the material a judge is
    given as the agent's last words, by the gate and on demand alike."""
    ended = log.events(task_id=task_id, kinds=["finished", "checking"], last=1)
    return str(ended[0].data.get("summary") or "") if ended else ""


def stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{time.monotonic_ns() % 1_000_000:06d}"


def run_scenarios(
    base: FactoryBase, scenarios: Sequence[Scenario], *, commit: str, base_commit: str | None,
    task_id: str | None, attempt: int, task_title: str = "", task_body: str = "", summary: str = "",
    watch: tuple[str, ...] = (), restore: tuple[str, ...] = (),
) -> list[QaResult]:
    """Run each scenario on ``commit`` now, one after the other;
    ``summary`` is the agent's last words, for a judge. ``watch`` and
    ``restore``: the refs no scenario may rewind or delete (see
    ``qa_runner.CleanCheckout``; ``guarded_refs`` gives them)."""
    from factory_tui.backends.qa_runner import check_test_scenario

    when = stamp()
    results = []
    for scenario in scenarios:
        out_dir = base.qa_run_dir(task_id, attempt, when, scenario.name)
        if scenario.kind in JUDGED_KINDS:
            results.append(_judge(base, scenario, commit=commit, base_commit=base_commit, out_dir=out_dir,
                                  task_id=task_id, task_title=task_title, task_body=task_body,
                                  summary=summary, watch=watch, restore=restore))
            continue
        # The task's words say which tests it was asked to fix.
        results.append(check_test_scenario(
            scenario, repo_root=base.root, commit=commit, base_commit=base_commit, out_dir=out_dir,
            work_dir=base.qa_work_dir, asked=f"{task_title}\n{task_body}" if task_id else "",
            watch=watch, restore=restore,
        ))
    return results


def _judge(base: FactoryBase, scenario: Scenario, *, commit: str, base_commit: str | None, out_dir: Path,
           task_id: str | None, task_title: str, task_body: str, summary: str = "",
           watch: tuple[str, ...] = (), restore: tuple[str, ...] = ()) -> QaResult:
    """An ``eval`` or ``scenario`` run: the judge works in a clean checkout of
    ``commit`` and is shown its diff against ``base_commit``."""
    from factory_tui.backends.agents import load_profiles
    from factory_tui.backends.qa_judge import run_judge
    from factory_tui.backends.qa_runner import CleanCheckout
    from factory_tui.qa_verdict import judge_prompt, judge_template

    started = time.monotonic()

    def result(verdict: Verdict, reason: str, **more) -> QaResult:
        return QaResult(scenario=scenario.name, version=scenario.version, kind=scenario.kind,
                        gate=scenario.gate, verdict=verdict, reason=reason, commit=commit,
                        base_commit=base_commit, duration=time.monotonic() - started,
                        output=_relative(out_dir, base.root), **more)

    profile = load_profiles(base.config()).get(scenario.judge or "")
    if profile is None:
        return result(Verdict.ERROR, f"no agent profile {scenario.judge!r} to judge with")
    try:
        diff = _git(base.root).diff("--no-color", "--no-ext-diff", f"{base_commit}...{commit}") if base_commit else ""
        prompt = judge_prompt(judge_template(base.qa_dir, scenario.kind), scenario=scenario.name,
                              task_title=task_title, task_body=task_body, diff=diff, last_words=summary,
                              rubric=scenario.body)
        checkout = CleanCheckout(base.root, commit, base.qa_work_dir, watch=watch, restore=restore)
        with checkout as folder:
            outcome = run_judge(profile=profile, prompt=prompt, cwd=folder, out_dir=out_dir,
                                timeout=scenario.timeout, votes=scenario.votes, task_id=task_id or "")
            moved = checkout.moved()
        if moved:
            return result(Verdict.ERROR, moved)
    except (FactoryError, _git_errors()) as error:
        return result(Verdict.ERROR, str(error).splitlines()[0] if str(error) else "the judge could not run")
    return result(outcome.verdict, outcome.reason, attempts=len(outcome.votes), cost_usd=outcome.cost_usd,
                  input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def required_tests(scenarios: Sequence[Scenario], names: Sequence[str]) -> list[Scenario]:
    """The required ``test`` scenarios among ``names``: what a merge is
    checked with again."""
    wanted = set(names)
    return [item for item in scenarios
            if item.name in wanted and item.kind is QaKind.TEST and item.gate is Gate.REQUIRED]


def verdict_line(result: QaResult) -> str:
    """``PASS unit (test, required) 1.2s · reason``"""
    from factory_tui.text import literal, one_line

    line = f"{result.verdict} {literal(result.scenario)} ({result.kind}, {result.gate}) {result.duration:.1f}s"
    return line + (f" · {one_line(literal(result.reason), 200)}" if result.reason else "")


@dataclass(frozen=True, slots=True)
class OnDemand:
    """What ``run_on_demand`` checked and found."""

    task_id: str | None
    commit: str
    results: tuple[QaResult, ...]
    run_ids: tuple[int, ...] = ()

    @property
    def blocked(self) -> bool:
        return any(result.blocks for result in self.results)


def guarded_refs(worktrees, task_id: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(watch, restore) for a check: the base branch and the task's branch
    are watched, the task's branch is put back (see ``CleanCheckout``)."""
    base_ref = f"refs/heads/{worktrees.base_branch}"
    if task_id is None:
        return (base_ref,), ()
    task_ref = f"refs/heads/{worktrees.branch_for(task_id)}"
    return (base_ref, task_ref), (task_ref,)


def run_on_demand(base: FactoryBase, log, worktrees, *, task_id: str | None, names: Sequence[str] = (),
                  actor: str) -> OnDemand:
    """Run QA now: the scenarios ``names`` (else all that apply to the
    task's change; all of them without a task) on the task's branch head,
    or on the base branch's head without a task; recorded as runs asked for
    by ``actor``. They never move a task, but a pass on a task's head is
    what its approval looks for."""
    from factory_tui.backends.agents import load_profiles
    from factory_tui.errors import InvalidInput
    from factory_tui.qa_model import InvalidScenario
    from factory_tui.qa_scenarios import load_scenarios

    found = load_scenarios(base.qa_dir, root=base.root, profiles=load_profiles(base.config()))
    by_name = {item.name: item for item in found}
    for name in names:
        item = by_name.get(name.removesuffix(".md"))
        if item is None:
            raise InvalidInput(f"no QA scenario {name!r} in .factory/qa/ (`factory qa list` lists them)")
        if isinstance(item, InvalidScenario):
            where = f" line {item.line}:" if item.line is not None else ""
            raise InvalidInput(f"scenario {item.name} is invalid ({item.path}{where} {item.reason}); it is never run")
    valid = [item for item in found if isinstance(item, Scenario)]
    base_sha = worktrees.base_head()
    task = None
    if task_id is None:
        commit, base_commit = base_sha, None
    else:
        task = log.get_task(task_id)  # UnknownTask
        head = worktrees.branch_head(task_id)
        if head is None:
            raise FactoryError(f"{task_id} has no branch {worktrees.branch_for(task_id)} to check")
        commit, base_commit = head, base_sha
    if names:
        wanted = [by_name[name.removesuffix(".md")] for name in names]
        chosen = [item for item in wanted if isinstance(item, Scenario)]
    elif task_id is None:
        chosen = valid
    else:
        chosen = applying(valid, changed_paths(base.root, base_sha, commit), task.labels if task else ())
    attempt = max(1, task.attempts) if task is not None else 1
    watch, restore = guarded_refs(worktrees, task_id)
    results = run_scenarios(base, chosen, commit=commit, base_commit=base_commit, task_id=task_id,
                            attempt=attempt, task_title=task.title if task else "",
                            task_body=task.body if task else "",
                            summary=last_words(log, task.id) if task is not None else "",
                            watch=watch, restore=restore)
    ids = log.record_qa_on_demand(results, actor=actor, task_id=task_id,
                                  attempt=attempt if task is not None else None) if results else []
    return OnDemand(task_id, commit, tuple(results), tuple(ids))


def output_tail(base: FactoryBase, output: str | None, *, lines: int = 20) -> tuple[str | None, list[str]]:
    """A run's output file (absolute) and its last ``lines`` lines."""
    if not output:
        return None, []
    folder = Path(output) if Path(output).is_absolute() else base.root / output
    for name in ("output.log", "answer-1.txt", "judge.json"):
        path = folder / name
        if path.is_file():
            try:
                with path.open("rb") as handle:
                    handle.seek(0, 2)
                    size = handle.tell()
                    handle.seek(max(0, size - 64 * 1024))
                    text = handle.read().decode("utf-8", errors="replace")
            except OSError:
                return str(path), []
            return str(path), text.splitlines()[-lines:]
    return str(folder), []
