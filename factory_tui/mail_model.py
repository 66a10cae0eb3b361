"""A message between factories: what it holds, its file's name, and how it
is written to and read from markdown with front matter.

Our own messages are YAML front matter (``---``) and a markdown body. The
files mcp_agent_mail writes (a ``---json`` block: an integer ``id`` unique
only on its server, ``thread_id``, ``project_slug``, agent names in
``from``/``to``/``cc``, ``reply_to`` from its Rust server) are read as they
are: their ids are keyed by project slug (``<slug>.<id>``), their agents
addressed as ``<slug>/<agent>``.

A message is data: nothing in it is ever run, and what it names (its id,
its addresses) must stay a plain name, so that no file name built from it
can leave its folder. Whatever a file holds that cannot be a message is an
``InvalidMessage`` with the line and the reason, never another exception.

Pure: no files, no git, no SQLite, no Textual.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import PurePosixPath

from factory_tui.front_matter import JSON, FrontMatterError, type_name
from factory_tui.front_matter import split as split_front_matter


class MessageKind(StrEnum):
    NOTE = "note"
    REQUEST = "request"
    REPLY = "reply"
    ACK = "ack"


class Importance(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class RequestState(StrEnum):
    """Where a request stands, said on a reply to it (A2A's task states)."""

    ACCEPTED = "accepted"
    WORKING = "working"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    REJECTED = "rejected"


# A factory's name, optionally with an agent or a task after a slash.
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
ADDRESS = re.compile(rf"^{_NAME}(?:/{_NAME})?$")
# An id names files: no slash, no leading dot, nothing a shell or a path reads.
MESSAGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,79}$")
MAX_SUBJECT = 200
# A clock may be off; a message dated further ahead than this was not sent now.
MAX_FUTURE = timedelta(days=1)

OUR_KEYS = (
    "id", "from", "to", "cc", "subject", "created", "thread", "in_reply_to", "kind", "importance",
    "ack_required", "state", "task",
)


class InvalidMessage(Exception):
    """Why a file is not a message, and the 1-based line to blame."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line is not None else self.reason


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    sender: str  # the file's ``from``
    to: tuple[str, ...]
    subject: str
    created: datetime  # aware, UTC
    kind: MessageKind = MessageKind.NOTE
    cc: tuple[str, ...] = ()
    thread: str | None = None
    in_reply_to: str | None = None
    importance: Importance = Importance.NORMAL
    ack_required: bool = False
    state: RequestState | None = None  # on a reply to a request
    task: str | None = None  # on a reply: the task the request became
    body: str = ""

    @property
    def thread_key(self) -> str:
        """The thread it belongs to: its own id when it starts one."""
        return self.thread or self.id

    @property
    def recipients(self) -> tuple[str, ...]:
        return self.to + tuple(item for item in self.cc if item not in self.to)

    def addressed_to(self, factory: str) -> bool:
        """Whether ``factory`` (a name) is among its recipients, itself or
        one of its agents or tasks."""
        return any(factory_of(item) == factory for item in self.recipients)


def factory_of(address: str) -> str:
    """The factory an address names (``shop/T-4`` → ``shop``)."""
    return address.split("/", 1)[0]


def check_address(text: str, what: str = "an address") -> str:
    """``text`` when it is an address (a factory's name, optionally
    ``/agent-or-task``); raises InvalidMessage saying why not."""
    if not isinstance(text, str) or not ADDRESS.match(text):
        raise InvalidMessage(f"{what} {text!r} is not an address: a factory's name (letters, digits, . _ -), "
                             "optionally /agent-or-task")
    return text


def new_message_id() -> str:
    """A ULID: unique across factories without asking anyone, and sorting
    by the time it was made."""
    from ulid import ULID  # imported when a message is made, not with the module

    return str(ULID())


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def new_message(sender: str, to: list[str] | tuple[str, ...], subject: str, body: str = "", *,
                kind: MessageKind = MessageKind.NOTE, cc: tuple[str, ...] = (),
                importance: Importance = Importance.NORMAL, ack_required: bool = False,
                created: datetime | None = None) -> Message:
    """A new message, checked as a received one would be; raises
    InvalidMessage for a bad address or subject."""
    message = Message(
        id=new_message_id(), sender=sender, to=tuple(to), cc=tuple(cc), subject=subject,
        created=created or now_utc(), kind=kind, importance=importance, ack_required=ack_required,
        body=body.strip("\n"),
    )
    return check(message)


def reply_to(original: Message, *, sender: str, body: str = "", kind: MessageKind = MessageKind.REPLY,
             state: RequestState | None = None, task: str | None = None,
             created: datetime | None = None) -> Message:
    """A reply in ``original``'s thread, to its sender (and, for a reply to
    several, not to ourselves)."""
    subject = original.subject if original.subject.lower().startswith("re:") else f"Re: {original.subject}"
    return check(Message(
        id=new_message_id(), sender=sender, to=(original.sender,), subject=subject[:MAX_SUBJECT],
        created=created or now_utc(), kind=kind, thread=original.thread_key, in_reply_to=original.id,
        state=state, task=task, body=body.strip("\n"),
    ))


def ack_of(original: Message, *, sender: str, created: datetime | None = None) -> Message:
    """The acknowledgement of a message that asked for one."""
    return reply_to(original, sender=sender, kind=MessageKind.ACK, body="Acknowledged.", created=created)


def check(message: Message, *, now: datetime | None = None) -> Message:
    """``message`` when everything in it is well formed; raises
    InvalidMessage otherwise."""
    if not MESSAGE_ID.match(message.id):
        raise InvalidMessage(f"id {message.id!r} is not a message id (letters, digits, . _ : -; no slash)")
    check_address(message.sender, "from")
    if not message.to:
        raise InvalidMessage("to names no one: a message goes to at least one address")
    for item in message.recipients:
        check_address(item, "a recipient")
    _check_subject(message.subject)
    for key, value in (("thread", message.thread), ("in_reply_to", message.in_reply_to)):
        if value is not None and not MESSAGE_ID.match(value):
            raise InvalidMessage(f"{key} {value!r} is not a message id")
    if message.created.tzinfo is None:
        raise InvalidMessage("created has no time zone: write it in UTC, ending in Z")
    if message.created - (now or datetime.now(UTC)) > MAX_FUTURE:
        raise InvalidMessage(f"created {iso(message.created)} is more than a day ahead: not a message sent now")
    return message


def _check_subject(subject: str) -> None:
    if not subject.strip():
        raise InvalidMessage("the subject is empty")
    if len(subject) > MAX_SUBJECT:
        raise InvalidMessage(f"the subject has {len(subject)} characters; {MAX_SUBJECT} at most")
    if any(unicodedata.category(char)[0] == "C" for char in subject):
        raise InvalidMessage("the subject holds a line break or a control character")


# --- the file ----------------------------------------------------------------------


def iso(moment: datetime) -> str:
    """UTC, to the second, ending in Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def subject_slug(subject: str, limit: int = 48) -> str:
    """The subject as a file name part: lower case ASCII words joined by -."""
    ascii_text = unicodedata.normalize("NFKD", subject).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = "-".join(words)[:limit].strip("-")
    return slug or "message"


