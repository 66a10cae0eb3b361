"""A spec becomes a plan (``factory plan draft``): the spec is read, a
planner (backends/planner.py) writes a plan from it, and the plan is
imported as proposed tasks; a revision (``--revise``) also gives the
planner the log, and records the changes to existing tasks it proposes
(``plan_log``), which wait for the operator.

Nothing is imported unless the whole plan is good: it is parsed
(``plan_file.parse_plan``, every line checked), then the tasks, the
draft's record and its proposals are written in one transaction
(``ExecutionLog.transaction``). The tasks' source is ``draft:<spec>``, so
drafting the same spec again skips the items made before (the import
matches an item by its source and title: ``plan_import``), and the
planner is told which tasks those are.

The spec: a regular file (a FIFO, a device or a folder is refused before
it is opened for reading), at most ``plan_prompt.SPEC_LIMIT`` bytes,
UTF-8.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from factory_tui.backends import faults
from factory_tui.backends.agents import DEMO_PLANNER, DEMO_PLANNER_PROFILE, AgentProfile, load_profiles, profile_from_dict
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.plan_import import Skipped, import_plan
from factory_tui.backends.plan_log import LeftOut
from factory_tui.backends.planner import PlannerFailed, plan_run_dir, read_plan, record, run_planner
from factory_tui.config import FactoryConfig
from factory_tui.draft_model import Draft, NewProposal, Proposal, ProposalKind
from factory_tui.errors import ConfigError, FactoryError, InvalidInput, PlanSyntaxError
from factory_tui.model import Task
from factory_tui.plan_file import parse_plan, without_items
from factory_tui.plan_prompt import SPEC_LIMIT, drafted_lines, log_lines, planner_prompt

SOURCE_PREFIX = "draft:"


@dataclass
class DraftOutcome:
    draft: Draft
    tasks: list[Task]
    skipped: list[Skipped]
    proposals: list[Proposal]
    left_out: list[LeftOut]
    run_dir: Path
    profile: str
    shown_dir: str  # the run folder as messages name it

    def to_json(self) -> dict:
        return {
            "draft": self.draft.to_json(),
            "imported": [task.to_json() for task in self.tasks],
            "skipped": [item.to_json() for item in self.skipped],
            "proposals": [proposal.to_json() for proposal in self.proposals],
            "left_out": [item.to_json() for item in self.left_out],
            "run_dir": display(str(self.run_dir)),
        }


@dataclass
class Spec:
    path: Path
    name: str  # as the log keeps it: relative to the repository when inside it
    text: str
    source: str = field(init=False)

    def __post_init__(self) -> None:
        self.source = SOURCE_PREFIX + self.name


def display(text: str) -> str:
    """A file name fit for the log, a prompt and a terminal: bytes that are
    not UTF-8 (which a file name may hold) become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def shown(base: FactoryBase, path: Path) -> str:
    """``path`` relative to the repository when inside it, else whole; as
    ``display`` gives it."""
    try:
        return display(str(path.resolve().relative_to(base.root.resolve())))
    except ValueError:
        return display(str(path))


def _prompt_path(path: Path) -> str:
    """How the prompt names the plan file: its whole path, or, if that is
    not UTF-8 text, its name in the planner's working folder."""
    text = str(path)
    return text if display(text) == text else path.name


