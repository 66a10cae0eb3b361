"""Requests from other factories that become tasks, and answer themselves.

A received ``request`` becomes a task (``task_from_request``: by the
operator's key, or by the peer's ``accept`` policy at intake, ``take_by_policy``):
title from its subject, body from its body and a line saying who asked;
the task is linked to the message and a reply ``state: accepted`` with the
task's id goes back at once. ``decline`` answers ``rejected`` with a note.

Where the task stands afterwards goes back by itself (``answer_ended``),
in the request's thread, once per change the requester would care about:

* the task ended: ``completed`` with the merge commit and the agent's last
  words, ``failed`` with the reason, ``canceled``;
* a failed or cancelled task that the operator re-queued: ``working`` (A2A's
  WORKING): the requester, told it failed, learns that it is being tried
  again rather than waiting on a failure that no longer stands; when it
  fails again, a second ``failed`` goes, with the new reason.

So the replies to one request run ``accepted``, then ended and ``working``
in turn, and what is due is read from the last of them: an ended task is
due its end state unless that is what we said last; a task at work again
is due ``working`` when what we said last was ``failed`` or ``canceled``.
That makes it one reconciler, not a hook on each transition: the engine's
loop and the operator's actions both run it, a crash between the
transition and the reply loses nothing, and looking again sends nothing
twice. A change that came and went while nothing answered (failed and
re-queued in between) is folded into the next reply rather than told
late. Twice at once is still one reply: the reply's id is derived from the
request, the task, the state and the reply it follows, so both writers
make the same file (one name, one record, one delivery).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from ulid import ULID

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.mail_log import INBOX, SOURCE_PREFIX, MailItem
from factory_tui.backends.mail_post import Sent, send
from factory_tui.config import FactoryConfig
from factory_tui.errors import InvalidInput
from factory_tui.mail_model import (
    Importance,
    InvalidMessage,
    Message,
    MessageKind,
    RequestState,
    factory_of,
    reply_to,
)
from factory_tui.model import NewTask, State, Task

ENDED = {State.DONE: RequestState.COMPLETED, State.FAILED: RequestState.FAILED,
         State.CANCELLED: RequestState.CANCELED}
_MERGED_AT = re.compile(r"\bat ([0-9a-f]{7,40})\b")
LAST_WORDS = 2000  # characters of the agent's last words in a reply


def sender_for(config: FactoryConfig, actor: str) -> str:
    """The ``from`` of what ``actor`` sends: our factory, or for an
    agent (``agent:T-3``) our factory's task ``<factory>/T-3``."""
    if actor.startswith("agent:"):
        return f"{config.name}/{actor.split(':', 1)[1]}"
    return config.name


def as_message(item: MailItem) -> Message:
    """The message a log row records, as the model has it; keyed as the
    log keys it, so that a reply to a source's message finds it again."""
    return Message(
        id=item.key, sender=item.sender, to=item.recipients or (item.sender,), subject=item.subject,
        created=datetime.fromtimestamp(item.created, UTC), kind=MessageKind(item.kind), thread=item.thread,
        in_reply_to=item.in_reply_to, importance=Importance(item.importance), ack_required=item.ack_required,
        state=RequestState(item.state) if item.state else None, task=item.task, body=item.body,
    )


def reply(base: FactoryBase, log: ExecutionLog, item: MailItem, body: str, *, sender: str,
          state: RequestState | None = None, task: str | None = None, kind: MessageKind = MessageKind.REPLY,
          message_id: str | None = None, created: datetime | None = None) -> Sent:
    """A reply to ``item`` in its thread, sent. Refused before anything is
    written when its sender is neither us nor a peer (``check_answerable``)."""
    if item.ours:
        raise InvalidInput(f"{item.key} is our own message: reply to a message we received")
    check_answerable(base.config(), item)
    try:
        message = reply_to(as_message(item), sender=sender, body=body, kind=kind, state=state, task=task,
                           created=created)
    except InvalidMessage as error:
        raise InvalidInput(f"{item.key} cannot be answered: {error}") from None
    if message_id is not None:
        message = _with_id(message, message_id)
    return send(base, log, message)


