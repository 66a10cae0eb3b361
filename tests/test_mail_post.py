"""Sending: our outbox copy, then delivery to each recipient factory (a
peer on this machine, ourselves, over git), one delivery row per peer;
an unknown factory refused before anything is written; failed deliveries
retried."""

from __future__ import annotations

import pytest

from factory_tui.errors import InvalidInput
from factory_tui.mail_model import MessageKind
from tests.mail_helpers import OPERATOR, name_base, session, two_factories


def files(folder):
    return sorted(folder.rglob("*.md")) if folder.exists() else []


def test_send_both_ways_and_reply_in_the_thread(tmp_path):
    shop, mill = two_factories(tmp_path)
    with session(shop) as ours, session(mill) as theirs:
        sent = ours.send_mail(["mill"], "Need 40 crates", "By Friday.", actor=OPERATOR)
        assert [(item.factory, item.state) for item in sent.deliveries] == [("mill", "delivered")]
        assert [path.name for path in files(mill.inbox_dir)] == [sent.path.name]
        assert ours.log.deliveries(sent.message.id)[0].state == "delivered"
        assert ours.log.mail_counts().undelivered == 0
        theirs.mail_catch_up()
        answer = theirs.reply_mail(sent.message.id[:20], "Can do.", actor=OPERATOR)
        assert answer.message.thread_key == sent.message.id and answer.message.to == ("shop",)
        ours.mail_catch_up()
        thread = ours.log.mail_messages(thread=sent.message.id)
        assert [(item.box, item.body) for item in thread] == [("inbox", "Can do."), ("outbox", "By Friday.")]


def test_an_unknown_factory_is_refused_before_anything_is_written(tmp_path):
    shop, mill = two_factories(tmp_path)
    with session(shop) as ours:
        with pytest.raises(InvalidInput, match="nowhere is not a peer.*peers: mill"):
            ours.send_mail(["mill", "nowhere"], "Hello", "x", actor=OPERATOR)
        assert files(shop.outbox_dir) == [] and files(mill.inbox_dir) == []
        assert ours.log.mail_messages() == []


def test_our_name_must_be_an_address(tmp_path):
    shop, _mill = two_factories(tmp_path)
    name_base(shop, "My Shop")
    with session(shop) as ours, pytest.raises(InvalidInput, match='name = .My Shop. in factory.toml cannot be'):
        ours.send_mail(["mill"], "Hello", "x", actor=OPERATOR)
    assert files(shop.outbox_dir) == []


def test_a_note_to_ourselves_and_a_missing_peer(tmp_path):
    shop, mill = two_factories(tmp_path)
    with session(shop) as ours:
        sent = ours.send_mail(["shop"], "Remember", "the milk", actor=OPERATOR)
        assert [path.name for path in files(shop.inbox_dir)] == [sent.path.name]
        import shutil

        shutil.rmtree(mill.dir)
        lost = ours.send_mail(["mill"], "Anyone?", "x", kind=MessageKind.REQUEST, actor=OPERATOR)
        assert lost.deliveries[0].state == "failed" and "no .factory" in (lost.deliveries[0].error or "")
        assert ours.log.mail_counts().undelivered == 1
        # The peer comes back: the retry delivers it.
        mill.dir.mkdir()
        assert [item.state for item in ours.retry_undelivered()] == ["delivered"]
        assert ours.log.mail_counts().undelivered == 0
        assert [path.name for path in files(mill.inbox_dir)] == [lost.path.name]
