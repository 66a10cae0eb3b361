"""Cost and tokens (issue 7 §3): per task, today and for the whole base,
summed from the figures the engine's ``finished``, ``failed`` and
``checking`` events carry. The log's query on a real SQLite file with a clock of our own; the
real engine and demo agent (which reports cost and tokens as Claude Code
does) through ``factory status`` and ``factory plan show``."""

from __future__ import annotations

import json

from factory_tui.backends.log import ExecutionLog, start_of_day
from factory_tui.model import NewTask, State, Totals
from tests.engine_helpers import ACTOR, add, configure, events, factory

DAY = 86_400.0
# 2026-09-21 12:00 UTC (the tests run in UTC).
NOON = 1_790_000_000.0 - (1_790_000_000.0 % DAY) + 12 * 3600


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run_once(log: ExecutionLog, clock: Clock, at: float, outcome: State, figures: dict) -> str:
    clock.now = at
    claim = log.claim_next("engine:test")
    assert claim is not None
    log.finish(claim.token, outcome, data={"run": f".factory/runs/{claim.task.id}/{claim.task.attempts}", **figures})
    return claim.task.id


def test_usage_sums_the_runs_figures_per_task_today_and_in_all(base) -> None:
    clock = Clock(NOON - DAY)
    with ExecutionLog.open(base.log_path, clock=clock) as log:
        one, two = (log.add_task(NewTask(title=t), actor=ACTOR).id for t in ("one", "two"))
        # Yesterday: one run of T-1 that failed, with figures.
        run_once(log, clock, NOON - DAY, State.FAILED,
                 {"cost_usd": 0.5, "input_tokens": 1000, "output_tokens": 100, "turns": 3})
        log.apply(one, "requeue", actor=ACTOR)
        # Today: T-1 again, and T-2 whose agent reports nothing.
        run_once(log, clock, NOON, State.REVIEW,
                 {"cost_usd": 0.25, "input_tokens": 2000, "output_tokens": 50, "turns": 2})
        run_once(log, clock, NOON + 60, State.REVIEW, {})
        # Events that are no run's end add nothing: a failure before any run
        # started, the operator's conflict, a progress line with figures.
        log.add_note(one, "a note", actor=ACTOR)
        usage = log.usage()
        assert usage.since == start_of_day(NOON) == NOON - 12 * 3600
        assert usage.tasks == {
            one: Totals(runs=2, cost_usd=0.75, input_tokens=3000, output_tokens=150, turns=5),
            two: Totals(runs=1),
        }
        assert usage.today == Totals(runs=2, cost_usd=0.25, input_tokens=2000, output_tokens=50, turns=2)
        assert usage.total == Totals(runs=3, cost_usd=0.75, input_tokens=3000, output_tokens=150, turns=5)
        assert log.usage(per_task=False).tasks == {}
        assert log.usage(per_task=False).total == usage.total
        assert log.usage(task_ids=[two]).total == Totals(runs=1)
        assert log.usage(task_ids=[]).total == Totals()
        # Tomorrow, nothing is today's.
        clock.now = NOON + DAY
        assert log.usage().today == Totals()
    assert usage.total.text == "$0.7500 · 3.0k in / 150 out · 3 runs"
    assert usage.to_json()["today"] == {
        "runs": 2, "cost_usd": 0.25, "input_tokens": 2000, "output_tokens": 50, "turns": 2,
    }


def test_a_run_that_went_on_to_qa_counts_like_any_other(base) -> None:
    # A run that finished into the QA gate ends in `checking`, not
    # `finished`: what its agent cost is the base's all the same.
    clock = Clock(NOON)
    with ExecutionLog.open(base.log_path, clock=clock) as log:
        checked = log.add_task(NewTask(title="checked"), actor=ACTOR).id
        run_once(log, clock, NOON, State.CHECKING, {"cost_usd": 0.4, "input_tokens": 900, "output_tokens": 90, "turns": 4})
        assert log.get_task(checked).state is State.CHECKING
        usage = log.usage()
        assert usage.tasks == {checked: Totals(runs=1, cost_usd=0.4, input_tokens=900, output_tokens=90, turns=4)}
        assert usage.today == usage.total == usage.tasks[checked]


def test_status_and_plan_show_give_what_the_demo_agent_reported(base) -> None:
    configure(base, max_parallel=2)
    ids = [add(base, "first"), add(base, "second")]
    empty = json.loads(factory(base, "status", "--json").stdout)
    assert empty["usage"]["total"] == Totals().to_json()
    assert "cost:" not in factory(base, "status").stdout
    ran = factory(base, "run", "--once")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    finished = {e.task_id: e.data for e in events(base, None, "finished")}
    assert set(finished) == set(ids)
    expected_cost = sum(data["cost_usd"] for data in finished.values())
    assert expected_cost > 0  # the demo agent reports cost and tokens
    status = json.loads(factory(base, "status", "--json").stdout)
    total = status["usage"]["total"]
    assert total["runs"] == 2
    assert abs(total["cost_usd"] - expected_cost) < 1e-6
    assert total["input_tokens"] == sum(data["input_tokens"] for data in finished.values())
    assert status["usage"]["today"] == total
    lines = factory(base, "status").stdout.splitlines()
    [cost] = [line for line in lines if line.startswith("cost: ")]
    assert f"in all ${expected_cost:.4f}" in cost and "2 runs" in cost
    shown = json.loads(factory(base, "plan", "show", ids[0], "--json").stdout)
    assert shown["usage"]["runs"] == 1
    assert abs(shown["usage"]["cost_usd"] - finished[ids[0]]["cost_usd"]) < 1e-6
    assert f"cost:       ${finished[ids[0]]['cost_usd']:.4f}" in factory(base, "plan", "show", ids[0]).stdout
