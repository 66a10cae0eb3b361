"""The console's mail: the Mail pane over real message files in a real
base (a second base beside it as the peer), the thread screen, the mail
keys against the real session, the header's counts, the notice of a new
request, and the console's own intake when no engine runs."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from rich.console import Console
from textual.widgets import Input, Select, TextArea

from factory_tui.app import FactoryApp
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.mail_ingest import MailIngest
from factory_tui.backends.mailbox import put
from factory_tui.mail_model import Importance, MessageKind, new_message
from factory_tui.panes.mail import MailPane
from factory_tui.screens.dialogs import NoteDialog
from factory_tui.screens.mail import MailForm, ThreadScreen, message_view
from tests.console_helpers import ready, wait_until
from tests.mail_helpers import two_factories

AT = datetime(2026, 11, 29, 13, 0, 0, tzinfo=UTC)
NOW = AT.timestamp() + 3600


def mail_pane(app: FactoryApp) -> MailPane:
    return app.panes[5].body  # type: ignore[return-value]


def row_text(pane: MailPane, index: int, width: int = 150) -> str:
    return "".join(segment.text for segment in pane.render_row(index, width))


def subject_bold(pane: MailPane, index: int, subject: str) -> bool:
    segment = next(s for s in pane.render_row(index, 150) if subject in s.text)
    return bool(segment.style and segment.style.bold)


def arrive(base, sender: str, subject: str, body: str = "", *, minutes: int = 0, **knobs):
    message = new_message(sender, [base.config().name], subject, body, created=AT + timedelta(minutes=minutes), **knobs)
    put(base.inbox_dir, message)
    return message


def console_app(base) -> FactoryApp:
    return FactoryApp(base, engine=False, clock=lambda: NOW)


async def test_threads_newest_first_unread_bold_marks_and_a_quarantined_row(tmp_path):
    shop, _mill = two_factories(tmp_path)
    arrive(shop, "mill", "Old news", minutes=0)
    arrive(shop, "mill", "Need 40 crates", "By Friday.", minutes=10, kind=MessageKind.REQUEST,
           importance=Importance.URGENT)
    month = shop.inbox_dir / "2026" / "11"
    (month / "2026-11-29T14-00-00Z__broken__x.md").write_text("---\nid: [\n---\n")
    import os
    os.utime(month / "2026-11-29T14-00-00Z__broken__x.md", (1, 1))
    app = console_app(shop)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = mail_pane(app)
        await wait_until(pilot, lambda: len(pane.rows) == 3, "two threads and the refused file")
        texts = [row_text(pane, n) for n in range(3)]
        request = next(n for n, text in enumerate(texts) if "Need 40 crates" in text)
        old = next(n for n, text in enumerate(texts) if "Old news" in text)
        broken = next(n for n, text in enumerate(texts) if "quarantined" in text)
        assert request < old  # the latest activity first
        assert "?‼" in texts[request] and "request waits" in texts[request] and "mill" in texts[request]
        assert subject_bold(pane, request, "Need 40 crates")
        assert "broken" in texts[broken] and "✗" in texts[broken]
        assert (shop.quarantine_dir / "2026-11-29T14-00-00Z__broken__x.md.reason").exists()
        await wait_until(pilot, lambda: app.header.mail is not None and app.header.mail.unread == 2, "the header's counts")
        assert app.header.mail.waiting_requests == 1
        header = app.header.render().plain
        assert "✉ 2 unread · 1 request" in header
        assert "quarantined" in (app.panes[5].border_title or "")


async def test_the_header_keeps_mail_counts_at_80_columns(tmp_path):
    shop, _mill = two_factories(tmp_path)
    arrive(shop, "mill", "Need crates", kind=MessageKind.REQUEST)
    app = console_app(shop)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await wait_until(pilot, lambda: app.header.mail is not None and app.header.mail.unread == 1, "the counts")
        line = app.header.render()
        assert line.cell_len <= 80
        assert "✉1·1req" in line.plain or "✉ 1 unread · 1 request" in line.plain


async def test_opening_a_thread_shows_it_in_order_and_marks_it_read(tmp_path):
    shop, _mill = two_factories(tmp_path)
    first = arrive(shop, "mill", "Crates", "First [bold]x[/] and \x1b[31mred\x1b[0m", minutes=0)
    app = console_app(shop)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = mail_pane(app)
        await wait_until(pilot, lambda: len(pane.rows) == 1, "the thread")
        pane.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ThreadScreen) and app.screen.items is not None,
                         "the thread screen")
        assert [item.id for item in app.screen.items] == [first.id]
        with ExecutionLog.open(shop.log_path) as log:
            await wait_until(pilot, lambda: log.mail_message(first.id).read_at is not None, "the message marked read")
        await wait_until(pilot, lambda: not subject_bold(pane, 0, "Crates"), "the row no longer bold")
        await pilot.press("escape")
        assert not isinstance(app.screen, ThreadScreen)


def test_a_body_is_markdown_with_nothing_in_it_interpreted(tmp_path):
    shop, _mill = two_factories(tmp_path)
    arrive(shop, "mill", "[red]Sub[/]", "# Title\n\n[bold]x[/] and \x1b[31mred\x1b[0m [link](http://example.com)")
    with ExecutionLog.open(shop.log_path) as log:
        MailIngest(shop, log, shop.config()).catch_up()
        item = log.mail_messages()[0]
    console = Console(width=100, record=True, force_terminal=False)
    console.print(message_view(item))
    text = console.export_text()
    assert "[bold]x[/]" in text and "[red]Sub[/]" in text
    assert "\x1b" not in text and "␛[31m" in text
    assert "http://example.com" in text  # a link is text, not something to open


async def test_a_new_message_reaches_the_pane_through_the_consoles_own_intake(tmp_path):
    shop, _mill = two_factories(tmp_path)
    app = console_app(shop)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = mail_pane(app)
        await wait_until(pilot, lambda: pane.loaded and pane.intake is not None and pane.intake.active,
                         "the console taking mail in (no engine runs)")
        assert pane.rows == []
        arrive(shop, "mill", "Fresh off the saw", kind=MessageKind.REQUEST)
        await wait_until(pilot, lambda: len(pane.rows) == 1, "the new message's row")
        assert "Fresh off the saw" in row_text(pane, 0)
        await wait_until(pilot, lambda: any("mill asks: Fresh off the saw" in str(n.message)
                                            for n in app._notifications), "the request's notice")


async def test_the_filter_keeps_the_threads_with_every_word(tmp_path):
    shop, _mill = two_factories(tmp_path)
    arrive(shop, "mill", "Crates", "pine boards", minutes=0)
    arrive(shop, "mill", "Invoice", "for october", minutes=5)
    app = console_app(shop)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = mail_pane(app)
        await wait_until(pilot, lambda: len(pane.rows) == 2, "two threads")
        pane.focus()
        await pilot.press("slash")
        for key in "pine":
            await pilot.press(key)
        await wait_until(pilot, lambda: len(pane.rows) == 1, "one thread left")
        assert "Crates" in row_text(pane, 0) and pane.total == 1
        await pilot.press("escape")
        await wait_until(pilot, lambda: len(pane.rows) == 2, "both threads again")


async def fill_and_send(pilot, app: FactoryApp, body: str, *, subject: str | None = None, kind: str | None = None) -> None:
    await wait_until(pilot, lambda: isinstance(app.screen, MailForm), "the mail form")
    form = app.screen
    if subject is not None:
        form.query_one("#subject", Input).value = subject
    if kind is not None:
        form.query_one("#kind", Select).value = kind
    form.query_one("#body", TextArea).load_text(body)
    await pilot.press("ctrl+s")
    await wait_until(pilot, lambda: not isinstance(app.screen, MailForm), "the form sent and closed")


async def test_n_writes_to_a_peer_and_r_replies_in_the_thread(tmp_path):
    shop, mill = two_factories(tmp_path)
    app = console_app(shop)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = mail_pane(app)
        await wait_until(pilot, lambda: pane.loaded, "the first read")
        pane.focus()
        await pilot.press("n")
        await fill_and_send(pilot, app, "Forty, by Friday.", subject="Need crates", kind="request")
        delivered = sorted(mill.inbox_dir.rglob("*.md"))
        assert len(delivered) == 1 and "Need crates" in delivered[0].read_text()
        await wait_until(pilot, lambda: len(pane.rows) == 1, "our message's thread")
        # The mill answers; the console takes it in; we reply to the answer.
        with ExecutionLog.open(shop.log_path) as log:
            ours = log.mail_messages()[0]
        from factory_tui.backends.session import FactorySession
        with FactorySession(mill) as theirs:
            theirs.mail_catch_up()
            theirs.reply_mail(ours.key, "Can do.", actor="cli:mill")
        await wait_until(pilot, lambda: pane.rows and pane.rows[0].thread is not None and pane.rows[0].thread.count == 2,
                         "the answer in the thread")
        await pilot.press("r")
        await fill_and_send(pilot, app, "Thanks!")
        bodies = [path.read_text() for path in mill.inbox_dir.rglob("*.md")]
        assert any("Thanks!" in text and ours.key in text for text in bodies)


async def test_t_makes_a_task_of_a_request_and_a_acknowledges(tmp_path):
    shop, mill = two_factories(tmp_path)
    request = arrive(shop, "mill", "Paint the fence", "White.", kind=MessageKind.REQUEST, minutes=0)
    note = arrive(shop, "mill", "Read this", "Please confirm.", ack_required=True, minutes=5)
    app = console_app(shop)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = mail_pane(app)
        await wait_until(pilot, lambda: len(pane.rows) == 2, "two threads")
        pane.focus()
        at = next(n for n in range(2) if "Paint the fence" in row_text(pane, n))
        pane.cursor = at
        await pilot.press("t")
        with ExecutionLog.open(shop.log_path) as log:
            await wait_until(pilot, lambda: log.mail_message(request.id).task_id is not None, "the request linked to a task")
            task = log.get_task(log.mail_message(request.id).task_id)
            assert "Paint the fence" in task.title
        accepted = [p.read_text() for p in mill.inbox_dir.rglob("*.md")]
        assert any("accepted" in text for text in accepted)
        pane.cursor = next(n for n in range(2) if "Read this" in row_text(pane, n))
        await pilot.press("A")
        with ExecutionLog.open(shop.log_path) as log:
            await wait_until(pilot, lambda: log.mail_message(note.id).acked_at is not None, "the message acknowledged")


async def test_x_declines_a_request_with_a_note(tmp_path):
    shop, mill = two_factories(tmp_path)
    request = arrive(shop, "mill", "Paint the barn", kind=MessageKind.REQUEST)
    app = console_app(shop)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = mail_pane(app)
        await wait_until(pilot, lambda: len(pane.rows) == 1, "the request")
        pane.focus()
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, NoteDialog), "the note dialog")
        app.screen.text_area.load_text("No paint left.")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: any("No paint left." in p.read_text() for p in mill.inbox_dir.rglob("*.md")),
                         "the decline delivered")
        text = next(p.read_text() for p in mill.inbox_dir.rglob("*.md") if "No paint left." in p.read_text())
        assert "rejected" in text and request.id in text
        await wait_until(pilot, lambda: "request waits" not in row_text(pane, 0), "the request no longer waiting")


async def test_a_key_that_does_not_apply_is_hidden_and_does_nothing(tmp_path):
    shop, _mill = two_factories(tmp_path)
    arrive(shop, "mill", "Just a note")
    app = console_app(shop)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane = mail_pane(app)
        await wait_until(pilot, lambda: len(pane.rows) == 1, "the note")
        pane.focus()
        await pilot.pause()
        shown = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled and b.binding.show}
        assert "reply" in shown and not {"task_from_request", "decline", "acknowledge"} & shown
        await pilot.press("t", "x", "enter")
        # Keys are handled in order: once enter has opened the thread, t and
        # x have been handled too, and neither asked for a note.
        await wait_until(pilot, lambda: isinstance(app.screen, ThreadScreen), "the thread opened by enter")
        assert not any(isinstance(screen, NoteDialog) for screen in app.screen_stack)
        with ExecutionLog.open(shop.log_path) as log:
            assert log.list_tasks() == []


def test_two_intakes_at_once_lose_nothing_and_quarantine_once(tmp_path):
    shop, _mill = two_factories(tmp_path)
    from factory_tui.backends.session import FactorySession
    from factory_tui.console_mail import ConsoleIntake

    stop = threading.Event()
    with FactorySession(shop) as console_session, ExecutionLog.open(shop.log_path) as engine_log:
        intake = ConsoleIntake(console_session, lambda: False, check=0.1)
        other = MailIngest(shop, engine_log, shop.config(), settle=0.0)
        threads = [threading.Thread(target=intake.run, args=(stop,)),
                   threading.Thread(target=other.watch, args=(stop,))]
        for thread in threads:
            thread.start()
        try:
            for n in range(100):
                arrive(shop, "mill", f"burst {n}", minutes=n)
            month = shop.inbox_dir / "2026" / "11"
            for n in range(5):
                (month / f"bad-{n}.md").write_text("no front matter")
            deadline = threading.Event()

            def settled() -> bool:
                return (len(engine_log.mail_messages()) == 100
                        and len(list(shop.quarantine_dir.glob("*.reason"))) == 5)

            for _ in range(400):
                if settled():
                    break
                deadline.wait(0.05)
            assert settled()
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
        events = [e for e in engine_log.events() if e.kind in ("mail_received", "mail_quarantined")]
        assert sum(e.kind == "mail_received" for e in events) == 100
        assert sum(e.kind == "mail_quarantined" for e in events) == 5
        assert sorted(p.name for p in shop.quarantine_dir.iterdir() if not p.name.endswith(".reason")) == [
            f"bad-{n}.md" for n in range(5)]


def test_the_consoles_intake_lets_go_when_an_engine_runs(tmp_path):
    shop, _mill = two_factories(tmp_path)
    from factory_tui.backends.session import FactorySession
    from factory_tui.console_mail import ConsoleIntake

    engine = threading.Event()
    stop = threading.Event()
    with FactorySession(shop) as session:
        intake = ConsoleIntake(session, engine.is_set, check=0.05)
        thread = threading.Thread(target=intake.run, args=(stop,))
        thread.start()
        try:
            for _ in range(200):
                if intake.active:
                    break
                stop.wait(0.05)
            assert intake.active
            engine.set()
            for _ in range(200):
                if not intake.active:
                    break
                stop.wait(0.05)
            assert not intake.active
        finally:
            stop.set()
            thread.join(timeout=10)


def hostile_mail(tmp_path):
    shop, _mill = two_factories(tmp_path)
    message = new_message("mill", ["shop"], "Need 40 crates", "By **Friday**.\n\n- pine\n- oak",
                          kind=MessageKind.REQUEST, importance=Importance.HIGH, created=AT)
    message = replace(message, id="01KB0000000000000000000001")
    put(shop.inbox_dir, message)
    odd = new_message("mill", ["shop"], "[bold]not bold[/] and a lone [/]", "[bold]x[/] and \x1b[31mred\x1b[0m",
                      created=AT + timedelta(minutes=5))
    odd = replace(odd, id="01KB0000000000000000000002")
    put(shop.inbox_dir, odd)
    month = shop.inbox_dir / "2026" / "11"
    (month / "2026-11-29T14-00-00Z__broken__x.md").write_text("---\nid: [\n---\n")
    import os
    os.utime(month / "2026-11-29T14-00-00Z__broken__x.md", (1, 1))
    with ExecutionLog.open(shop.log_path, clock=lambda: AT.timestamp() + 600) as log:
        MailIngest(shop, log, shop.config()).catch_up()
    return shop


def test_the_mail_pane_snapshot(snap_compare, tmp_path):
    shop = hostile_mail(tmp_path)

    async def run_before(pilot):
        app = await ready(pilot)
        pane = mail_pane(app)
        await wait_until(pilot, lambda: len(pane.rows) == 3, "the rows")
        await pilot.press("5")
        await wait_until(pilot, lambda: pane.has_focus, "the Mail pane focused")
        await pilot.pause()  # the focus change drawn

    assert snap_compare(FactoryApp(shop, engine=False, clock=lambda: NOW), terminal_size=(160, 45), run_before=run_before)

