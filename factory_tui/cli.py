"""The ``factory`` command: every console action has a twin here.

Only ``factory console`` and ``factory demo`` import Textual, and only when
they run; ``factory --help`` and every other command stay light. Errors a user
can cause print one line, ``factory: <problem>``, on stderr and exit 1; a
command line that click cannot parse (a missing argument, an unknown option)
gets one line too, and exits 2.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import click
from click.exceptions import NoArgsIsHelpError

from factory_tui.actors import Caller, Need, agent_may_queue, check_permitted, identify
from factory_tui.errors import ConfigError, FactoryError, InvalidInput
from factory_tui.model import (
    ANSWERED_STATES,
    CREATABLE_STATES,
    STATE_ORDER,
    Action,
    Event,
    State,
    check_labels,
    normalize_task_id,
)
from factory_tui.text import cut, dumps_json, literal, needs_literal, one_line

if TYPE_CHECKING:
    # Imported when used: a command that needs no base loads none of them.
    from factory_tui.backends.base import FactoryBase
    from factory_tui.backends.log import ExecutionLog, ListedTask
    from factory_tui.backends.session import FactorySession

# Set in the context's meta (shared by every nested context) when the
# command line asks for JSON: errors are then JSON as well.
JSON_ERRORS = "factory.json_errors"


def _click_error_text(error: click.ClickException) -> str:
    """click's own errors (usage, bad values, unreadable files) as one line:
    click would print the usage, a hint and the error on three or more."""
    message = error.format_message()
    ctx = getattr(error, "ctx", None)
    if isinstance(error, click.UsageError) and ctx is not None:
        message += f" (see `{ctx.command_path} --help`)"
    return message


def error_line(message: str, *, as_json: bool) -> str:
    """The one line an error is told in: ``factory: <message>``, or with
    ``--json`` the object ``{"error": "<message>"}`` (ASCII-only JSON, so
    no control character or escape sequence reaches the terminal raw)."""
    if as_json:
        return json.dumps({"error": message}, ensure_ascii=True)
    return f"factory: {literal(message)}"


def _asks_for_json(args) -> bool:
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


class FactoryGroup(click.Group):
    """A click group that turns our errors into one line and exit status 1,
    and click's usage errors into one line and exit status 2; with
    ``--json`` on the command line that line is JSON."""

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        # The group's own options are parsed here, before ``invoke``. The
        # whole command line is here too (for the outermost group), so this
        # is where a --json anywhere in it is seen, before any option or
        # argument of the command is checked.
        as_json = _asks_for_json(args) or bool(parent and parent.meta.get(JSON_ERRORS))
        try:
            ctx = super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise  # `factory plan` alone prints the group's help
        except click.ClickException as error:
            click.echo(error_line(_click_error_text(error), as_json=as_json), err=True)
            raise click.exceptions.Exit(error.exit_code) from None
        if as_json:
            ctx.meta[JSON_ERRORS] = True
        return ctx

    def invoke(self, ctx: click.Context):
        as_json = bool(ctx.meta.get(JSON_ERRORS))
        try:
            return super().invoke(ctx)
        except FactoryError as error:
            click.echo(error_line(str(error), as_json=as_json), err=True)
            ctx.exit(1)
        except NoArgsIsHelpError:
            raise
        except click.ClickException as error:
            click.echo(error_line(_click_error_text(error), as_json=as_json), err=True)
            ctx.exit(error.exit_code)
        except BrokenPipeError:
            # `factory log | head`: the reader left; that is not an error.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(0)


def _busy_timeout() -> int | None:
    value = os.environ.get("FACTORY_BUSY_TIMEOUT_MS")
    return int(value) if value and value.isdigit() else None


class Context:
    """What every command shares: where the base is, opened on first use, and
    who is calling (resolved only for commands that need a caller)."""

    def __init__(self, base_path: str | None) -> None:
        self.base_path = base_path
        self._base: FactoryBase | None = None
        self._session: FactorySession | None = None
        self._caller: Caller | None = None
        self._agent_may: tuple[str, ...] = ()

    @property
    def base(self) -> FactoryBase:
        from factory_tui.backends.base import FactoryBase

        if self._base is None:
            self._base = FactoryBase.find(self.base_path)
        return self._base

    @property
    def session(self) -> FactorySession:
        """The base's backends (backends/session.py), the console's too."""
        from factory_tui.backends.session import FactorySession

        if self._session is None:
            self._session = FactorySession(self.base, busy_timeout_ms=_busy_timeout())
        return self._session

    @property
    def log(self) -> ExecutionLog:
        return self.session.log

    @property
    def caller(self) -> Caller:
        """Who runs this command (``require`` has checked what they may)."""
        assert self._caller is not None, "a command that acts must declare its need"
        return self._caller

    @property
    def agent_may(self) -> tuple[str, ...]:
        return self._agent_may

    def require(self, need: Need, *, subject: str | None = None, where: list[str | None] | None = None) -> Caller:
        """Resolve the caller against this base's log and check that they
        may do what ``need`` names. ``where``: for init and demo, whose base
        may not exist yet, the places a base to check against may be; with
        none found, only a caller presenting itself as an agent is refused."""
        if self._caller is None:
            if where is None:
                self._caller = self._identify(self.base, self.log)
            else:
                self._caller = self._identify_where(where)
        check_permitted(self._caller, need, may=self._agent_may, subject=subject)
        return self._caller

    def _identify(self, base: FactoryBase | None, log: ExecutionLog | None) -> Caller:
        caller = identify(log, base.runs_dir if base else None, channel="cli")
        # Only a base's log knows an agent: without a base there is none.
        if caller.is_agent and base is not None:
            self._agent_may = base.config().agent_may
        return caller

    def _identify_where(self, places: list[str | None]) -> Caller:
        """The caller, checked against the first of ``places`` (None: here)
        that is a base with a log; that log is not the command's own (init
        and demo make theirs), so it is closed again."""
        from factory_tui.backends.base import FactoryBase
        from factory_tui.backends.log import ExecutionLog
        from factory_tui.errors import BaseNotFound, LogError

        for place in places:
            try:
                base = FactoryBase.find(place)
                if not base.log_path.is_file():
                    continue
                log = ExecutionLog.open(base.log_path, busy_timeout_ms=_busy_timeout())
            except (BaseNotFound, LogError):
                continue
            with log:
                return self._identify(base, log)
        return self._identify(None, None)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


class _DeclaresNeed(Protocol):
    """A command's function with the need ``needs`` declared on it: a
    function attribute, which a type checker cannot know of by itself."""

    needs: Need


def needs(need: Need, *, base_may_be_missing: bool = False):
    """Declare what a command needs of its caller, and check it before the
    command runs: an agent may read, note and propose; the rest is the
    operator's unless factory.toml's ``[agents] may`` grants it. Reading
    resolves no caller at all (it is cheap and open to every caller).

    ``base_may_be_missing``: a command that makes a base (init, demo) checks
    its caller against the base at its PATH, or the one --base names, if
    either has a log."""

    def decorate(function):
        @functools.wraps(function)
        def checked(*args, **kwargs):
            if need is not Need.READ:
                state = click.get_current_context().find_object(Context)
                # The group made it before any of its commands runs.
                assert state is not None
                where = [kwargs.get("path"), state.base_path] if base_may_be_missing else None
                state.require(need, subject=_subject(kwargs), where=where)
            return function(*args, **kwargs)

        # Read back by whoever asks what a command needs (the tests do).
        cast(_DeclaresNeed, checked).needs = need
        return checked

    return decorate


def _subject(kwargs: dict) -> str | None:
    """The task a command is about, for a refusal's message: its ID, or
    the one ID of a command that takes several."""
    if kwargs.get("task_id"):
        return kwargs["task_id"]
    ids: Sequence[str] = kwargs.get("task_ids") or ()
    if len(ids) == 1:
        try:
            return normalize_task_id(ids[0])
        except InvalidInput:
            return None
    return None


pass_ctx = click.make_pass_decorator(Context)


def emit(as_json: bool, record, text: str) -> None:
    """A command's result: the record as JSON with --json, else one line."""
    click.echo(dumps_json(record.to_json()) if as_json else text)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def task_id_arg(_ctx, _param, value: str) -> str:
    # InvalidInput, not click.BadParameter: a malformed id is reported like an
    # unknown one, as `factory: not a task id: 'X' (…)` and exit status 1.
    return normalize_task_id(value)


