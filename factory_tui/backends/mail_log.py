"""The execution log's record of mail: every message this factory knows,
what became of each (read, acknowledged, linked to a task, delivered to
each peer), and the files refused as no message.

A message is keyed by its id; one read from a ``[mail.sources.NAME]``
folder (another tool's archive) by ``NAME:<id>``, and so are its thread and
what it answers, so that a source's threads never meet ours. Taking a
message in is idempotent by key and content hash: the same file twice is
nothing, the same id with other bytes is a conflict (the ingester
quarantines the second file), the same path with other bytes is the same
file read again after its writer finished it (the row is brought up to
date, no second event). Each new message writes one event in the same
transaction: ``mail_received`` (inbox, sources) or ``mail_sent`` (outbox).

A message we send to ourselves (a note to ourselves, the operator
answering one of our agents at ``<us>/T-3``) is two rows: our outbox copy,
keyed ``sent/<id>`` (read, the one its deliveries hang on), and the copy
delivered into our inbox, keyed by its id like any message received
(unread until read, answerable, a request that can become a task). A
slash is in no id and no source's name: the two keys never meet another.
Each file is taken once by its own key, in either order.

Acknowledgements: a message with ``ack_required`` waits until an ``ack``
answering it comes from someone other than its sender (we send one with
``factory mail ack``; a peer sends one for ours), or from us for a message
we received (one we sent ourselves); the ack sets the original's
``acked_at`` (both rows of one sent to ourselves), whichever of the two
the log learns of first.

A mixin of ``ExecutionLog`` (backends/log.py), like qa_log.py. The files
themselves are backends/mailbox.py's; reading folders and watching them is
backends/mail_ingest.py's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from factory_tui.backends.mailbox import ReadMessage
from factory_tui.errors import InvalidInput, UnknownMessage
from factory_tui.mail_model import Message
from factory_tui.model import KIND_MAIL_QUARANTINED, KIND_MAIL_READ, KIND_MAIL_RECEIVED, KIND_MAIL_SENT

if TYPE_CHECKING:
    from factory_tui.backends.log import _Transaction

INBOX = "inbox"
OUTBOX = "outbox"
SOURCE_PREFIX = "source:"

DELIVERY_STATES = ("pending", "delivered", "failed")

_COLUMNS = (
    "key, id, box, path, hash, sender, recipients, subject, created, kind, thread, in_reply_to, importance, "
    "ack_required, state, task, body, received_at, read_at, acked_at, task_id"
)
# A request still waiting for us: received, not yet a task, not settled by
# a reply of ours (accepted or rejected; a question back leaves it waiting,
# as mail_requests.task_from_request still takes it).
_WAITING_REQUEST = (
    "(m.kind = 'request' AND m.box != 'outbox' AND m.task_id IS NULL AND NOT EXISTS "
    "(SELECT 1 FROM messages AS r WHERE r.in_reply_to = m.key AND r.box = 'outbox' "
    "AND r.state IN ('accepted', 'rejected')))"
)
_WAITING_ACK = "(m.ack_required = 1 AND m.acked_at IS NULL AND m.box != 'outbox')"


# The key of our outbox copy of a message addressed to ourselves.
SENT_TO_US = "sent/"


def source_box(name: str) -> str:
    """The box of a ``[mail.sources.NAME]`` folder's messages."""
    return SOURCE_PREFIX + name


def key_in(box: str, message_id: str) -> str:
    """The log's key for ``message_id`` read from ``box``."""
    if box.startswith(SOURCE_PREFIX):
        return f"{box[len(SOURCE_PREFIX):]}:{message_id}"
    return message_id


class IngestOutcome(StrEnum):
    NEW = "new"
    KNOWN = "known"  # the same message again (the same bytes, or a source's second copy)
    UPDATED = "updated"  # the same file read again: its writer had not finished it before
    CONFLICT = "conflict"  # another file already has this id


@dataclass(frozen=True, slots=True)
class NewMail:
    """A message file read, to be taken into the log: where it was found
    (``box``) and its path relative to the repository's root."""

    read: ReadMessage
    box: str
    relative_path: str


@dataclass(frozen=True, slots=True)
class Ingested:
    """What taking one file in did; for a conflict, the path of the file
    that has the id already."""

    outcome: IngestOutcome
    key: str
    existing_path: str | None = None


