"""The mail screens: a thread (``enter`` in the Mail pane: its state, then
each message in order in its own box, its body as markdown), a quarantined
file (its reason, where it is, its text), the forms that write a
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
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from factory_tui.context import console
from factory_tui.errors import FactoryError
from factory_tui.keys import bindings
from factory_tui.mail_model import MessageKind
from factory_tui.mail_views import THREAD_EVENTS, THREAD_KEYS
from factory_tui.panes.feed import FeedListener
from factory_tui.screens.dialogs import FormDialog, NoteDialog, write_in_editor
from factory_tui.text import literal
from factory_tui.times import full_moment
from factory_tui.widgets.footer import ConsoleFooter
from factory_tui.widgets.transcript import TranscriptPane

if TYPE_CHECKING:
    from factory_tui.backends.feed import Changes
    from factory_tui.backends.mail_log import MailItem, Rejected
    from factory_tui.backends.mail_thread import RefusedFile, ThreadDetail



# --- which message a key acts on ----------------------------------------------------


def reply_target(items: Sequence[MailItem]) -> MailItem | None:
    """The latest message from someone else (else the latest: a thread of
    ours alone is answered to its recipients)."""
    theirs = [item for item in items if not item.ours]
    return (theirs or list(items))[-1] if items else None


def waiting_request(items: Sequence[MailItem]) -> MailItem | None:
    """The latest request from a peer not yet a task nor settled by a reply
    of ours (accepted or rejected: a question back leaves it waiting)."""
    answered = {item.in_reply_to for item in items if item.ours and item.state in ("accepted", "rejected")}
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
    """The line on a message's border: from → to, when, kind, importance
    (literal: nothing in it is markup)."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f" {literal(item.sender)}", style="bold")
    text.append(" → ")
    text.append(literal(", ".join(item.recipients)))
    text.append(f" · {full_moment(item.created)} · {item.kind}")
    if item.importance not in ("normal", "low"):
        text.append(f" · {item.importance}", style="bold")
    text.append(" ")
    return text


def message_badge(item: MailItem, detail: ThreadDetail | None = None) -> Text:
    """What the message says of a request or asks of us, and (ours) what
    became of its delivery: the line under its box."""
    parts: list[tuple[str, str]] = []
    if item.state:
        parts.append((f"state: {item.state}", "bold"))
    task = item.task_id or item.task
    if task:
        state = detail.task_states.get(task) if detail is not None else None
        parts.append((f"→ {task}" + (f" {state}" if state else ""), "bold"))
    if item.waiting_ack:
        parts.append(("asks for an ack: A acknowledges", "bold"))
    elif item.ack_required and item.acked_at is not None:
        parts.append(("acknowledged", ""))
    for delivery in detail.undelivered(item.key) if detail is not None else []:
        if delivery.state == "failed":
            said = f"✗ not delivered to {delivery.peer}"
            if delivery.last_error:
                said += f": {delivery.last_error}"
            parts.append((said, "bold"))
        else:
            parts.append((f"… on its way to {delivery.peer} (waits for a sync)", ""))
    text = Text(no_wrap=True, overflow="ellipsis")
    for n, (said, style) in enumerate(parts):
        text.append(" · " if n else " ")
        text.append(literal(said), style=style)
    if parts:
        text.append(" ")
    return text


def message_body(item: MailItem) -> RenderableType:
    """A message's body as markdown, safely: literal text (escapes and
    controls made visible), links shown as text."""
    return Markdown(literal(item.body, multiline=True) or "(no body)", hyperlinks=False)


def message_view(item: MailItem) -> RenderableType:
    """A message on its own (its header, subject and body), as `factory
    mail show` would print it."""
    return Group(message_header(item), Text(literal(item.subject), style="bold"), Text(""), message_body(item))