def utf8_text(what: str):
    """A callback refusing command-line text that is not UTF-8.

    Python decodes undecodable argv bytes to lone surrogates, which SQLite
    and the UTF-8 files we write cannot hold; without this check they fail
    half-way through a write with a traceback."""

    def check(_ctx, _param, value):
        values = value if isinstance(value, tuple) else (value,)
        for text in values:
            if isinstance(text, str) and _has_surrogates(text):
                raise InvalidInput(f"{what} is not valid UTF-8 text")
        return value

    return check


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _decode_utf8(data: bytes, name: str) -> str:
    # utf-8-sig: a byte order mark (as some Windows editors write) is not text;
    # left in, it would hide the first checklist item of a plan.
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FactoryError(f"{name} is not UTF-8 text") from None


def _read_stdin_bytes() -> bytes:
    stream = getattr(sys.stdin, "buffer", None)
    if stream is not None:
        return stream.read()
    return sys.stdin.read().encode("utf-8", "surrogateescape")


def _display_name(name: str) -> str:
    """A file name fit to be stored in the log (undecodable bytes become �)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@click.group(cls=FactoryGroup, invoke_without_command=True)
@click.option(
    "--base",
    "base_path",
    envvar="FACTORY_BASE",
    metavar="PATH",
    help="The factory base to use (default: found from the current directory upward).",
)
@click.version_option(package_name="factory-tui", prog_name="factory")
@click.pass_context
def main(ctx: click.Context, base_path: str | None) -> None:
    """factory-tui: the base a software factory stands on, and its console.

    Run without a command to open the console on the base here.
    """
    state = Context(base_path)
    ctx.obj = state
    ctx.call_on_close(state.close)
    if ctx.invoked_subcommand is None:
        ctx.invoke(console)


# --- init ---------------------------------------------------------------


@main.command()
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option(
    "--name",
    callback=utf8_text("the name"),
    help="The factory's name (default: the repository's folder name).",
)
@click.option(
    "--spec", metavar="SPEC.md",
    help="Greenfield: in an empty folder (or a repository with no commit), make the repository, copy the "
         "spec in, make the first commit and draft the plan from the spec.",
)
@click.option("--planner", metavar="NAME", callback=utf8_text("--planner"),
              help="With --spec: the planner's agent profile (default: the demo planner).")
@json_option
@click.pass_context
@needs(Need.INIT, base_may_be_missing=True)
def init(click_ctx: click.Context, path: str | None, name: str | None, spec: str | None, planner: str | None,
         as_json: bool) -> None:
    """Make the git repository at PATH (default: here) a factory base.

    With --spec SPEC.md: start a project from a spec (see `factory plan draft`)."""
    if path is None and click_ctx.parent is not None:
        # `factory --base DIR init` means DIR, as every other command takes
        # it; only the option typed, not FACTORY_BASE (a worktree's shell
        # sets that to the base it belongs to).
        given = click_ctx.parent.params.get("base_path")
        source = click_ctx.parent.get_parameter_source("base_path")
        if given is not None and source is click.core.ParameterSource.COMMANDLINE:
            path = given
    if spec is not None:
        from factory_tui.cli_plan_draft import init_from_spec

        init_from_spec(click_ctx.obj, path, spec, name, planner, as_json)
        return
    if planner is not None:
        raise InvalidInput("--planner goes with --spec")
    from factory_tui.backends.base import FactoryBase, Leftovers
    from factory_tui.backends.log import ExecutionLog

    result = FactoryBase.initialise(path, name=name)
    base, created = result.base, result.created
    documents = _starting_documents(base) if created else []
    with ExecutionLog.open(base.log_path, busy_timeout_ms=_busy_timeout()) as log:
        fresh = log.last_event_id() == 0
    # A new log numbers its tasks from T-1 again: branches and worktrees
    # already here are another plan's, and its tasks will not take them over.
    leftovers = base.leftovers() if fresh else Leftovers()
    if as_json:
        click.echo(dumps_json({
            "base": str(base.root), "created": created,
            "ignore_rules_added": list(result.rules_added), "leftovers": leftovers.to_json(),
            "documents_written": documents,
        }))
        return
    if created:
        written = f" (starting documents to edit: {', '.join(documents)} in .factory/artifacts/)" if documents else ""
        click.echo(f"Initialised a factory base in {literal(str(base.dir))}{written}")
    elif result.rules_added:
        click.echo(
            f"{literal(str(base.dir))} is already a factory base; added "
            f"{', '.join(result.rules_added)} to its .gitignore"
        )
    else:
        click.echo(f"{literal(str(base.dir))} is already a factory base; nothing to do")
    if leftovers:
        click.echo(literal(leftovers.describe()))


def _starting_documents(base: FactoryBase) -> list[str]:
    """A new base's first living documents (backends/starting_documents.py),
    drawn from the repository; only into a folder that holds none yet, and
    never over a file."""
    from factory_tui.backends.documents import document_paths
    from factory_tui.backends.starting_documents import starting_documents, survey, write_starting

    if document_paths(base.artifacts_dir):
        return []
    return write_starting(base.artifacts_dir, starting_documents(survey(base.root)))


# --- plan ---------------------------------------------------------------


@main.group(cls=FactoryGroup)
def plan() -> None:
    """Add, list, show, import and export tasks."""


@plan.command("add")
@click.argument("title", callback=utf8_text("the title"))
@click.option(
    "--body", default="", callback=utf8_text("--body"), help="The task's description (markdown)."
)
@click.option(
    "--body-file",
    type=click.File("r", encoding="utf-8"),
    help="Read the description from a file ('-' for standard input).",
)
@click.option("--priority", "-p", type=int, default=0, show_default=True, help="Higher runs first.")
@click.option("--after", "-a", multiple=True, metavar="ID", help="A task this one depends on (repeatable).")
@click.option(
    "--state",
    type=click.Choice([s.value for s in CREATABLE_STATES]),
    default=None,
    help="Start state (default: queued; proposed when an agent adds it).",
)
@click.option(
    "--profile", callback=utf8_text("--profile"), help="The agent profile to run it with."
)
@click.option(
    "--label", "-l", "labels", multiple=True, metavar="LABEL",
    help="A label (repeatable); QA scenarios with `when: {labels: [...]}` run for it.",
)
@json_option
@pass_ctx
@needs(Need.PROPOSE)
def plan_add(
    ctx: Context,
    title: str,
    body: str,
    body_file,
    priority: int,
    after: tuple[str, ...],
    state: str | None,
    profile: str | None,
    labels: tuple[str, ...],
    as_json: bool,
) -> None:
    """Add a task; prints its id."""
    from factory_tui.backends.log import NewTask

    if body_file is not None:
        try:
            body = body_file.read()
        except UnicodeDecodeError:
            name = "standard input" if body_file.name == "<stdin>" else body_file.name
            raise FactoryError(f"{name} is not UTF-8 text") from None
    caller = ctx.caller
    asked = State(state) if state is not None else None
    if agent_may_queue(caller, ctx.agent_may):
        state = asked or (State.PROPOSED if caller.is_agent else State.QUEUED)
    else:
        # An agent's suggestion waits for the operator's go-ahead, whatever
        # it asked for: otherwise the engine would run it at once.
        state = State.PROPOSED
    deps = tuple(normalize_task_id(ref) for ref in after)
    task = ctx.log.add_task(
        NewTask(
            title=title,
            body=body,
            priority=priority,
            state=state,
            after=deps,
            profile=profile,
            source=caller.actor if caller.is_agent else "cli",
            labels=check_labels(labels),
        ),
        actor=caller.actor,
    )
    emit(as_json, task, task.id)
    if asked is not None and asked is not task.state:
        click.echo(f"{task.id} is {task.state}, not {asked}: {AGENT_PROPOSES}", err=True)


# What an agent is told when its tasks were made proposed.
AGENT_PROPOSES = "an agent's tasks wait for the operator's approval (see [agents] may in factory.toml)"


@plan.command("list")
@click.option(
    "--state",
    "-s",
    "states",
    multiple=True,
    type=click.Choice([s.value for s in State]),
    help="Only tasks in this state (repeatable).",
)
@click.option("--all", "-a", "everything", is_flag=True,
              help="Done and cancelled tasks too (listed without --json, they are only counted).")
@json_option
@pass_ctx
@needs(Need.READ)
def plan_list(ctx: Context, states: tuple[str, ...], everything: bool, as_json: bool) -> None:
    """List the plan, grouped by state: the open tasks, and how many are
    done or cancelled (--all lists those too; --json holds every task)."""
    wanted = [State(s) for s in dict.fromkeys(states)] if states else None
    # A page of tasks at a time (memory stays flat however big the plan
    # is); with --json still one JSON array, written as it is read.
    if as_json:
        _stream_json_array(task.to_json() for page in ctx.log.task_pages(wanted) for task in page)
        return
    if wanted is not None:
        order = [state for state in STATE_ORDER if state in wanted]
    else:
        # A plan's finished tasks are most of it after a while: shown by
        # default they would bury the work that is still open.
        order = [state for state in STATE_ORDER if everything or state not in FINISHED]
    pages = ctx.log.plan_listing(order)
    first = next(pages, None)
    hidden = "" if len(order) == len(STATE_ORDER) or wanted is not None else _finished_line(ctx.log.counts())
    if first is None:
        if states:
            click.echo(f"No tasks are {' or '.join(dict.fromkeys(states))}.")
        elif hidden:
            click.echo(f"No open tasks; {hidden}")
        else:
            click.echo("The plan is empty. Add a task with `factory plan add TITLE`.")
        return
    # Wide enough for the longest id there is.
    width = len(f"T-{ctx.log.last_task_seq(order)}")
    click.echo(
        click.style(
            f"{'ID':<{width}}  {'STATE':<9}  {'PRI':>3}  {'TRIES':>5}  {'BLOCKED BY':<14}  TITLE",
            bold=True,
        )
    )
    # Coloured only for a terminal (or when click is told to): the lines
    # are then written as they are made, with no pass to strip colours.
    color = click.get_current_context().color
    cells = state_cells(sys.stdout.isatty() if color is None else color)
    line = f"T-%-{width - 2}d  %s  %3d  %5d  %-14s  %s"
    for page in itertools.chain([first], pages):
        click.echo("\n".join(listing_lines(page, line, cells)), color=True)
    if hidden:
        click.echo(hidden)


# The states `plan list` counts rather than lists unless asked (--all).
FINISHED = (State.DONE, State.CANCELLED)


def _finished_line(counts: dict[State, int]) -> str:
    """What `plan list` left out, or "" when nothing: "68,600 done and
    2,400 cancelled not listed (--all lists them)"."""
    parts = [f"{counts.get(state, 0):,} {state.value}" for state in FINISHED if counts.get(state, 0)]
    if not parts:
        return ""
    return f"{' and '.join(parts)} not listed (--all lists them)."


