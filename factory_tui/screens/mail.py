"""The mail screens: a thread (``enter`` in the Mail pane: each message in
order, its header and its body as markdown), the forms that write a
message (a reply, a new message to a peer) and what the mail keys do (reply,
new, task from a request, acknowledge, decline), shared by the pane and the
thread screen.

Every read and write goes through the session in a worker; the outcome
comes back as a notification, an error as its one line. A message's text
is shown literally: its body is rendered as markdown from ``literal`` text,
with links shown as text (nothing in a message opens anything), and no
markup or escape in it is interpreted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, Label, Select, Static, TextArea

from factory_tui.context import console
from factory_tui.errors import FactoryError
from factory_tui.keys import bindings
from factory_tui.mail_model import MessageKind
from factory_tui.screens.dialogs import FormDialog, NoteDialog, write_in_editor
from factory_tui.text import literal
from factory_tui.times import full_moment

if TYPE_CHECKING:
    from factory_tui.backends.mail_log import MailItem

# The keys of a thread wherever it shows (the pane, the thread's screen).
THREAD_KEYS = ("mail.reply", "mail.new", "mail.task", "mail.ack", "mail.decline")


# --- which message a key acts on ----------------------------------------------------


def reply_target(items: Sequence[MailItem]) -> MailItem | None:
    """The latest message from someone else (else the latest: a thread of
    ours alone is answered to its recipients)."""
    theirs = [item for item in items if not item.ours]
    return (theirs or list(items))[-1] if items else None


def waiting_request(items: Sequence[MailItem]) -> MailItem | None:
    """The latest request from a peer not yet a task nor answered by us."""
    answered = {item.in_reply_to for item in items if item.ours}
    for item in reversed(items):
        if item.kind == MessageKind.REQUEST and not item.ours and item.task_id is None and item.key not in answered:
            return item
    return None


def waiting_ack(items: Sequence[MailItem]) -> MailItem | None:
    return next((item for item in reversed(items) if item.waiting_ack), None)


# --- the keys -------------------------------------------------------------------------


def with_thread(where: Widget | Screen, thread: str, then: Callable[[list[MailItem]], None]) -> None:
    """Read ``thread``'s messages in a worker, then call ``then`` with them
    on the event loop."""
    def read() -> None:
        items = console(where).session.mail_thread(thread)
        where.app.call_from_thread(then, items)

    where.run_worker(read, thread=True, group="mail-read", exit_on_error=False)


def mail_call(where: Widget | Screen, call: Callable[[], str], *, after: Callable[[], object] | None = None) -> None:
    """Run ``call`` (a session write) in a worker; notify what it returns,
    or its error's one line; then ``after`` on the event loop."""
    def run() -> None:
        try:
            said = call()
        except FactoryError as error:
            where.notify(literal(str(error)), severity="error", timeout=6, markup=False)
            return
        where.notify(literal(said), timeout=5, markup=False)
        if after is not None:
            where.app.call_from_thread(after)

    where.run_worker(run, thread=True, group="mail-write", exit_on_error=False)


def reply_in(where: Widget | Screen, thread: str) -> None:
    def open_form(items: list[MailItem]) -> None:
        target = reply_target(items)
        if target is None:
            where.notify("Nothing in this thread to answer.", severity="warning", timeout=3)
            return
        where.app.push_screen(MailForm(reply_to=target))

    with_thread(where, thread, open_form)


def new_mail(where: Widget | Screen) -> None:
    where.app.push_screen(MailForm())


def task_from(where: Widget | Screen, thread: str, *, after: Callable[[], object] | None = None) -> None:
    def make(items: list[MailItem]) -> None:
        request = waiting_request(items)
        if request is None:
            where.notify("No request waits in this thread.", severity="warning", timeout=3)
            return
        context = console(where)

        def call() -> str:
            task = context.session.task_from_request(request.key, actor=context.actor)
            return f"{task.id}: {task.title} (from {request.sender}'s request; they hear it was accepted)"

        mail_call(where, call, after=after)

    with_thread(where, thread, make)


