"""``factory mail``: mail between factories, from the command line.

``list`` and ``show`` read the log's record of mail (``show`` marks a
message read when the operator reads it; an agent reading leaves it
unread for the operator); ``ack`` answers a message with an ``ack`` in our
outbox; ``peers`` says whether each peer can be reached; ``catch-up``
takes every message file of the mailbox and the sources into the log now
(the engine and the console do it by themselves; this is for a base where
neither runs, a script, or after copying files in by hand).

Registered on ``factory`` by ``factory_tui/cli.py`` (its last lines), whose
conventions (``needs``, ``--json``, one-line errors) these commands follow.
Text from messages is shown literally: a subject or a body can neither
colour nor move the terminal.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from factory_tui.actors import Need
from factory_tui.cli import Context, FactoryGroup, needs, utf8_text
from factory_tui.errors import FactoryError, InvalidInput
from factory_tui.text import dumps_json, literal, one_line

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
pass_ctx = click.make_pass_decorator(Context)


@click.group(cls=FactoryGroup)
def mail() -> None:
    """Mail between factories: the inbox, the outbox and other tools' archives."""


def _taken_in(ctx: Context) -> None:
    """Take in what came to the mailbox when no engine runs on the base
    (an engine follows it by itself): otherwise a message a peer just put
    in the inbox could not be listed, shown or answered from here."""
    from factory_tui.backends.engine_lock import EngineLock

    if EngineLock.holder(ctx.base) is None:
        ctx.session.mail_catch_up()


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


def _marks(item) -> str:
    marks = "*" if item.read_at is None else " "
    marks += "!" if item.importance in ("high", "urgent") else " "
    marks += "A" if item.waiting_ack else " "
    return marks


def _undelivered_mark(undelivered: set[str], item) -> str:
    return "U" if item.key in undelivered else " "


@mail.command("list")
@click.option("--unread", is_flag=True, help="Only messages not read yet.")
@click.option("--thread", "thread", metavar="ID", callback=utf8_text("the thread"),
              help="Only the thread of this message (its id or a unique start of it).")
@click.option("--box", metavar="BOX", help="Only inbox, outbox or source:NAME.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many, newest first.")
@json_option
@pass_ctx
@needs(Need.READ)
def mail_list(ctx: Context, unread: bool, thread: str | None, box: str | None, limit: int | None,
              as_json: bool) -> None:
    """List messages, newest first (* unread, ! important, A waiting for our ack, U not delivered yet)."""
    _taken_in(ctx)
    log = ctx.log
    thread_key = log.mail_message(thread).thread if thread else None
    items = log.mail_messages(unread=True if unread else None, thread=thread_key, box=box, limit=limit)
    if as_json:
        undelivered_keys = {delivery.key for delivery in log.undelivered()}
        click.echo(dumps_json([{**{k: v for k, v in item.to_json().items() if k != "body"},
                                "undelivered": item.key in undelivered_keys} for item in items]))
        return
    if not items:
        click.echo("No messages." if not (unread or thread or box) else "No messages match.")
        return
    undelivered = {delivery.key for delivery in log.undelivered()}
    width = max(3, *(len(item.key) for item in items))
    click.echo(click.style(f"     {'ID':<{width}}  {'CREATED':<16}  {'KIND':<7}  {'FROM':<24}  SUBJECT", bold=True))
    for item in items:
        click.echo(f"{_marks(item)}{_undelivered_mark(undelivered, item)} {literal(item.key):<{width}}  {_when(item.created):<16}  {item.kind:<7}  "
                   f"{one_line(item.sender, 24):<24}  {one_line(item.subject, 80)}")


@mail.command("show")
@click.argument("message_id", metavar="ID", callback=utf8_text("the message id"))
@json_option
@pass_ctx
@needs(Need.READ)
def mail_show(ctx: Context, message_id: str, as_json: bool) -> None:
    """Show a message (its id, a unique start of it, or a message file's
    path); the operator reading it marks it read."""
    _taken_in(ctx)
    item = _find(ctx, message_id)
    if item is None:
        _show_file(ctx, Path(message_id), as_json)
        return
    if item.read_at is None:
        caller = ctx.require(Need.MAIL)
        if not caller.is_agent:
            ctx.log.mark_read([item.key], caller.actor)
    if as_json:
        click.echo(dumps_json(item.to_json()))
        return
    lines = [
        ("id", item.key), ("from", item.sender), ("to", ", ".join(item.recipients)), ("subject", item.subject),
        ("created", _when(item.created)), ("kind", item.kind + (f" ({item.state})" if item.state else "")),
        ("thread", item.thread),
    ]
    if item.in_reply_to:
        lines.append(("in reply to", item.in_reply_to))
    if item.importance != "normal":
        lines.append(("importance", item.importance))
    if item.ack_required:
        lines.append(("ack", "acknowledged" if item.acked_at is not None else "asked for, not yet sent"))
    if item.task_id:
        lines.append(("task", item.task_id))
    lines.append(("file", item.path))
    for name, value in lines:
        click.echo(f"{_label(name)} {literal(value)}")
    click.echo("")
    click.echo(literal(item.body, multiline=True))