def check_answerable(config: FactoryConfig, item: MailItem) -> None:
    """Refuse (InvalidInput, one line) an answer to a message whose sender
    we cannot reach: a factory that is no peer, or an agent of another
    tool's archive (a ``[mail.sources.NAME]`` folder is read, never
    written). The same check as sending to an unknown factory, said for
    an answer; made before anything is written, so that nothing waits in
    our outbox for a delivery that can never come."""
    factory = factory_of(item.sender)
    if factory == config.name or factory in config.peers:
        return
    peers = ", ".join(sorted(config.peers)) or "none"
    if item.box.startswith(SOURCE_PREFIX):
        raise InvalidInput(f"cannot reply to {item.sender}: messages read from the source "
                           f"{item.box[len(SOURCE_PREFIX):]} are read-only; no peer named {factory}")
    raise InvalidInput(f"cannot reply to {item.sender}: no peer named {factory} (peers: {peers}; "
                       "name one in factory.toml: [peers.NAME] path or remote)")


def _with_id(message: Message, message_id: str) -> Message:
    from dataclasses import replace

    return replace(message, id=message_id)


def _request(log: ExecutionLog, key: str) -> MailItem:
    item = log.mail_message(key)
    if item.kind != MessageKind.REQUEST or item.ours:
        raise InvalidInput(f"{item.key} is not a request we received ({item.kind}"
                           f"{' we sent' if item.ours else ''}): only a request becomes a task")
    return item


def task_from_request(base: FactoryBase, log: ExecutionLog, key: str, *, actor: str,
                      state: State = State.QUEUED) -> Task:
    """The request ``key`` as a task in ``state``, linked to it, and the
    ``accepted`` reply sent. Refused for a message that is not a request
    or is a task already, or a request answered already."""
    config = base.config()
    item = _request(log, key)
    if item.task_id is not None:
        raise InvalidInput(f"{item.key} is a task already: {item.task_id}")
    if _answered(log, item) is not None:
        raise InvalidInput(f"{item.key} was answered already ({_answered(log, item)}): it does not become a task")
    # Its answers could never go: refused before the task is made.
    check_answerable(config, item)
    body = (item.body.rstrip() + "\n\n" if item.body.strip() else "") + \
        f"Requested by {item.sender} in message {item.key}."
    task = log.add_task(NewTask(title=item.subject, body=body, state=state, source=f"mail:{item.key}"),
                        actor=actor)
    log.link_task(item.key, task.id)
    reply(base, log, item, f"Accepted as {task.id}: {task.title}", sender=config.name,
          state=RequestState.ACCEPTED, task=task.id)
    return task


def decline(base: FactoryBase, log: ExecutionLog, key: str, note: str, *, actor: str) -> Sent:
    """Answer the request ``key`` with ``rejected`` and the note."""
    item = _request(log, key)
    if not note.strip():
        raise InvalidInput("a decline needs a note saying why")
    if item.task_id is not None:
        raise InvalidInput(f"{item.key} is a task already ({item.task_id}): cancel the task instead")
    if (answered := _answered(log, item)) is not None:
        raise InvalidInput(f"{item.key} was answered already ({answered})")
    return reply(base, log, item, note, sender=base.config().name, state=RequestState.REJECTED)


def _answered(log: ExecutionLog, item: MailItem) -> str | None:
    """The state of our answer to a request that settled it, if any."""
    for other in log.mail_messages(thread=item.thread, box="outbox"):
        if other.in_reply_to == item.key and other.state in (RequestState.ACCEPTED, RequestState.REJECTED):
            return other.state
    return None


def take_by_policy(base: FactoryBase, log: ExecutionLog, keys: list[str] | None = None) -> list[Task]:
    """Received messages (``keys``; None: every request not yet a task):
    each request from a peer whose ``accept`` is ``propose`` or ``queue``
    becomes a proposed or queued task now. One answered already (the
    operator declined it) is left alone."""
    config = base.config()
    if not any(peer.accept in ("propose", "queue") for peer in config.peers.values()):
        return []
    if keys is None:
        items = [item for item in log.mail_messages(box=INBOX) if item.kind == MessageKind.REQUEST
                 and item.task_id is None]
    else:
        items = [log.mail_message(key) for key in keys]
    made: list[Task] = []
    for item in items:
        if item.kind != MessageKind.REQUEST or item.box != INBOX or item.task_id is not None:
            continue
        peer = config.peers.get(factory_of(item.sender))
        if peer is None or peer.accept not in ("propose", "queue"):
            continue
        if not any(factory_of(address) == config.name for address in item.recipients):
            continue
        state = State.PROPOSED if peer.accept == "propose" else State.QUEUED
        if _answered(log, item) is not None:
            continue
        made.append(task_from_request(base, log, item.key, actor=f"mail:{peer.name}", state=state))
    return made


