"""The thread screen as an operator uses it: each message in its own box
(ours told apart from theirs), the thread's state and its request's task in
the title, an undelivered message of ours marked with its error, only the
keys that apply in the footer, scrolling, a long thread opening fast, and
the pictures at 160×45 and 80×24."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from factory_tui.app import FactoryApp
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.mail_ingest import MailIngest
from factory_tui.backends.mailbox import put
from factory_tui.mail_model import Importance, MessageKind, RequestState, new_message, reply_to
from factory_tui.model import NewTask
from factory_tui.panes.mail import MailPane
from factory_tui.screens.mail import MessageBox, RefusedFileScreen, ThreadScreen, ThreadScroll
from factory_tui.widgets.transcript import TranscriptPane
from tests.console_helpers import ready, wait_until
from tests.mail_helpers import two_factories
from tests.test_mail_pane import fill_and_send

AT = datetime(2026, 11, 29, 13, 0, 0, tzinfo=UTC)
NOW = AT.timestamp() + 3600


def fixed(message, n: int, minutes: int):
    return replace(message, id=f"01KB{n:022d}", created=AT + timedelta(minutes=minutes))


def conversation(tmp_path):
    """A request from the mill that became T-1 (accepted), the mill's note
    in the thread asking for an ack, and a note of ours whose delivery
    failed; ids and times fixed for the pictures."""
    shop, _mill = two_factories(tmp_path)
    request = fixed(new_message("mill", ["shop"], "Need 40 crates", "By **Friday**.\n\n- pine\n- oak",
                                kind=MessageKind.REQUEST, importance=Importance.HIGH), 1, 0)
    put(shop.inbox_dir, request)
    accepted = fixed(reply_to(request, sender="shop", body="Taken on as T-1.", state=RequestState.ACCEPTED,
                              task="T-1"), 2, 5)
    put(shop.outbox_dir, accepted)
    ask = fixed(replace(reply_to(accepted, sender="mill", body="Oak must be *dry*. [see](http://example.com)",
                                 kind=MessageKind.NOTE), ack_required=True), 3, 10)
    put(shop.inbox_dir, ask)
    ours = fixed(reply_to(ask, sender="shop", body="Checking the oak [bold]now[/]."), 4, 15)
    put(shop.outbox_dir, ours)
    with ExecutionLog.open(shop.log_path, clock=lambda: AT.timestamp() + 1200) as log:
        MailIngest(shop, log, shop.config()).catch_up()
        task = log.add_task(NewTask(title="Need 40 crates", body="By Friday."), actor="cli:tester")
        log.link_task(request.id, task.id)
        log.set_delivery(accepted.id, "mill", "delivered")
        log.set_delivery(ours.id, "mill", "failed", error="mill's inbox: No space left on device")
    return shop, request


def console_app(base) -> FactoryApp:
    return FactoryApp(base, engine=False, clock=lambda: NOW)


async def open_thread(pilot, app: FactoryApp, subject: str = "crates") -> ThreadScreen:
    pane: MailPane = app.panes[5].body  # type: ignore[assignment]
    await wait_until(pilot, lambda: any(row.thread and subject in row.thread.subject for row in pane.rows), "the thread")
    pane.focus()
    pane.cursor = next(n for n, row in enumerate(pane.rows) if row.thread and subject in row.thread.subject)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, ThreadScreen) and app.screen.opened_on is not None,
                     "the thread screen")
    screen = app.screen
    assert isinstance(screen, ThreadScreen)
    return screen


def footer_keys(app: FactoryApp) -> set[str]:
    return {binding.binding.action for binding in app.screen.active_bindings.values()
            if binding.enabled and binding.binding.show}


async def test_each_message_in_its_box_ours_apart_and_the_undelivered_marked(tmp_path):
    shop, request = conversation(tmp_path)
    app = console_app(shop)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        screen = await open_thread(pilot, app)
        boxes = list(screen.query(MessageBox))
        assert [box.item.id for box in boxes] == [f"01KB{n:022d}" for n in range(1, 5)]
        assert [box.has_class("ours") for box in boxes] == [False, True, False, True]
        assert "request" in str(boxes[0].border_title) and "high" in str(boxes[0].border_title)
        assert "T-1 queued" in str(boxes[0].border_subtitle)
        assert "state: accepted" in str(boxes[1].border_subtitle)
        assert not boxes[1].has_class("undelivered")
        assert boxes[3].has_class("undelivered")
        assert "No space left on device" in str(boxes[3].border_subtitle)
        title = str(screen.query_one("#mail-title").render())
        assert "4 messages" in title and "T-1 queued" in title and "1 of ours undelivered" in title
        # Opened on the first unread message of theirs.
        assert screen.opened_on is not None and screen.opened_on.id == request.id


async def test_the_footer_offers_only_the_keys_that_apply(tmp_path):
    shop, _request = conversation(tmp_path)
    put(shop.inbox_dir, fixed(new_message("mill", ["shop"], "Paint the barn", "Red.", kind=MessageKind.REQUEST), 9, 30))
    app = console_app(shop)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        await open_thread(pilot, app, "crates")
        keys = footer_keys(app)
        # The request is a task already; an ack is asked.
        assert {"reply", "acknowledge"} <= keys and not {"task_from_request", "decline"} & keys
        await pilot.press("t")  # hidden: does nothing
        await pilot.press("A")
        with ExecutionLog.open(shop.log_path) as log:
            await wait_until(pilot, lambda: log.mail_message("01KB" + "3".zfill(22)).acked_at is not None, "the ack")
        await wait_until(pilot, lambda: "acknowledge" not in footer_keys(app), "A gone once acknowledged")
        await pilot.press("escape")
        await open_thread(pilot, app, "barn")
        keys = footer_keys(app)
        assert {"reply", "task_from_request", "decline"} <= keys and "acknowledge" not in keys
        await pilot.press("escape")
        # The pane too follows the row under the cursor.
        pane: MailPane = app.panes[5].body  # type: ignore[assignment]
        pane.cursor = next(n for n, row in enumerate(pane.rows) if row.thread and "barn" in row.thread.subject)
        await wait_until(pilot, lambda: {"task_from_request", "decline"} <= footer_keys(app), "t and x in the pane")
        pane.cursor = next(n for n, row in enumerate(pane.rows) if row.thread and "crates" in row.thread.subject)
        await wait_until(pilot, lambda: not {"task_from_request", "decline"} & footer_keys(app), "t and x hidden")
        with ExecutionLog.open(shop.log_path) as log:
            assert log.mail_message("01KB" + "1".zfill(22)).task_id == "T-1"
            assert len(log.list_tasks()) == 1


async def test_the_thread_scrolls_with_the_list_keys(tmp_path):
    shop, _mill = two_factories(tmp_path)
    first = fixed(new_message("mill", ["shop"], "Long one", "\n\n".join(f"line {n}" for n in range(80))), 1, 0)
    put(shop.inbox_dir, first)
    with ExecutionLog.open(shop.log_path) as log:
        MailIngest(shop, log, shop.config()).catch_up()
        log.mark_read([first.id], "cli:tester")
    app = console_app(shop)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        screen = await open_thread(pilot, app, "Long")
        scroll = screen.query_one(ThreadScroll)
        await wait_until(pilot, lambda: scroll.max_scroll_y > 0 and scroll.scroll_y == scroll.max_scroll_y,
                         "opened on its end (the newest)")
        await pilot.press("g")
        await wait_until(pilot, lambda: scroll.scroll_y == 0, "the top")
        await pilot.press("j")
        await wait_until(pilot, lambda: scroll.scroll_y == 1, "a line down")
        await pilot.press("space")
        await wait_until(pilot, lambda: scroll.scroll_y > 10, "a page down")
        await pilot.press("k")
        at = scroll.scroll_y
        await pilot.press("pageup")
        await wait_until(pilot, lambda: scroll.scroll_y < at, "a page up")


async def test_a_thread_of_a_hundred_messages_opens_fast(tmp_path):
    shop, _mill = two_factories(tmp_path)
    first = fixed(new_message("mill", ["shop"], "Chatty", "Hello."), 0, 0)
    put(shop.inbox_dir, first)
    previous = first
    for n in range(1, 100):
        message = fixed(reply_to(previous, sender="mill" if n % 2 else "shop",
                                 body=f"Message {n}\n\n- a point\n- another **one**"), n, n)
        if message.sender == "shop":
            put(shop.outbox_dir, message)
        else:
            put(shop.inbox_dir, replace(message, to=("shop",)))
        previous = message
    with ExecutionLog.open(shop.log_path) as log:
        MailIngest(shop, log, shop.config()).catch_up()
        assert len(log.mail_messages(thread=first.id)) == 100
    app = console_app(shop)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        started = time.perf_counter()
        screen = await open_thread(pilot, app, "Chatty")
        await wait_until(pilot, lambda: len(screen.query(MessageBox)) == 100, "every message")
        took = time.perf_counter() - started
        print(f"a thread of 100 messages opened in {took:.2f}s")
        scroll = screen.query_one(ThreadScroll)
        assert screen.opened_on is not None and screen.opened_on.id == first.id  # the first unread
        await wait_until(pilot, lambda: scroll.scroll_y == 0, "at the first unread")


def test_a_thread_snapshot(snap_compare, tmp_path):
    shop, _request = conversation(tmp_path)

    async def run_before(pilot):
        app = await ready(pilot)
        await open_thread(pilot, app)
        await pilot.pause()  # the opened thread drawn

    assert snap_compare(console_app(shop), terminal_size=(160, 45), run_before=run_before)


def test_a_thread_snapshot_at_80_columns(snap_compare, tmp_path):
    shop, _request = conversation(tmp_path)

    async def run_before(pilot):
        app = await ready(pilot)
        await open_thread(pilot, app)
        await pilot.pause()  # the opened thread drawn

    assert snap_compare(console_app(shop), terminal_size=(80, 24), run_before=run_before)


async def test_enter_on_a_quarantined_file_shows_why_where_and_its_text(tmp_path):
    shop, _mill = two_factories(tmp_path)
    month = shop.inbox_dir / "2026" / "11"
    month.mkdir(parents=True)
    (month / "2026-11-29T14-00-00Z__broken__x.md").write_text("---\nid: [\n---\n[bold]raw[/] \x1b[31mred\n")
    app = console_app(shop)
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        pane: MailPane = app.panes[5].body  # type: ignore[assignment]
        await wait_until(pilot, lambda: any(row.rejected for row in pane.rows), "the quarantined row")
        pane.focus()
        pane.cursor = next(n for n, row in enumerate(pane.rows) if row.rejected)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RefusedFileScreen) and app.screen.refused is not None,
                         "the quarantined file's screen")
        screen = app.screen
        assert isinstance(screen, RefusedFileScreen) and screen.refused is not None
        assert screen.refused.path == shop.quarantine_dir / "2026-11-29T14-00-00Z__broken__x.md"
        title = str(screen.query_one("#mail-refused-title").render())
        assert "YAML" in title and ".factory/mailbox/quarantine/2026-11-29T14-00-00Z__broken__x.md" in title
        view = screen.query_one(TranscriptPane).view
        await wait_until(pilot, lambda: view.row_count >= 4, "the file's lines")
        lines = ["".join(s.text for s in view.render_row(n, 100)) for n in range(view.row_count)]
        assert any("[bold]raw[/]" in line and "\x1b" not in line for line in lines)
        await pilot.press("escape")
        assert not isinstance(app.screen, RefusedFileScreen)


async def test_a_linked_file_in_quarantine_is_never_followed(tmp_path):
    shop, _mill = two_factories(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("do not show")
    month = shop.inbox_dir / "2026" / "11"
    month.mkdir(parents=True)
    (month / "link.md").symlink_to(secret)
    app = console_app(shop)
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        pane: MailPane = app.panes[5].body  # type: ignore[assignment]
        await wait_until(pilot, lambda: any(row.rejected for row in pane.rows), "the quarantined row")
        pane.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RefusedFileScreen) and app.screen.refused is not None,
                         "the screen")
        assert "symbolic link" in str(app.screen.query_one("#mail-refused-title").render())
        assert not app.screen.query(TranscriptPane)


async def test_no_mail_says_how_mail_arrives_and_how_to_name_a_peer(tmp_path):
    from factory_tui.backends.base import FactoryBase
    from tests.mail_helpers import new_repo

    lonely, _ = FactoryBase.init(new_repo(tmp_path / "lonely"))
    shop, _mill = two_factories(tmp_path)
    for base, expected in ((lonely, "[peers.NAME]"), (shop, "n writes to a peer (mill)")):
        app = console_app(base)
        async with app.run_test(size=(160, 45)) as pilot:
            await ready(pilot)
            pane: MailPane = app.panes[5].body  # type: ignore[assignment]
            await wait_until(pilot, lambda pane=pane: pane.loaded, "the first read")
            text = pane.empty_text()
            assert "No mail yet" in text and ".factory/mailbox/inbox/" in text and expected in text


async def test_a_question_back_leaves_the_request_waiting_and_the_thread_shows_it_at_once(tmp_path):
    shop, mill = two_factories(tmp_path)
    request = fixed(new_message("mill", ["shop"], "Add a changelog", "Please.", kind=MessageKind.REQUEST), 1, 0)
    put(shop.inbox_dir, request)
    app = console_app(shop)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        screen = await open_thread(pilot, app, "changelog")
        await pilot.press("r")
        await fill_and_send(pilot, app, "Which format?")
        await wait_until(pilot, lambda: len(screen.query(MessageBox)) == 2, "our question in the thread")
        assert {"task_from_request", "decline"} <= footer_keys(app)
        with ExecutionLog.open(shop.log_path) as log:
            assert log.mail_counts().waiting_requests == 1
        await pilot.press("t")
        await wait_until(pilot, lambda: "→ T-1" in str(screen.query_one("#mail-title").render()), "the task in the title")
        assert not {"task_from_request", "decline"} & footer_keys(app)


async def test_help_lists_every_mail_key_even_those_hidden_here(tmp_path):
    from factory_tui.screens.help import HelpScreen, describe_bindings

    shop, _mill = two_factories(tmp_path)
    put(shop.inbox_dir, fixed(new_message("mill", ["shop"], "Just a note", "Hi."), 1, 0))
    app = console_app(shop)
    async with app.run_test(size=(160, 45)) as pilot:
        await ready(pilot)
        pane: MailPane = app.panes[5].body  # type: ignore[assignment]
        await wait_until(pilot, lambda: len(pane.rows) == 1, "the note")
        pane.focus()
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        mail = dict(describe_bindings(app, screen.bindings))["Mail"]
        said = {description: tooltip for _keys, description, tooltip in mail}
        assert {"Open", "Reply", "New message", "Task", "Acknowledge", "Decline"} <= set(said)
        assert "only where it applies" in said["Task"] and "only where it applies" not in said["Reply"]
