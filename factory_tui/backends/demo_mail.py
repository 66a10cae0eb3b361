"""The demo's mail: what the demo base ``shopfront`` and its peer factory
``warehouse`` have written to each other before the demo opens, and the
request the peer sends once it is open.

Before: a note from the peer and our answer; a request that became the
task T-14 (accepted at once, done and answered with its merge commit). Every
message has a fixed id and time derived from the demo's start, so that the
demo (and the snapshots made of it) are the same on every machine. The
messages travel as real ones do (our outbox, the peer's inbox, both logs)
and are read by both operators already.

After: ``LIVE_REQUEST``, sent by ``python -m factory_tui.demo_peer`` a few
seconds after ``factory demo`` opens, through the peer's own session.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ulid import ULID

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.mail_ingest import MailIngest
from factory_tui.backends.mail_log import INBOX
from factory_tui.backends.mail_post import send
from factory_tui.backends.mail_requests import outcome_body, reply, stable_id
from factory_tui.mail_model import Message, MessageKind, RequestState, check

OPERATOR = "console:operator"


@dataclass(frozen=True, slots=True)
class Letter:
    subject: str
    body: str


NOTE = Letter(
    "Orders move to /v2 on Monday",
    "From Monday we read new orders from `/v2/orders`.\n\n"
    "`/v1/orders` stays up until the end of the month; after that it answers 410.",
)
NOTE_ANSWER = "Thanks. The order export switches to `/v2` this week; we will tell you when it has."
# The history's request: the task T-14 has its subject as title.
REQUEST = Letter(
    "Add a health-check endpoint",
    "Our monitor polls every service once a minute. Please answer `GET /health` "
    "with 200 and a small JSON body while the API is up.",
)
# What the peer asks once the demo is open (demo_peer.py sends it).
LIVE_REQUEST = Letter(
    "Expose stock levels at GET /stock",
    "The warehouse needs to see what the shop believes it has in stock.\n\n"
    "- `GET /stock` returns `{\"sku\": count}` for every product.\n"
    "- Products with nothing left are listed with 0, not left out.\n",
)


def message_id(when: float, what: str) -> str:
    """A ULID of the time ``when`` whose random part comes from ``what``:
    the same on every machine."""
    digest = hashlib.sha256(f"demo mail\0{what}".encode()).digest()
    return str(ULID.from_bytes(int(when * 1000).to_bytes(6, "big") + digest[:10]))


def moment(when: float) -> datetime:
    return datetime.fromtimestamp(int(when), UTC)


def request_id(start: float) -> str:
    """The id of the history's request (the task T-14 names it)."""
    return message_id(start + 60, "request")


def request_task_body(start: float, sender: str) -> str:
    """T-14's body, as ``task_from_request`` writes it for a request."""
    return f"{REQUEST.body}\n\nRequested by {sender} in message {request_id(start)}."


def write_demo_mail(base: FactoryBase, peer: FactoryBase, *, start: float, clock: Callable[[], float],
                    merged: dict[str, str]) -> None:
    """The mail of the demo's history, in both factories' mailboxes and logs."""
    from factory_tui.backends.demo import REQUESTED_TASK

    us, them = base.config(), peer.config()
    with ExecutionLog.open(base.log_path, clock=clock) as log, \
            ExecutionLog.open(peer.log_path, clock=clock) as peer_log:
        note = check(Message(id=message_id(start + 40 * 60, "note"), sender=them.name, to=(us.name,),
                             subject=NOTE.subject, created=moment(start + 40 * 60), body=NOTE.body))
        request = check(Message(id=request_id(start), sender=them.name, to=(us.name,), subject=REQUEST.subject,
                                created=moment(start + 60), kind=MessageKind.REQUEST, body=REQUEST.body))
        for message in (request, note):
            send(peer, peer_log, message, config=them)
        MailIngest(base, log, us).catch_up()
        reply(base, log, log.mail_message(note.id), NOTE_ANSWER, sender=us.name,
              message_id=message_id(start + 55 * 60, "note answer"), created=moment(start + 55 * 60))
        # The request became T-14 (made with its title and body in the
        # history) and was answered as task_from_request and answer_ended
        # answer one.
        task = log.get_task(REQUESTED_TASK)
        log.link_task(request.id, task.id)
        item = log.mail_message(request.id)
        reply(base, log, item, f"Accepted as {task.id}: {task.title}", sender=us.name,
              state=RequestState.ACCEPTED, task=task.id,
              message_id=message_id(task.created_at, "accepted"), created=moment(task.created_at))
        at = task.updated_at
        reply(base, log, item, outcome_body(log, task, RequestState.COMPLETED, commit=merged.get(task.id)),
              sender=us.name, state=RequestState.COMPLETED, task=task.id,
              message_id=stable_id(item.key, task.id, str(RequestState.COMPLETED), at), created=moment(at))
        MailIngest(peer, peer_log, them).catch_up()
        # Both operators have read it all: the demo opens with nothing unread.
        log.mark_read([item.key for item in log.mail_messages(box=INBOX)], OPERATOR)
        peer_log.mark_read([item.key for item in peer_log.mail_messages(box=INBOX)], OPERATOR)
