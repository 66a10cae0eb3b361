"""Greenfield on the command line: ``factory plan draft SPEC.md`` (a
planner turns a spec into proposed tasks), ``--revise`` (it proposes what
the plan needs now: new tasks, and changes to existing ones), and the
operator's word on those: ``factory plan proposals``, ``factory plan
accept``, ``factory plan decline``. ``factory init --spec`` (cli.py's
``init``) ends in ``init_from_spec`` here.

The work is the backends' (plan_draft, planner, plan_decisions,
greenfield); this module reads the command line and prints. Registered on
the ``plan`` group by the import at the end of cli.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from factory_tui.actors import Need
from factory_tui.cli import Context, error_line, needs, plan, utf8_text
from factory_tui.errors import FactoryError
from factory_tui.text import dumps_json, literal, one_line

if TYPE_CHECKING:
    from factory_tui.backends.plan_draft import DraftOutcome

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
pass_ctx = click.make_pass_decorator(Context)


def _span(ids: list[str]) -> str:
    return ids[0] if len(ids) == 1 else f"{ids[0]}…{ids[-1]}"


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def describe(outcome: DraftOutcome, spec_name: str) -> list[str]:
    """What a draft did, in a few lines: the tasks, how to approve them, the
    changes proposed, and where the planner's files are."""
    lines: list[str] = []
    tasks = [task.id for task in outcome.tasks]
    skipped = f"; {_plural(len(outcome.skipped), 'item')} drafted before, skipped" if outcome.skipped else ""
    kind = "Revised the plan of" if outcome.draft.revise else "Drafted"
    if tasks:
        lines.append(
            f"{kind} {literal(spec_name)} with {literal(outcome.profile)}: {_plural(len(tasks), 'task')} "
            f"({_span(tasks)}), all proposed{skipped}."
        )
        lines.append(
            f"Approve them one by one (factory task approve {tasks[0]}) or all at once "
            "(factory plan accept --all); factory plan list -s proposed shows them."
        )
    else:
        lines.append(f"{kind} {literal(spec_name)} with {literal(outcome.profile)}: no new tasks{skipped}.")
    for proposal in outcome.proposals:
        lines.append(f"{proposal.id} proposes: {proposal.what}: {one_line(proposal.title, 100)}")
    if outcome.proposals:
        first = outcome.proposals[0].id
        lines.append(
            f"Accept or decline {'it' if len(outcome.proposals) == 1 else 'each'}: factory plan accept {first} / "
            f"factory plan decline {first} (factory plan proposals lists them)."
        )
    for left in outcome.left_out:
        lines.append(f"Left out the change to {left.task} (line {left.line}): {literal(left.why)}.")
    lines.append(f"The planner's files: {literal(outcome.shown_dir)}")
    return lines


def _started(as_json: bool):
    """Say where the planner works while it does, on an interactive
    terminal only (a planner agent may take minutes)."""
    def report(run_dir: Path) -> None:
        if not as_json and sys.stderr.isatty():
            click.echo(f"The planner is at work (its transcript: {literal(str(run_dir / 'transcript.log'))}) …",
                       err=True)
    return report


@plan.command("draft")
@click.argument("spec", required=False, metavar="[SPEC.md]")
@click.option("--revise", is_flag=True,
              help="Give the planner the log too: it proposes new tasks, and cancellations or priority changes "
                   "of existing ones for you to accept or decline (SPEC.md: default, the last draft's).")
@click.option("--profile", callback=utf8_text("--profile"),
              help="The planner's agent profile (default: [planner] profile, a profile named planner, "
                   "else the demo planner).")
@json_option
@pass_ctx
@needs(Need.PROPOSE)
def plan_draft(ctx: Context, spec: str | None, revise: bool, profile: str | None, as_json: bool) -> None:
    """A planner turns SPEC.md into tasks, imported as proposed.

    Drafting the same spec again skips the tasks drafted before. Output that
    is not a plan is refused with its line, and nothing is imported.
    """
    from factory_tui.backends.plan_draft import draft_plan, find_spec, planner_profile

    found = find_spec(ctx.base, ctx.log, Path(spec) if spec else None, revise=revise)
    planner = planner_profile(ctx.base.config(), profile)
    outcome = draft_plan(ctx.base, ctx.log, spec=found, profile=planner, revise=revise, actor=ctx.caller.actor,
                         started=_started(as_json))
    if as_json:
        click.echo(dumps_json(outcome.to_json()))
        return
    for line in describe(outcome, found.name):
        click.echo(line)


@plan.command("proposals")
@click.option("--all", "show_all", is_flag=True, help="Decided ones too (accepted, declined).")
@json_option
@pass_ctx
@needs(Need.READ)
def plan_proposals(ctx: Context, show_all: bool, as_json: bool) -> None:
    """The changes to existing tasks a planner proposed, waiting for you."""
    from factory_tui.draft_model import ProposalState

    proposals = ctx.log.proposals(None if show_all else [ProposalState.PENDING])
    if as_json:
        click.echo(dumps_json([proposal.to_json() for proposal in proposals]))
        return
    if not proposals:
        click.echo("No proposals." if show_all else "No proposals wait for you.")
        return
    for proposal in proposals:
        state = "" if proposal.state is ProposalState.PENDING else f"  [{proposal.state} by {literal(proposal.decided_by or '?')}]"
        click.echo(f"{proposal.id:<5} {one_line(proposal.what, 40):<26} {one_line(proposal.title, 80)}{state}")
        if proposal.reason:
            click.echo(f"      {one_line(proposal.reason, 200)}")