@dataclass(frozen=True, slots=True)
class MailItem:
    """A message as the log knows it. Times are epoch seconds; ``thread``
    and ``in_reply_to`` are keys."""

    key: str
    id: str
    box: str
    path: str
    hash: str
    sender: str
    recipients: tuple[str, ...]
    subject: str
    created: float
    kind: str
    thread: str
    in_reply_to: str | None
    importance: str
    ack_required: bool
    state: str | None
    task: str | None
    body: str
    received_at: float
    read_at: float | None
    acked_at: float | None
    task_id: str | None

    @property
    def ours(self) -> bool:
        return self.box == OUTBOX

    @property
    def waiting_ack(self) -> bool:
        """Received, asks for an acknowledgement, and has none yet."""
        return self.ack_required and self.acked_at is None and not self.ours

    def to_json(self) -> dict:
        data = {name: getattr(self, name) for name in _COLUMNS.split(", ")}
        data["recipients"] = list(self.recipients)
        data["waiting_ack"] = self.waiting_ack
        return data


@dataclass(frozen=True, slots=True)
class MailThread:
    """A thread, for a list of threads: its key, the subject of its first
    message, its last message's time, how many messages and how many unread,
    and whether a request or an acknowledgement in it waits for us."""

    thread: str
    subject: str
    last_activity: float
    count: int
    unread: int
    waiting_request: bool
    waiting_ack: bool

    def to_json(self) -> dict:
        return {"thread": self.thread, "subject": self.subject, "last_activity": self.last_activity,
                "count": self.count, "unread": self.unread, "waiting_request": self.waiting_request,
                "waiting_ack": self.waiting_ack}


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """A thread as one row of the Mail pane: what ``MailThread`` says, and
    its latest message (who, what kind, in what state), its highest
    importance, and the task a request of it became."""

    thread: str
    subject: str
    last_activity: float
    count: int
    unread: int
    waiting_request: bool
    waiting_ack: bool
    importance: str
    last_key: str
    last_sender: str
    last_kind: str
    last_state: str | None
    task_id: str | None


@dataclass(frozen=True, slots=True)
class ThreadPage:
    """The newest threads (as many as asked for) and how many match in all."""

    threads: list[ThreadSummary]
    total: int


@dataclass(frozen=True, slots=True)
class MailCounts:
    """What the console's header and the Mail pane's title show."""

    unread: int
    waiting_requests: int
    waiting_acks: int
    undelivered: int  # outbox messages not yet delivered to every peer
    quarantined: int  # files refused as no message

    def to_json(self) -> dict:
        return {"unread": self.unread, "waiting_requests": self.waiting_requests,
                "waiting_acks": self.waiting_acks, "undelivered": self.undelivered,
                "quarantined": self.quarantined}


@dataclass(frozen=True, slots=True)
class Delivery:
    """An outbox message's delivery to one peer."""

    key: str
    peer: str
    state: str  # pending, delivered, failed
    attempts: int
    last_error: str | None
    updated_at: float

    def to_json(self) -> dict:
        return {"key": self.key, "peer": self.peer, "state": self.state, "attempts": self.attempts,
                "last_error": self.last_error, "updated_at": self.updated_at}


@dataclass(frozen=True, slots=True)
class Rejected:
    """A file refused as no message (moved into quarantine from our
    mailbox; a source's is left where it is)."""

    at: float
    box: str
    path: str
    reason: str

    def to_json(self) -> dict:
        return {"at": self.at, "box": self.box, "path": self.path, "reason": self.reason}


def _item(row: Sequence) -> MailItem:
    (key, id_, box, path, hash_, sender, recipients, subject, created, kind, thread, in_reply_to, importance,
     ack_required, state, task, body, received_at, read_at, acked_at, task_id) = row
    return MailItem(key, id_, box, path, hash_, sender, tuple(json.loads(recipients)), subject, created, kind,
                    thread, in_reply_to, importance, bool(ack_required), state, task, body, received_at,
                    read_at, acked_at, task_id)


