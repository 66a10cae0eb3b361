"""A message to ourselves: our outbox copy (read, with its delivery) and
its copy in our inbox, unread until read, answerable; each taken once,
whichever file the log meets first, after a catch-up or a restart."""

from __future__ import annotations

import json

from factory_tui.backends.mailbox import put
from factory_tui.mail_model import MessageKind, new_message
from factory_tui.model import State
from tests.engine_helpers import factory
from tests.mail_helpers import OPERATOR, session, two_factories


def rows(ours) -> list[tuple[str, str, bool]]:
    return sorted((item.key, item.box, item.read_at is None) for item in ours.log.mail_messages())


def test_a_note_to_ourselves_arrives_unread_and_is_read_once(tmp_path):
    shop, _mill = two_factories(tmp_path)
    with session(shop) as ours:
        sent = ours.send_mail(["shop"], "Remember", "the milk", actor=OPERATOR)
        key = sent.message.id
        assert sent.ingested.key == f"sent/{key}"
        assert [(item.factory, item.state) for item in sent.deliveries] == [("shop", "delivered")]
        assert ours.mail_catch_up().new == 1
        assert rows(ours) == [(key, "inbox", True), (f"sent/{key}", "outbox", False)]
        assert ours.log.mail_counts().unread == 1 and ours.log.mail_counts().undelivered == 0
        assert ours.mail_catch_up().new == 0
        # Both in one thread; `mail show ID` is the one we received.
        assert {item.box for item in ours.mail_thread(key)} == {"inbox", "outbox"}
        assert ours.log.mail_message(key).box == "inbox"
    unread = json.loads(factory(shop, "mail", "list", "--unread", "--json").stdout)
    assert [item["key"] for item in unread] == [key]
    assert factory(shop, "mail", "show", key).returncode == 0
    assert json.loads(factory(shop, "mail", "list", "--unread", "--json").stdout) == []
    with session(shop) as ours:
        received = [event for event in ours.log.events() if event.kind == "mail_received"]
        assert [event.data["key"] for event in received] == [key]


def test_a_catch_up_after_both_files_exist_takes_each_once(tmp_path):
    """The log meets the files only now (written while nothing watched, or
    a log started afresh): the inbox copy first or the outbox copy first,
    the same two rows."""
    shop, _mill = two_factories(tmp_path)
    request = new_message("shop/T-4", ["shop", "mill"], "Check the scales", "Daily.", kind=MessageKind.REQUEST,
                          ack_required=True)
    put(shop.inbox_dir, request)
    put(shop.outbox_dir, request)
    with session(shop) as ours:
        first = ours.mail_catch_up()
        assert (first.new, first.quarantined) == (2, 0)
        assert rows(ours) == [(request.id, "inbox", True), (f"sent/{request.id}", "outbox", False)]
        again = ours.mail_catch_up()
        assert (again.new, again.known) == (0, 2)
        counts = ours.log.mail_counts()
        assert (counts.unread, counts.waiting_requests, counts.waiting_acks) == (1, 1, 1)
        # Ours to answer like any message received: acknowledged, a task.
        ours.ack_mail(request.id, actor=OPERATOR)
        assert ours.log.mail_message(request.id).acked_at is not None
        task = ours.task_from_request(request.id, actor=OPERATOR)
        assert task.state is State.QUEUED
        ours.mail_catch_up()
        counts = ours.log.mail_counts()
        assert (counts.waiting_requests, counts.waiting_acks) == (0, 0)
        accepted = [item for item in ours.log.mail_messages(box="inbox") if item.state == "accepted"]
        assert [(item.in_reply_to, item.task) for item in accepted] == [(request.id, task.id)]