def file_name(message: Message) -> str:
    """``YYYY-MM-DDTHH-MM-SSZ__<subject slug>__<id>.md``: sorts by time and
    says what it is."""
    stamp = message.created.astimezone(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    return f"{stamp}__{subject_slug(message.subject)}__{_file_safe(message.id)}.md"


def month_folder(message: Message) -> PurePosixPath:
    """``YYYY/MM`` under inbox/ or outbox/."""
    created = message.created.astimezone(UTC)
    return PurePosixPath(f"{created:%Y}", f"{created:%m}")


def _file_safe(text: str) -> str:
    # ``:`` is allowed in ids (mcp's are keyed slug.id) but not in every
    # file system's names.
    return text.replace(":", "_")


def render(message: Message) -> str:
    """The message as a file: YAML front matter in a fixed order, then the
    body (markdown)."""
    meta: dict[str, object] = {
        "id": message.id,
        "from": message.sender,
        "to": list(message.to),
    }
    if message.cc:
        meta["cc"] = list(message.cc)
    meta["subject"] = message.subject
    meta["created"] = iso(message.created)
    meta["kind"] = str(message.kind)
    if message.thread:
        meta["thread"] = message.thread
    if message.in_reply_to:
        meta["in_reply_to"] = message.in_reply_to
    meta["importance"] = str(message.importance)
    meta["ack_required"] = message.ack_required
    if message.state is not None:
        meta["state"] = str(message.state)
    if message.task:
        meta["task"] = message.task
    import frontmatter  # imported when a message is written, not with the module

    post = frontmatter.Post(message.body.rstrip("\n"))
    post.metadata.update(meta)
    return frontmatter.dumps(post, sort_keys=False) + "\n"


def content_hash(data: bytes) -> str:
    """What makes two files the same message twice (with the id)."""
    return hashlib.sha256(data).hexdigest()


def parse_bytes(data: bytes, *, now: datetime | None = None) -> Message:
    """The message in a file's bytes; raises InvalidMessage."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidMessage("not UTF-8 text", data[: error.start].count(b"\n") + 1) from None
    return parse(text, now=now)


def parse(text: str, *, now: datetime | None = None) -> Message:
    """The message in a file's text: ours (YAML) or mcp_agent_mail's
    (``---json``); raises InvalidMessage."""
    try:
        front = split_front_matter(text, example="id: …, from: …, to: […]", least="id, from, to, subject, created")
    except FrontMatterError as error:
        raise InvalidMessage(error.reason, error.line) from None
    data = front.data
    lines = front.key_lines

    def located(reason: str, key: str) -> InvalidMessage:
        return InvalidMessage(reason, lines.get(key))

    try:
        message = _from_json(data, front.body, located) if front.style == JSON else _from_yaml(data, front.body, located)
        return check(message, now=now)
    except InvalidMessage as error:
        if error.line is None:
            key = _blamed_key(error.reason)
            if key and key in lines:
                raise InvalidMessage(error.reason, lines[key]) from None
        raise


def _blamed_key(reason: str) -> str | None:
    first = reason.split(" ", 1)[0]
    return {"from": "from", "id": "id", "to": "to", "created": "created", "thread": "thread",
            "in_reply_to": "in_reply_to", "the": "subject"}.get(first)


def _from_yaml(data: dict, body: str, located) -> Message:
    for key in ("id", "from", "to", "subject", "created"):
        if key not in data or data[key] in (None, "", []):
            raise located(f"no {key}: a message needs id, from, to, subject and created", key)
    return Message(
        id=_string(data, "id", located),
        sender=_string(data, "from", located),
        to=_addresses(data, "to", located),
        cc=_addresses(data, "cc", located) if data.get("cc") not in (None, []) else (),
        subject=_string(data, "subject", located),
        created=_moment(data["created"], located),
        kind=_choice(data, "kind", MessageKind, MessageKind.NOTE, located),
        thread=_optional(data, "thread", located),
        in_reply_to=_optional(data, "in_reply_to", located),
        importance=_choice(data, "importance", Importance, Importance.NORMAL, located),
        ack_required=_flag(data, "ack_required", located),
        state=_choice(data, "state", RequestState, None, located),
        task=_optional(data, "task", located),
        body=body,
    )


def _from_json(data: dict, body: str, located) -> Message:
    """mcp_agent_mail's fields, mapped onto ours."""
    slug = data.get("project_slug") or data.get("project")
    if not isinstance(slug, str) or not re.fullmatch(_NAME, slug):
        raise located("no project_slug: an mcp_agent_mail message is keyed by its project's slug", "project_slug")
    for key in ("id", "from", "subject", "created"):
        if key not in data or data[key] in (None, ""):
            raise located(f"no {key}: an mcp_agent_mail message has id, from, to, subject and created", key)

    def keyed(value: object, key: str) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip():
            raise located(f"{key} must be a number or a name, not a {type_name(value)}", key)
        return f"{slug}.{value}"

    def agents(key: str) -> tuple[str, ...]:
        value = data.get(key) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise located(f"{key} must be a list of agent names", key)
        return tuple(f"{slug}/{item}" for item in value)

    sender = data["from"]
    if not isinstance(sender, str):
        raise located(f"from must be an agent's name, not a {type_name(sender)}", "from")
    to = agents("to")
    if not to:
        raise located("no to: an mcp_agent_mail message has id, from, to, subject and created", "to")
    thread = data.get("thread_id")
    reply = data.get("reply_to", data.get("in_reply_to"))
    return Message(
        id=keyed(data["id"], "id"),
        sender=f"{slug}/{sender}",
        to=to,
        cc=agents("cc") + agents("bcc"),
        subject=_string(data, "subject", located),
        created=_moment(data["created"], located),
        kind=MessageKind.REPLY if reply is not None else MessageKind.NOTE,
        thread=keyed(thread, "thread_id") if thread not in (None, "") else None,
        in_reply_to=keyed(reply, "reply_to") if reply is not None else None,
        importance=_choice(data, "importance", Importance, Importance.NORMAL, located),
        ack_required=_flag(data, "ack_required", located),
        body=body,
    )


def _string(data: dict, key: str, located) -> str:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise located(f"{key} must be text, not a {type_name(value)}", key)
    return str(value)


def _optional(data: dict, key: str, located) -> str | None:
    value = data.get(key)
    return None if value in (None, "") else _string(data, key, located)


def _addresses(data: dict, key: str, located) -> tuple[str, ...]:
    value = data.get(key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise located(f"{key} must be a list of addresses, not a {type_name(value)}", key)
    for item in value:
        try:
            check_address(item, f"{key}:")
        except InvalidMessage as error:
            raise located(error.reason, key) from None
    return tuple(value)


def _moment(value: object, located) -> datetime:
    # YAML reads an unquoted timestamp as a datetime already.
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise located(f"created {value!r} is not an ISO 8601 time (2026-11-29T13:00:00Z)", "created") from None
    else:
        raise located(f"created must be an ISO 8601 time, not a {type_name(value)}", "created")
    if moment.tzinfo is None:
        raise located("created has no time zone: write it in UTC, ending in Z", "created")
    return moment.astimezone(UTC)


def _choice(data: dict, key: str, kind, default, located):
    value = data.get(key)
    if value in (None, ""):
        return default
    try:
        return kind(str(value).lower())
    except ValueError:
        allowed = ", ".join(item.value for item in kind)
        raise located(f"{key} {value!r} is not one of {allowed}", key) from None


def _flag(data: dict, key: str, located) -> bool:
    value = data.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise located(f"{key} must be true or false, not {value!r}", key)
    return value