def _row_values(message: Message, box: str, path: str, hash_: str) -> dict:
    return {
        "id": message.id, "box": box, "path": path, "hash": hash_, "sender": message.sender,
        "recipients": json.dumps(list(message.recipients)), "subject": message.subject,
        "created": message.created.timestamp(), "kind": str(message.kind),
        "thread": key_in(box, message.thread_key),
        "in_reply_to": key_in(box, message.in_reply_to) if message.in_reply_to else None,
        "importance": str(message.importance), "ack_required": int(message.ack_required),
        "state": str(message.state) if message.state is not None else None, "task": message.task,
        "body": message.body,
    }


class MailRecords:
    """The mail methods of ``ExecutionLog``."""

    # Provided by ExecutionLog.
    _clock: Callable[[], float]
    _write: Callable[[], _Transaction]
    _read: Callable[[], _Transaction]
    _event: Callable[..., None]

    # --- taking messages in ---------------------------------------------------------

    def ingest_message(self, read: ReadMessage, *, box: str, relative_path: str,
                       us: str | None = None) -> Ingested:
        """Take one message file into the log (see ``ingest_messages``)."""
        return self.ingest_messages([NewMail(read, box, relative_path)], us=us)[0]

    def ingest_messages(self, items: Sequence[NewMail], *, us: str | None = None) -> list[Ingested]:
        """Take message files into the log, all in one transaction; one
        outcome per item, in order. ``us``: our address, to note in a
        received message's event that it is not addressed to us."""
        if not items:
            return []
        now = self._clock()
        with self._write() as conn:
            return [self._ingest_one(conn, now, item, us) for item in items]

    def _ingest_one(self, conn: sqlite3.Connection, now: float, item: NewMail, us: str | None) -> Ingested:
        message, box = item.read.message, item.box
        key = key_in(box, message.id)
        if box == OUTBOX and us is not None and message.addressed_to(us):
            key = SENT_TO_US + message.id
        found = conn.execute("SELECT hash, path, box FROM messages WHERE key = ?", (key,)).fetchone()
        values = _row_values(message, box, item.relative_path, item.read.hash)
        if found is not None:
            hash_, path, known_box = found
            if hash_ == item.read.hash:
                return Ingested(IngestOutcome.KNOWN, key)
            if path == item.relative_path:
                # A message file never changes once whole: this one was read
                # while its writer was still at it (a writer that does not
                # rename). What it holds now is the message.
                assignments = ", ".join(f"{name} = :{name}" for name in values)
                conn.execute(f"UPDATE messages SET {assignments} WHERE key = :key", {**values, "key": key})
                return Ingested(IngestOutcome.UPDATED, key)
            if box.startswith(SOURCE_PREFIX) and known_box == box:
                # mcp_agent_mail writes a message into each recipient's inbox
                # and into messages/: copies of one message.
                return Ingested(IngestOutcome.KNOWN, key)
            return Ingested(IngestOutcome.CONFLICT, key, path)
        ours = box == OUTBOX
        acked = None
        if message.ack_required:
            # An ack of ours counts for a message we received (one we sent
            # ourselves is both); anyone else's for whatever is not theirs.
            acked = conn.execute(
                "SELECT min(received_at) FROM messages WHERE in_reply_to = ? AND kind = 'ack' "
                "AND (sender != ? OR (box = 'outbox' AND ?))",
                (key_in(box, message.id), message.sender, not ours),
            ).fetchone()[0]
        conn.execute(
            f"INSERT INTO messages ({', '.join(values)}, key, received_at, read_at, acked_at) "
            f"VALUES ({', '.join(':' + name for name in values)}, :key, :now, :read_at, :acked_at)",
            {**values, "key": key, "now": now, "read_at": now if ours else None, "acked_at": acked},
        )
        if message.kind == "ack" and values["in_reply_to"]:
            answered = values["in_reply_to"]
            conn.execute(
                "UPDATE messages SET acked_at = ? WHERE key IN (?, ?) AND acked_at IS NULL "
                "AND (sender != ? OR (? AND box != 'outbox'))",
                (now, answered, SENT_TO_US + answered, message.sender, ours),
            )
        data: dict = {"key": key, "from": message.sender, "kind": str(message.kind)}
        if ours:
            data = {"key": key, "to": list(message.recipients), "kind": str(message.kind)}
        elif box == INBOX and us is not None and not message.addressed_to(us):
            data["to_us"] = False
        self._event(conn, now, None, KIND_MAIL_SENT if ours else KIND_MAIL_RECEIVED, message.sender,
                    note=message.subject, data=data)
        return Ingested(IngestOutcome.NEW, key)

    def record_quarantined(self, path: str, reason: str, *, box: str = INBOX, hash: str = "") -> bool:
        """Record that the file at ``path`` (relative to the repository's
        root) was refused as no message, and why: one ``mail_quarantined``
        event per path and content. False if it was recorded already."""
        now = self._clock()
        reason = " ".join(reason.split())
        with self._write() as conn:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO mail_rejects (at, box, path, hash, reason) VALUES (?, ?, ?, ?, ?)",
                (now, box, path, hash, reason),
            ).rowcount
            if inserted:
                self._event(conn, now, None, KIND_MAIL_QUARANTINED, "mail", note=reason,
                            data={"path": path, "box": box})
        return bool(inserted)

    def mail_seen(self) -> set[tuple[str, str]]:
        """Every (path, hash) the log has judged, message or not: a file
        found again unchanged need not be parsed again."""
        with self._read() as conn:
            rows = conn.execute("SELECT path, hash FROM messages UNION SELECT path, hash FROM mail_rejects")
            return {(path, hash_) for path, hash_ in rows}

    def mail_judged(self, path: str, hash_: str) -> bool:
        """Whether the file at ``path`` with these contents was judged
        already (taken, or refused): one indexed look-up."""
        with self._read() as conn:
            return conn.execute(
                "SELECT 1 FROM messages WHERE path = ? AND hash = ? "
                "UNION ALL SELECT 1 FROM mail_rejects WHERE path = ? AND hash = ? LIMIT 1",
                (path, hash_, path, hash_),
            ).fetchone() is not None

    # --- what became of a message ----------------------------------------------------

    def mark_read(self, keys: Iterable[str], actor: str) -> int:
        """Mark messages read; how many were unread. One ``mail_read`` event."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return 0
        now = self._clock()
        with self._write() as conn:
            marked = self._mark(conn, now, keys)
            if marked:
                self._event(conn, now, None, KIND_MAIL_READ, actor,
                            note=f"read {len(marked)} message{'s' if len(marked) != 1 else ''}",
                            data={"keys": marked})
        return len(marked)

    @staticmethod
    def _mark(conn: sqlite3.Connection, now: float, keys: list[str]) -> list[str]:
        marked = []
        for key in keys:
            if conn.execute("UPDATE messages SET read_at = ? WHERE key = ? AND read_at IS NULL", (now, key)).rowcount:
                marked.append(key)
        return marked

    def link_task(self, key: str, task_id: str) -> None:
        """Record that the request ``key`` became the task ``task_id``."""
        with self._write() as conn:
            if not conn.execute("UPDATE messages SET task_id = ? WHERE key = ?", (task_id, key)).rowcount:
                raise UnknownMessage(f"no such message: {key!r}")

    def set_delivery(self, key: str, peer: str, state: str, error: str | None = None) -> None:
        """Record where our message ``key`` stands with ``peer``: pending,
        delivered or failed (with ``error``, one line). Delivered and failed
        count as an attempt."""
        if state not in DELIVERY_STATES:
            raise InvalidInput(f"a delivery is {', '.join(DELIVERY_STATES)}, not {state!r}")
        now = self._clock()
        attempt = 0 if state == "pending" else 1
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM messages WHERE key = ?", (key,)).fetchone() is None:
                raise UnknownMessage(f"no such message: {key!r}")
            conn.execute(
                "INSERT INTO mail_deliveries (message_key, peer, state, attempts, last_error, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_key, peer) DO UPDATE SET "
                "state = excluded.state, attempts = attempts + excluded.attempts, "
                "last_error = excluded.last_error, updated_at = excluded.updated_at",
                (key, peer, state, attempt, error, now),
            )

    # --- reading ------------------------------------------------------------------------

    def mail_messages(self, *, unread: bool | None = None, thread: str | None = None, box: str | None = None,
                      limit: int | None = None) -> list[MailItem]:
        """Messages, newest first: only unread ones (or only read ones), of
        one thread (its key), of one box (inbox, outbox, source:NAME)."""
        where: list[str] = []
        params: list = []
        if unread is not None:
            where.append("read_at IS NULL" if unread else "read_at IS NOT NULL")
        if thread is not None:
            where.append("thread = ?")
            params.append(thread)
        if box is not None:
            where.append("box = ?")
            params.append(box)
        sql = f"SELECT {_COLUMNS} FROM messages"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._read() as conn:
            return [_item(row) for row in conn.execute(sql, params)]

    def mail_to(self, address: str, *, since: float | None = None, limit: int = 50) -> list[MailItem]:
        """Messages we received addressed to ``address`` (``<us>/T-3``: one
        of our tasks), taken in after ``since`` (epoch seconds), the newest
        ``limit`` of them, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE box = 'inbox' AND received_at > ? "
                "AND EXISTS (SELECT 1 FROM json_each(messages.recipients) WHERE value = ?) "
                "ORDER BY created DESC, seq DESC LIMIT ?",
                (since if since is not None else float("-inf"), address, int(limit)),
            ).fetchall()
        return [_item(row) for row in reversed(rows)]

    def linked_requests(self) -> list[MailItem]:
        """Requests we received that became tasks, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE kind = 'request' AND task_id IS NOT NULL "
                "AND box != 'outbox' ORDER BY created, seq"
            ).fetchall()
        return [_item(row) for row in rows]

    def our_answers(self, keys: Sequence[str]) -> dict[str, list[MailItem]]:
        """Our replies that say where a request stands (a ``state``), for
        each of the requests ``keys``, oldest first (as sent: by time, then
        by when the log learnt of them)."""
        found: dict[str, list[MailItem]] = {}
        keys = list(dict.fromkeys(keys))
        with self._read() as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM messages WHERE in_reply_to IN ({','.join('?' * len(chunk))}) "
                    "AND box = 'outbox' AND state IS NOT NULL ORDER BY created, seq", chunk,
                ).fetchall()
                for row in rows:
                    item = _item(row)
                    found.setdefault(item.in_reply_to or "", []).append(item)
        return found

    def mail_message(self, key_or_prefix: str) -> MailItem:
        """The message with this key, or the one message whose key (or id)
        starts with it; UnknownMessage for none or several."""
        wanted = key_or_prefix.strip()
        if not wanted:
            raise UnknownMessage("no message id given")
        with self._read() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE key = ?", (wanted,)).fetchone()
            if row is not None:
                return _item(row)
            # Keys are compared in the unique index's order: a prefix is a range.
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE (key >= ?1 AND key < ?1 || char(1114111)) "
                "OR id = ?1 ORDER BY key LIMIT 6", (wanted,),
            ).fetchall()
        if not rows:
            raise UnknownMessage(f"no such message: {wanted!r}")
        if len(rows) > 1:
            keys = ", ".join(row[0] for row in rows[:5]) + (", …" if len(rows) > 5 else "")
            raise UnknownMessage(f"{wanted!r} starts more than one message's id ({keys}): give more of it")
        return _item(rows[0])

    def mail_threads(self, limit: int | None = None) -> list[MailThread]:
        """Threads, the one with the latest message first."""
        sql = (
            "SELECT m.thread, "
            " (SELECT f.subject FROM messages AS f WHERE f.thread = m.thread ORDER BY f.created, f.seq LIMIT 1), "
            f" max(m.created), count(*), sum(m.read_at IS NULL), max({_WAITING_REQUEST}), max({_WAITING_ACK}) "
            "FROM messages AS m GROUP BY m.thread ORDER BY max(m.created) DESC"
        )
        params: list = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._read() as conn:
            return [MailThread(thread, subject, last, count, unread or 0, bool(request), bool(ack))
                    for thread, subject, last, count, unread, request, ack in conn.execute(sql, params)]

    def mail_counts(self) -> MailCounts:
        with self._read() as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM messages WHERE read_at IS NULL), "
                f" (SELECT count(*) FROM messages AS m WHERE m.kind = 'request' AND m.task_id IS NULL "
                f"  AND {_WAITING_REQUEST}), "
                f" (SELECT count(*) FROM messages AS m WHERE m.ack_required = 1 AND m.acked_at IS NULL "
                f"  AND {_WAITING_ACK}), "
                " (SELECT count(DISTINCT message_key) FROM mail_deliveries WHERE state != 'delivered'), "
                " (SELECT count(*) FROM mail_rejects)"
            ).fetchone()
        return MailCounts(*row)

    def undelivered(self) -> list[Delivery]:
        """Deliveries of our messages not yet done (pending or failed),
        oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT message_key, peer, state, attempts, last_error, updated_at FROM mail_deliveries "
                "WHERE state != 'delivered' ORDER BY updated_at, message_key, peer"
            ).fetchall()
        return [Delivery(*row) for row in rows]

    def deliveries(self, key: str) -> list[Delivery]:
        """Our message ``key``'s delivery to each peer."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT message_key, peer, state, attempts, last_error, updated_at FROM mail_deliveries "
                "WHERE message_key = ? ORDER BY peer", (key,),
            ).fetchall()
        return [Delivery(*row) for row in rows]

    def mail_rejected(self, limit: int | None = None) -> list[Rejected]:
        """Files refused as no message, the latest first."""
        sql = "SELECT at, box, path, reason FROM mail_rejects ORDER BY id DESC"
        params: list = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._read() as conn:
            return [Rejected(*row) for row in conn.execute(sql, params)]

    def mail_thread_page(self, limit: int, words: Sequence[str] = ()) -> ThreadPage:
        """The ``limit`` threads with the latest activity, newest first, as
        the Mail pane lists them; with ``words``, only threads with a
        message whose sender, recipients, subject or body holds every word
        (case-insensitive). One query for the page: a base with 10,000
        messages costs the page, not every thread's rows."""
        match, params = _thread_match(words)
        importance = ("max(CASE m.importance WHEN 'urgent' THEN 3 WHEN 'high' THEN 2 WHEN 'low' THEN 0 ELSE 1 END)")
        sql = (
            "WITH t AS (SELECT m.thread AS thread, max(m.created) AS last, count(*) AS n, "
            f" sum(m.read_at IS NULL) AS unread, max({_WAITING_REQUEST}) AS request, max({_WAITING_ACK}) AS ack, "
            f" {importance} AS importance, max(m.task_id) AS task_id, max(m.seq) AS latest "
            # Times are to the second: within one, the message taken in last
            # is the newest (else a page could leave out what just came).
            f" FROM messages AS m {match} GROUP BY m.thread ORDER BY last DESC, latest DESC LIMIT ?) "
            "SELECT t.thread, f.subject, t.last, t.n, t.unread, t.request, t.ack, t.importance, "
            " l.key, l.sender, l.kind, l.state, t.task_id FROM t "
            "JOIN messages AS f ON f.seq = (SELECT seq FROM messages WHERE thread = t.thread ORDER BY created, seq LIMIT 1) "
            "JOIN messages AS l ON l.seq = "
            " (SELECT seq FROM messages WHERE thread = t.thread ORDER BY created DESC, seq DESC LIMIT 1) "
            "ORDER BY t.last DESC, t.latest DESC"
        )
        levels = ("low", "normal", "high", "urgent")
        with self._read() as conn:
            rows = conn.execute(sql, [*params, int(limit)]).fetchall()
            total = conn.execute(f"SELECT count(DISTINCT m.thread) FROM messages AS m {match}", params).fetchone()[0]
        threads = [
            ThreadSummary(thread, subject, last, count, unread or 0, bool(request), bool(ack), levels[level],
                          key, sender, kind, state, task_id)
            for (thread, subject, last, count, unread, request, ack, level, key, sender, kind, state, task_id) in rows
        ]
        return ThreadPage(threads, total)


def _thread_match(words: Sequence[str]) -> tuple[str, list]:
    """The WHERE clause keeping the threads of which a message holds every
    word, and its parameters."""
    words = [word.lower() for word in words if word.strip()]
    if not words:
        return "", []
    text = "lower(h.sender || ' ' || h.recipients || ' ' || h.subject || ' ' || h.body)"
    held = " AND ".join(f"instr({text}, ?) > 0" for _ in words)
    return f"WHERE m.thread IN (SELECT h.thread FROM messages AS h WHERE {held})", list(words)
