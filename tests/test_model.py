"""The transition table and the small validators of ``factory_tui.model``."""

from __future__ import annotations

import itertools

import pytest

from factory_tui.errors import FactoryError, IllegalTransition, InvalidInput
from factory_tui.model import (
    OPERATOR_ACTIONS,
    PRIORITY_MAX,
    PRIORITY_MIN,
    STATE_ORDER,
    TRANSITIONS,
    Action,
    State,
    allowed_actions,
    check_priority,
    check_title,
    next_state,
    normalize_task_id,
    parse_priority,
)

# The brief's table, written out independently of model.TRANSITIONS.
LEGAL = {
    (State.PROPOSED, Action.APPROVE): State.QUEUED,
    (State.PROPOSED, Action.CANCEL): State.CANCELLED,
    (State.QUEUED, Action.HOLD): State.HELD,
    (State.QUEUED, Action.CANCEL): State.CANCELLED,
    (State.QUEUED, Action.CLAIM): State.RUNNING,
    (State.HELD, Action.RELEASE): State.QUEUED,
    (State.HELD, Action.CANCEL): State.CANCELLED,
    (State.RUNNING, Action.CANCEL): State.CANCELLED,
    (State.RUNNING, Action.FINISH): State.REVIEW,
    (State.RUNNING, Action.FAIL): State.FAILED,
    (State.RUNNING, Action.EXPIRE): State.QUEUED,
    # Issue 3: an engine that shuts down stops its agents and hands their
    # tasks back to the queue.
    (State.RUNNING, Action.STOP): State.QUEUED,
    # Issue 8: the QA gate between "agent finished" and review.
    (State.RUNNING, Action.CHECK): State.CHECKING,
    (State.CHECKING, Action.PASS): State.REVIEW,
    (State.CHECKING, Action.REJECT): State.QUEUED,
    (State.CHECKING, Action.FAIL): State.FAILED,
    (State.CHECKING, Action.CANCEL): State.CANCELLED,
    (State.CHECKING, Action.EXPIRE): State.CHECKING,
    (State.CHECKING, Action.STOP): State.CHECKING,
    (State.CHECKING, Action.CLAIM): State.CHECKING,
    (State.REVIEW, Action.APPROVE): State.DONE,
    (State.REVIEW, Action.REQUEUE): State.QUEUED,
    (State.REVIEW, Action.CANCEL): State.CANCELLED,
    (State.REVIEW, Action.FAIL): State.FAILED,
    (State.FAILED, Action.REQUEUE): State.QUEUED,
    (State.FAILED, Action.CANCEL): State.CANCELLED,
    (State.CANCELLED, Action.REQUEUE): State.QUEUED,
}
ALL_MOVES = list(itertools.product(State, Action))
ILLEGAL = [move for move in ALL_MOVES if move not in LEGAL]
ENGINE_ACTIONS = {Action.CLAIM, Action.FINISH, Action.FAIL, Action.EXPIRE, Action.STOP, Action.CHECK, Action.PASS,
                  Action.REJECT}


def test_the_table_is_the_briefs_table() -> None:
    assert TRANSITIONS == LEGAL


@pytest.mark.parametrize(("state", "action"), list(LEGAL), ids=lambda v: str(v))
def test_every_legal_move(state: State, action: Action) -> None:
    assert next_state("T-7", state, action) is LEGAL[(state, action)]


@pytest.mark.parametrize(("state", "action"), ILLEGAL, ids=lambda v: str(v))
def test_every_illegal_move_is_refused_with_a_reason(state: State, action: Action) -> None:
    with pytest.raises(IllegalTransition) as caught:
        next_state("T-7", state, action)
    error = caught.value
    assert isinstance(error, FactoryError)
    assert error.task_id == "T-7"
    assert error.state == state.value
    assert error.action == action.value
    message = str(error)
    assert "\n" not in message
    # Names the task, what was tried, and where the task is.
    assert message.startswith(f"cannot {action.value} T-7: ")
    assert message.endswith(error.reason)
    if state is State.DONE:
        assert "done" in error.reason and "never changes" in error.reason
        return
    assert f"it is {state.value}" in error.reason
    # ... and why: the states from which the action would be allowed.
    sources = [s.value for (s, a) in LEGAL if a is action]
    assert sources, "every action is legal from somewhere"
    for source in sources:
        assert source in error.reason.split(";", 1)[1]
    if action in ENGINE_ACTIONS:
        assert "only the engine" in error.reason


