"""Mail taken into the log from real folders: the inbox, the outbox and an
mcp_agent_mail archive as a source; files that are no message quarantined
(or, in a source, only recorded); a watcher that takes a burst whole and
never judges a file still being written; an engine killed mid-burst."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from factory_tui.backends.mail_ingest import MailIngest
from factory_tui.backends.mailbox import put
from factory_tui.mail_model import new_message, render
from tests.engine_helpers import configure, start_factory, tidy, wait_for  # noqa: F401

AT = datetime(2026, 11, 29, 13, 0, 0, tzinfo=UTC)


def ingest(base, log, **knobs):
    return MailIngest(base, log, base.config(), **knobs)


def write_old(path: Path, data: bytes) -> Path:
    """A file long unchanged: judged at once, not left to settle."""
    path.write_bytes(data)
    os.utime(path, (1, 1))
    return path


def mcp_file(folder: Path, number: int, *, slug="proj", sender="Alice", to=("Bob",), subject="Hi") -> str:
    head = {"id": number, "thread_id": None, "project": slug, "project_slug": slug, "from": sender,
            "to": list(to), "cc": [], "bcc": [], "subject": subject, "importance": "normal",
            "ack_required": False, "created": "2026-11-29T12:00:00+00:00", "attachments": []}
    return "---json\n" + json.dumps(head, indent=2) + "\n---\n\nHello from mcp.\n"


def test_catch_up_takes_the_mailbox_and_quarantines_what_is_no_message(base, log):
    ingest_ = ingest(base, log)
    message = new_message("warehouse", [base.config().name], "Stock", created=AT)
    put(base.inbox_dir, message)
    ours = new_message(base.config().name, ["warehouse"], "Order", created=AT)
    put(base.outbox_dir, ours)
    month = base.inbox_dir / "2026" / "11"
    write_old(month / "broken.md", b"---\nid: [\n---\n")
    write_old(month / "latin1.md", render(new_message("w", ["x"], "S", created=AT)).encode() + b"\xe9")
    (month / ".tmp-1-writing.md").write_text("half")
    report = ingest_.catch_up()
    assert (report.new, report.quarantined) == (2, 2)
    assert sorted(p.name for p in base.quarantine_dir.iterdir()) == [
        "broken.md", "broken.md.reason", "latin1.md", "latin1.md.reason"]
    assert "UTF-8" in (base.quarantine_dir / "latin1.md.reason").read_text()
    assert (month / ".tmp-1-writing.md").exists()  # a writer's file in progress is no one's business
    assert {m.box for m in log.mail_messages()} == {"inbox", "outbox"}
    assert len([e for e in log.events() if e.kind == "mail_quarantined"]) == 2
    again = ingest_.catch_up()
    assert (again.new, again.known, again.quarantined) == (0, 2, 0)


def test_the_same_id_with_other_bytes_is_quarantined_with_its_reason(base, log):
    message = new_message("warehouse", ["shop"], "Stock", created=AT)
    first = put(base.inbox_dir, message)
    ingest(base, log).catch_up()
    second = first.parent / ("z-" + first.name)
    second.write_text(render(message).replace("subject: Stock", "subject: Stocks"), encoding="utf-8")
    report = ingest(base, log).ingest_paths([second])
    assert report.quarantined == 1 and not second.exists()
    reason = (base.quarantine_dir / (second.name + ".reason")).read_text()
    assert reason.startswith(f"another message has id {message.id}")
    assert log.mail_message(message.id).subject == "Stock"


def test_a_source_is_read_in_mcp_agent_mail_layout_and_never_written(base, log, tmp_path):
    archive = tmp_path / "archive" / "projects" / "proj"
    inbox = archive / "agents" / "Bob" / "inbox" / "2026" / "11"
    canonical = archive / "messages" / "2026" / "11"
    threads = archive / "messages" / "threads"
    outbox = archive / "agents" / "Alice" / "outbox" / "2026" / "11"
    for folder in (inbox, canonical, threads, outbox):
        folder.mkdir(parents=True)
    text = mcp_file(archive, 7)
    for folder in (inbox, canonical, outbox):
        (folder / "2026-11-29T12-00-00Z__hi__7.md").write_text(text)
    (threads / "7.md").write_text("# a digest, not a message\n")
    write_old(canonical / "2026-11-29T12-00-01Z__bad__8.md", b'---json\n{"id": 8}\n---\n')
    base.config_path.write_text(base.config_path.read_text() + f'\n[mail.sources.mcp]\npath = "{archive}"\n')
    before = sorted((p, p.stat().st_mtime_ns) for p in archive.rglob("*"))
    report = ingest(base, log).catch_up()
    assert (report.new, report.quarantined) == (1, 1)
    [item] = log.mail_messages()
    assert (item.key, item.box, item.sender, item.recipients) == ("mcp:proj.7", "source:mcp", "proj/Alice",
                                                                    ("proj/Bob",))
    assert sorted((p, p.stat().st_mtime_ns) for p in archive.rglob("*")) == before  # read-only
    assert not base.quarantine_dir.exists() or not any(base.quarantine_dir.iterdir())
    again = ingest(base, log).catch_up()
    assert (again.new, again.quarantined) == (0, 0)
    assert len([e for e in log.events() if e.kind == "mail_quarantined"]) == 1  # once per path and content
    assert [r.box for r in log.mail_rejected()] == ["source:mcp"]


def test_a_message_that_vanished_or_is_outside_the_mailbox_is_passed_over(base, log, tmp_path):
    elsewhere = tmp_path / "elsewhere.md"
    elsewhere.write_text(render(new_message("a", ["b"], "S", created=AT)))
    report = ingest(base, log).ingest_paths([elsewhere, base.inbox_dir / "2026" / "gone.md",
                                             base.quarantine_dir / "x.md"])
    assert (report.new, report.known, report.quarantined) == (0, 0, 0)
    assert elsewhere.exists()


def test_a_symlink_in_the_inbox_is_quarantined_as_a_link(base, log, tmp_path):
    secret = tmp_path / "secret.md"
    secret.write_text(render(new_message("a", ["b"], "S", created=AT)))
    link = base.inbox_dir / "link.md"
    link.symlink_to(secret)
    assert ingest(base, log).catch_up().quarantined == 1
    assert (base.quarantine_dir / "link.md").is_symlink() and secret.exists()


def watching(base, log, **knobs):
    stop = threading.Event()
    thread = threading.Thread(target=ingest(base, log, **knobs).watch, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def count(log) -> int:
    return log.mail_counts().unread


def test_the_watch_catches_up_then_takes_a_burst_of_a_thousand_whole(base, log):
    put(base.inbox_dir, new_message("w", ["shop"], "Before", created=AT))
    stop, thread = watching(base, log)
    try:
        wait_for(lambda: count(log) == 1, "the catch-up")
        for i in range(1000):
            put(base.inbox_dir, new_message("w", ["shop"], f"Burst {i}", created=AT + timedelta(seconds=i)))
        wait_for(lambda: count(log) == 1001, "the burst", limit=60)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_messages_in_folders_made_a_moment_before_them_are_all_taken_without_a_rescan(base, log):
    """A new month's folder and its first message come at once: the watch
    on the new folder is set a moment after it is made, so a file landing
    in between is caught by looking at new folders again, not left for the
    next rescan (here an hour away)."""
    stop, thread = watching(base, log, rescan=3600.0)
    try:
        put(base.inbox_dir, new_message("w", ["shop"], "First", created=AT))
        wait_for(lambda: count(log) == 1, "the first message")
        for n in range(30):
            # put() makes the folders and renames the message in at once.
            put(base.inbox_dir / f"batch-{n}", new_message("w", ["shop"], f"Nested {n}", created=AT))
        wait_for(lambda: count(log) == 31, "every message in its new folder", limit=15)
    finally:
        stop.set()
        thread.join(10)


def test_a_file_written_slowly_in_place_is_not_quarantined(base, log):
    stop, thread = watching(base, log, settle=1.5)
    text = render(new_message("w", ["shop"], "Slow", "A body written slowly, byte by byte.", created=AT)).encode()
    target = base.inbox_dir / "slow.md"
    try:
        with open(target, "wb") as handle:
            for i in range(0, len(text), 4):
                handle.write(text[i:i + 4])
                handle.flush()
                time.sleep(0.01)
        wait_for(lambda: log.mail_messages() and log.mail_messages()[0].body.endswith("byte by byte."),
                 "the whole message")
        bad = base.inbox_dir / "bad.md"
        bad.write_text("not a message")
        wait_for(lambda: (base.quarantine_dir / "bad.md.reason").exists(), "the bad file judged after settling")
    finally:
        stop.set()
        thread.join(10)
    assert target.exists() and not (base.quarantine_dir / "slow.md").exists()


def test_an_engine_killed_in_a_burst_loses_nothing_and_takes_nothing_twice(base, tmp_path, tidy):  # noqa: F811
    configure(base)
    files = 1500
    for i in range(files):
        put(base.inbox_dir, new_message("w", ["shop"], f"M {i}", created=AT + timedelta(seconds=i)))
    from factory_tui.backends.log import ExecutionLog

    engine = start_factory(base, "run", output=tmp_path / "engine.out")
    tidy.append(engine)
    with ExecutionLog.open(base.log_path) as log:
        wait_for(lambda: count(log) > 0, "the engine to start ingesting")
        engine.send_signal(signal.SIGKILL)
        engine.wait()
        taken = count(log)
    again = start_factory(base, "run", output=tmp_path / "again.out")
    tidy.append(again)
    with ExecutionLog.open(base.log_path) as log:
        wait_for(lambda: count(log) == files, "every message, after the restart")
        again.send_signal(signal.SIGTERM)
        again.wait(30)
        rows = log._conn.execute("SELECT count(*), count(DISTINCT key) FROM messages").fetchone()
        received = [e for e in log.events() if e.kind == "mail_received"]
    assert rows == (files, files) and len(received) == files
    assert taken <= files


def test_a_watch_told_to_stop_before_its_watches_are_set_ends_without_waiting_for_them(base, log):
    """Stopping the intake (a console quitting) does not wait out the time
    the watches are given to be set."""
    stop, thread = watching(base, log)
    stop.set()
    wait_for(lambda: not thread.is_alive(), "the watch to end", limit=3)
