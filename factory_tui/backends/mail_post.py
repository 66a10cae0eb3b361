"""Sending a message: its copy written into our outbox (atomically: a
reader never sees half a file) and recorded in the log as sent, at once,
so that the operator sees it before any watcher does.

Only the outbox copy for now: delivering it to each peer (into a peer's
inbox on this machine, or over git) builds on ``send``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from factory_tui.backends import mailbox
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.mail_log import OUTBOX, Ingested, NewMail
from factory_tui.errors import FactoryError
from factory_tui.mail_model import Message, content_hash


@dataclass(frozen=True, slots=True)
class Sent:
    """A message sent: its file in our outbox and the log's record."""

    message: Message
    path: Path
    ingested: Ingested


def send(base: FactoryBase, log: ExecutionLog, message: Message) -> Sent:
    """Write ``message`` into our outbox and record it as sent (which, for
    an ack, marks what it acknowledges). Sending the same message twice is
    one file and one record. A full disk or an unwritable outbox is a
    FactoryError, and nothing is recorded then."""
    try:
        path = mailbox.put(base.outbox_dir, message)
        data = path.read_bytes()
    except OSError as error:
        raise FactoryError(f"the message could not be written into {base.outbox_dir}: "
                           f"{error.strerror or error}") from None
    read = mailbox.ReadMessage(message, path, content_hash(data))
    relative = os.path.relpath(path, base.root)
    ingested = log.ingest_messages([NewMail(read, OUTBOX, relative)])[0]
    return Sent(message, path, ingested)