def thread_state(detail: ThreadDetail) -> Text:
    """The thread's line under its subject: how many messages, what waits
    for us, what became of its request, what is undelivered."""
    items = detail.items
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f" {len(items)} message{'s' if len(items) != 1 else ''}")
    request = waiting_request(items)
    if request is not None:
        text.append(" · ")
        text.append(f"{literal(request.sender)}'s request waits: t makes it a task, x declines", style="bold")
    linked = next((item for item in reversed(items) if item.kind == MessageKind.REQUEST and item.task_id), None)
    if linked is not None and linked.task_id:
        state = detail.task_states.get(linked.task_id, "")
        text.append(" · request ")
        text.append(f"→ {linked.task_id}" + (f" {state}" if state else ""), style="bold")
    elif request is None:
        answer = next((item for item in reversed(items) if item.state), None)
        if answer is not None:
            text.append(f" · request {answer.state}")
    if waiting_ack(items) is not None:
        text.append(" · ")
        text.append("an ack is asked: A acknowledges", style="bold")
    undelivered = sum(1 for item in items if detail.undelivered(item.key))
    if undelivered:
        text.append(" · ")
        text.append(f"{undelivered} of ours undelivered", style="bold")
    return text


class MessageBox(Static):
    """One message of a thread in its own box: ours to the right, theirs to
    the left; the border says who, when and what; the line under it, the
    request's state, its task and the delivery."""

    def __init__(self, item: MailItem, detail: ThreadDetail, *, unread: bool = False) -> None:
        classes = ["mail-message", "ours" if item.ours else "theirs"]
        if unread:
            classes.append("unread")
        if detail.undelivered(item.key):
            classes.append("undelivered")
        super().__init__(message_body(item), classes=" ".join(classes), markup=False)
        self.item = item
        self.border_title = message_header(item)
        badge = message_badge(item, detail)
        if badge.plain:
            self.border_subtitle = badge


class ThreadScroll(VerticalScroll):
    """The thread's messages, scrolled with the list keys and space."""

    BINDINGS = bindings("list.up", "list.down", "list.page-up", "list.page-down", "list.first", "list.last",
                        "mail.page")

    def action_cursor_up(self) -> None:
        self.scroll_up(animate=False)

    def action_cursor_down(self) -> None:
        self.scroll_down(animate=False)

    def action_page_up(self) -> None:
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        self.scroll_page_down(animate=False)

    def action_first(self) -> None:
        self.scroll_home(animate=False)

    def action_last(self) -> None:
        self.scroll_end(animate=False)


