"""Mail intake: from a message file's rename into the inbox to its row in the
log, and taking a large inbox in at once.

Run it as ``python benchmarks/bench_mail.py`` (``--help`` for options). It
prints figures; it is not a test and asserts nothing about time.

Targets (issue 9 §6): "from a message file's rename into the inbox to its row
in the log, p50 and p95 (goal: p95 at most 50 ms); ingesting 10,000
messages". The console's side (to the Mail pane on screen, and the pane's
first frame over 10,000 messages) is measured by ``bench_mail_pane.py``.

Set-up (not timed): a real base (git repository, ``factory init``), its log
already holding ``--backlog`` messages (a base that has lived a while), and
the intake the engine runs (``MailIngest.watch``) following the inbox in a
thread of this process.

* latency: one message at a time, written whole to a temporary name in the
  inbox's month folder and renamed into place (as a peer's ``send`` does);
  the clock starts at the rename and stops when the message's row is in the
  log, read from a second connection polling every 0.5 ms;
* bulk: ``--bulk`` message files put into the inbox while nothing watches,
  then one ``catch_up`` (what the engine does on start), timed; then a second
  ``catch_up`` over the same files (all known), timed.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.mail_ingest import MailIngest
from factory_tui.backends.mail_log import INBOX, NewMail
from factory_tui.backends.mailbox import ReadMessage, message_path, put
from factory_tui.mail_model import content_hash, new_message, render


def make_base(folder: Path) -> FactoryBase:
    folder.mkdir(parents=True)
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "b@example.com"],
                 ["config", "user.name", "bench"], ["commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)
    base, _ = FactoryBase.init(folder, name="bench")
    return base


def fill_log(base: FactoryBase, count: int) -> None:
    """``count`` messages straight into the log (their files are not needed:
    only the log's size matters to the intake's cost)."""
    with ExecutionLog.open(base.log_path) as log:
        batch: list[NewMail] = []
        for n in range(count):
            message = new_message("peer", ["bench"], f"Backlog message {n}", "Body.\n")
            data = render(message).encode()
            path = message_path(base.inbox_dir, message)
            batch.append(NewMail(ReadMessage(message, path, content_hash(data)), INBOX,
                                 os.path.relpath(path, base.root)))
            if len(batch) == 1000:
                log.ingest_messages(batch, us="bench")
                batch = []
        if batch:
            log.ingest_messages(batch, us="bench")


def latency(base: FactoryBase, count: int) -> list[float]:
    config = base.config()
    stop = threading.Event()
    with ExecutionLog.open(base.log_path) as log:
        intake = MailIngest(base, log, config)
        watcher = threading.Thread(target=intake.watch, args=(stop,), daemon=True)
        watcher.start()
        reader = sqlite3.connect(base.log_path)
        try:
            # The watch is set once a first message has gone through.
            times: list[float] = []
            for n in range(count + 1):
                message = new_message("peer", ["bench"], f"Latency message {n}", "Body.\n")
                target = message_path(base.inbox_dir, message)
                target.parent.mkdir(parents=True, exist_ok=True)
                temporary = target.parent / f".tmp-{target.name}"
                temporary.write_bytes(render(message).encode())
                started = time.perf_counter()
                os.replace(temporary, target)
                deadline = started + 10
                while reader.execute("SELECT 1 FROM messages WHERE key = ?", (message.id,)).fetchone() is None:
                    if time.perf_counter() > deadline:
                        raise SystemExit(f"message {n} never reached the log")
                    time.sleep(0.0005)
                if n:
                    times.append(time.perf_counter() - started)
                time.sleep(0.02)  # one message at a time, not a burst
            return times
        finally:
            stop.set()
            watcher.join(timeout=10)
            reader.close()


def bulk(base: FactoryBase, count: int) -> tuple[float, float, int]:
    for n in range(count):
        put(base.inbox_dir, new_message("peer", ["bench"], f"Bulk message {n}", f"Body {n}.\n"))
    # The writes above leave the disk busy flushing; the catch-up's own
    # commits would wait behind that.
    os.sync()
    with ExecutionLog.open(base.log_path) as log:
        intake = MailIngest(base, log, base.config())
        started = time.perf_counter()
        first = intake.catch_up()
        took = time.perf_counter() - started
        started = time.perf_counter()
        again = intake.catch_up()
        known = time.perf_counter() - started
    assert again.new == 0, "a second catch-up took messages again"
    return took, known, first.new


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200, help="messages timed one at a time (default 200)")
    parser.add_argument("--backlog", type=int, default=10_000, help="messages already in the log (default 10,000)")
    parser.add_argument("--bulk", type=int, default=10_000, help="messages taken in at once (default 10,000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-mail-") as folder:
        base = make_base(Path(folder) / "latency")
        fill_log(base, args.backlog)
        times = latency(base, args.messages)
        print(f"rename into the inbox → row in the log, {args.messages} messages, "
              f"{args.backlog:,} already in the log:")
        print(f"  p50 {statistics.median(times) * 1000:.1f} ms   p95 {percentile(times, 0.95) * 1000:.1f} ms   "
              f"max {max(times) * 1000:.1f} ms   (goal: p95 ≤ 50 ms)")
        base = make_base(Path(folder) / "bulk")
        took, known, new = bulk(base, args.bulk)
        print(f"taking {args.bulk:,} message files in at once (catch-up): {took:.2f} s "
              f"({new / took:,.0f} messages/s); again, all known: {known:.2f} s")
    sys.exit(0)


if __name__ == "__main__":
    main()
