"""``factory plan import`` and ``factory plan export``: plans in and out.

Import reads our markdown checklist (plan_file.py, written by
backends/plan_import.py) or another tool's plan: beads, Backlog.md, Task
Master (plan_formats/, found and read by backends/source_files.py, written
by backends/source_log.py), named with ``--from`` or told by the path.
Export writes the plan as JSON lines (with ``--events`` the history too) or
as the checklist, a task at a time (plan_formats/export.py).

Its commands join ``factory plan`` as it loads, which ``factory_tui/cli.py``
makes it do (its last lines); they follow cli.py's conventions (``needs``,
``--json``, one-line errors). The two import each other: import
``factory_tui.cli``, not this module first.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TextIO

import click

from factory_tui.actors import Need, agent_may_queue
from factory_tui.cli import (
    AGENT_PROPOSES,
    Context,
    _decode_utf8,
    _display_name,
    _read_stdin_bytes,
    needs,
    plan,
)
from factory_tui.errors import FactoryError, InvalidInput, os_error_text
from factory_tui.model import State
from factory_tui.text import dumps_json, literal

# cli.py's two decorators, made again here (see cli_qa.py for why).
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
pass_ctx = click.make_pass_decorator(Context)

TOOLS = ("beads", "backlog", "taskmaster", "markdown")
TOOL_NAMES = {"beads": "beads", "backlog": "Backlog.md", "taskmaster": "Task Master"}


def _span(ids: list[str]) -> str:
    return ids[0] if len(ids) == 1 else f"{ids[0]}…{ids[-1]}"


def _tasks(n: int) -> str:
    return f"{n} task{'s' if n != 1 else ''}"


# --- import -----------------------------------------------------------------------


@plan.command("import")
@click.argument("path", metavar="PATH")
@click.option(
    "--from", "tool", type=click.Choice(TOOLS), default=None,
    help="Whose plan PATH is (default: told by the path).",
)
@click.option(
    "--state",
    type=click.Choice([State.PROPOSED.value, State.QUEUED.value, State.HELD.value]),
    default=State.PROPOSED.value,
    show_default=True,
    help="The state new work starts in (unticked items; open issues and tasks).",
)
@click.option("--tag", default=None, metavar="TAG", help="Task Master: the tag to read (default: master).")
@json_option
@pass_ctx
@needs(Need.PROPOSE)
def plan_import(ctx: Context, path: str, tool: str | None, state: str, tag: str | None, as_json: bool) -> None:
    """Turn a plan into tasks: a markdown checklist, or beads', Backlog.md's
    or Task Master's plan.

    PATH is a checklist file ('-' for standard input), beads'
    .beads/issues.jsonl, Backlog.md's backlog/ folder (or one task file),
    Task Master's .taskmaster/tasks/tasks.json, or a repository root
    holding one of them. `- [ ] Title {#label after=other,T-3 priority=2}`
    makes a task; `- [x]` a done one. Importing another tool's plan again
    updates the tasks it made (by the tool's ids), never duplicates them.
    See the README for the formats and how states map.
    """
    from factory_tui.backends.source_files import MARKDOWN, Found, detect

    if path == "-":
        found = Found(tool or MARKDOWN, Path("-"))
    else:
        found = detect(Path(path), tool)
    if tag is not None and found.kind != "taskmaster":
        read_as = TOOL_NAMES.get(found.kind, "a markdown checklist")
        raise InvalidInput(f"--tag is for Task Master plans; {path} is read as {read_as}")
    if found.kind == MARKDOWN:
        _import_checklist(ctx, path, state, as_json)
    else:
        _import_source(ctx, found, path, state, tag, as_json)


def _import_checklist(ctx: Context, file: str, state: str, as_json: bool) -> None:
    from factory_tui.backends.plan_import import import_plan
    from factory_tui.backends.source_files import read_file

    if file == "-":
        # Bytes, decoded strictly: the text layer of stdin may be lenient
        # (surrogateescape), and undecodable text cannot be stored.
        source = "stdin"
        text = _decode_utf8(_read_stdin_bytes(), "standard input")
    else:
        text = _decode_utf8(read_file(Path(file)), file)
        source = _display_name(Path(file).name)
    caller = ctx.caller
    proposer = None if agent_may_queue(caller, ctx.agent_may) else caller.actor
    result = import_plan(
        ctx.log, text, source=source, actor=caller.actor, state=State(state), proposer=proposer,
    )
    if as_json:
        click.echo(dumps_json(result.to_json()))
        return
    tasks, skipped = result.tasks, result.skipped
    skipped_text = ""
    if skipped:
        skipped_text = f"; {len(skipped)} already imported, skipped"
    if not tasks:
        ids = [item.task_id for item in skipped]
        click.echo(
            f"Nothing to import: {'the item was' if len(ids) == 1 else f'all {len(ids)} items were'} "
            f"imported before ({_span(ids)}), skipped."
        )
        return
    done = sum(task.state is State.DONE for task in tasks)
    span = _span([task.id for task in tasks])
    if proposer is not None:
        click.echo(f"Imported {_tasks(len(tasks))} ({span}), all proposed: {AGENT_PROPOSES}{skipped_text}.")
        return
    click.echo(f"Imported {_tasks(len(tasks))} ({span}), {done} of them done{skipped_text}.")


def _import_source(ctx: Context, found, given: str, state: str, tag: str | None, as_json: bool) -> None:
    from factory_tui.backends.source_files import read_batch, shown

    data = _read_stdin_bytes() if given == "-" else None
    batch = read_batch(found, data=data, tag=tag)
    caller = ctx.caller
    proposer = None if agent_may_queue(caller, ctx.agent_may) else caller.actor
    result = ctx.log.import_source(batch, actor=caller.actor, start=State(state), proposer=proposer)
    if as_json:
        click.echo(dumps_json({"path": "stdin" if given == "-" else shown(found.path), **result.to_json()}))
        return
    name = TOOL_NAMES[found.kind]
    where = "standard input" if given == "-" else shown(found.path)
    created = result.created
    parts = []
    if created:
        done = sum(task.state is State.DONE for task in created)
        parts.append(
            f"{len(created)} new task{'s' if len(created) != 1 else ''} ({_span([task.id for task in created])})"
            + (", all proposed" if proposer else f", {done} of them done" if done else "")
        )
    else:
        parts.append("no new tasks")
    if result.updated:
        parts.append(f"{len(result.updated)} updated")
    if result.unchanged:
        parts.append(f"{len(result.unchanged)} unchanged")
    if result.skipped:
        parts.append(f"{len(result.skipped)} imported before and left as they are")
    click.echo(literal(f"Imported from {name} ({where}): " + "; ".join(parts) + "."))
    if proposer and created:
        click.echo(f"New tasks are proposed: {AGENT_PROPOSES}.")
    for kept in result.kept[:5]:
        click.echo(literal(
            f"{kept.task_id} stays {kept.state.value}: {name} now says {kept.status}, "
            "but the factory has started or finished it here."
        ))
    if len(result.kept) > 5:
        click.echo(f"… and {len(result.kept) - 5} more kept as they are here.")


# --- export -----------------------------------------------------------------------


@plan.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "markdown"]), default="jsonl", show_default=True,
    help="JSON lines (a task a line), or the markdown checklist `plan import` reads.",
)
@click.option("--events", is_flag=True, help="JSON lines: the history too, an event a line after the tasks.")
@click.option(
    "--output", "-o", default="-", metavar="FILE",
    help="Write to FILE (whole or not at all) instead of standard output.",
)
@pass_ctx
@needs(Need.READ)
def plan_export(ctx: Context, fmt: str, events: bool, output: str) -> None:
    """Write the plan out for other tools and scripts, a task at a time.

    jsonl: `{"type": "task", ...}` per task in id order (with its ids in
    other tools, in their words), then with --events `{"type": "event",
    ...}` per event, oldest first. markdown: the checklist, which `factory
    plan import` turns back into the same plan. See the README.
    """
    if events and fmt != "jsonl":
        raise InvalidInput("--events goes with --format jsonl: the checklist has no place for the history")
    log = ctx.log
    with _output(output) as out:
        if fmt == "jsonl":
            _write_jsonl(log, out, events)
        else:
            _write_markdown(log, out, ctx.base.root.name)


def _write_jsonl(log, out: TextIO, events: bool) -> None:
    from factory_tui.plan_formats.export import event_record, json_line, task_record

    with closing(log.export_tasks()) as tasks:
        for task, sources in tasks:
            out.write(json_line(task_record(task, [(s.kind, s.source_id) for s in sources])) + "\n")
    if events:
        with closing(log.export_events()) as history:
            for event in history:
                out.write(json_line(event_record(event)) + "\n")


def _write_markdown(log, out: TextIO, name: str) -> None:
    from factory_tui.plan_formats.export import markdown_header, markdown_item

    cancelled = log.cancelled_ids()
    out.write(markdown_header(name) + "\n")
    with closing(log.export_tasks()) as tasks:
        for task, _ in tasks:
            out.write(markdown_item(task, cancelled))


@contextmanager
def _output(output: str) -> Iterator[TextIO]:
    """Standard output, or FILE written whole or not at all: a temporary
    file beside it, renamed over it once everything is written."""
    if output == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(output)
    shown = _display_name(output)
    if path.is_dir():
        raise FactoryError(f"cannot write {shown}: it is a directory")
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise FactoryError(f"cannot write {shown}: {_why(error)}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise FactoryError(f"cannot write {shown}: {_why(error)}") from None
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)


def _why(error: OSError) -> str:
    # Without the file name: it would be the temporary file's.
    return os_error_text(OSError(error.errno, error.strerror))