class ThreadScreen(Screen, FeedListener):
    """One thread, oldest message first, opened on its first unread message
    (else its newest); opening it marks it read. The footer offers only the
    keys that apply: t and x on a waiting request, A when an ack is asked.
    It follows the log: a message (ours or theirs) or a change of its
    request's task shows at once."""

    BINDINGS = bindings("screen.back", *THREAD_KEYS, show={"mail.ack": True, "mail.decline": True})

    @dataclass
    class Loaded(Message):
        detail: ThreadDetail

    def __init__(self, thread: str, subject: str = "") -> None:
        super().__init__()
        self.thread = thread
        self.subject = subject
        self.items: list[MailItem] | None = None
        self.detail: ThreadDetail | None = None
        self.unread: set[str] = set()
        # The message the screen opened on (tests look).
        self.opened_on: MailItem | None = None

    def compose(self) -> ComposeResult:
        yield Static(self._title(None), id="mail-title")
        yield ThreadScroll(Static("Reading the thread…", id="mail-empty", markup=False), id="mail-thread")
        yield ConsoleFooter()

    def _title(self, detail: ThreadDetail | None) -> Text:
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append(f" {literal(self.subject)}", style="bold")
        title.append(f"   thread {literal(self.thread)}", style="dim")
        if detail is not None:
            title.append("\n")
            title.append_text(thread_state(detail))
        return title

    def on_mount(self) -> None:
        self.query_one(ThreadScroll).focus()
        self.load()

    @work(thread=True, exclusive=True, group="mail-thread", exit_on_error=False)
    def load(self) -> None:
        context = console(self)
        detail = context.session.mail_thread_detail(self.thread)
        self.post_message(self.Loaded(detail))
        unread = [item.key for item in detail.items if item.read_at is None]
        if unread:
            context.session.mark_mail_read(unread, actor=context.actor)

    @on(Loaded)
    async def _loaded(self, message: Loaded) -> None:
        first_load = self.detail is None
        detail = message.detail
        # Unread when the screen opened, or come in since: marked while it is open.
        self.unread |= {item.key for item in detail.items if item.read_at is None and not item.ours}
        self.detail = detail
        self.items = detail.items
        self.query_one("#mail-title", Static).update(self._title(detail))
        box = self.query_one(ThreadScroll)
        at = box.scroll_y
        at_end = 0 < box.max_scroll_y <= box.scroll_y
        with self.app.batch_update():
            await box.remove_children()
            if not detail.items:
                await box.mount(Static("No message in this thread.", markup=False))
            else:
                await box.mount_all([MessageBox(item, detail, unread=item.key in self.unread) for item in detail.items])
        self.refresh_bindings()
        if first_load:
            self.opened_on = next((item for item in detail.items if item.read_at is None and not item.ours),
                                  detail.items[-1] if detail.items else None)
            self.call_after_refresh(self._show_opening)
        elif at_end:
            # Reading the end of the thread: what came in shows.
            self.call_after_refresh(box.scroll_end, animate=False)
        else:
            self.call_after_refresh(box.scroll_to, y=at, animate=False)

    def log_changed(self, changes: Changes) -> None:
        tasks = set(self.detail.task_states) if self.detail is not None else set()
        # Not on mail_read: what was unread when it opened stays marked.
        if any(event.kind in THREAD_EVENTS or (event.task_id in tasks and event.to_state) for event in changes.events):
            self.load()

    def _show_opening(self) -> None:
        box = self.query_one(ThreadScroll)
        target = next((child for child in box.query(MessageBox) if child.item is self.opened_on), None)
        if target is None:
            return
        if self.opened_on is not None and self.items and self.opened_on is self.items[-1]:
            box.scroll_end(animate=False)
        else:
            box.scroll_to_widget(target, top=True, animate=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide (from the footer, and do nothing on) a key that does not
        apply to this thread."""
        items = self.items
        if action in ("task_from_request", "decline"):
            return items is not None and waiting_request(items) is not None
        if action == "acknowledge":
            return items is not None and waiting_ack(items) is not None
        if action == "reply":
            return bool(items)
        return True

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


class RefusedFileScreen(Screen):
    """A file refused as no message (``enter`` on a quarantined row): why,
    where it is now, and the file itself as text, literally, in a virtual
    view (a link is never followed, a binary file never shown)."""

    BINDINGS = bindings("screen.back")

    @dataclass
    class Found(Message):
        refused: RefusedFile

    def __init__(self, rejected: Rejected) -> None:
        super().__init__()
        self.rejected = rejected
        self.refused: RefusedFile | None = None

    def compose(self) -> ComposeResult:
        yield Static(self._title(None), id="mail-refused-title")
        yield Vertical(Static("Looking for the file…", id="mail-refused-empty", markup=False), id="mail-refused-body")
        yield ConsoleFooter()

    def _title(self, refused: RefusedFile | None) -> Text:
        rejected = self.rejected
        title = Text()
        title.append(" ✗ quarantined: ", style="bold")
        title.append(literal(rejected.reason))
        title.append(f"\n arrived as {literal(rejected.path)}", style="dim")
        if refused is not None:
            title.append("\n ")
            if refused.path is not None:
                title.append(f"now {literal(refused.shown)}", style="bold")
                title.append("  (with its reason beside it, NAME.reason)" if rejected.box in ("inbox", "outbox")
                             else f"  (left where it is: source {literal(rejected.box)} is read-only)", style="dim")
            if refused.note:
                title.append(f"{'; ' if refused.path is not None else ''}{literal(refused.note)}", style="dim")
        return title

    def on_mount(self) -> None:
        self.find()

    @work(thread=True, exclusive=True, group="mail-refused", exit_on_error=False)
    def find(self) -> None:
        self.post_message(self.Found(console(self).session.mail_refused_file(self.rejected)))

    @on(Found)
    async def _found(self, message: Found) -> None:
        refused = message.refused
        self.refused = refused
        self.query_one("#mail-refused-title", Static).update(self._title(refused))
        if not refused.text or refused.path is None:
            self.query_one("#mail-refused-empty", Static).update("Nothing to show of its contents.")
            return
        body = self.query_one("#mail-refused-body", Vertical)
        await body.remove_children()
        view = TranscriptPane(refused.path, id="mail-refused-file")
        view.border_title = "The file as it is (nothing in it is interpreted)"
        await body.mount(view)
        view.view.focus()


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
