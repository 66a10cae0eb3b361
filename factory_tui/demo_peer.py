"""The demo's peer factory at work: ``python -m factory_tui.demo_peer
PEER_ROOT [--after SECONDS]`` waits ``--after`` seconds, then sends the
peer's request (backends/demo_mail.py ``LIVE_REQUEST``) to the demo base
through the peer's own session, as its operator would, and exits.

``factory demo`` starts it detached when the console opens (``start``) and
stops it when the console has gone (``stop``), so it never outlives the
demo; on its own it lives ``--after`` seconds and one send at most, and it
gives up quietly when the peer's folder is gone (the demo was removed).

Exit codes: 0 sent (or nothing left to send to), 1 the send failed (one
line on stderr), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

# How long after the console opens the peer's request arrives:
# FACTORY_DEMO_PEER_AFTER overrides it (the tests want it sooner).
DEFAULT_AFTER = 5.0
MAX_AFTER = 600.0
ACTOR = "demo:peer"


def send_request(peer_root: Path) -> str:
    """Send the peer's request to every factory the peer names as a peer;
    returns the message's id."""
    from factory_tui.backends.base import FactoryBase
    from factory_tui.backends.demo_mail import LIVE_REQUEST
    from factory_tui.backends.session import FactorySession
    from factory_tui.mail_model import Importance, MessageKind

    session = FactorySession(FactoryBase(peer_root))
    try:
        to = sorted(session.config.peers)
        sent = session.send_mail(to, LIVE_REQUEST.subject, LIVE_REQUEST.body, kind=MessageKind.REQUEST,
                                 importance=Importance.HIGH, actor=ACTOR)
    finally:
        session.close()
    failed = [item for item in sent.deliveries if item.state == "failed"]
    if failed:
        from factory_tui.errors import FactoryError

        raise FactoryError("; ".join(f"{item.factory}: {item.error}" for item in failed))
    return sent.message.id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m factory_tui.demo_peer", description=__doc__.split("\n\n")[0])
    parser.add_argument("peer_root", type=Path)
    parser.add_argument("--after", type=float, default=DEFAULT_AFTER, help="seconds to wait before sending")
    args = parser.parse_args(argv)
    if not 0 <= args.after <= MAX_AFTER:
        parser.error(f"--after must be between 0 and {MAX_AFTER:g} seconds")
    deadline = time.monotonic() + args.after
    while time.monotonic() < deadline:
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    root = args.peer_root
    if not (root / ".factory").is_dir():
        return 0  # the demo is gone, and its peer with it
    from factory_tui.errors import FactoryError

    try:
        send_request(root)
    except FactoryError as error:
        print(f"demo_peer: {error}", file=sys.stderr)
        return 1
    return 0


def start(peer_root: Path, *, after: float | None = None) -> subprocess.Popen:
    """Run the peer in its own session (the console's terminal and its
    signals are not its own), its errors in the peer's runs folder."""
    if after is None:
        after = float(os.environ.get("FACTORY_DEMO_PEER_AFTER", DEFAULT_AFTER))
    runs = peer_root / ".factory" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    with open(runs / "demo-peer.log", "ab") as errors:
        return subprocess.Popen(
            [sys.executable, "-m", "factory_tui.demo_peer", str(peer_root), "--after", f"{after:g}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True,
        )


def stop(process: subprocess.Popen) -> None:
    """End the peer we started, if it still runs (before its folder goes)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


if __name__ == "__main__":
    sys.exit(main())
