"""``factory artifacts list | show | history | refresh``: the living
documents from the command line, each with ``--json``.

Reading (``list``, ``show``, ``history``) is open to every caller, agents
too: the documents are in every prompt anyway. ``refresh`` proposes the
task that brings them up to date, and needs ``propose``, which agents have
(actors.py): what it makes is a proposal like any ``factory plan add`` of
an agent's, proposed and waiting for the operator, and never a second
while one is open; approving it, and so changing the documents, stays the
operator's.

Registered on the ``artifacts`` group by ``cli_artifacts.py`` with one line.
"""

from __future__ import annotations

import time

import click

from factory_tui.actors import Need
from factory_tui.artifacts_model import DocumentInfo
from factory_tui.cli import Context, needs, utf8_text
from factory_tui.text import dumps_json, literal, one_line
from factory_tui.times import full_moment, moment

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
pass_ctx = click.make_pass_decorator(Context)


def _size(size: int) -> str:
    if size >= 1 << 20:
        return f"{size / (1 << 20):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size} B"


def _when(info: DocumentInfo) -> str:
    if info.generated:
        return "generated"
    if info.include.value == "when":
        return "when " + " ".join(info.when)
    return info.include.value


@click.command("list")
@json_option
@pass_ctx
@needs(Need.READ)
def documents_list(ctx: Context, as_json: bool) -> None:
    """List the living documents: title, last change, size, prompts that
    included it, landings since it changed (stale when many), when it goes
    into prompts; documents that cannot be used, with line and reason."""
    infos = ctx.session.documents()
    if as_json:
        click.echo(dumps_json([info.to_json() for info in infos]))
        return
    if not infos:
        click.echo("No living documents yet: write markdown files in .factory/artifacts/ "
                   "(`factory init` writes starting ones in a new base).")
        return
    now = time.time()
    width = max(4, *(len(literal(info.name)) for info in infos))
    click.echo(click.style(f"{'NAME':<{width}}  {'TITLE':<30}  {'UPDATED':<11}  {'SIZE':>8}  {'PROMPTS':>7}  "
                           f"{'SINCE':>5}  INCLUDE", bold=True))
    for info in infos:
        updated = moment(info.updated, now) if info.updated is not None else "-"
        since = "-" if info.generated else str(info.landings_since)
        stale = "  " + click.style("stale", fg="yellow") if info.stale else ""
        line = (f"{literal(info.name):<{width}}  {one_line(info.title, 30):<30}  {updated:<11}  "
                f"{_size(info.size):>8}  {info.prompts:>7}  {since:>5}  {one_line(_when(info), 60)}{stale}")
        click.echo(line)
        if info.problem:
            click.echo(f"{'':<{width}}  " + click.style("not in prompts", fg="red") + f": {one_line(info.problem, 200)}")


@click.command("show")
@click.argument("name", callback=utf8_text("the name"))
@json_option
@pass_ctx
@needs(Need.READ)
def documents_show(ctx: Context, name: str, as_json: bool) -> None:
    """Print the living document NAME (conventions or conventions.md)."""
    session = ctx.session
    text = session.document_text(name)
    if as_json:
        wanted = name if name.endswith(".md") else name + ".md"
        info = next((item for item in session.documents() if item.name == wanted), None)
        click.echo(dumps_json({**(info.to_json() if info else {"name": wanted}), "text": text}))
        return
    click.echo(literal(text, multiline=True), nl=not text.endswith("\n"))


@click.command("history")
@click.argument("name", callback=utf8_text("the name"))
@click.option("--diff", "commit", metavar="COMMIT", callback=utf8_text("--diff"),
              help="Print what this commit (from the list) changed in the document.")
@json_option
@pass_ctx
@needs(Need.READ)
def documents_history(ctx: Context, name: str, commit: str | None, as_json: bool) -> None:
    """The commits that changed the living document NAME, newest first; with
    --diff COMMIT, that version's diff."""
    session = ctx.session
    if commit is not None:
        diff = session.document_diff(name, commit)
        if as_json:
            click.echo(dumps_json({"name": name, "commit": commit, "diff": diff}))
        else:
            click.echo(literal(diff, multiline=True), nl=not diff.endswith("\n"))
        return
    versions = session.document_history(name)
    if as_json:
        click.echo(dumps_json([version.to_json() for version in versions]))
        return
    if not versions:
        wanted = name if name.endswith(".md") else name + ".md"
        if any(info.name == wanted and info.generated for info in session.documents()):
            click.echo(f"{literal(wanted)} is written by the factory from its log and kept out of git: "
                       "it has no git history (`factory artifacts show` prints it).")
        else:
            click.echo(f"{literal(wanted)} has no commits yet: it changes in git once it is committed.")
        return
    for version in versions:
        click.echo(f"{version.commit[:10]}  {full_moment(version.at)}  {one_line(version.author, 24):<24}  "
                   f"{one_line(version.subject, 100)}")


@click.command("refresh")
@json_option
@pass_ctx
@needs(Need.PROPOSE)
def documents_refresh(ctx: Context, as_json: bool) -> None:
    """Propose the task that brings the living documents up to date now
    (one at a time: an open one is named instead)."""
    made = ctx.session.propose_refresh(actor=ctx.caller.actor)
    if as_json:
        click.echo(dumps_json(made.to_json()))
        return
    task = made.task
    if made.created:
        click.echo(f"{task.id} proposed: {literal(task.title)} (approve it to have an agent do it)")
    else:
        click.echo(f"{task.id} is open already ({task.state.value}): {literal(task.title)}; "
                   "only one is open at a time")
