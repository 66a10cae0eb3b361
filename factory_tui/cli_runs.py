"""Every run's artifacts from the command line: ``factory run-info TASK
[--attempt N]`` lists a task's runs with their figures and files, and
``factory artifacts gc [--yes]`` applies ``[artifacts] keep_runs`` (what it
would free, and with ``--yes`` frees it).

Registered by ``cli_artifacts.py`` with one line (``register_runs``): gc on
the ``artifacts`` group, run-info on ``factory`` itself. The backends (the
run index, retention) are imported by the commands when they run, so that
``factory --help`` stays light. File names and other text from a run folder
are shown literally.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from factory_tui.actors import Need
from factory_tui.cli import Context, error_line, needs, task_id_arg
from factory_tui.errors import InvalidInput
from factory_tui.text import dumps_json, literal, one_line

if TYPE_CHECKING:
    from factory_tui.artifacts_model import RunRecord
    from factory_tui.backends.run_retention import GcReport, Item

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
pass_ctx = click.make_pass_decorator(Context)


def bytes_text(n: int) -> str:
    """``512 B``, ``2.1 KB``, ``340.2 MB``, ``1.5 GB`` (powers of 1024)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


# --- run-info -----------------------------------------------------------------------------


def run_lines(run: RunRecord) -> list[str]:
    """A run as a few lines of text: its end, its figures, its files."""
    from factory_tui.backends.agent_output import format_tokens
    from factory_tui.times import full_moment, span

    head = f"{run.task_id} run {run.attempt}"
    if run.folder != str(run.attempt):
        head += f" ({literal(run.folder)})"
    head += f": {run.outcome or 'unknown'}"
    if run.exit_code is not None:
        head += f" · exit {run.exit_code}"
    if run.profile:
        head += f" · {literal(run.profile)}"
        if run.agent and run.agent != run.profile:
            head += f" ({literal(run.agent)})"
    lines = [head]
    when = []
    if run.started_at is not None:
        when.append(f"started {full_moment(run.started_at)}")
    if run.ended_at is not None:
        when.append(f"ended {full_moment(run.ended_at)}")
        if run.started_at is not None:
            when.append(f"took {span(run.ended_at - run.started_at)}")
    if when:
        lines.append("  " + ", ".join(when))
    figures = []
    if run.cost_usd is not None:
        figures.append(f"${run.cost_usd:.4f}")
    if run.input_tokens is not None or run.output_tokens is not None:
        figures.append(f"{format_tokens(run.input_tokens or 0)} in / {format_tokens(run.output_tokens or 0)} out tokens")
    if run.diff_summary:
        figures.append(f"changed {run.diff_summary}")
    if figures:
        lines.append("  " + " · ".join(figures))
    if run.documents:
        # What its prompt held of the living documents, and which version.
        lines.append("  read: " + ", ".join(f"{literal(name)} ({blob[:7]})" for name, blob in run.documents))
    lines.append(f"  {literal(run.path)}/")
    width = max((len(literal(item.name)) for item in run.files), default=0)
    for item in run.files:
        shown = literal(item.name)
        where = f"  {literal(item.path)}" if item.path and item.path != f"{run.path}/{item.name}" else ""
        lines.append(f"    {shown:<{width}}  {item.kind:<10} {bytes_text(item.size):>9}  {item.state}{where}")
    return lines


@click.command("run-info")
@click.argument("task_id", metavar="TASK", callback=task_id_arg)
@click.option("--attempt", type=int, metavar="N", help="Only this attempt's run.")
@json_option
@pass_ctx
@needs(Need.READ)
def run_info(ctx: Context, task_id: str, attempt: int | None, as_json: bool) -> None:
    """A task's runs (or one attempt's): when and how each ended, its
    exit code, cost and tokens, what it changed, and its files (name,
    kind, size, state, path)."""
    runs = ctx.session.runs_of(task_id)
    if attempt is not None:
        runs = [run for run in runs if run.attempt == attempt]
        if not runs:
            raise InvalidInput(f"{task_id} has no run {attempt}")
    if as_json:
        click.echo(dumps_json({"task_id": task_id, "runs": [run.to_json() for run in runs]}))
        return
    if not runs:
        click.echo(f"{task_id} has not run yet.")
        return
    blocks = ["\n".join(run_lines(run)) for run in runs]
    click.echo("\n\n".join(blocks))


# --- artifacts gc -----------------------------------------------------------------------------

_DOING = {
    "compress": ("would compress", "compressed"),
    "drop": ("would drop", "dropped"),
    "finish": ("would finish compressing", "finished compressing"),
    "undo": ("would remove the extra copy of", "removed the extra copy of"),
    "tidy": ("would remove a half-written copy of", "removed a half-written copy of"),
}


def _item_line(item: Item, done: bool) -> str:
    doing = _DOING[item.step.value][1 if done else 0]
    return f"  {doing:<36} {literal(item.path)}/output.raw  {bytes_text(item.bytes):>9}"


def gc_lines(report: GcReport) -> list[str]:
    settings = f"keep_runs = {report.keep_runs}, old_raw = {report.old_raw!r}"
    held = f"Left alone while live: {', '.join(report.held)}." if report.held else ""
    if not report.items:
        lines = [f"Nothing to free ({settings}): the newest runs keep their files whole, "
                 "and older runs' raw output is done already."]
        return lines + ([held] if held else [])
    counts = f"{_count(report.runs, 'run')}, {_count(report.files, 'file')}"
    if report.done:
        lines = [_item_line(item, True) for item in report.items]
        lines.append(f"Freed {bytes_text(report.freed)} of {bytes_text(report.bytes)} ({counts}; {settings}).")
    else:
        lines = [f"What gc would free ({settings}): {counts}, {bytes_text(report.bytes)} now."]
        lines += [_item_line(item, False) for item in report.items]
    if held:
        lines.append(held)
    if not report.done:
        lines.append("Nothing was changed: `factory artifacts gc --yes` does it.")
    return lines


@click.command("gc")
@click.option("--yes", "apply", is_flag=True, help="Do it (without --yes: show what it would free).")
@json_option
@pass_ctx
@needs(Need.GC)
def gc(ctx: Context, apply: bool, as_json: bool) -> None:
    """Apply [artifacts] keep_runs: the raw output of runs older than the
    newest keep_runs is compressed or dropped (old_raw); transcripts, prompts
    and records are kept, and a live run is never touched. Shows what it
    would free; --yes frees it."""
    report = ctx.session.collect_runs(apply=apply)
    if as_json:
        click.echo(dumps_json(report.to_json()))
    else:
        click.echo("\n".join(gc_lines(report)))
    if report.errors:
        more = len(report.errors) - 1
        message = one_line(report.errors[0], 400) + (f" (and {more} more like it)" if more else "")
        click.echo(error_line(message, as_json=as_json), err=True)
        sys.exit(1)


def register_runs(artifacts: click.Group) -> None:
    """gc on the ``artifacts`` group, run-info on ``factory``."""
    from factory_tui.cli import main

    artifacts.add_command(gc)
    main.add_command(run_info)