def test_done_is_final() -> None:
    assert not [action for (state, action) in LEGAL if state is State.DONE]
    assert allowed_actions(State.DONE) == []


def test_every_state_can_be_left_except_done() -> None:
    for state in State:
        leaving = {LEGAL[(s, a)] for (s, a) in LEGAL if s is state}
        assert bool(leaving) == (state is not State.DONE)


@pytest.mark.parametrize("state", list(State))
def test_allowed_actions_are_the_operator_moves_of_the_table(state: State) -> None:
    actions = allowed_actions(state)
    assert set(actions) == {a for (s, a) in LEGAL if s is state and a in OPERATOR_ACTIONS}
    assert len(actions) == len(set(actions))
    # A stable order, whatever the state.
    order = [Action.APPROVE, Action.REQUEUE, Action.HOLD, Action.RELEASE, Action.CANCEL]
    assert actions == [a for a in order if a in actions]


def test_operator_actions_never_claim_or_finish() -> None:
    assert OPERATOR_ACTIONS == {
        Action.APPROVE, Action.REQUEUE, Action.CANCEL, Action.HOLD, Action.RELEASE
    }
    assert not OPERATOR_ACTIONS & ENGINE_ACTIONS


def test_state_order_holds_every_state_once() -> None:
    assert sorted(STATE_ORDER) == sorted(State)
    assert len(STATE_ORDER) == len(set(STATE_ORDER)) == len(State) == 9


# --- task ids ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("T-12", "T-12"),
        ("t-12", "T-12"),
        ("T12", "T-12"),
        ("t12", "T-12"),
        ("12", "T-12"),
        ("  T-12  ", "T-12"),
        ("T-012", "T-12"),
        ("1", "T-1"),
        ("T-999999999", "T-999999999"),
    ],
)
def test_normalize_task_id(text: str, expected: str) -> None:
    assert normalize_task_id(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", "T-", "T", "X-12", "T-1a", "T--1", "-1", "T-1.5", "T 12", "1234567890", "T-12 T-13", "T-\n"],
)
def test_normalize_task_id_refuses_what_is_not_an_id(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_task_id(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "T-12" in message  # says what an id looks like


# --- titles and priorities ----------------------------------------------------


@pytest.mark.parametrize(
    ("title", "expected"),
    [("Ship it", "Ship it"), ("  padded \t", "padded"), ("[red]x[/]", "[red]x[/]"), ("é", "é")],
)
def test_check_title_keeps_the_text_and_drops_surrounding_space(title: str, expected: str) -> None:
    assert check_title(title) == expected


@pytest.mark.parametrize("title", ["", " ", "\t\n ", "\u3000"])
def test_check_title_refuses_an_empty_title(title: str) -> None:
    with pytest.raises(InvalidInput, match="title"):
        check_title(title)


@pytest.mark.parametrize("priority", [PRIORITY_MIN, -1, 0, 1, PRIORITY_MAX])
def test_check_priority_in_range(priority: int) -> None:
    assert check_priority(priority) == priority


@pytest.mark.parametrize("priority", [PRIORITY_MIN - 1, PRIORITY_MAX + 1, 10_000, -10_000])
def test_check_priority_out_of_range(priority: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_priority(priority)
    message = str(caught.value)
    assert str(priority) in message
    assert str(PRIORITY_MIN) in message and str(PRIORITY_MAX) in message


@pytest.mark.parametrize(("text", "expected"), [("3", 3), (" -7 ", -7), ("+5", 5), ("99", 99)])
def test_parse_priority(text: str, expected: int) -> None:
    assert parse_priority(text) == expected


@pytest.mark.parametrize("text", ["", "high", "1.5", "1e2", "0x10"])
def test_parse_priority_refuses_what_is_not_a_whole_number(text: str) -> None:
    with pytest.raises(InvalidInput, match="whole number"):
        parse_priority(text)


def test_parse_priority_refuses_out_of_range() -> None:
    with pytest.raises(InvalidInput, match="out of range"):
        parse_priority("100")
