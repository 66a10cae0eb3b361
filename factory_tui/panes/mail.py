"""The Mail pane (5): threads with other factories, the latest activity
first, and the files refused as no message among them.

The first page of threads is read through the session in a worker (more as
the cursor nears its end), again when a ``mail_*`` event arrives in the log
feed; the same read gives the header its unread and waiting counts, and a
request that has just arrived is said like a task awaiting review (as
``[console] notify/bell`` allow). ``enter`` opens the thread (or, on a
quarantined file, the file and why it was refused); ``r``, ``n``, ``t``,
``A`` and ``x`` reply, write, make a task of a request, acknowledge and
decline (screens/mail.py), the footer offering only those that apply to
the row under the cursor; ``/`` filters by words. With no mail, the pane
says how mail arrives and how to name a peer.

While no engine runs on the base, the console takes mail in itself
(console_mail.py), in a worker of this pane.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import on, work
from textual.message import Message
from textual.widget import Widget
from textual.worker import get_current_worker

from factory_tui.attention import mail_notices
from factory_tui.console_mail import ConsoleIntake
from factory_tui.context import console
from factory_tui.keys import bindings
from factory_tui.mail_views import MAIL_EVENTS, THREAD_KEYS
from factory_tui.panes.feed import FeedListener
from factory_tui.text import literal
from factory_tui.widgets.header import FactoryHeader
from factory_tui.widgets.mail_table import MailRow, MailTable

if TYPE_CHECKING:
    from factory_tui.backends.feed import Changes, Snapshot
    from factory_tui.backends.mail_log import MailCounts

# Threads read at first, and how many more each time the cursor nears the end.
PAGE = 200
# Refused files listed at most.
REJECTED_ROWS = 100
MAIL_KINDS = MAIL_EVENTS


class MailPane(MailTable, FeedListener):
    # t, A and x show in the footer only where they apply (check_action).
    BINDINGS = bindings("mail.open", *THREAD_KEYS, show={"mail.ack": True, "mail.decline": True})

    @dataclass
    class Loaded(Message):
        rows: list[MailRow]
        total: int
        counts: MailCounts

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.peers: list[str] = []
        self.limit = PAGE
        self.words: tuple[str, ...] = ()
        self.counts: MailCounts | None = None
        self.intake: ConsoleIntake | None = None
        self._stop = threading.Event()
        self._intake_started = False

    def on_mount(self) -> None:
        context = console(self)
        self.now = context.clock()
        self.peers = sorted(context.session.config.peers)

    def empty_text(self) -> str:
        if not self.loaded:
            return "Reading the mail…"
        if self.words:
            return f"No thread holds every word of {' '.join(self.words)!r} (esc clears the filter)."
        # Short lines: the pane is often a third of the screen wide.
        lines = ["No mail yet. A peer's mail lands in .factory/mailbox/inbox/",
                 "(its `factory mail send --to NAME`, or `factory mail sync`)."]
        if self.peers:
            lines.append(f"n writes to a peer ({', '.join(literal(name) for name in self.peers)}).")
        else:
            lines += ["No peers yet: name one in .factory/factory.toml,",
                      '  [peers.NAME] path = "../repo"  (or remote = "git url"),',
                      "then n writes to it."]
        return "\n".join(lines)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer (in the footer) only what applies to the row under the
        cursor: t and x on a waiting request, A where an ack is asked."""
        row = self.selected_row
        thread = row.thread if row is not None else None
        if action in ("task_from_request", "decline"):
            return thread is not None and thread.waiting_request
        if action == "acknowledge":
            return thread is not None and thread.waiting_ack
        if action == "reply":
            return thread is not None
        return True

    def on_unmount(self) -> None:
        self._stop.set()

    # --- from the log -------------------------------------------------------------

    def log_loaded(self, snapshot: Snapshot) -> None:
        self.call_after_refresh(self.load)  # after the first frame, not beside it

    def log_changed(self, changes: Changes) -> None:
        if any(event.kind in MAIL_KINDS for event in changes.events):
            self.load()
        found = mail_notices(changes.events)
        if found:
            config = console(self).session.config.console
            if config.notify:
                for notice in found:
                    self.notify(literal(notice.text), title="Mail", timeout=8, markup=False)
            if config.bell:
                self.app.bell()

    @work(thread=True, exclusive=True, group="mail-load", exit_on_error=False)
    def load(self) -> None:
        session = console(self).session
        page = session.mail_thread_page(self.limit, self.words)
        words = [word.lower() for word in self.words]
        rejected = [item for item in session.mail_rejected(REJECTED_ROWS)
                    if all(word in f"{item.path} {item.reason}".lower() for word in words)]
        rows = [MailRow(thread=thread) for thread in page.threads] + [MailRow(rejected=item) for item in rejected]
        counts = session.mail_counts()
        if not get_current_worker().is_cancelled:  # a newer read is under way
            self.post_message(self.Loaded(rows, page.total, counts))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.now = console(self).clock()
        self.set_rows(message.rows, total=message.total)
        if not self._intake_started:
            # After the first rows, not beside their read: the intake's
            # catch-up would slow the pane's first frame over a large log.
            self._intake_started = True
            self.take_mail_in()
        self.counts = message.counts
        self.refresh_bindings()
        for header in self.screen.query(FactoryHeader):
            header.mail = message.counts
        pane = self.parent
        if isinstance(pane, Widget):
            pane.border_title = f"5 Mail · {self._title_counts(message.total)}"

    def _title_counts(self, total: int) -> str:
        counts = self.counts
        parts = [f"{total} thread{'s' if total != 1 else ''}"]
        if counts is not None:
            if counts.unread:
                parts.append(f"{counts.unread} unread")
            if counts.undelivered:
                parts.append(f"{counts.undelivered} undelivered")
            if counts.quarantined:
                parts.append(f"{counts.quarantined} quarantined")
        return " · ".join(parts)

    def watch_cursor(self, old: int, new: int) -> None:
        super().watch_cursor(old, new)
        self.refresh_bindings()
        # Near the end of the page read: read a longer one.
        threads = sum(1 for row in self.rows if row.thread is not None)
        if self.loaded and threads < self.total and new >= len(self.rows) - self.page_height:
            if self.limit <= threads:
                self.limit += PAGE
                self.load()

    # --- the console's own intake ----------------------------------------------------

    @work(thread=True, group="mail-intake", exit_on_error=False)
    def take_mail_in(self) -> None:
        context = console(self)
        host = context.engine

        def engine_runs() -> bool:
            return host.refresh() != "none"

        def report(line: str) -> None:
            if "stopped" in line or "trying again" in line or "could not" in line:
                self.notify(literal(line), severity="warning", timeout=6, markup=False)

        self.intake = ConsoleIntake(context.session, engine_runs, report=report)
        self.intake.run(self._stop)

    # --- the filter -------------------------------------------------------------------

    def apply_filter(self, text: str) -> None:
        words = tuple(text.split())
        if words == self.words:
            return
        self.words = words
        self.limit = PAGE
        self.load()

    # --- keys -------------------------------------------------------------------------

    def _thread(self) -> str | None:
        row = self.selected_row
        if row is None or row.thread is None:
            if row is not None and row.rejected is not None:
                self.notify("A quarantined file is no message: enter shows it and why.",
                            severity="warning", timeout=4)
            else:
                self.notify("No thread under the cursor.", severity="warning", timeout=3)
            return None
        return row.thread.thread

    def action_open_thread(self) -> None:
        row = self.selected_row
        if row is not None and row.rejected is not None:
            from factory_tui.screens.mail import RefusedFileScreen

            self.app.push_screen(RefusedFileScreen(row.rejected))
            return
        thread = self._thread()
        if thread is None or row is None or row.thread is None:
            return
        from factory_tui.screens.mail import ThreadScreen

        self.app.push_screen(ThreadScreen(thread, row.thread.subject))

    def on_double_click(self) -> None:
        self.action_open_thread()

    def action_reply(self) -> None:
        thread = self._thread()
        if thread is not None:
            from factory_tui.screens.mail import reply_in

            reply_in(self, thread)

    def action_new_mail(self) -> None:
        from factory_tui.screens.mail import new_mail

        new_mail(self)

    def action_task_from_request(self) -> None:
        thread = self._thread()
        if thread is not None:
            from factory_tui.screens.mail import task_from

            task_from(self, thread, after=self.load)

    def action_acknowledge(self) -> None:
        thread = self._thread()
        if thread is not None:
            from factory_tui.screens.mail import acknowledge

            acknowledge(self, thread, after=self.load)

    def action_decline(self) -> None:
        thread = self._thread()
        if thread is not None:
            from factory_tui.screens.mail import decline

            decline(self, thread, after=self.load)
