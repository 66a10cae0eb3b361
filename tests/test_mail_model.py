"""Messages as files: written and read back, mcp_agent_mail's files read as
they are, and every way a file can fail to be a message refused with its
line and reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from factory_tui.mail_model import (
    Importance,
    InvalidMessage,
    MessageKind,
    RequestState,
    ack_of,
    file_name,
    month_folder,
    new_message,
    parse,
    parse_bytes,
    render,
    reply_to,
    subject_slug,
)

AT = datetime(2026, 11, 29, 13, 5, 9, tzinfo=UTC)


def test_a_message_is_written_and_read_back_whole():
    sent = new_message("shop", ["warehouse", "billing/T-4"], "Add a stock endpoint", "Please add `GET /stock`.\n",
                       kind=MessageKind.REQUEST, cc=("audit",), importance=Importance.HIGH, ack_required=True,
                       created=AT)
    text = render(sent)
    assert text.startswith("---\nid: ")
    assert "created: '2026-11-29T13:05:09Z'" in text
    assert parse(text) == sent
    assert file_name(sent) == f"2026-11-29T13-05-09Z__add-a-stock-endpoint__{sent.id}.md"
    assert str(month_folder(sent)) == "2026/11"
    assert sent.addressed_to("billing") and sent.addressed_to("audit") and not sent.addressed_to("shop")


def test_ids_are_unique_and_sort_by_time():
    first = new_message("a", ["b"], "one", created=AT)
    second = new_message("a", ["b"], "two", created=AT)
    assert first.id != second.id and len(first.id) == 26


def test_a_reply_keeps_the_thread_and_says_the_state():
    request = new_message("shop", ["warehouse"], "Add a stock endpoint", kind=MessageKind.REQUEST, created=AT)
    accepted = reply_to(request, sender="warehouse", state=RequestState.ACCEPTED, task="T-7", body="On it.")
    assert accepted.thread == request.id and accepted.in_reply_to == request.id
    assert accepted.to == ("shop",) and accepted.subject == "Re: Add a stock endpoint"
    done = reply_to(accepted, sender="shop", state=RequestState.COMPLETED)
    assert done.thread == request.id and done.subject == "Re: Add a stock endpoint"
    assert parse(render(accepted)) == accepted
    ack = ack_of(request, sender="warehouse")
    assert ack.kind is MessageKind.ACK and ack.in_reply_to == request.id


def test_the_slug_is_plain_ascii_words():
    assert subject_slug("Ünïcode: ../../etc/passwd & <b>bold</b>!") == "unicode-etc-passwd-b-bold-b"
    assert subject_slug("???") == "message"
    assert len(subject_slug("word " * 40)) <= 48


MCP = {
    "id": 42, "thread_id": "TKT-7", "project": "/data/projects/backend", "project_slug": "backend",
    "from": "GreenCastle", "to": ["BlueLake"], "cc": [], "bcc": ["RedStone"], "subject": "Schema change",
    "importance": "urgent", "ack_required": True, "created": "2026-11-29T12:00:00.123456+00:00", "attachments": [],
}


def mcp_file(**changes) -> str:
    data = {**MCP, **changes}
    return f"---json\n{json.dumps(data, indent=2, sort_keys=True)}\n---\n\nThe users table gains a column.\n"


def test_an_mcp_agent_mail_file_is_read_as_it_is():
    message = parse(mcp_file())
    assert message.id == "backend.42"
    assert message.sender == "backend/GreenCastle"
    assert message.to == ("backend/BlueLake",) and message.cc == ("backend/RedStone",)
    assert message.thread == "backend.TKT-7" and message.in_reply_to is None
    assert message.importance is Importance.URGENT and message.ack_required
    assert message.created == datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)
    assert message.body == "The users table gains a column."
    reply = parse(mcp_file(id=43, reply_to=42, created="2026-11-29T12:01:00Z"))
    assert reply.in_reply_to == "backend.42" and reply.kind is MessageKind.REPLY
    assert parse(mcp_file(thread_id=None)).thread is None


@pytest.mark.parametrize(("text", "reason", "line"), [
    ("just text", "no front matter", 1),
    ("---\nid: x\n", "no closing ---", 1),
    ("---\nid: [unclosed\n---\n", "YAML", 3),
    ("---\n- a\n- b\n---\n", "keys and values", 2),
    ("---\nid: A1\nfrom: shop\nto: [w]\nsubject: s\n---\n", "no created", None),
    ("---\nid: ../../x\nfrom: shop\nto: [w]\nsubject: s\ncreated: '2026-11-29T13:00:00Z'\n---\n", "not a message id", 2),
    ("---\nid: A1\nfrom: ../shop\nto: [w]\nsubject: s\ncreated: '2026-11-29T13:00:00Z'\n---\n", "not an address", 3),
    ("---\nid: A1\nfrom: shop\nto: w\ncc: 5\nsubject: s\ncreated: '2026-11-29T13:00:00Z'\n---\n", "cc must be", 5),
    ("---\nid: A1\nfrom: shop\nto: [w]\nsubject: s\ncreated: yesterday\n---\n", "not an ISO 8601", 6),
    ("---\nid: A1\nfrom: shop\nto: [w]\nsubject: s\ncreated: '2026-11-29T13:00:00'\n---\n", "no time zone", 6),
    ("---\nid: A1\nfrom: shop\nto: [w]\nsubject: s\ncreated: '2099-01-01T00:00:00Z'\n---\n", "more than a day ahead", 6),
    ("---\nid: A1\nfrom: shop\nto: [w]\nsubject: s\ncreated: '2026-11-29T13:00:00Z'\nkind: order\n---\n", "kind 'order'", 7),
    ("---\nid: A1\nfrom: shop\nto: [w]\nsubject: \"a\\nb\"\ncreated: '2026-11-29T13:00:00Z'\n---\n", "line break", 5),
    ("---\nid: A1\nfrom: shop\nto: [w]\nsubject: s\ncreated: '2026-11-29T13:00:00Z'\nack_required: yes please\n---\n",
     "true or false", 7),
    ("---json\n{\n  \"id\": 1,\n  \"from\": \"A\"\n  \"to\": []\n}\n---\n", "JSON", 5),
    ("---json\n{\n  \"id\": 1, \"from\": \"A\", \"to\": [\"B\"], \"subject\": \"s\", \"created\": \"2026-11-29T12:00:00Z\"\n}\n---\n",
     "project_slug", None),
])
def test_what_is_not_a_message_is_refused_with_its_line(text, reason, line):
    with pytest.raises(InvalidMessage) as caught:
        parse(text, now=AT + timedelta(hours=1))
    assert reason in caught.value.reason
    assert caught.value.line == line


def test_bytes_that_are_not_utf8_are_refused_with_their_line():
    with pytest.raises(InvalidMessage) as caught:
        parse_bytes(b"---\nid: A1\nsubject: \xff\n---\n")
    assert caught.value.reason == "not UTF-8 text" and caught.value.line == 3


def test_a_bad_new_message_is_refused():
    with pytest.raises(InvalidMessage, match="not an address"):
        new_message("shop", ["a b"], "subject")
    with pytest.raises(InvalidMessage, match="to names no one"):
        new_message("shop", [], "subject")
    with pytest.raises(InvalidMessage, match="subject is empty"):
        new_message("shop", ["w"], "  ")