def _label(name: str) -> str:
    return click.style(f"{name + ':':<12}", bold=True)


def _find(ctx: Context, wanted: str):
    """The message the log knows by this key or prefix; None when the
    argument names a file instead."""
    from factory_tui.errors import UnknownMessage

    try:
        return ctx.log.mail_message(wanted)
    except UnknownMessage:
        if ("/" in wanted or wanted.endswith(".md")) and Path(wanted).exists():
            return None
        raise


def _show_file(ctx: Context, path: Path, as_json: bool) -> None:
    """A message file read straight from disk (not from the log)."""
    from factory_tui.backends.mailbox import Unreadable, read_message
    from factory_tui.mail_model import iso

    found = read_message(path, inside=path.resolve().parent, max_bytes=ctx.base.config().mail.max_bytes)
    if isinstance(found, Unreadable):
        raise InvalidInput(f"{path} is not a message file: {found.reason}")
    message = found.message
    if as_json:
        click.echo(dumps_json({"id": message.id, "from": message.sender, "to": list(message.recipients),
                               "subject": message.subject, "created": iso(message.created),
                               "kind": str(message.kind), "thread": message.thread_key, "body": message.body,
                               "path": str(path), "hash": found.hash}))
        return
    for name, value in (("id", message.id), ("from", message.sender), ("to", ", ".join(message.recipients)),
                        ("subject", message.subject), ("created", iso(message.created)),
                        ("kind", str(message.kind))):
        click.echo(f"{_label(name)} {literal(value)}")
    click.echo("")
    click.echo(literal(message.body, multiline=True))


@mail.command("ack")
@click.argument("message_id", metavar="ID", callback=utf8_text("the message id"))
@json_option
@pass_ctx
@needs(Need.MAIL)
def mail_ack(ctx: Context, message_id: str, as_json: bool) -> None:
    """Acknowledge a message: an ack goes back to its sender."""
    _taken_in(ctx)
    item = ctx.log.mail_message(message_id)
    if item.acked_at is not None and not item.ours and item.kind != "ack":
        text = f"{item.key} was acknowledged already."
        click.echo(dumps_json({"key": item.key, "acked_at": item.acked_at, "sent": None}) if as_json else text)
        return
    sent = ctx.session.ack_mail(item.key, actor=ctx.caller.actor)
    if as_json:
        click.echo(dumps_json({"key": item.key, "acked_at": ctx.log.mail_message(item.key).acked_at,
                               "sent": sent.message.id, "path": str(sent.path),
                               "deliveries": [handed.to_json() for handed in sent.deliveries]}))
        return
    click.echo(f"Acknowledged {literal(item.key)}: {literal(sent.message.id)} to {literal(item.sender)}"
               f"{_delivered(sent)}.")


def _delivered(sent) -> str:
    if not sent.deliveries:
        return " (in our outbox)"
    parts = [f"{literal(item.factory)} {item.state}" + (f" ({one_line(item.error, 200)})" if item.error else "")
             for item in sent.deliveries]
    return " (" + ", ".join(parts) + ")"


