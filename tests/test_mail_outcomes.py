"""A request's task that fails, is re-queued and fails again answers each
change once (failed, working, failed), and completes with the whole merge
commit read from the approval's event; an approval recorded before the
commit was kept in the event's data still finds it in the note."""

from __future__ import annotations

import json

from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.mail_requests import answer_ended
from factory_tui.model import Action, NewTask, State
from tests.engine_helpers import configure, environment, factory, git, task
from tests.mail_helpers import OPERATOR, name_base, session, two_factories
from tests.test_mail_requests import ask, inbox


def engine_ready(shop) -> None:
    """The demo agent for ``shop``, keeping its name and its peer."""
    text = shop.config_path.read_text()
    configure(shop)
    name_base(shop, "shop", text[text.index("[peers.mill]"):])


def states(base) -> list[str]:
    return [item["state"] for item in inbox(base)]


def test_failed_then_working_then_failed_again_then_completed(tmp_path):
    shop, mill = two_factories(tmp_path)
    engine_ready(shop)
    request = ask(mill)
    with session(shop) as ours:
        ours.mail_catch_up()
        task_id = ours.task_from_request(request, actor=OPERATOR).id

    failing = environment(FACTORY_DEMO_FAIL_RATE="1")
    ran = factory(shop, "run", "--once", env=failing)
    assert ran.returncode == 1 and task(shop, task_id).state is State.FAILED, ran.stdout + ran.stderr
    # The run answered before it exited: no engine is left to do it.
    assert states(mill) == ["accepted", "failed"]
    failed = inbox(mill)[1]
    body = json.loads(factory(mill, "mail", "show", failed["key"], "--json").stdout)["body"]
    assert body.startswith(f"{task_id} failed: agent exited 1") and "told to fail (FACTORY_DEMO_FAIL_RATE)" in body
    assert (failed["thread"], failed["task"], failed["in_reply_to"]) == (request, task_id, request)

    requeued = factory(shop, "task", "requeue", task_id, "--note", "Try a smaller change.")
    assert requeued.returncode == 0, requeued.stderr
    assert states(mill) == ["accepted", "failed", "working"]
    working = json.loads(factory(mill, "mail", "show", inbox(mill)[2]["key"], "--json").stdout)["body"]
    assert "re-queued it after it failed" in working

    again = factory(shop, "run", "--once", env=failing)
    assert again.returncode == 1, again.stdout + again.stderr
    assert states(mill) == ["accepted", "failed", "working", "failed"]
    # Looked at again, by another process: each change was told once.
    with session(shop) as ours:
        assert ours.answer_ended_requests() == []
        assert ours.mail_round() == []

    assert factory(shop, "task", "requeue", task_id).returncode == 0
    assert factory(shop, "run", "--once").returncode == 0
    approved = factory(shop, "task", "approve", task_id, "--note", "Looks right.")
    assert approved.returncode == 0, approved.stderr
    merge = git(shop.root, "rev-parse", "main")
    replies = inbox(mill)
    assert [item["state"] for item in replies] == ["accepted", "failed", "working", "failed", "working",
                                                   "completed"]
    shown = json.loads(factory(mill, "mail", "show", replies[-1]["key"], "--json").stdout)["body"]
    # The operator's note says nothing of the merge: the event's data does.
    assert f"Merge commit: {merge}" in shown
    with session(shop) as ours:
        [approval] = [event for event in ours.log.events(task_id=task_id) if event.to_state == State.DONE]
        assert approval.data["merge_commit"] == merge and approval.note == "Looks right."


def test_a_failed_task_cancelled_answers_canceled_and_no_working(tmp_path):
    shop, mill = two_factories(tmp_path)
    request = ask(mill)
    with session(shop) as ours:
        ours.mail_catch_up()
        task_id = ours.task_from_request(request, actor=OPERATOR).id
        ours.log.apply(task_id, Action.HOLD, actor=OPERATOR)
        ours.log.apply(task_id, Action.RELEASE, actor=OPERATOR)
        assert ours.mail_round() == []  # held and released: nothing the requester waits on
        claim = ours.log.claim_next("w")
        assert claim is not None
        ours.log.finish(claim.token, State.FAILED, note="the build broke")
        ours.mail_round()
        ours.apply(task_id, Action.CANCEL, actor=OPERATOR)
        assert ours.mail_round() == []
    assert states(mill) == ["accepted", "failed", "canceled"]


def test_an_approval_recorded_before_the_data_is_read_from_its_note(tmp_path):
    shop, mill = two_factories(tmp_path)
    request = ask(mill)
    sha = "0123456789abcdef0123456789abcdef01234567"
    with session(shop) as ours:
        ours.mail_catch_up()
        task_id = ours.task_from_request(request, actor=OPERATOR).id
    with ExecutionLog.open(shop.log_path) as log:
        # As an older approval wrote it: the commit only in the note, cut.
        claim = log.claim_next("w")
        assert claim is not None and claim.task.id == task_id
        log.finish(claim.token, State.REVIEW, note="done")
        log.apply(task_id, Action.APPROVE, actor=OPERATOR, note=f"merged factory/{task_id} into main at {sha[:10]}")
        [sent] = answer_ended(shop, log)
        assert f"Merge commit: {sha[:10]}\n" in sent.message.body + "\n"
        assert log.add_task(NewTask(title="unrelated"), actor=OPERATOR)
        assert answer_ended(shop, log) == []
