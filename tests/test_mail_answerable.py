"""An answer to a sender we cannot reach (an agent of another tool's
archive read as a source, a factory that is no peer) is refused in one
line before anything is written: no outbox file, no record, no task."""

from __future__ import annotations

import json

import pytest

from factory_tui.backends.mailbox import put
from factory_tui.errors import InvalidInput
from factory_tui.mail_model import MessageKind, new_message
from tests.engine_helpers import factory
from tests.mail_helpers import OPERATOR, name_base, session, two_factories

REFUSED = ("cannot reply to backend/GreenCastle: messages read from the source agent-mail are read-only; "
           "no peer named backend")


def archive_with_a_request(tmp_path, shop) -> tuple[str, str]:
    """An mcp_agent_mail archive (project ``backend``) as shop's source
    ``agent-mail``, holding a message from its agent GreenCastle that asks
    for an acknowledgement, and a request from the same agent in our own
    format; the log's keys of both."""
    project = tmp_path / "archive" / "projects" / "backend"
    folder = project / "messages" / "2026" / "11"
    folder.mkdir(parents=True)
    head = {"id": 42, "thread_id": None, "project": str(project), "project_slug": "backend",
            "from": "GreenCastle", "to": ["shop"], "cc": [], "bcc": [], "subject": "Schema change",
            "importance": "high", "ack_required": True, "created": "2026-11-29T12:00:00+00:00",
            "attachments": []}
    (folder / "2026-11-29T12-00-00Z__schema-change__42.md").write_text(
        "---json\n" + json.dumps(head) + "\n---\n\nPlease add the column.\n", encoding="utf-8")
    request = new_message("backend/GreenCastle", ["shop"], "Add the column", "Please.", kind=MessageKind.REQUEST)
    put(project / "messages", request)
    text = shop.config_path.read_text(encoding="utf-8")
    shop.config_path.write_text(text + f'\n[mail.sources.agent-mail]\npath = "{project}"\n', encoding="utf-8")
    return "agent-mail:backend.42", f"agent-mail:{request.id}"


def nothing_written(shop, ours) -> None:
    assert not shop.outbox_dir.exists() or not any(shop.outbox_dir.rglob("*.md"))
    assert ours.log.mail_messages(box="outbox") == []
    assert ours.log.undelivered() == [] and ours.log.list_tasks() == []


def test_the_cli_refuses_to_reply_to_or_ack_a_sources_message(tmp_path):
    shop, _mill = two_factories(tmp_path)
    key, request = archive_with_a_request(tmp_path, shop)
    assert factory(shop, "mail", "catch-up").returncode == 0
    body = tmp_path / "body.md"
    body.write_text("Done.\n", encoding="utf-8")
    for args in (["reply", key, "--body-file", str(body)], ["ack", key], ["task", request],
                 ["decline", request, "--note", "Not ours."]):
        done = factory(shop, "mail", *args)
        assert (done.returncode, done.stderr) == (1, f"factory: {REFUSED}\n"), args
    with session(shop) as ours:
        nothing_written(shop, ours)
        assert ours.log.mail_message(key).acked_at is None


def test_the_session_refuses_and_a_peer_is_still_answered(tmp_path):
    shop, mill = two_factories(tmp_path)
    key, request = archive_with_a_request(tmp_path, shop)
    # A factory that was a peer once and is no more.
    put(shop.inbox_dir, new_message("yard/T-2", ["shop"], "Still there?"))
    with session(shop) as ours:
        ours.mail_catch_up()
        with pytest.raises(InvalidInput, match=f"^{REFUSED}$"):
            ours.reply_mail(key, "Done.", actor=OPERATOR)
        with pytest.raises(InvalidInput, match=f"^{REFUSED}$"):
            ours.ack_mail(key, actor=OPERATOR)
        with pytest.raises(InvalidInput, match=f"^{REFUSED}$"):
            ours.task_from_request(request, actor=OPERATOR)
        with pytest.raises(InvalidInput, match=f"^{REFUSED}$"):
            ours.decline_request(request, "Not ours.", actor=OPERATOR)
        [yard] = [item for item in ours.log.mail_messages(box="inbox")]
        with pytest.raises(InvalidInput, match=r"^cannot reply to yard/T-2: no peer named yard \(peers: mill;"):
            ours.reply_mail(yard.key, "Who?", actor=OPERATOR)
        nothing_written(shop, ours)
    name_base(shop, "shop", '[peers.yard]\npath = "../mill"\n')
    # A peer that names it can be answered.
    with session(shop) as ours:
        sent = ours.reply_mail(yard.key, "Yes.", actor=OPERATOR)
        assert [(item.factory, item.state) for item in sent.deliveries] == [("yard", "delivered")]
    assert any(mill.inbox_dir.rglob(sent.path.name))