def _decide(ctx: Context, ids: tuple[str, ...], every: bool, yes: bool, note: str | None, as_json: bool,
            accept: bool) -> None:
    from factory_tui.backends.plan_decisions import Decisions, everything_pending, item_id

    if every and ids:
        raise FactoryError("give IDs or --all, not both")
    if every:
        items = everything_pending(ctx.log)
        if not items:
            click.echo(dumps_json([]) if as_json else "Nothing waits for you: no drafted task is proposed, no proposal pending.")
            return
        cancels = [item for item in items
                   if item.startswith("P-") and ctx.log.get_proposal(item).kind == "cancel"]
        if accept and cancels and not yes:
            if as_json:
                # A question would be mixed into the JSON a script reads.
                raise FactoryError(f"--all would cancel {_plural(len(cancels), 'task')}: add --yes")
            click.confirm(
                f"Accept {_plural(len(items), 'item')} ({', '.join(items[:6])}{', …' if len(items) > 6 else ''}), "
                f"{_plural(len(cancels), 'cancellation')} among them",
                abort=True,
            )
    elif not ids:
        raise FactoryError("name what to decide on (P-3 for a proposal, T-3 for a proposed task) or use --all")
    else:
        items = [item_id(raw) for raw in ids]
    def require(need: Need, subject: str) -> None:
        ctx.require(need, subject=subject)

    decisions = Decisions(ctx.base, ctx.log, actor=ctx.caller.actor, require=require)
    results: list[dict] = []
    failed = False
    for item in items:
        try:
            decision = decisions.accept(item, note=note) if accept else decisions.decline(item, note=note)
        except FactoryError as error:
            if len(items) == 1:
                raise
            failed = True
            results.append({"id": item, "error": str(error)})
            if not as_json:
                click.echo(error_line(str(error), as_json=False), err=True)
            continue
        results.append(decision.to_json())
        if not as_json:
            click.echo(literal(decision.message))
    if as_json:
        click.echo(dumps_json(results))
    if failed:
        sys.exit(1)


_IDS = click.argument("ids", nargs=-1, metavar="P-N|T-N ...")
_NOTE = click.option("--note", "-n", callback=utf8_text("--note"), help="Why; kept in the event.")


@plan.command("accept")
@_IDS
@click.option("--all", "every", is_flag=True,
              help="Every drafted task still proposed and every pending proposal.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask (--all asks when it would cancel tasks).")
@_NOTE
@json_option
@pass_ctx
@needs(Need.ACCEPT)
def plan_accept(ctx: Context, ids: tuple[str, ...], every: bool, yes: bool, note: str | None, as_json: bool) -> None:
    """Accept what a planner proposed: P-N does the change (cancels the task,
    or sets its priority); T-N approves a proposed task (→ queued)."""
    _decide(ctx, ids, every, yes, note, as_json, accept=True)


@plan.command("decline")
@_IDS
@click.option("--all", "every", is_flag=True,
              help="Every drafted task still proposed (cancelled) and every pending proposal.")
@_NOTE
@json_option
@pass_ctx
@needs(Need.ACCEPT)
def plan_decline(ctx: Context, ids: tuple[str, ...], every: bool, note: str | None, as_json: bool) -> None:
    """Decline what a planner proposed: P-N is marked declined (nothing
    changes); T-N cancels a proposed task."""
    _decide(ctx, ids, every, True, note, as_json, accept=False)


# --- factory init --spec -----------------------------------------------------------


def init_from_spec(ctx: Context, path: str | None, spec: str, name: str | None, planner: str | None,
                   as_json: bool) -> None:
    """``factory init --spec``: the repository, the spec in it, the base,
    the first commit; then the plan drafted (a failed draft leaves the
    base made, and says how to try again)."""
    from factory_tui.backends.greenfield import start_from_spec
    from factory_tui.backends.log import ExecutionLog
    from factory_tui.backends.plan_draft import display, draft_plan, find_spec, planner_profile

    started = start_from_spec(Path(path) if path else Path.cwd(), Path(spec), name=name)
    base = started.base

    def said(where: Path) -> str:
        return literal(display(str(where)))

    spec_name = display(str(started.spec.relative_to(base.root)))
    if not as_json:
        if started.made_repository:
            click.echo(f"Made a git repository in {said(base.root)} (branch {literal(started.branch)}).")
        if started.copied_from is not None:
            click.echo(f"Copied the spec {said(started.copied_from)} to {said(started.spec)}.")
        click.echo(
            f"Initialised a factory base in {said(base.dir)}; first commit {started.commit[:7]} "
            f"holds {literal(spec_name)} and .factory."
        )
    retry = f"the base is made; try the draft again: factory --base {display(str(base.root))} plan draft " + display(
        str(started.spec))
    try:
        profile = planner_profile(base.config(), planner)
        with ExecutionLog.open(base.log_path) as log:
            spec_found = find_spec(base, log, started.spec, revise=False)
            outcome = draft_plan(base, log, spec=spec_found, profile=profile, revise=False, actor=ctx.caller.actor,
                                 started=_started(as_json))
    except FactoryError as error:
        raise FactoryError(f"{error} ({retry})") from None
    if as_json:
        click.echo(dumps_json({**{key: display(value) if isinstance(value, str) else value
                                  for key, value in started.to_json().items()}, "draft": outcome.to_json()}))
        return
    for line in describe(outcome, spec_name):
        click.echo(line)
