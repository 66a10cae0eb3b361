"""The log's record of mail: taken in once by key and content, acks in both
directions, reads for the CLI and the console, deliveries per peer, and the
schema brought forward from version 4."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.mail_log import IngestOutcome, NewMail, source_box
from factory_tui.backends.mailbox import ReadMessage
from factory_tui.backends.schema import SCHEMA_VERSION
from factory_tui.errors import InvalidInput, UnknownMessage
from factory_tui.mail_model import MessageKind, ack_of, content_hash, new_message, render, reply_to
from tests.test_migrations import make_log_at

AT = datetime(2026, 11, 29, 13, 0, 0, tzinfo=UTC)


def read(message, path="x.md"):
    from pathlib import Path

    return ReadMessage(message, Path(path), content_hash(render(message).encode()))


def take(log, message, box="inbox", path=None, us="shop"):
    return log.ingest_message(read(message), box=box, relative_path=path or f"{box}/{message.id}.md", us=us)


def mail_events(log, kind):
    return [e for e in log.events() if e.kind == kind]


def test_a_message_is_taken_once_and_another_file_with_its_id_is_a_conflict(log):
    message = new_message("warehouse", ["shop"], "Stock, please", "Ten boxes.", created=AT)
    assert take(log, message).outcome is IngestOutcome.NEW
    assert take(log, message).outcome is IngestOutcome.KNOWN  # the same file twice is nothing
    assert take(log, message, path="inbox/elsewhere.md").outcome is IngestOutcome.KNOWN  # same bytes
    other = read(message)
    changed = ReadMessage(message, other.path, "0" * 64)
    clash = log.ingest_message(changed, box="inbox", relative_path="inbox/second.md")
    assert clash.outcome is IngestOutcome.CONFLICT and clash.existing_path == f"inbox/{message.id}.md"
    received = mail_events(log, "mail_received")
    assert len(received) == 1 and received[0].note == "Stock, please" and received[0].task_id is None
    assert received[0].data == {"key": message.id, "from": "warehouse", "kind": "note"}
    assert len(log.mail_messages()) == 1


def test_the_same_path_read_again_with_other_bytes_brings_the_row_up_to_date(log):
    partial = new_message("warehouse", ["shop"], "Stock", "Ten", created=AT)
    take(log, partial, path="inbox/a.md")
    whole = ReadMessage(_with_body(partial, "Ten boxes, by Friday."), read(partial).path, "1" * 64)
    assert log.ingest_message(whole, box="inbox", relative_path="inbox/a.md").outcome is IngestOutcome.UPDATED
    assert log.mail_message(partial.id).body == "Ten boxes, by Friday."
    assert len(mail_events(log, "mail_received")) == 1


def _with_body(message, body):
    from dataclasses import replace

    return replace(message, body=body)


def test_outbox_messages_are_sent_and_read_a_message_not_for_us_says_so(log):
    ours = new_message("shop", ["warehouse"], "Order", created=AT)
    take(log, ours, box="outbox")
    stray = new_message("warehouse", ["bakery"], "Not yours", created=AT)
    take(log, stray)
    sent = mail_events(log, "mail_sent")
    assert sent[0].data == {"key": ours.id, "to": ["warehouse"], "kind": "note"}
    assert log.mail_message(ours.id).read_at is not None
    assert mail_events(log, "mail_received")[0].data["to_us"] is False
    assert log.mail_counts().unread == 1


def test_a_source_keys_its_messages_and_threads_by_its_name_and_copies_are_one(log):
    message = new_message("proj/Alice", ["proj/Bob"], "Hi", created=AT)
    box = source_box("archive")
    first = log.ingest_message(read(message), box=box, relative_path="../a/agents/Bob/inbox/x.md")
    copy = ReadMessage(message, read(message).path, "2" * 64)
    second = log.ingest_message(copy, box=box, relative_path="../a/messages/2026/11/x.md")
    assert first.key == f"archive:{message.id}" and second.outcome is IngestOutcome.KNOWN
    assert log.mail_message(first.key).thread == first.key
    assert log.mail_message(message.id).key == first.key  # found by its id too


def test_an_ack_marks_what_it_acknowledges_whichever_comes_first(log):
    ours = new_message("shop", ["warehouse"], "Sign this", created=AT, ack_required=True)
    take(log, ours, box="outbox")
    assert log.mail_message(ours.id).acked_at is None
    take(log, ack_of(ours, sender="warehouse"))
    assert log.mail_message(ours.id).acked_at is not None
    # Theirs: waiting until we send the ack; the ack seen before the original counts too.
    theirs = new_message("warehouse", ["shop"], "Sign that", created=AT, ack_required=True)
    our_ack = ack_of(theirs, sender="shop")
    take(log, our_ack, box="outbox")
    take(log, theirs)
    assert log.mail_message(theirs.id).acked_at is not None
    late = new_message("warehouse", ["shop"], "And this", created=AT, ack_required=True)
    take(log, late)
    assert log.mail_message(late.id).waiting_ack and log.mail_counts().waiting_acks == 1
    take(log, ack_of(late, sender="shop"), box="outbox")
    assert log.mail_counts().waiting_acks == 0


def test_reads_threads_counts_marks_and_links(log):
    request = new_message("warehouse", ["shop"], "Build a shelf", created=AT, kind=MessageKind.REQUEST)
    note = new_message("bakery", ["shop"], "Bread", created=AT + timedelta(minutes=5))
    take(log, request)
    take(log, note)
    reply = reply_to(request, sender="warehouse", body="Also paint it", created=AT + timedelta(minutes=10))
    take(log, reply)
    assert [m.key for m in log.mail_messages()] == [reply.id, note.id, request.id]
    assert [m.key for m in log.mail_messages(thread=request.id)] == [reply.id, request.id]
    assert [m.key for m in log.mail_messages(limit=1)] == [reply.id]
    assert log.mail_messages(box="outbox") == []
    threads = log.mail_threads()
    assert [(t.thread, t.subject, t.count, t.unread, t.waiting_request) for t in threads] == [
        (request.id, "Build a shelf", 2, 2, True), (note.id, "Bread", 1, 1, False)]
    counts = log.mail_counts()
    assert (counts.unread, counts.waiting_requests) == (3, 1)
    assert log.mark_read([request.id, request.id, note.id], "cli:op") == 2
    assert log.mark_read([note.id], "cli:op") == 0
    assert [m.key for m in log.mail_messages(unread=True)] == [reply.id]
    assert mail_events(log, "mail_read")[0].data == {"keys": [request.id, note.id]}
    log.link_task(request.id, "T-7")
    assert log.mail_message(request.id).task_id == "T-7" and log.mail_counts().waiting_requests == 0
    with pytest.raises(UnknownMessage):
        log.link_task("nope", "T-1")


def test_a_message_is_found_by_a_unique_start_of_its_key(log):
    first = new_message("a", ["shop"], "One", created=AT)
    second = new_message("a", ["shop"], "Two", created=AT)
    take(log, first)
    take(log, second)
    common = next(i for i in range(26) if first.id[i] != second.id[i])
    assert log.mail_message(first.id[: common + 1]).key == first.id
    with pytest.raises(UnknownMessage, match="more than one"):
        log.mail_message(first.id[:common])
    with pytest.raises(UnknownMessage, match="no such message"):
        log.mail_message("ZZZ")
    with pytest.raises(UnknownMessage):
        log.mail_message("  ")


def test_deliveries_per_peer_and_what_is_undelivered(log):
    ours = new_message("shop", ["warehouse", "bakery"], "Order", created=AT)
    take(log, ours, box="outbox")
    log.set_delivery(ours.id, "warehouse", "pending")
    log.set_delivery(ours.id, "bakery", "failed", "no such folder")
    log.set_delivery(ours.id, "bakery", "failed", "still not")
    undelivered = log.undelivered()
    assert [(d.peer, d.state, d.attempts, d.last_error) for d in undelivered] == [
        ("warehouse", "pending", 0, None), ("bakery", "failed", 2, "still not")]
    assert log.mail_counts().undelivered == 1
    log.set_delivery(ours.id, "warehouse", "delivered")
    log.set_delivery(ours.id, "bakery", "delivered")
    assert log.undelivered() == [] and log.mail_counts().undelivered == 0
    with pytest.raises(InvalidInput):
        log.set_delivery(ours.id, "bakery", "lost")
    with pytest.raises(UnknownMessage):
        log.set_delivery("nope", "bakery", "pending")


def test_a_refused_file_is_recorded_once_per_content(log):
    assert log.record_quarantined("inbox/bad.md", "line 1: no\nfront matter", hash="a")
    assert not log.record_quarantined("inbox/bad.md", "again", hash="a")
    assert log.record_quarantined("inbox/bad.md", "changed", hash="b")
    events = mail_events(log, "mail_quarantined")
    assert [e.note for e in events] == ["line 1: no front matter", "changed"]
    assert log.mail_counts().quarantined == 2
    assert [r.reason for r in log.mail_rejected()] == ["changed", "line 1: no front matter"]
    assert ("inbox/bad.md", "a") in log.mail_seen()


def test_a_batch_is_one_transaction_and_the_reads_use_their_indexes(log):
    messages = [new_message("a", ["shop"], f"M{i}", created=AT + timedelta(seconds=i)) for i in range(2000)]
    outcomes = log.ingest_messages([NewMail(read(m), "inbox", f"inbox/{m.id}.md") for m in messages])
    assert {o.outcome for o in outcomes} == {IngestOutcome.NEW} and len(log.mail_messages()) == 2000
    conn = log._conn
    plans = {
        "newest": "SELECT key FROM messages ORDER BY created DESC, seq DESC LIMIT 50",
        "unread": "SELECT count(*) FROM messages WHERE read_at IS NULL",
        "thread": "SELECT key FROM messages WHERE thread = 'x' ORDER BY created",
    }
    for name, sql in plans.items():
        plan = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "USING" in plan and "idx_messages" in plan, (name, plan)


def test_a_version_5_log_gains_mail(tmp_path):
    path = tmp_path / "log.db"
    make_log_at(path, 5)
    with ExecutionLog.open(path) as log:
        assert log.get_task("T-1").title == "from v1"
        take(log, new_message("a", ["shop"], "Hi", created=AT))
        assert log.mail_counts().unread == 1
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"messages", "mail_deliveries", "mail_rejects"} <= tables


def test_a_page_of_threads_within_one_second_starts_with_the_one_taken_last(log):
    """Times are to the second: among threads last active in the same
    second, the page holds the ones taken in last (the Mail pane would
    otherwise leave out what just came)."""
    for n in range(30):
        take(log, new_message("mill", ["shop"], f"Same second {n}", created=AT))
    page = log.mail_thread_page(5)
    assert [thread.subject for thread in page.threads] == [f"Same second {n}" for n in (29, 28, 27, 26, 25)]
    assert page.total == 30