def acknowledge(where: Widget | Screen, thread: str, *, after: Callable[[], object] | None = None) -> None:
    def ack(items: list[MailItem]) -> None:
        wanted = waiting_ack(items)
        if wanted is None:
            where.notify("Nothing in this thread waits for an acknowledgement.", severity="warning", timeout=3)
            return
        context = console(where)

        def call() -> str:
            context.session.ack_mail(wanted.key, actor=context.actor)
            return f"Acknowledged {wanted.sender}'s {wanted.subject}"

        mail_call(where, call, after=after)

    with_thread(where, thread, ack)


def decline(where: Widget | Screen, thread: str, *, after: Callable[[], object] | None = None) -> None:
    def ask(items: list[MailItem]) -> None:
        request = waiting_request(items)
        if request is None:
            where.notify("No request waits in this thread.", severity="warning", timeout=3)
            return
        context = console(where)

        def send(note: str | None) -> None:
            if note is None:
                return
            if not note.strip():
                where.notify("A decline says why: nothing was sent.", severity="warning", timeout=4)
                return

            def call() -> str:
                context.session.decline_request(request.key, note, actor=context.actor)
                return f"Declined {request.sender}'s request: {request.subject}"

            mail_call(where, call, after=after)

        where.app.push_screen(
            NoteDialog(f"Decline {request.sender}'s request", request.subject,
                       placeholder="Why (it goes back to them in the reply)", submit="Decline"),
            send,
        )

    with_thread(where, thread, ask)


# --- the thread -------------------------------------------------------------------------


def message_header(item: MailItem) -> Text:
    """From, to, when, kind, state and task: one line each part, literal."""
    text = Text()
    text.append(literal(item.sender), style="bold")
    text.append(" → ")
    text.append(literal(", ".join(item.recipients)))
    text.append(f"   {full_moment(item.created)}", style="dim")
    parts = [item.kind]
    if item.importance not in ("normal", "low"):
        parts.append(item.importance)
    if item.state:
        parts.append(item.state)
    if item.task or item.task_id:
        parts.append(f"task {item.task_id or item.task}")
    if item.waiting_ack:
        parts.append("waits for your ack (A)")
    text.append("\n" + literal(" · ".join(parts)), style="dim")
    text.append("\n" + literal(item.subject), style="bold" if item.read_at is None else "")
    return text


def message_view(item: MailItem) -> RenderableType:
    """A message: its header, then its body as markdown, safely: literal
    text (escapes and controls made visible), links shown as text."""
    body = Markdown(literal(item.body, multiline=True) or "(no body)", hyperlinks=False)
    return Group(message_header(item), Text(""), body)


class ThreadScreen(Screen):
    """One thread, oldest message first; opening it marks it read."""

    BINDINGS = bindings("screen.back", *THREAD_KEYS)

    @dataclass
    class Loaded(Message):
        items: list[MailItem]

    def __init__(self, thread: str, subject: str = "") -> None:
        super().__init__()
        self.thread = thread
        self.subject = subject
        self.items: list[MailItem] | None = None

    def compose(self) -> ComposeResult:
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append(f" {literal(self.subject)}", style="bold")
        title.append(f"   thread {literal(self.thread)}", style="dim")
        yield Static(title, id="mail-title")
        yield VerticalScroll(Static("Reading the thread…", id="mail-empty", markup=False), id="mail-thread")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="mail-thread", exit_on_error=False)
    def load(self) -> None:
        context = console(self)
        items = context.session.mail_thread(self.thread)
        self.post_message(self.Loaded(items))
        unread = [item.key for item in items if item.read_at is None]
        if unread:
            context.session.mark_mail_read(unread, actor=context.actor)

    @on(Loaded)
    async def _loaded(self, message: Loaded) -> None:
        self.items = message.items
        box = self.query_one("#mail-thread", VerticalScroll)
        await box.remove_children()
        await box.mount_all([Static(message_view(item), classes="mail-message", markup=False)
                             for item in message.items])
        box.focus()

    def action_reply(self) -> None:
        reply_in(self, self.thread)

    def action_new_mail(self) -> None:
        new_mail(self)

    def action_task_from_request(self) -> None:
        task_from(self, self.thread, after=self.load)

    def action_acknowledge(self) -> None:
        acknowledge(self, self.thread, after=self.load)

    def action_decline(self) -> None:
        decline(self, self.thread, after=self.load)


