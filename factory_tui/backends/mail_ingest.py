"""Taking mail into the log: the inbox, the outbox and every
``[mail.sources.NAME]`` folder, caught up with at once (``catch_up``: what
came while nothing watched) and then followed with the file watcher
(``watch``).

A file is judged once per path and content: a message becomes a row of the
log (backends/mail_log.py), anything else is refused with its reason. From
our own mailbox a refused file is moved into ``.factory/mailbox/quarantine/``
with a ``.reason`` beside it; a source is another tool's archive, read-only:
its refused files stay where they are and are only recorded. A refusal
never stops ingestion.

Writers that rename a whole file into place (ours do) are read at once. A
writer that writes in place may be caught half-way: a file that parses is
taken (and brought up to date in the log if it changes again at the same
path), one that does not is judged only after it has stayed unchanged for
``settle`` seconds, so that a message being written is never quarantined.

In a source (mcp_agent_mail's layout under ``projects/<slug>/``) the
messages are ``agents/*/inbox/**.md`` and ``messages/YYYY/MM/*.md``;
``messages/threads/`` holds digests, and each agent's ``outbox/`` copies.

The log is written in batches, one transaction each, before any file is
moved: a process killed at any point loses nothing, and the next catch-up
takes what is left exactly once.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from factory_tui.backends import mailbox
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.mail_log import INBOX, OUTBOX, IngestOutcome, NewMail, source_box
from factory_tui.backends.watcher import watch as watch_path
from factory_tui.config import FactoryConfig
from factory_tui.errors import FactoryError, LogError
from factory_tui.front_matter import read_limited
from factory_tui.mail_model import InvalidMessage, content_hash, parse_bytes

# A file that does not parse is judged when it has not changed for this long.
SETTLE_SECONDS = 2.0
# Rows written per transaction: a burst is a few transactions, and the
# engine's own writes never wait long behind one.
BATCH = 500
# The watch also looks at every folder this often, in case an event was
# missed (a folder made and filled before its watch was set).
RESCAN_SECONDS = 30.0

_YEAR = re.compile(r"^[0-9]{4}$")
_MONTH = re.compile(r"^[0-9]{2}$")


@dataclass
class IngestReport:
    """What a catch-up or a watch's round did: messages new to the log,
    files known already (or the same file again), files refused, and files
    left for later (not a message yet, and still changing)."""

    new: int = 0
    known: int = 0
    quarantined: int = 0
    waiting: list[Path] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"new": self.new, "known": self.known, "quarantined": self.quarantined,
                "waiting": len(self.waiting)}


@dataclass(frozen=True, slots=True)
class _Folder:
    box: str
    path: Path

    @property
    def is_source(self) -> bool:
        return self.box not in (INBOX, OUTBOX)


class MailIngest:
    """Takes one base's mail into its log."""

    def __init__(self, base: FactoryBase, log: ExecutionLog, config: FactoryConfig, *,
                 settle: float = SETTLE_SECONDS, rescan: float = RESCAN_SECONDS,
                 report: Callable[[str], None] | None = None) -> None:
        self.base = base
        self.log = log
        self.config = config
        self.settle = settle
        self.rescan = rescan
        self._report = report or (lambda line: None)
        folders = [_Folder(INBOX, _absolute(base.inbox_dir)), _Folder(OUTBOX, _absolute(base.outbox_dir))]
        for name, path in sorted(config.mail.sources.items()):
            folders.append(_Folder(source_box(name), _absolute(base.root / Path(path).expanduser())))
        self.folders = folders

    # --- what to read ---------------------------------------------------------------

    def _files(self, folder: _Folder) -> Iterator[Path]:
        if not folder.is_source:
            yield from mailbox.message_files(folder.path)
            return
        for agent in _subfolders(folder.path / "agents"):
            yield from mailbox.message_files(agent / "inbox")
        for year in _subfolders(folder.path / "messages"):
            if _YEAR.match(year.name):
                for month in _subfolders(year):
                    if _MONTH.match(month.name):
                        yield from (path for path in mailbox.message_files(month) if path.parent == month)

    def _owner(self, path: Path) -> _Folder | None:
        """The folder of ours ``path`` is under, or None (the quarantine)."""
        for folder in self.folders:
            if path.is_relative_to(folder.path) and path != folder.path:
                return folder
        return None

    @staticmethod
    def _takes(folder: _Folder, path: Path) -> bool:
        """Whether the file ``path`` in ``folder`` is read as a message (in
        a source: only its layout's message files)."""
        if not mailbox.is_message_name(path.name):
            return False
        if not folder.is_source:
            return True
        parts = path.relative_to(folder.path).parts
        if parts[0] == "agents":
            return len(parts) >= 4 and parts[2] == "inbox"
        return parts[0] == "messages" and len(parts) == 4 and bool(_YEAR.match(parts[1]) and _MONTH.match(parts[2]))

    # --- taking files in ------------------------------------------------------------

    def catch_up(self) -> IngestReport:
        """Every message file of the inbox, the outbox and the sources,
        taken into the log."""
        # Many files: what the log has judged is read once, as a set.
        seen = self.log.mail_seen()

        def judged(relative: str, hash_: str) -> bool:
            if (relative, hash_) in seen:
                return True
            seen.add((relative, hash_))
            return False

        return self._take(((folder, path) for folder in self.folders for path in self._files(folder)), judged)

    def ingest_paths(self, paths: Iterable[Path]) -> IngestReport:
        """The files a watcher reported (a folder: every file in it); what
        is in none of our folders, or has vanished meanwhile, is passed over."""
        found: dict[Path, _Folder] = {}
        for changed in paths:
            changed = _absolute(Path(changed))
            folder = self._owner(changed)
            if folder is None:
                continue
            if changed.is_dir() and not changed.is_symlink():
                for path in mailbox.message_files(changed):
                    if self._takes(folder, path):
                        found.setdefault(path, folder)
            elif self._takes(folder, changed):
                found.setdefault(changed, folder)
        # A few files: each looked up by its path (indexed), so that a new
        # message costs the same in a log of ten messages or a million.
        return self._take(sorted(((folder, path) for path, folder in found.items()), key=lambda item: item[1]),
                          self.log.mail_judged)

    def _take(self, files: Iterable[tuple[_Folder, Path]], judged: Callable[[str, str], bool]) -> IngestReport:
        report = IngestReport()
        batch: list[tuple[_Folder, NewMail]] = []
        for folder, path in files:
            read = self._read(folder, path, judged, report)
            if read is not None:
                batch.append((folder, read))
                if len(batch) >= BATCH:
                    self._write(batch, report)
                    batch = []
        self._write(batch, report)
        return report

    def _read(self, folder: _Folder, path: Path, judged: Callable[[str, str], bool],
              report: IngestReport) -> NewMail | None:
        relative = os.path.relpath(path, self.base.root)
        data, problem = read_limited(path, inside=folder.path, limit=self.config.mail.max_bytes,
                                     what="a message file", inside_name="the mailbox")
        if data is None:
            if not os.path.lexists(path):
                return None  # gone meanwhile (taken by another watcher, or deleted)
            self._refuse(folder, path, relative, problem, "", report)
            return None
        hash_ = content_hash(data)
        if judged(relative, hash_):
            report.known += 1
            return None
        try:
            message = parse_bytes(data)
        except InvalidMessage as error:
            if self._still_changing(path):
                report.waiting.append(path)
            else:
                self._refuse(folder, path, relative, str(error), hash_, report)
            return None
        return NewMail(mailbox.ReadMessage(message, path, hash_), folder.box, relative)

    def _still_changing(self, path: Path) -> bool:
        try:
            return time.time() - path.lstat().st_mtime < self.settle
        except OSError:
            return False

    def _write(self, batch: list[tuple[_Folder, NewMail]], report: IngestReport) -> None:
        if not batch:
            return
        outcomes = self.log.ingest_messages([item for _, item in batch], us=self.config.name)
        received: list[str] = []
        for (folder, item), outcome in zip(batch, outcomes, strict=True):
            if outcome.outcome is IngestOutcome.NEW:
                report.new += 1
                if folder.box == INBOX:
                    received.append(outcome.key)
            elif outcome.outcome is IngestOutcome.CONFLICT:
                reason = f"another message has id {item.read.message.id} ({outcome.existing_path})"
                self._refuse(folder, item.read.path, item.relative_path, reason, item.read.hash, report)
            else:
                report.known += 1
        if received:
            self._by_policy(received)

    def _by_policy(self, keys: list[str]) -> None:
        """Requests from a peer whose ``accept`` is propose or queue become
        tasks as they arrive (backends/mail_requests.py); a failure is
        reported, never stops intake, and the engine's mail round tries
        again."""
        from factory_tui.backends.mail_requests import take_by_policy

        try:
            for task in take_by_policy(self.base, self.log, keys):
                self._report(f"mail: a request became {task.id} ({task.state}): {task.title}")
        except (FactoryError, OSError) as error:
            self._report(f"mail: a request could not become a task: {error}")

    def _refuse(self, folder: _Folder, path: Path, relative: str, reason: str, hash_: str,
                report: IngestReport) -> None:
        """Record the refusal first, then move the file: killed in between,
        the next look finds the file again and the record already there."""
        new = self.log.record_quarantined(relative, reason, box=folder.box, hash=hash_)
        if folder.is_source:
            if new:
                report.quarantined += 1
            else:
                report.known += 1
            return
        try:
            mailbox.quarantine(path, reason, self.base.quarantine_dir)
        except FileNotFoundError:
            return  # moved by another watcher meanwhile
        except OSError as error:
            self._report(f"mail: {relative} is no message ({reason}) but could not be moved into quarantine: "
                         f"{error.strerror or error}")
            return
        report.quarantined += 1

    # --- watching -------------------------------------------------------------------

    def watch(self, stop: threading.Event, *, step: float = 0.5,
              caught_up: threading.Event | None = None) -> None:
        """Follow the mailbox and the sources until ``stop`` is set: caught
        up first (then ``caught_up`` is set), then each change taken as it
        comes. A log that is busy or cannot be written is said once and
        tried again on the next round."""
        changes: queue.Queue[set[Path]] = queue.Queue()
        roots = [_absolute(self.base.mailbox_dir)] + [folder.path for folder in self.folders if folder.is_source]
        ready = [threading.Event() for _ in roots]
        watchers = [threading.Thread(target=_follow, args=(root, stop, changes, step, set_up), daemon=True,
                                     name=f"mail-watch:{root.name}") for root, set_up in zip(roots, ready, strict=True)]
        for thread in watchers:
            thread.start()
        # Catch up only once every watch is set: a file that came between a
        # catch-up and its watch would wait for the next rescan.
        deadline = time.monotonic() + max(5.0, 4 * step)
        while not all(set_up.is_set() for set_up in ready) and time.monotonic() < deadline:
            if stop.wait(0.01):  # told to stop meanwhile: no waiting out the deadline
                break
        pending: set[Path] = set()
        last_scan = float("-inf")  # the first round catches up
        trouble: str | None = None
        try:
            while not stop.is_set():
                changed: set[Path] = set()
                if time.monotonic() - last_scan < self.rescan:
                    try:
                        changed |= changes.get(timeout=step)
                    except queue.Empty:
                        pass
                while True:
                    try:
                        changed |= changes.get_nowait()
                    except queue.Empty:
                        break
                if stop.is_set():
                    break
                try:
                    if time.monotonic() - last_scan >= self.rescan:
                        last_scan = time.monotonic()
                        report = self.catch_up()
                    else:
                        report = self.ingest_paths(changed | pending)
                except LogError as error:
                    if str(error) != trouble:
                        self._report(f"mail: {error}; trying again")
                    trouble = str(error)
                    pending |= changed
                    stop.wait(step)
                    continue
                trouble = None
                if caught_up is not None:
                    caught_up.set()
                pending = set(report.waiting)
                if report.new or report.quarantined:
                    self._report(_summary(report))
        finally:
            stop.set()
            for thread in watchers:
                thread.join(timeout=5)


def _follow(root: Path, stop: threading.Event, changes: queue.Queue[set[Path]], step: float,
            ready: threading.Event) -> None:
    # The watcher's first answer (changes, or none within ``step``) comes
    # once its watch is set.
    for changed in watch_path(root, stop=stop, step=step):
        ready.set()
        if changed:
            changes.put(changed)


def _summary(report: IngestReport) -> str:
    parts = [f"{report.new} new message{'s' if report.new != 1 else ''}"]
    if report.quarantined:
        parts.append(f"{report.quarantined} file{'s' if report.quarantined != 1 else ''} quarantined")
    return "mail: " + ", ".join(parts)


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(Path(entry.path) for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _absolute(path: Path) -> Path:
    """``path`` absolute, its folders' links resolved, the last part kept
    as it is (a link in a mailbox is judged, never followed)."""
    path = Path(os.path.abspath(path))
    return path.parent.resolve() / path.name