def _body(body_file: str | None) -> str:
    """The body from a file, or standard input with ``-``."""
    if body_file is None:
        return ""
    try:
        if body_file == "-":
            data = sys.stdin.buffer.read()
        else:
            data = Path(body_file).read_bytes()
    except OSError as error:
        raise InvalidInput(f"the body cannot be read from {body_file}: {error.strerror or error}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"the body in {body_file} is not UTF-8 text") from None


def _print_sent(sent, as_json: bool, what: str) -> None:
    if as_json:
        click.echo(dumps_json(sent.to_json()))
        return
    click.echo(f"{what} {literal(sent.message.id)} to {literal(', '.join(sent.message.recipients))}"
               f"{_delivered(sent)}.")


body_option = click.option("--body-file", metavar="F|-", help="The body from this file, or - for standard input.")


@mail.command("send")
@click.option("--to", "to", multiple=True, required=True, metavar="PEER", callback=utf8_text("the recipient"),
              help="A peer (or PEER/agent); again for several.")
@click.option("--subject", required=True, callback=utf8_text("the subject"), help="The subject.")
@click.option("--kind", type=click.Choice(["note", "request"]), default="note", show_default=True)
@click.option("--importance", type=click.Choice(["low", "normal", "high", "urgent"]), default="normal",
              show_default=True)
@click.option("--ack", "ack_required", is_flag=True, help="Ask for an acknowledgement.")
@body_option
@json_option
@pass_ctx
@needs(Need.MAIL)
def mail_send(ctx: Context, to: tuple[str, ...], subject: str, kind: str, importance: str, ack_required: bool,
              body_file: str | None, as_json: bool) -> None:
    """Send a message to peers: into our outbox, then into each peer's inbox (or onto our mail branch)."""
    from factory_tui.mail_model import Importance, MessageKind

    sent = ctx.session.send_mail(list(to), subject, _body(body_file), kind=MessageKind(kind),
                                 importance=Importance(importance), ack_required=ack_required,
                                 actor=ctx.caller.actor)
    _print_sent(sent, as_json, "Sent")


@mail.command("reply")
@click.argument("message_id", metavar="ID", callback=utf8_text("the message id"))
@click.option("--state", type=click.Choice(["accepted", "working", "completed", "failed", "canceled", "rejected"]),
              help="Where the request stands (a reply to a request).")
@body_option
@json_option
@pass_ctx
@needs(Need.MAIL)
def mail_reply(ctx: Context, message_id: str, state: str | None, body_file: str | None, as_json: bool) -> None:
    """Reply to a message, in its thread, to its sender."""
    from factory_tui.mail_model import RequestState

    _taken_in(ctx)
    sent = ctx.session.reply_mail(message_id, _body(body_file), actor=ctx.caller.actor,
                                  state=RequestState(state) if state else None)
    _print_sent(sent, as_json, "Replied with")


@mail.command("task")
@click.argument("message_id", metavar="ID", callback=utf8_text("the message id"))
@json_option
@pass_ctx
@needs(Need.QUEUE)
def mail_task(ctx: Context, message_id: str, as_json: bool) -> None:
    """Make a request a queued task; the requester gets an accepted reply."""
    _taken_in(ctx)
    task = ctx.session.task_from_request(message_id, actor=ctx.caller.actor)
    if as_json:
        click.echo(dumps_json(task.to_json()))
        return
    click.echo(f"{task.id} ({task.state}): {literal(task.title)}; the requester was told it is accepted.")


@mail.command("decline")
@click.argument("message_id", metavar="ID", callback=utf8_text("the message id"))
@click.option("--note", required=True, callback=utf8_text("the note"), help="Why (sent to the requester).")
@json_option
@pass_ctx
@needs(Need.CANCEL)
def mail_decline(ctx: Context, message_id: str, note: str, as_json: bool) -> None:
    """Decline a request: a reply rejected, with the note, goes back."""
    _taken_in(ctx)
    sent = ctx.session.decline_request(message_id, note, actor=ctx.caller.actor)
    _print_sent(sent, as_json, "Declined with")


@mail.command("peers")
@json_option
@pass_ctx
@needs(Need.READ)
def mail_peers(ctx: Context, as_json: bool) -> None:
    """The peers in factory.toml: where, what their requests become, and whether they can be reached."""
    from factory_tui.backends.mail_peers import peer_status

    config = ctx.base.config()
    found = [peer_status(ctx.base.root, peer) for _, peer in sorted(config.peers.items())]
    if as_json:
        click.echo(dumps_json([status.to_json() for status in found]))
        return
    if not found:
        click.echo('No peers. Name one in .factory/factory.toml: [peers.NAME] path = "../other" or remote = "<git url>".')
        return
    width = max(4, *(len(status.peer.name) for status in found))
    click.echo(click.style(f"{'NAME':<{width}}  {'ACCEPT':<8}  {'REACHABLE':<9}  WHERE", bold=True))
    for status in found:
        where = status.peer.path if status.peer.path is not None else status.peer.remote
        reach = "yes" if status.reachable else "no"
        detail = "" if status.reachable else f" ({literal(status.detail)})"
        click.echo(f"{literal(status.peer.name):<{width}}  {status.peer.accept:<8}  {reach:<9}  "
                   f"{literal(str(where))}{detail}")


@mail.command("catch-up")
@json_option
@pass_ctx
@needs(Need.MAIL)
def mail_catch_up(ctx: Context, as_json: bool) -> None:
    """Take every message file of the mailbox and the sources into the log now."""
    started = time.monotonic()
    try:
        report = ctx.session.mail_catch_up()
    except OSError as error:
        raise FactoryError(f"the mailbox cannot be read: {error.strerror or error}") from None
    if as_json:
        click.echo(dumps_json(report.to_json()))
        return
    waiting = f", {len(report.waiting)} still being written" if report.waiting else ""
    click.echo(f"{report.new} new, {report.known} known, {report.quarantined} quarantined{waiting} "
               f"({time.monotonic() - started:.1f} s).")


from factory_tui.cli_mail_sync import mail_sync  # noqa: E402

mail.add_command(mail_sync)
