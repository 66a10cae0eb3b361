"""The mailbox on disk: ``.factory/mailbox/inbox/YYYY/MM/``, ``outbox/``
and ``quarantine/``, and the files in them.

It owns writing a message file whole or not at all (a temporary file in the
same folder, fsynced, then renamed: a reader never sees half a file),
reading one back within limits (no link out of its folder, no file over
``[mail] max_bytes``, nothing that is not a regular file), finding the
message files of a folder (a writer's temporary files are passed over until
renamed), and moving a file that is no message into quarantine with a
``.reason`` file beside it.

What a message means, and the log's record of it, are elsewhere
(``mail_model``, the log's mail tables); this module only knows files.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from factory_tui.front_matter import read_limited
from factory_tui.mail_model import InvalidMessage, Message, content_hash, file_name, month_folder, parse_bytes, render

# A writer's file in progress: ours start with this; other writers' usual
# temporary names are passed over too.
TEMPORARY_PREFIX = ".tmp-"
_TEMPORARY_SUFFIXES = (".tmp", ".part", ".swp", "~")
REASON_SUFFIX = ".reason"


@dataclass(frozen=True, slots=True)
class ReadMessage:
    """A message file read back: the message, where it is, and the hash of
    its bytes (the same id with other bytes is another message)."""

    message: Message
    path: Path
    hash: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A file in a mailbox that is not a message, and why."""

    path: Path
    reason: str  # one line, with "line N: " in front when a line is to blame


def is_message_name(name: str) -> bool:
    """Whether a file with this name is to be read as a message (``*.md``,
    not hidden, not a writer's temporary file)."""
    return (
        name.endswith(".md")
        and not name.startswith(".")
        and not name.endswith(_TEMPORARY_SUFFIXES)
    )


def write_atomically(folder: Path, name: str, data: bytes) -> Path:
    """``data`` as ``folder/name``, whole or not at all: written to a
    temporary file beside it, flushed to disk, then renamed over. Raises
    OSError (a full disk, a folder that cannot be made); nothing is left
    behind then."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    temporary = folder / f"{TEMPORARY_PREFIX}{secrets.token_hex(6)}-{name}"
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def message_path(box: Path, message: Message) -> Path:
    """Where ``message`` goes in ``box`` (an inbox or an outbox)."""
    return box / month_folder(message) / file_name(message)


def put(box: Path, message: Message) -> Path:
    """Write ``message`` into ``box`` (inbox or outbox) atomically; a file
    already there with the same name is left as it is (the same message,
    put twice, is one file)."""
    target = message_path(box, message)
    if target.exists():
        return target
    return write_atomically(target.parent, target.name, render(message).encode("utf-8"))


def read_message(path: Path, *, inside: Path, max_bytes: int) -> ReadMessage | Unreadable:
    """The message in ``path`` (which must stay inside ``inside``, links
    included); never raises for what the file holds."""
    data, problem = read_limited(path, inside=inside, limit=max_bytes, what="a message file",
                                 inside_name="the mailbox")
    if data is None:
        return Unreadable(path, problem)
    try:
        return ReadMessage(parse_bytes(data), path, content_hash(data))
    except InvalidMessage as error:
        return Unreadable(path, str(error))


def message_files(folder: Path) -> Iterator[Path]:
    """Every message file under ``folder`` (any depth, in name order: file
    names sort by time), links included so that they can be refused. None
    when the folder is missing."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from message_files(Path(entry.path))
        elif is_message_name(entry.name):
            yield Path(entry.path)


def quarantine(path: Path, reason: str, quarantine_dir: Path) -> Path:
    """Move ``path`` (a file that is no message) into ``quarantine_dir``,
    with ``NAME.reason`` beside it saying why; the name is kept, made unique
    when taken. Returns where it went. A link is moved as a link: what it
    points to is never read or moved."""
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    name = path.name
    target = quarantine_dir / name
    if target.exists() or target.is_symlink():
        target = quarantine_dir / f"{secrets.token_hex(3)}-{name}"
    os.replace(path, target)
    write_atomically(quarantine_dir, target.name + REASON_SUFFIX, (reason.strip() + "\n").encode("utf-8"))
    return target


def quarantined(quarantine_dir: Path) -> Iterator[Unreadable]:
    """What is in quarantine, each with its reason."""
    try:
        entries = sorted(os.scandir(quarantine_dir), key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.name.endswith(REASON_SUFFIX) or entry.name.startswith(TEMPORARY_PREFIX):
            continue
        reason_file = Path(entry.path + REASON_SUFFIX)
        try:
            reason = reason_file.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            reason = "(no reason kept)"
        yield Unreadable(Path(entry.path), reason)