# --- writing ---------------------------------------------------------------------------


class MailForm(FormDialog[bool | None]):
    """A reply (``reply_to``) or a new message to a peer: to (a peer from
    factory.toml), subject, kind (note or request) and body; ctrl+e writes
    the body in $EDITOR. It sends through the session in a worker and stays
    open with what was typed when the session refuses."""

    BINDINGS = bindings("form.create", "form.cancel", "note.editor")

    def __init__(self, *, reply_to: MailItem | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.reply_to = reply_to

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog new-task mail-form"):
            original = self.reply_to
            if original is not None:
                yield Static(Text(literal(f"Reply to {original.sender}: {original.subject}")), classes="dialog-title")
            else:
                yield Static("New message", classes="dialog-title")
                peers = sorted(console(self).session.config.peers)
                with Horizontal(classes="form-row"):
                    with Vertical():
                        yield Label("To (a peer in factory.toml)")
                        yield Select([(literal(name), name) for name in peers], id="to",
                                     prompt="no peers in factory.toml" if not peers else "Select a peer",
                                     value=peers[0] if len(peers) == 1 else Select.BLANK)
                    with Vertical():
                        yield Label("Kind")
                        yield Select([(kind.value, kind.value) for kind in (MessageKind.NOTE, MessageKind.REQUEST)],
                                     value=MessageKind.NOTE.value, allow_blank=False, id="kind")
                yield Label("Subject")
                yield Input(id="subject", placeholder="What it is about")
            yield Label("Body (markdown)")
            yield TextArea(id="body", soft_wrap=True)
            yield Static("ctrl+e: write the body in $EDITOR", classes="dialog-hint", markup=False)
            yield Static("", id="form-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Send (ctrl+s)", id="create", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        if self.reply_to is None:
            self.query_one("#subject", Input).focus()
        else:
            self.query_one("#body", TextArea).focus()

    def action_editor(self) -> None:
        write_in_editor(self, self.query_one("#body", TextArea))

    @on(Button.Pressed, "#create")
    def action_submit(self) -> None:
        body = self.query_one("#body", TextArea).text
        if self.reply_to is not None:
            self.send_reply(self.reply_to.key, body)
            return
        to = self.query_one("#to", Select).value
        subject = self.query_one("#subject", Input).value
        if not isinstance(to, str):
            self.show_error("choose a peer to write to")
            return
        if not subject.strip():
            self.show_error("a message needs a subject")
            return
        self.show_error("")
        self.send_new(to, subject.strip(), body, MessageKind(str(self.query_one("#kind", Select).value)))

    @work(thread=True, exclusive=True, group="mail-send", exit_on_error=False)
    def send_new(self, to: str, subject: str, body: str, kind: MessageKind) -> None:
        context = console(self)
        try:
            context.session.send_mail([to], subject, body, kind=kind, actor=context.actor)
        except FactoryError as error:
            self.app.call_from_thread(self.show_error, str(error))
            return
        self.notify(literal(f"Sent {kind} to {to}: {subject}"), timeout=4, markup=False)
        self.app.call_from_thread(self.dismiss, True)

    @work(thread=True, exclusive=True, group="mail-send", exit_on_error=False)
    def send_reply(self, key: str, body: str) -> None:
        context = console(self)
        try:
            sent = context.session.reply_mail(key, body, actor=context.actor)
        except FactoryError as error:
            self.app.call_from_thread(self.show_error, str(error))
            return
        self.notify(literal(f"Replied to {', '.join(sent.message.to)}: {sent.message.subject}"), timeout=4,
                    markup=False)
        self.app.call_from_thread(self.dismiss, True)