# How much of a title a line of `plan list` shows.
LISTED_TITLE = 200


def listing_lines(rows: Sequence[ListedTask], line: str, cells: dict[str, str]) -> list[str]:
    """The lines of ``plan list`` for rows of ``ExecutionLog.plan_listing``:
    ``line`` the %-format of one (id number, state cell, priority, tries,
    blocked by, title), ``cells`` each state's cell."""
    titles = [row[5] for row in rows]
    # Most pages hold no title that needs making literal or cutting: one
    # look at the page's titles together instead of one per title. The
    # blockers are task ids the log made ("T-3,T-14"): only ever cut.
    if not needs_literal(" ".join(titles)) and max(map(len, titles), default=0) <= LISTED_TITLE:
        return [
            line % (seq, cells[state], priority, attempts, cut(blocked or "", BLOCKERS_CELL), title)
            for seq, state, priority, attempts, blocked, title in rows
        ]
    return [
        line % (seq, cells[state], priority, attempts, cut(blocked or "", BLOCKERS_CELL), one_line(title, LISTED_TITLE))
        for seq, state, priority, attempts, blocked, title in rows
    ]


# The width of `plan list`'s BLOCKED BY column.
BLOCKERS_CELL = 14



def _stream_json_array(items: Iterable[Any], chunk: int = 500) -> None:
    """``items`` as the JSON array ``dumps_json`` writes of them (indented,
    readable Unicode, no C1 control or bidi override raw), ``chunk`` items
    a write: each chunk is written as an array of its own, less its
    brackets, which is exactly that part of the whole array."""
    wrote = False
    for part in _batched(items, chunk):
        text = dumps_json(part)
        click.echo(("[\n" if not wrote else ",\n") + text[2:-2], nl=False)
        wrote = True
    click.echo("\n]" if wrote else "[]")


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while part := list(itertools.islice(iterator, size)):
        yield part


