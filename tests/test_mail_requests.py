"""Requests from another factory: a task by the operator's command or the
peer's policy (with an accepted reply at once), declined (rejected), and
answered by themselves when the task ends: completed with the merge
commit, canceled; once, even when looked at again after a restart."""

from __future__ import annotations

import json

import pytest

from factory_tui.backends.session import FactorySession
from factory_tui.errors import InvalidInput
from factory_tui.mail_model import MessageKind
from factory_tui.model import Action, State
from tests.engine_helpers import configure, factory, git, task, wait_for
from tests.mail_helpers import OPERATOR, name_base, session, two_factories


def inbox(base) -> list[dict]:
    """What the log of ``base`` has in its inbox after catching up, oldest first."""
    caught = factory(base, "mail", "catch-up")
    assert caught.returncode == 0, caught.stderr
    listed = json.loads(factory(base, "mail", "list", "--box", "inbox", "--json").stdout)
    return list(reversed(listed))


def ask(mill, subject="Write the notes", body="Please write NOTES.md.") -> str:
    with session(mill) as theirs:
        return theirs.send_mail(["shop"], subject, body, kind=MessageKind.REQUEST, actor=OPERATOR).message.id


def test_request_task_approve_completed_with_the_merge_commit(tmp_path):
    shop, mill = two_factories(tmp_path)
    text = shop.config_path.read_text()
    configure(shop)
    name_base(shop, "shop", text[text.index("[peers.mill]"):])
    request = ask(mill)
    assert [item["kind"] for item in inbox(shop)] == ["request"]
    made = factory(shop, "mail", "task", request, "--json")
    assert made.returncode == 0, made.stderr
    task_id = json.loads(made.stdout)["id"]
    assert task(shop, task_id).state is State.QUEUED and "Requested by mill" in task(shop, task_id).body
    again = factory(shop, "mail", "task", request)
    assert again.returncode == 1 and f"is a task already: {task_id}" in again.stderr
    [accepted] = inbox(mill)
    assert (accepted["state"], accepted["task"], accepted["in_reply_to"]) == ("accepted", task_id, request)
    ran = factory(shop, "run", "--once")
    assert ran.returncode == 0 and task(shop, task_id).state is State.REVIEW, ran.stdout + ran.stderr
    approved = factory(shop, "task", "approve", task_id)
    assert approved.returncode == 0, approved.stderr
    merge = git(shop.root, "rev-parse", "main")
    replies = inbox(mill)
    assert [item["state"] for item in replies] == ["accepted", "completed"]
    assert replies[1]["thread"] == request and replies[1]["task"] == task_id
    shown = json.loads(factory(mill, "mail", "show", replies[1]["key"], "--json").stdout)
    assert merge[:10] in shown["body"]
    # Looked at again (another process, a restart): no second reply.
    with FactorySession(shop) as ours:
        assert ours.answer_ended_requests() == []
    assert len(inbox(mill)) == 2


def test_cancel_answers_canceled_and_decline_answers_rejected(tmp_path):
    shop, mill = two_factories(tmp_path)
    first, second = ask(mill, "One"), ask(mill, "Two")
    with session(shop) as ours:
        ours.mail_catch_up()
        made = ours.task_from_request(first, actor=OPERATOR)
        ours.apply(made.id, Action.CANCEL, actor=OPERATOR)
        ours.decline_request(second, "Not our trade.", actor=OPERATOR)
        with pytest.raises(InvalidInput, match="answered already"):
            ours.task_from_request(second, actor=OPERATOR)
        with pytest.raises(InvalidInput, match="not a request"):
            ours.task_from_request(ours.log.mail_messages(box="outbox")[0].key, actor=OPERATOR)
    with session(shop) as again:
        assert again.answer_ended_requests() == []
    states = {(item["in_reply_to"], item["state"]) for item in inbox(mill)}
    assert states == {(first, "accepted"), (first, "canceled"), (second, "rejected")}


@pytest.mark.parametrize("accept, state", [("propose", State.PROPOSED), ("queue", State.QUEUED)])
def test_a_peers_policy_makes_the_task_at_intake(tmp_path, accept, state):
    shop, mill = two_factories(tmp_path, mill_accept=accept)
    request = ask(mill)
    with session(shop) as ours:
        ours.mail_catch_up()
        item = ours.log.mail_message(request)
        assert item.task_id is not None and ours.log.get_task(item.task_id).state is state
    [accepted] = inbox(mill)
    assert accepted["state"] == "accepted"


def test_a_manual_peers_request_waits(tmp_path):
    shop, mill = two_factories(tmp_path)
    request = ask(mill)
    with session(shop) as ours:
        ours.mail_catch_up()
        ours.mail_round()
        assert ours.log.mail_message(request).task_id is None
        assert ours.log.mail_counts().waiting_requests == 1


def test_the_engine_answers_a_task_cancelled_while_it_runs(tmp_path):
    """The engine's mail round finds the ended task by itself."""
    shop, mill = two_factories(tmp_path, mill_accept="queue")
    with session(shop) as ours:
        request = ask(mill)
        ours.mail_catch_up()
        task_id = ours.log.mail_message(request).task_id
        assert task_id is not None
        # Ended behind the CLI's back (straight in the log): only a reconciler sees it.
        ours.log.apply(task_id, Action.CANCEL, actor=OPERATOR)
        assert ours.mail_round() and ours.mail_round() == []
    wait_for(lambda: {item["state"] for item in inbox(mill)} == {"accepted", "canceled"}, "the canceled reply")
