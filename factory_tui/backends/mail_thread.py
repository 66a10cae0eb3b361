"""What the console shows of one thread and of one refused file, each read
at once: a thread's messages (oldest first) with the delivery of each of
ours to each peer and the state of every task its requests became; a
refused file's reason, where it is now, and whether it can be shown as text.

Files only and the log; no Textual. The thread screen and the quarantined
file's screen read these through the session in a worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from factory_tui.backends.mail_log import INBOX, OUTBOX
from factory_tui.backends.mailbox import REASON_SUFFIX

if TYPE_CHECKING:
    from factory_tui.backends.base import FactoryBase
    from factory_tui.backends.log import ExecutionLog
    from factory_tui.backends.mail_log import Delivery, MailItem, Rejected

# How much of a refused file is looked at to tell text from binary.
SNIFF_BYTES = 8192


@dataclass(frozen=True, slots=True)
class ThreadDetail:
    """A thread's messages, oldest first; ``deliveries`` by message key
    (ours only, each peer's row); ``task_states`` by task id."""

    items: list[MailItem]
    deliveries: dict[str, list[Delivery]] = field(default_factory=dict)
    task_states: dict[str, str] = field(default_factory=dict)

    def undelivered(self, key: str) -> list[Delivery]:
        """Our message ``key``'s deliveries not done (pending or failed)."""
        return [delivery for delivery in self.deliveries.get(key, []) if delivery.state != "delivered"]


def thread_detail(log: ExecutionLog, thread: str) -> ThreadDetail:
    items = list(reversed(log.mail_messages(thread=thread)))
    deliveries = {item.key: log.deliveries(item.key) for item in items if item.ours}
    task_ids = {task for item in items for task in (item.task_id, item.task) if task}
    states = {task.id: task.state.value for task in log.get_tasks(task_ids)} if task_ids else {}
    return ThreadDetail(items, {key: rows for key, rows in deliveries.items() if rows}, states)


@dataclass(frozen=True, slots=True)
class RefusedFile:
    """A refused file as the console shows it: where it is now (None when
    it is gone), the folder-relative name shown, why it was refused, and
    whether it is shown as text (``text``; else ``note`` says why not)."""

    rejected: Rejected
    path: Path | None
    shown: str
    text: bool
    note: str


def refused_file(base: FactoryBase, rejected: Rejected) -> RefusedFile:
    """Find the refused file: a source's stays where it was; one of our
    mailbox was moved into quarantine under its name (or a name made
    unique, ``<hex>-<name>``, whose ``.reason`` says the same)."""
    where = base.root / rejected.path
    if rejected.box not in (INBOX, OUTBOX):
        path: Path | None = where if where.exists() or where.is_symlink() else None
    else:
        path = _in_quarantine(base.quarantine_dir, where.name, rejected.reason)
    if path is None:
        return RefusedFile(rejected, None, rejected.path, False, "the file is no longer there")
    shown = os.path.relpath(path, base.root)
    if path.is_symlink():
        # A link is never followed: what it points to is not ours to read.
        return RefusedFile(rejected, path, shown, False, "a symbolic link: what it points to is not read")
    if not path.is_file():
        return RefusedFile(rejected, path, shown, False, "not a regular file")
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as error:
        return RefusedFile(rejected, path, shown, False, f"cannot be read: {error.strerror or error}")
    if b"\0" in head or not _decodes(head):
        return RefusedFile(rejected, path, shown, False, "not a text file (binary or not UTF-8)")
    return RefusedFile(rejected, path, shown, True, "")


def _in_quarantine(folder: Path, name: str, reason: str) -> Path | None:
    exact = folder / name
    if exact.exists() or exact.is_symlink():
        return exact
    try:
        candidates = sorted(entry for entry in folder.iterdir()
                            if entry.name.endswith(f"-{name}") and not entry.name.endswith(REASON_SUFFIX))
    except OSError:
        return None
    for candidate in candidates:
        try:
            said = Path(f"{candidate}{REASON_SUFFIX}").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if " ".join(said.split()) == reason:
            return candidate
    return candidates[0] if candidates else None


def _decodes(head: bytes) -> bool:
    """UTF-8, allowing a character cut at the end of what was read."""
    for cut in range(4):
        try:
            head[:len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False