STATE_COLOURS = {
    State.PROPOSED: "magenta",
    State.QUEUED: "blue",
    State.HELD: "yellow",
    State.RUNNING: "cyan",
    State.CHECKING: "cyan",
    State.REVIEW: "bright_yellow",
    State.FAILED: "red",
    State.DONE: "green",
    State.CANCELLED: "bright_black",
}


def _styled_state(state: State) -> str:
    # Pad before styling so that the colour codes do not break the columns.
    return click.style(f"{state.value:<9}", fg=STATE_COLOURS[state])


@functools.cache
def state_cells(coloured: bool) -> dict[str, str]:
    """Each state's column, made once: a listing has few states and many rows."""
    return {state.value: _styled_state(state) if coloured else f"{state.value:<9}" for state in State}


@plan.command("show")
@click.argument("task_id", callback=task_id_arg, metavar="ID")
@json_option
@pass_ctx
@needs(Need.READ)
def plan_show(ctx: Context, task_id: str, as_json: bool) -> None:
    """Show one task: its body, dependencies both ways and its events."""
    task = ctx.log.get_task(task_id)
    dependents = ctx.log.dependents(task_id)
    events = ctx.log.events(task_id=task_id)
    failure = ctx.log.failure(task_id) if task.state is State.FAILED else None
    stuck = ctx.log.never_runs([task_id]).get(task_id)
    usage = ctx.log.usage(task_ids=[task_id], per_task=False).total
    merge = _merge_check(ctx, task)
    sources = ctx.log.source_ids(task_id)
    if as_json:
        data = task.to_json()
        data["sources"] = [source.to_json() for source in sources]
        data["dependents"] = [t.id for t in dependents]
        data["usage"] = usage.to_json()
        data["merge_check"] = merge.to_json() if merge else None
        data["failure"] = failure.to_json() if failure else None
        data["never_runs"] = stuck.to_json() if stuck else None
        data["events"] = [e.to_json() for e in events]
        click.echo(dumps_json(data))
        return
    click.echo(click.style(f"{task.id}  {literal(task.title)}", bold=True))
    click.echo(
        f"state {_styled_state(task.state).rstrip()}   priority {task.priority}   "
        f"attempts {task.attempts}" + (f"   profile {literal(task.profile)}" if task.profile else "")
    )
    if task.labels:
        click.echo(f"labels:     {literal(', '.join(task.labels))}")
    for source in sources:
        click.echo(literal(f"from:       {source.kind} {source.source_id} ({source.status} there; {source.path})"))
    if failure is not None:
        click.echo(f"failed:     {literal(failure.reason)}")
    if usage.runs:
        click.echo(f"cost:       {usage.text}")
    if merge is not None:
        click.echo(f"into {literal(ctx.base.config().base_branch)}:  {literal(merge.text)}")
    if task.depends_on:
        deps = ", ".join(
            f"{d}{' (blocking)' if d in task.blocked_by else ''}" for d in task.depends_on
        )
        click.echo(f"depends on: {deps}")
    if stuck is not None:
        click.echo(
            f"never runs: {stuck.text}, so it can never run as it is; "
            f"`factory task undepend {task.id} {stuck.through[0]}` drops that dependency"
        )
    if dependents:
        click.echo("needed by:  " + ", ".join(f"{t.id} ({t.state})" for t in dependents))
    if task.feedback:
        click.echo(f"feedback:   {literal(task.feedback)}")
    if task.body:
        click.echo()
        click.echo(literal(task.body, multiline=True))
    click.echo()
    for event in events:
        click.echo(format_event(event, with_task=False))


