"""Sending a message and delivering it to each recipient factory.

``send`` writes our outbox copy first (atomically: a reader never sees half
a file) and records it in the log as sent, at once, so that the operator
sees it before any watcher does. Then it delivers to each factory the
message is addressed to (``factory_of(address)``), with one delivery row
per (message, factory) in the log:

* ourselves (a note to ourselves): straight into our inbox;
* a ``path`` peer (resolved against our repository's root): into
  ``<peer>/.factory/mailbox/inbox`` atomically; a folder that is missing or
  is no factory (no ``.factory/``), a full disk: ``failed``, with the
  reason in one line, and retried by ``retry_undelivered``;
* a ``remote`` peer: published on our mail branch (backends/mail_git.py),
  ``pending`` until a sync pushes it (``record_sync`` turns the sync's
  report into ``delivered`` or ``failed``).

A factory that is neither a peer nor us is refused before anything is
written (``InvalidInput`` naming the peers); so is sending at all while
our own name in factory.toml is no address. An answer to a message whose
sender cannot be reached (another tool's archive) is refused earlier, in
its own words (backends/mail_requests.py ``check_answerable``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from factory_tui.backends import mailbox
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.mail_log import OUTBOX, Ingested, NewMail
from factory_tui.config import FactoryConfig, Peer
from factory_tui.errors import FactoryError, InvalidInput
from factory_tui.mail_model import ADDRESS, Message, content_hash, factory_of

DELIVERED = "delivered"
PENDING = "pending"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Handed:
    """Where a message stands with one recipient factory after sending."""

    factory: str
    state: str  # delivered, pending, failed
    error: str | None = None

    def to_json(self) -> dict:
        return {"peer": self.factory, "state": self.state, "error": self.error}


@dataclass(frozen=True, slots=True)
class Sent:
    """A message sent: its file in our outbox, the log's record, and its
    delivery to each recipient factory."""

    message: Message
    path: Path
    ingested: Ingested
    deliveries: tuple[Handed, ...] = ()

    def to_json(self) -> dict:
        return {"id": self.message.id, "path": str(self.path), "thread": self.message.thread_key,
                "deliveries": [item.to_json() for item in self.deliveries]}


def our_address(config: FactoryConfig) -> str:
    """Our factory's name, when it can be an address; else the one line
    saying how to fix factory.toml."""
    if not ADDRESS.match(config.name) or "/" in config.name:
        raise InvalidInput(f"name = {config.name!r} in factory.toml cannot be an address: "
                           "use letters, digits, . _ -")
    return config.name


def recipient_factories(message: Message, config: FactoryConfig) -> list[str]:
    """The factories ``message`` goes to, in order, once each; one that is
    neither a peer nor us is refused (InvalidInput naming the peers)."""
    us = config.name
    found: list[str] = []
    unknown: list[str] = []
    for address in message.recipients:
        factory = factory_of(address)
        if factory in found or factory in unknown:
            continue
        if factory == us or factory in config.peers:
            found.append(factory)
        else:
            unknown.append(factory)
    if unknown:
        peers = ", ".join(sorted(config.peers)) or "none"
        raise InvalidInput(f"{', '.join(unknown)} {'is not a peer' if len(unknown) == 1 else 'are not peers'} "
                           f"(peers: {peers}; name one in factory.toml: [peers.NAME] path or remote)")
    return found


def send(base: FactoryBase, log: ExecutionLog, message: Message, *, config: FactoryConfig | None = None) -> Sent:
    """Write ``message`` into our outbox, record it as sent (which, for an
    ack, marks what it acknowledges), then deliver it to each recipient
    factory. Sending the same message twice is one file and one record.
    A full disk or an unwritable outbox is a FactoryError, and nothing is
    recorded or delivered then."""
    config = config or base.config()
    our_address(config)
    factories = recipient_factories(message, config)
    try:
        path = mailbox.put(base.outbox_dir, message)
        data = path.read_bytes()
    except OSError as error:
        raise FactoryError(f"the message could not be written into {base.outbox_dir}: "
                           f"{error.strerror or error}") from None
    read = mailbox.ReadMessage(message, path, content_hash(data))
    relative = os.path.relpath(path, base.root)
    ingested = log.ingest_messages([NewMail(read, OUTBOX, relative)], us=config.name)[0]
    handed = _deliver(base, config, message, data, factories)
    for item in handed:
        log.set_delivery(ingested.key, item.factory, item.state, item.error)
    return Sent(message, path, ingested, tuple(handed))


def _deliver(base: FactoryBase, config: FactoryConfig, message: Message, data: bytes,
             factories: Iterable[str]) -> list[Handed]:
    handed: list[Handed] = []
    published: Handed | None = None
    for factory in factories:
        if factory == config.name:
            handed.append(_into(base.inbox_dir, factory, message))
            continue
        peer = config.peers[factory]
        if peer.path is not None:
            handed.append(_to_path_peer(base.root, peer, message))
        elif peer.remote is not None:
            # One commit on our mail branch serves every remote peer.
            if published is None:
                published = _publish(base, config, message, data)
            handed.append(Handed(factory, published.state, published.error))
    return handed


def peer_inbox(root: Path, peer: Peer) -> Path:
    """The inbox of a peer on this machine (its path against our root)."""
    assert peer.path is not None
    return (root / peer.path) / ".factory" / "mailbox" / "inbox"


def _to_path_peer(root: Path, peer: Peer, message: Message) -> Handed:
    assert peer.path is not None
    folder = root / peer.path
    if not folder.is_dir():
        return Handed(peer.name, FAILED, f"{peer.path} is not a folder")
    if not (folder / ".factory").is_dir():
        return Handed(peer.name, FAILED, f"{peer.path} is no factory (it has no .factory/)")
    return _into(peer_inbox(root, peer), peer.name, message)


def _into(inbox: Path, factory: str, message: Message) -> Handed:
    try:
        mailbox.put(inbox, message)
    except OSError as error:
        return Handed(factory, FAILED, f"writing into {inbox} failed: {error.strerror or error}")
    return Handed(factory, DELIVERED)


def _publish(base: FactoryBase, config: FactoryConfig, message: Message, data: bytes) -> Handed:
    from factory_tui.backends.mail_git import publish

    try:
        publish(base.root, config.name, message, data)
    except FactoryError as error:
        return Handed("", FAILED, f"publishing on our mail branch failed: {error}")
    return Handed("", PENDING)


# --- what was not delivered -----------------------------------------------------------


def retry_undelivered(base: FactoryBase, log: ExecutionLog, *, config: FactoryConfig | None = None) -> list[Handed]:
    """Try again every failed delivery (a path peer, us, or a remote peer
    whose publishing failed); a remote peer's pending one waits for the
    next sync. Returns what each attempt did."""
    config = config or base.config()
    done: list[Handed] = []
    for delivery in log.undelivered():
        if delivery.state != FAILED:
            continue
        peer = config.peers.get(delivery.peer)
        if peer is None and delivery.peer != config.name:
            continue  # no longer a peer: it stays undelivered, for the operator to see
        item = log.mail_message(delivery.key)
        path = base.root / item.path
        try:
            data = path.read_bytes()
            message = mailbox.read_message(path, inside=base.outbox_dir, max_bytes=max(len(data), 1))
        except OSError as error:
            log.set_delivery(delivery.key, delivery.peer, FAILED, f"our copy {item.path} cannot be read: "
                             f"{error.strerror or error}")
            continue
        if isinstance(message, mailbox.Unreadable):
            log.set_delivery(delivery.key, delivery.peer, FAILED, f"our copy {item.path}: {message.reason}")
            continue
        handed = _deliver(base, config, message.message, data, [delivery.peer])
        for result in handed:
            log.set_delivery(delivery.key, result.factory, result.state, result.error)
        done.extend(handed)
    return done


def record_sync(log: ExecutionLog, report, started: float) -> None:
    """What a sync (backends/mail_git.py's SyncReport) says of our pending
    deliveries: a peer met and not behind has every message published
    before the sync started; a peer not met keeps them, with its error."""
    for peer in report.peers:
        for delivery in log.undelivered():
            if delivery.peer != peer.peer or delivery.state != PENDING:
                continue
            if peer.error:
                log.set_delivery(delivery.key, peer.peer, FAILED, peer.error)
            elif not peer.behind and delivery.updated_at <= started:
                log.set_delivery(delivery.key, peer.peer, DELIVERED)
