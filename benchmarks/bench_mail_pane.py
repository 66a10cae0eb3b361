"""The console's side of mail: from a message file's rename into the inbox
to its row on screen in the Mail pane, and the pane's first frame over a
log holding 10,000 messages.

Run it as ``python benchmarks/bench_mail_pane.py`` (``--help`` for options).
It prints figures; it is not a test and asserts nothing about time.

Targets (issue 9 §6): "to the Mail pane on screen, p95 at most 250 ms; the
Mail pane's first frame over 10,000 messages at most 0.5 s". The log's side
(rename → row in the log, bulk intake) is ``bench_mail.py``.

* on screen: a real base whose log holds ``--backlog`` messages; a headless
  engine (``factory run``, another process) takes the mail in, as it does
  beside a console; a real console (``FactoryApp`` under ``run_test``, no
  engine of its own) shows the Mail pane. One message at a time is written
  to a temporary name in the inbox and renamed into place (as a peer's
  ``send`` does); the clock starts at the rename and stops when the pane's
  rows hold its thread.
* first frame: a base whose log holds ``--messages`` messages (one thread
  each, the worst case for a list of threads); from creating the console to
  the Mail pane's rows loaded, several times; and, alone, the pane's load
  read (the page of threads, the refused files and the counts it asks the
  session for).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_mail import fill_log, make_base, percentile  # noqa: E402

from factory_tui.backends.base import FactoryBase  # noqa: E402
from factory_tui.backends.mailbox import message_path  # noqa: E402
from factory_tui.mail_model import new_message, render  # noqa: E402


def mail_pane(app):
    from factory_tui.panes.mail import MailPane

    return app.query_one(MailPane)


def on_screen(pane, subject: str) -> bool:
    return any(row.thread is not None and row.thread.subject == subject for row in pane.rows)


def start_engine(base: FactoryBase, output: Path) -> subprocess.Popen:
    with open(output, "wb") as handle:
        return subprocess.Popen([sys.executable, "-m", "factory_tui", "--base", str(base.root), "run"],
                                stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT)


async def to_screen(base: FactoryBase, count: int) -> list[float]:
    from factory_tui.app import FactoryApp

    app = FactoryApp(base, engine=False)
    times: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        pane = mail_pane(app)
        while not pane.loaded:
            await pilot.pause(0.05)
        for n in range(count + 1):  # the first one warms up the watch
            subject = f"On screen {n}"
            message = new_message("peer", ["bench"], subject, "Body.\n")
            target = message_path(base.inbox_dir, message)
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.parent / f".tmp-{target.name}"
            temporary.write_bytes(render(message).encode())
            started = time.perf_counter()
            os.replace(temporary, target)
            deadline = started + 20
            while not on_screen(pane, subject):
                if time.perf_counter() > deadline:
                    raise SystemExit(f"message {n} never reached the Mail pane ({len(pane.rows)} rows: "
                                     f"{[getattr(row.thread, 'subject', None) for row in pane.rows[:3]]})")
                await asyncio.sleep(0.001)
            if n:
                times.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)  # one message at a time, not a burst
    return times


async def first_frame(base: FactoryBase) -> float:
    """Seconds from creating the console to the Mail pane's rows loaded."""
    from factory_tui.app import FactoryApp

    started = time.perf_counter()
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 48)):
        pane = mail_pane(app)
        while not pane.loaded:
            await asyncio.sleep(0.001)
        took = time.perf_counter() - started
    return took


def load_read(base: FactoryBase, runs: int) -> list[float]:
    """The pane's load (panes/mail.py ``load``) as the session answers it."""
    from factory_tui.backends.session import FactorySession
    from factory_tui.panes.mail import PAGE, REJECTED_ROWS

    session = FactorySession(base)
    times = []
    try:
        for _ in range(runs):
            started = time.perf_counter()
            session.mail_thread_page(PAGE, ())
            session.mail_rejected(REJECTED_ROWS)
            session.mail_counts()
            times.append(time.perf_counter() - started)
    finally:
        session.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--on-screen", type=int, default=100, help="messages timed to the pane (default 100)")
    parser.add_argument("--backlog", type=int, default=1_000,
                        help="messages already in the log for the on-screen figure (default 1,000)")
    parser.add_argument("--messages", type=int, default=10_000,
                        help="messages in the log for the first frame (default 10,000)")
    parser.add_argument("--runs", type=int, default=5, help="first frames measured (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-mail-pane-") as folder:
        base = make_base(Path(folder) / "screen")
        fill_log(base, args.backlog)
        engine = start_engine(base, Path(folder) / "engine.out")
        try:
            times = asyncio.run(to_screen(base, args.on_screen))
        finally:
            engine.send_signal(signal.SIGTERM)
            engine.wait(timeout=30)
        print(f"rename into the inbox → row in the Mail pane (intake in a headless engine), "
              f"{args.on_screen} messages, {args.backlog:,} already in the log:")
        print(f"  p50 {statistics.median(times) * 1000:.0f} ms   p95 {percentile(times, 0.95) * 1000:.0f} ms   "
              f"max {max(times) * 1000:.0f} ms   (goal: p95 ≤ 250 ms)")

        base = make_base(Path(folder) / "big")
        fill_log(base, args.messages)
        frames = [asyncio.run(first_frame(base)) for _ in range(args.runs)]
        reads = load_read(base, max(args.runs, 10))
        print(f"the Mail pane's first frame over {args.messages:,} messages (console start → rows loaded), "
              f"{args.runs} runs:")
        print(f"  median {statistics.median(frames):.3f} s   worst {max(frames):.3f} s   (goal: ≤ 0.5 s)")
        print(f"  the pane's load read alone: median {statistics.median(reads) * 1000:.1f} ms   "
              f"worst {max(reads) * 1000:.1f} ms")
    sys.exit(0)


if __name__ == "__main__":
    main()