def _merge_check(ctx: Context, task):
    """For a task in review or failed with a branch: whether it would merge
    cleanly into the base branch now (a dry run), else None."""
    from factory_tui.backends.worktrees import MergeStatus, Worktrees

    if task.state not in (State.REVIEW, State.FAILED):
        return None
    config = ctx.base.config()
    check = Worktrees(ctx.base.root, base_branch=config.base_branch, merge=config.merge).merge_check(task.id)
    return None if check.status is MergeStatus.NOTHING and check.head is None else check


# --- task ---------------------------------------------------------------


@main.group(cls=FactoryGroup)
def task() -> None:
    """Approve, re-queue, cancel, hold, release or re-prioritise a task."""


def _operator_command(action: Action, doc: str):
    @click.argument("task_ids", nargs=-1, required=True, metavar="ID [ID ...]")
    @click.option(
        "--note", "-n", callback=utf8_text("--note"),
        help="Why; kept in the event (the feedback, for requeue).",
    )
    @json_option
    @pass_ctx
    @needs(Need(action.value))
    def command(ctx: Context, task_ids: tuple[str, ...], note: str | None, as_json: bool,
                force: bool = False) -> None:
        from factory_tui.backends.operator import Operator

        operator = Operator(ctx.base, ctx.log)
        if len(task_ids) == 1:
            # One task: its result, or the one line of its error, as ever.
            outcome = operator.apply(normalize_task_id(task_ids[0]), action, actor=ctx.caller.actor, note=note,
                                     force=force)
            click.echo(dumps_json(_outcome_json(outcome)) if as_json else literal(outcome.message))
            _answer_requests(ctx, [outcome.task.state])
            return
        # Several: each is attempted, in the order given, and reported on a
        # line of its own (an error on stderr); any failure makes the exit 1.
        results: list[dict] = []
        failed = False
        for raw in task_ids:
            try:
                outcome = operator.apply(normalize_task_id(raw), action, actor=ctx.caller.actor, note=note,
                                         force=force)
            except FactoryError as error:
                failed = True
                results.append({"id": _id_or_text(raw), "error": str(error)})
                if not as_json:
                    click.echo(error_line(str(error), as_json=False), err=True)
                continue
            results.append(_outcome_json(outcome))
            _answer_requests(ctx, [outcome.task.state])
            if not as_json:
                click.echo(literal(outcome.message))
        if as_json:
            click.echo(dumps_json(results))
        if failed:
            sys.exit(1)

    command.__doc__ = doc
    if action is Action.APPROVE:
        command = click.option(
            "--force", is_flag=True,
            help="Approve although its required QA has not passed on its head (needs --note WHY; kept in the log).",
        )(command)
    return task.command(action.value)(command)


def _outcome_json(outcome) -> dict:
    """An operator action's result: the task, the one-line message, and
    for an approval that merged, the base branch's new commit."""
    data = outcome.task.to_json()
    data["message"] = outcome.message
    if outcome.warning:
        data["warning"] = outcome.warning
    if outcome.task.state is State.DONE:
        data["merge_commit"] = outcome.merge_commit
    return data


def _answer_requests(ctx: Context, states: list[State]) -> None:
    """A task made from another factory's request that ended, or was
    re-queued after it failed, answers it now (backends/mail_requests.py);
    whatever fails here, the engine's mail round sends it later."""
    if not any(state in ANSWERED_STATES for state in states):
        return
    try:
        ctx.session.answer_ended_requests()
    except (FactoryError, OSError):
        pass


def _id_or_text(raw: str) -> str:
    try:
        return normalize_task_id(raw)
    except InvalidInput:
        return raw


_SEVERAL = (
    " Several IDs: each is attempted and reported on its own line, exit 1 if any"
    " failed; --json gives a list."
)
_operator_command(Action.APPROVE, "Approve ID: proposed → queued, or review → done (merges its branch)." + _SEVERAL)
_operator_command(Action.REQUEUE, "Re-queue ID (from review, failed or cancelled) with --note as feedback." + _SEVERAL)
_operator_command(Action.CANCEL, "Cancel ID (the branch of a task that ran is kept)." + _SEVERAL)
_operator_command(Action.HOLD, "Hold queued ID so that it does not run." + _SEVERAL)
_operator_command(Action.RELEASE, "Release held ID back to the queue." + _SEVERAL)


# ignore_unknown_options: `-3` is a priority change, not an unknown option.
@task.command("priority", context_settings={"ignore_unknown_options": True})
@click.argument("task_id", callback=task_id_arg, metavar="ID")
@click.argument("priority", metavar="N|+N|-N")
@json_option
@pass_ctx
@needs(Need.PRIORITY)
def task_priority(ctx: Context, task_id: str, priority: str, as_json: bool) -> None:
    """Set ID's priority to N, or change it by +N / -N."""
    from factory_tui.model import parse_priority

    current = ctx.log.get_task(task_id)
    text = priority.strip()
    if text[:1] in "+-" and len(text) > 1 and not text.startswith("--"):
        value = current.priority + parse_priority(text)
    else:
        value = parse_priority(text)
    updated = ctx.log.set_priority(task_id, value, actor=ctx.caller.actor)
    emit(as_json, updated, f"{updated.id}: priority {current.priority} → {updated.priority}")