def read_spec(path: Path, *, name: str | None = None) -> str:
    """The spec's text; FactoryError saying what is wrong with the file."""
    name = name or display(str(path))
    try:
        # O_NONBLOCK: opening a FIFO does not wait for a writer; it is then
        # refused by its type, never read.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise FactoryError(f"no such file: {name}") from None
    except OSError as error:
        raise FactoryError(f"cannot read {name}: {error.strerror or error}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FactoryError(f"{name} is a folder, not a spec file")
        if not stat.S_ISREG(info.st_mode):
            raise FactoryError(f"{name} is not a regular file (a FIFO or a device?); a spec is a markdown file")
        if info.st_size > SPEC_LIMIT:
            raise FactoryError(
                f"{name} is {info.st_size:,} bytes; a spec may be at most {SPEC_LIMIT:,} "
                "(draft from its parts, one at a time)"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(SPEC_LIMIT + 1)
    except OSError as error:
        raise FactoryError(f"cannot read {name}: {error.strerror or error}") from None
    finally:
        os.close(fd)
    if len(data) > SPEC_LIMIT:
        raise FactoryError(f"{name} grew past {SPEC_LIMIT:,} bytes while it was read")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise FactoryError(f"{name}:{line}: not UTF-8 text") from None
    if not text.strip():
        raise FactoryError(f"{name} is empty: there is nothing to plan")
    return text


def planner_profile(config: FactoryConfig, name: str | None) -> AgentProfile:
    """``name`` (``--profile``), else ``[planner] profile``, else a profile
    named ``planner``, else the built-in demo planner."""
    profiles = load_profiles(config)
    wanted = name or config.planner.profile or ("planner" if "planner" in profiles else DEMO_PLANNER)
    if wanted in profiles:
        return profiles[wanted]
    if wanted == DEMO_PLANNER:
        return profile_from_dict(DEMO_PLANNER, DEMO_PLANNER_PROFILE, source="the built-in profiles")
    known = [*profiles, *([] if DEMO_PLANNER in profiles else [DEMO_PLANNER])]
    raise ConfigError(f"no agent profile {wanted!r} in factory.toml (profiles: {', '.join(known)})")


def find_spec(base: FactoryBase, log: ExecutionLog, given: Path | None, *, revise: bool) -> Spec:
    """The spec to draft from: the one given, or (for a revision) the one
    the last draft was made from."""
    if given is None:
        if not revise:
            raise InvalidInput("name the spec to draft from: factory plan draft SPEC.md")
        drafts = log.drafts(last=1)
        if not drafts:
            raise InvalidInput("no plan was drafted here yet: name the spec (factory plan draft --revise SPEC.md)")
        name = drafts[0].spec
        path = Path(name) if os.path.isabs(name) else base.root / name
    else:
        path, name = given, shown(base, given)
    return Spec(path, name, read_spec(path, name=name))


def draft_plan(
    base: FactoryBase, log: ExecutionLog, *, spec: Spec, profile: AgentProfile, revise: bool, actor: str,
    started: Callable[[Path], None] | None = None,
) -> DraftOutcome:
    """Run the planner on ``spec`` and import what it wrote (see the
    module's docstring). ``started(run_dir)`` is called once the planner's
    folder exists. PlannerFailed or PlanSyntaxError (its line in the
    planner's file) when nothing was imported."""
    run_dir = plan_run_dir(base.runs_dir)
    shown_dir = shown(base, run_dir) + "/"
    plan_path = run_dir / "plan.md"
    tasks = log.list_tasks(bodies=False)
    if revise:
        failures = {task_id: failure.reason for task_id, failure in log.failures().items()}
        prompt = planner_prompt(
            spec=spec.text, spec_name=spec.name, plan_file=_prompt_path(plan_path), source=spec.source, revise=True,
            log=log_lines(tasks, source=spec.source, failures=failures),
        )
    else:
        drafted = [task for task in tasks if task.source == spec.source]
        prompt = planner_prompt(
            spec=spec.text, spec_name=spec.name, plan_file=_prompt_path(plan_path), source=spec.source, revise=False,
            drafted=drafted_lines(drafted),
        )
    if started is not None:
        started(run_dir)
    try:
        run_planner(profile=profile, prompt=prompt, run_dir=run_dir, shown=shown_dir)
        plan_shown = shown(base, plan_path)
        text = read_plan(plan_path, shown=plan_shown)
        outcome = _import(base, log, text, where=plan_shown, spec=spec, profile=profile, revise=revise,
                          actor=actor, run_dir=run_dir, shown_dir=shown_dir)
    except (PlannerFailed, PlanSyntaxError) as error:
        record(run_dir, {"result": "refused", "reason": str(error)})
        if isinstance(error, PlanSyntaxError):
            raise PlanSyntaxError(
                error.source, error.line, f"{error.problem}; nothing imported (the planner's files: {shown_dir})"
            ) from None
        raise
    record(run_dir, {"result": "imported", **outcome.to_json()})
    return outcome


def _import(
    base: FactoryBase, log: ExecutionLog, text: str, *, where: str, spec: Spec, profile: AgentProfile,
    revise: bool, actor: str, run_dir: Path, shown_dir: str,
) -> DraftOutcome:
    items = parse_plan(text, where, changes=revise)
    changes = [item for item in items if item.is_change]
    new_items = [item for item in items if not item.is_change]
    if not items and not revise:
        raise PlanSyntaxError(where, 1, "no checklist items (lines like `- [ ] title`) found")
    proposals = [
        NewProposal(
            line=item.line, task=item.task or "", kind=ProposalKind.CANCEL if item.cancel else ProposalKind.PRIORITY,
            value=item.priority if item.change == "priority" else None, title=item.title, reason=item.body,
        )
        for item in changes
    ]
    tasks: list[Task] = []
    skipped: list[Skipped] = []
    # One transaction: the tasks, the draft and its proposals, or nothing.
    with log.transaction():
        if new_items:
            imported = import_plan(
                log, without_items(text, changes), source=where, actor=actor, proposer=spec.source,
            )
            tasks, skipped = imported.tasks, imported.skipped
        faults.point("draft.imported")
        recorded = log.record_draft(
            spec=spec.name, source=spec.source, revise=revise, profile=profile.name,
            run_dir=shown_dir, actor=actor, task_ids=[task.id for task in tasks], skipped=len(skipped),
            proposals=proposals, where=where,
        )
    return DraftOutcome(recorded.draft, tasks, skipped, recorded.proposals, recorded.left_out, run_dir,
                        profile.name, shown_dir)