# --- the outcome, by itself -------------------------------------------------------------


def answer_ended(base: FactoryBase, log: ExecutionLog) -> list[Sent]:
    """Send what is due to every request that became a task (see the
    module's docstring); idempotent."""
    config = base.config()
    linked = log.linked_requests()
    if not linked:
        return []
    tasks = {task.id: task for task in log.get_tasks([item.task_id for item in linked if item.task_id])}
    answers = log.our_answers([item.key for item in linked])
    sent: list[Sent] = []
    for item in linked:
        task = tasks.get(item.task_id or "")
        if task is None:
            continue
        said = answers.get(item.key, [])
        last = said[-1] if said else None
        state = _due(task, last)
        if state is None:
            continue
        body = outcome_body(log, task, state, last)
        # The same id whoever sends it (the engine and the CLI at once):
        # one file, one record. Never dated before what it follows, so
        # that it stays the last word.
        message_id = stable_id(item.key, task.id, str(state), task.updated_at, follows=last.id if last else "")
        at = int(max(task.updated_at, last.created if last else 0))
        sent.append(reply(base, log, item, body, sender=config.name, state=state, task=task.id,
                          message_id=message_id, created=datetime.fromtimestamp(at, UTC)))
    return sent


# What a task at work again follows: an end it came back from.
_REOPENED_FROM = (RequestState.FAILED, RequestState.CANCELED)


def _due(task: Task, last: MailItem | None) -> RequestState | None:
    """What the requester is due now, given what we said ``last``."""
    said = RequestState(last.state) if last is not None and last.state else None
    if said == RequestState.REJECTED:
        return None
    if task.state in ENDED:
        return None if said == ENDED[task.state] else ENDED[task.state]
    if said in _REOPENED_FROM:
        return RequestState.WORKING
    return None


def stable_id(key: str, task_id: str, state: str, at: float, *, follows: str = "") -> str:
    """A reply's id: the same whoever makes it (from the request, the task,
    the state and the reply it follows), sorting at ``at``."""
    digest = hashlib.sha256(f"{key}\0{task_id}\0{state}\0{follows}".encode()).digest()
    return str(ULID.from_bytes(int(at * 1000).to_bytes(6, "big") + digest[:10]))


def _last_words(log: ExecutionLog, task: Task) -> str:
    """What the agent said last (its run's closing text, as a judge is
    given it), else its last line of progress (the run's tally)."""
    from factory_tui.backends.qa_checks import last_words

    return (last_words(log, task.id) or task.progress or "")[:LAST_WORDS]


def outcome_body(log: ExecutionLog, task: Task, state: RequestState, last: MailItem | None = None, *,
                 commit: str | None = None) -> str:
    """What the reply saying where ``task`` stands tells; ``last``: what we
    said before; ``commit``: its merge commit, when the log's events do not
    name it."""
    if state == RequestState.COMPLETED:
        lines = [f"{task.id} is done: {task.title}"]
        commit = commit or _merge_commit(log, task.id)
        if commit:
            # Its own paragraph: the body is markdown, where one newline joins lines.
            lines += ["", f"Merge commit: {commit}"]
        if words := _last_words(log, task):
            lines += ["", "The agent's last words:", words]
        return "\n".join(lines)
    if state == RequestState.FAILED:
        failure = log.failures([task.id]).get(task.id)
        reason = failure.reason if failure is not None else "no reason recorded"
        lines = [f"{task.id} failed: {reason}"]
        if words := _last_words(log, task):
            lines += ["", "The agent's last words:", words]
        return "\n".join(lines)
    if state == RequestState.WORKING:
        after = "it failed" if last is not None and last.state == RequestState.FAILED else "it was cancelled"
        return f"{task.id} is being worked on again: the operator re-queued it after {after}."
    return f"{task.id} was cancelled."


def _merge_commit(log: ExecutionLog, task_id: str) -> str | None:
    for event in reversed(log.events(task_id=task_id)):
        if event.to_state == State.DONE:
            commit = event.data.get("merge_commit") if event.data else None
            if commit:
                return str(commit)
            found = _MERGED_AT.search(event.note or "")
            return found.group(1) if found else None
    return None