# ignore_unknown_options: `-docs` takes a label away, it is not an option.
@task.command("label", context_settings={"ignore_unknown_options": True})
@click.argument("task_id", callback=task_id_arg, metavar="ID")
@click.argument("changes", nargs=-1, required=True, metavar="[+]LABEL|-LABEL...")
@json_option
@pass_ctx
@needs(Need.LABEL)
def task_label(ctx: Context, task_id: str, changes: tuple[str, ...], as_json: bool) -> None:
    """Give ID a label with LABEL or +LABEL, take one away with -LABEL."""
    add = [change.removeprefix("+") for change in changes if not change.startswith("-")]
    remove = [change[1:] for change in changes if change.startswith("-")]
    updated = ctx.log.change_labels(task_id, add=add, remove=remove, actor=ctx.caller.actor)
    shown = ", ".join(updated.labels) if updated.labels else "none"
    emit(as_json, updated, f"{updated.id}: labels {literal(shown)}")


@task.command("depend")
@click.argument("task_id", callback=task_id_arg, metavar="ID")
@click.argument("other", callback=task_id_arg, metavar="OTHER")
@json_option
@pass_ctx
@needs(Need.DEPEND)
def task_depend(ctx: Context, task_id: str, other: str, as_json: bool) -> None:
    """Make ID depend on OTHER (a cycle is refused)."""
    updated = ctx.log.add_dependency(task_id, other, actor=ctx.caller.actor)
    emit(as_json, updated, f"{updated.id} depends on {', '.join(updated.depends_on)}")


@task.command("undepend")
@click.argument("task_id", callback=task_id_arg, metavar="ID")
@click.argument("other", callback=task_id_arg, metavar="OTHER")
@json_option
@pass_ctx
@needs(Need.DEPEND)
def task_undepend(ctx: Context, task_id: str, other: str, as_json: bool) -> None:
    """ID no longer waits for OTHER (say, a task that was cancelled)."""
    updated = ctx.log.remove_dependency(task_id, other, actor=ctx.caller.actor)
    rest = ", ".join(updated.depends_on)
    emit(as_json, updated, f"{updated.id} no longer depends on {other}" + (f"; it depends on {rest}" if rest else ""))


@main.command()
@click.argument("text", callback=utf8_text("the note"))
@click.option("--task", "task_id", callback=lambda c, p, v: v and task_id_arg(c, p, v), metavar="ID",
              help="The task it is about (default: an agent's own task).")
@json_option
@pass_ctx
@needs(Need.NOTE)
def note(ctx: Context, text: str, task_id: str | None, as_json: bool) -> None:
    """Write a note to the log (an agent tells the operator something)."""
    caller = ctx.caller
    if task_id is None:
        task_id = caller.task_id
    event = ctx.log.add_note(task_id, text, actor=caller.actor)
    emit(as_json, event, f"noted{' on ' + task_id if task_id else ''}")


# --- the engine ------------------------------------------------------------


@main.command()
@click.option("--once", is_flag=True, help="Run until nothing is ready or running, then exit (1 if a task failed).")
@click.option("--max-parallel", type=click.IntRange(min=1), default=None, help="Agents at once (default: factory.toml).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@pass_ctx
@needs(Need.RUN)
def run(ctx: Context, once: bool, max_parallel: int | None, quiet: bool) -> None:
    """Run the engine headless: agents work on the ready tasks."""
    import asyncio
    import signal as signals

    from factory_tui.engine import Engine

    base = ctx.base
    ctx.log.last_event_id()  # a log that cannot be used fails here, in one line

    def report(line: str) -> None:
        if not quiet:
            click.echo(f"{time.strftime('%H:%M:%S')} {literal(line)}")

    engine = Engine(base, mode="headless", max_parallel=max_parallel, once=once, report=report)

    async def main_loop() -> int:
        loop = asyncio.get_running_loop()
        for signum in (signals.SIGINT, signals.SIGTERM):
            # Stop the agents; their tasks go back to the queue, work committed.
            loop.add_signal_handler(signum, lambda: engine.request_stop(stop_agents=True))
        return await engine.run()

    status = asyncio.run(main_loop())
    sys.exit(status)


@main.group(cls=FactoryGroup)
def engine() -> None:
    """Which engine drives this base, and stopping a headless one."""


@engine.command("status")
@json_option
@pass_ctx
@needs(Need.READ)
def engine_status(ctx: Context, as_json: bool) -> None:
    """Who holds the engine lock (pid, mode, since when) and the tasks running."""
    from factory_tui.backends.engine_control import engine_report

    report = engine_report(ctx.base, ctx.log)
    if as_json:
        click.echo(dumps_json(report.to_json()))
        return
    for line in report.lines():
        click.echo(literal(line))


@engine.command("stop")
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to wait for it to let go of the base.")
@json_option
@pass_ctx
@needs(Need.RUN)
def engine_stop(ctx: Context, timeout: float, as_json: bool) -> None:
    """Stop the headless engine of this base (as ctrl+c would): its agents
    are stopped, their work committed and their tasks sent back to the queue.
    Waits until it has let go."""
    from factory_tui.backends.engine_control import stop_engine

    stopped = stop_engine(ctx.base, timeout=timeout)
    if as_json:
        click.echo(dumps_json({"stopped": stopped is not None, "engine": stopped}))
        return
    if stopped is None:
        click.echo("No engine runs on this base; nothing to stop.")
        return
    click.echo(
        f"Stopped the engine (headless, pid {stopped.get('pid')}): its agents were stopped, "
        "their work committed and their tasks sent back to the queue."
    )


@main.group(cls=FactoryGroup, invoke_without_command=True)
@json_option
@click.pass_context
@needs(Need.READ)
def worktrees(click_ctx: click.Context, as_json: bool) -> None:
    """List the task worktrees (running, awaiting review, orphaned)."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Context = click_ctx.obj
    rows = _worktree_rows(ctx)
    if as_json:
        click.echo(dumps_json(rows))
        return
    if not rows:
        click.echo("No task worktrees.")
        return
    for row in rows:
        click.echo(
            f"{row['task'] or '?':<7} {row['status']:<10} {row['branch'] or '-':<16} "
            f"{literal(row['path'])}{'' if row['exists'] else '  (folder missing)'}"
        )


def _worktree_rows(ctx: Context) -> list[dict]:
    return [row.to_json() for row in ctx.session.worktree_report(with_changes=False)]


@worktrees.command("clean")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@json_option
@pass_ctx
@needs(Need.CLEAN)
def worktrees_clean(ctx: Context, yes: bool, as_json: bool) -> None:
    """Remove the worktrees no task owns any more (work is committed first)."""
    orphans = ctx.session.orphans()
    if not orphans:
        click.echo(dumps_json([]) if as_json else "No orphaned worktrees.")
        return
    if not yes:
        names = ", ".join(row.task_id or row.path for row in orphans)
        click.confirm(f"Remove {len(orphans)} orphaned worktree(s) ({names})? Their work is committed first", abort=True)
    ctx.session.clean([row.task_id for row in orphans if row.task_id])
    listed = [row.to_json() for row in orphans]
    click.echo(dumps_json(listed) if as_json else f"Removed {len(orphans)} worktree(s).")


@main.command()
@json_option
@pass_ctx
@needs(Need.READ)
def agents(ctx: Context, as_json: bool) -> None:
    """The agent profiles of this base, and which one tasks run with."""
    from factory_tui.backends.agents import default_profile_name, load_profiles

    config = ctx.base.config()
    profiles = load_profiles(config)
    default = default_profile_name(config, profiles)
    rows: list[dict[str, Any]] = [
        {"name": p.name, "argv": list(p.argv), "output": p.output, "timeout": p.timeout,
         "found": p.available(), "default": p.name == default}
        for p in profiles.values()
    ]
    if as_json:
        click.echo(dumps_json(rows))
        return
    for row in rows:
        mark = "*" if row["default"] else " "
        found = "found" if row["found"] else "not on PATH"
        click.echo(f"{mark} {row['name']:<8} {row['output']:<19} {found:<12} {literal(' '.join(row['argv']))}")


# --- log and status -----------------------------------------------------


def format_event(event: Event, *, with_task: bool = True) -> str:
    from factory_tui.times import full_moment

    parts = [full_moment(event.at)]
    if with_task:
        parts.append(f"{event.task_id or '-':<6}")
    parts.append(f"{event.kind:<9}")
    if event.from_state or event.to_state:
        parts.append(f"{event.from_state or '∅'} → {event.to_state}")
    parts.append(f"by {literal(event.actor)}")
    line = "  ".join(parts)
    if event.note:
        line += f"  {one_line(event.note, 300)}"
    return line


@main.command("log")
@click.option("--task", "task_id", callback=lambda c, p, v: v and task_id_arg(c, p, v), metavar="ID", help="Only this task's events.")
@click.option("--kind", "kinds", multiple=True, metavar="KIND", help="Only events of this kind (repeatable).")
@click.option("--last", "-n", type=click.IntRange(min=1), default=None, help="Only the newest N events.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they are written.")
@json_option
@pass_ctx
@needs(Need.READ)
def log_command(
    ctx: Context,
    task_id: str | None,
    kinds: tuple[str, ...],
    last: int | None,
    follow: bool,
    as_json: bool,
) -> None:
    """Print the event history, oldest first."""
    from factory_tui.model import EVENT_KINDS

    unknown = [k for k in kinds if k not in EVENT_KINDS]
    if unknown:
        raise InvalidInput(
            f"unknown event kind {unknown[0]!r} (kinds: {', '.join(sorted(EVENT_KINDS))})"
        )
    if task_id is not None:
        ctx.log.get_task(task_id)
    # A page at a time, each page written whole: memory stays flat however
    # long the log is, and a reader that stops (`| head`) ends the command
    # at its next page (FactoryGroup: a closed pipe is no error).
    cursor = ctx.log.last_event_id()
    for page in ctx.log.event_pages(task_id=task_id, kinds=kinds or None, last=last, upto=cursor):
        _print_events(page, as_json)
    while follow:
        try:
            time.sleep(0.25)
        except KeyboardInterrupt:
            return
        for page in ctx.log.event_pages(task_id=task_id, kinds=kinds or None, after_id=cursor):
            cursor = page[-1].id
            _print_events(page, as_json)


def _print_events(events: list[Event], as_json: bool) -> None:
    """One write for the page: a line per event, or with ``as_json`` one
    JSON object per line (ASCII), so that a reader can parse as it reads."""
    if not events:
        return
    if as_json:
        lines = [json.dumps(event.to_json(), ensure_ascii=True) for event in events]
    else:
        lines = [format_event(event) for event in events]
    click.echo("\n".join(lines))


@main.command()
@json_option
@pass_ctx
@needs(Need.READ)
def status(ctx: Context, as_json: bool) -> None:
    """Counts of tasks by state, the engine, cost, the log (its size,
    events, the oldest), and the newest event."""
    from factory_tui.backends.engine_lock import EngineLock, describe_holder

    config = ctx.base.config()
    counts = ctx.log.counts()
    latest = ctx.log.events(last=1)
    holder = EngineLock.holder(ctx.base)
    usage = ctx.log.usage(per_task=False)
    facts = ctx.log.log_facts()
    keep = config.log.keep_progress_days
    if as_json:
        click.echo(
            dumps_json(
                {
                    "name": config.name,
                    "base": str(ctx.base.root),
                    "base_branch": config.base_branch,
                    "counts": {state.value: counts[state] for state in STATE_ORDER},
                    "total": sum(counts.values()),
                    "engine": holder,
                    "usage": {"today": usage.today.to_json(), "total": usage.total.to_json()},
                    "log": {**facts.to_json(), "keep_progress_days": keep},
                    "last_event": latest[0].to_json() if latest else None,
                }
            )
        )
        return
    click.echo(click.style(f"{literal(config.name)}", bold=True) + f"  {literal(str(ctx.base.root))}  (base branch {literal(config.base_branch)})")
    click.echo(
        "  ".join(f"{_styled_state(state).rstrip()} {counts[state]}" for state in STATE_ORDER)
    )
    click.echo(f"engine: {literal(describe_holder(holder)) if holder else 'none (start one: factory run)'}")
    if usage.total.runs:
        click.echo(f"cost: today {usage.today.text}; in all {usage.total.text}")
    click.echo(_log_line(facts, keep))
    if latest:
        click.echo("last event: " + format_event(latest[0]))


def _log_line(facts, keep: float | None) -> str:
    """``log: 148.2 MB (2.1 MB free), 1,000,000 events since 2026-07-30
    (progress kept 30 days)``."""
    from factory_tui.times import full_moment

    size = f"{facts.bytes / 1e6:.1f} MB"
    if facts.free_bytes:
        size += f" ({facts.free_bytes / 1e6:.1f} MB free for new events)"
    since = f" since {full_moment(facts.oldest_at)[:10]}" if facts.oldest_at is not None else ""
    kept = f"progress kept {keep:g} days" if keep is not None else "progress kept for ever"
    return f"log: {size}, {facts.events:,} events{since} ({kept})"


# --- console and demo ---------------------------------------------------


@main.command()
@click.option("--no-engine", is_flag=True, help="Do not run an engine inside the console.")
@click.option("--bench-first-frame", is_flag=True, hidden=True)
@pass_ctx
@needs(Need.RUN)
def console(ctx: Context, no_engine: bool, bench_first_frame: bool) -> None:
    """Open the operator console (it runs the engine too, unless a headless
    one already does)."""
    base = ctx.base
    # Fail here, with one line, if the log cannot be used (corrupt, newer).
    ctx.log.last_event_id()
    from factory_tui.app import FactoryApp
    from factory_tui.keys import keymap_problem
    from factory_tui.panes import PANE_NUMBERS

    if (problem := keymap_problem(ctx.session.config.console.keymap, PANE_NUMBERS)) is not None:
        raise ConfigError(f"{base.config_path}: {problem}")

    app = FactoryApp(base, bench_first_frame=bench_first_frame, engine=not (no_engine or bench_first_frame))
    app.run(headless=bench_first_frame)
    if app.farewell:
        click.echo(app.farewell)
    if app.return_code:
        sys.exit(app.return_code)


@main.command()
@click.option("--path", type=click.Path(file_okay=False), help="Build the demo here (an empty or new folder) and keep it.")
@click.option("--no-console", is_flag=True, help="Only build the demo base and print its path.")
@click.pass_context
@needs(Need.RUN, base_may_be_missing=True)
def demo(click_ctx: click.Context, path: str | None, no_console: bool) -> None:
    """Open the console on a throwaway demo base (a git repo with a plan).

    Its demo agent fails one run in ten on purpose, so that a failure and a
    re-queue can be tried (FACTORY_DEMO_FAIL_RATE sets how often, 0 to 1;
    FACTORY_DEMO_SECONDS how long a run works).

    Beside it is a peer factory, warehouse, that sends a request a few
    seconds after the console opens (FACTORY_DEMO_PEER_AFTER seconds):
    press t on it in the Mail pane, and approving the task answers it.
    """
    import shutil

    from factory_tui import demo_peer
    from factory_tui.backends.demo import build_demo, demo_root_default, peer_root

    if path is not None:
        root, keep = Path(path), True
    else:
        root, keep = demo_root_default() / "shopfront", no_console
    base = build_demo(root)
    if no_console:
        click.echo(str(base.root))
        return
    state: Context = click_ctx.obj
    state.base_path = str(base.root)
    peer = demo_peer.start(peer_root(base.root))
    try:
        click_ctx.invoke(console)
    finally:
        demo_peer.stop(peer)
        state.close()
        from factory_tui.backends.engine_lock import EngineLock

        engine_stays = EngineLock.holder(base) is not None
        if not keep and not engine_stays:
            shutil.rmtree(root.parent, ignore_errors=True)
        click.echo(demo_farewell(base.root, kept=keep, engine_stays=engine_stays))


def demo_farewell(root: Path, *, kept: bool, engine_stays: bool) -> str:
    """What ``factory demo`` says when its console has gone: where the
    demo's base is (or was)."""
    where = literal(str(root))
    if kept:
        return f"The demo base is kept at {where} (`factory --base {where} status` looks at it)."
    if engine_stays:
        # Agents were left to a headless engine: their base must stay.
        return (
            f"The demo base stays at {where} while its engine works "
            f"(`factory --base {where} engine stop` stops it)."
        )
    return f"The demo base at {where} was removed (`factory demo --path DIR` keeps one)."


# --- qa (its own module: it needs the helpers above) --------------------------

from factory_tui.cli_qa import qa  # noqa: E402

main.add_command(qa)


# --- mail (its own modules) -----------------------------------------------------

from factory_tui.cli_mail import mail  # noqa: E402

main.add_command(mail)


# --- artifacts (its own modules) ------------------------------------------------

from factory_tui.cli_artifacts import artifacts  # noqa: E402

main.add_command(artifacts)


# --- plan draft, proposals, accept, decline (greenfield: their own module) ------

import factory_tui.cli_plan_draft  # noqa: E402,F401

# --- plan import and export (their own module) ----------------------------------
from factory_tui import cli_plan_io  # noqa: E402,F401  (its commands join `plan` as it loads)
