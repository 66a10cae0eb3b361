"""The QA gate, really run: ``factory run`` as a subprocess on real bases,
a small scripted agent (tests/engine_helpers.py) that leaves
``work-<task>.txt`` in its worktree, and scenario files in ``.factory/qa/``
whose commands are tiny Python programs run in a clean checkout of the
task's commit. Nothing of ours is mocked; waits have deadlines."""

from __future__ import annotations

import json
import signal
import sqlite3
import textwrap
import time
from pathlib import Path

import pytest

from factory_tui.backends.agents import BUILTIN_PROFILES, DEMO_JUDGE_PROFILE
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.config import config_from_dict
from factory_tui.errors import ConfigError
from factory_tui.model import Action, State
from tests.engine_helpers import (
    add,
    agent_profile,
    alive,
    apply,
    configure,
    environment,
    events,
    factory,
    git,
    run_dir,
    start_factory,
    task,
    wait_for,
)

# Passes when the agent's file is in the checkout; says so either way.
HAS_WORK = ("import pathlib, sys; found = sorted(p.name for p in pathlib.Path('.').glob('work-*.txt')); "
            "print('work files:', found); sys.exit(0 if found else 1)")
# Fails when the agent's file is there (so it passes on the base branch).
NO_WORK = ("import pathlib, sys; found = sorted(p.name for p in pathlib.Path('.').glob('work-*.txt')); "
           "print('FOUND unwanted work files:', found) if found else None; sys.exit(1 if found else 0)")


def scenario(base: FactoryBase, name: str, front: dict, body: str = "Checks the work.\n") -> None:
    base.qa_dir.mkdir(parents=True, exist_ok=True)
    lines = ["---"] + [f"{key}: {json.dumps(value)}" for key, value in front.items()] + ["---", "", body]
    (base.qa_dir / f"{name}.md").write_text("\n".join(lines), encoding="utf-8")


def command(code: str) -> list[str]:
    return ["{python}", "-c", code]


def qa_config(base: FactoryBase, agent: Path, *, qa: str = "", lease: float | None = None, **knobs: str) -> None:
    configure(base, default_agent="steady",
              agents={"steady": agent_profile(agent, **knobs), "demo-judge": DEMO_JUDGE_PROFILE},
              extra=f"\n[qa]\n{qa}\n" if qa else "")


def qa_rows(base: FactoryBase, task_id: str):
    with ExecutionLog.open(base.log_path) as log:
        return log.qa_runs(task_id=task_id)


def qa_state(base: FactoryBase, task_id: str):
    with ExecutionLog.open(base.log_path) as log:
        return log.qa_state(task_id)


def failure(base: FactoryBase, task_id: str):
    with ExecutionLog.open(base.log_path) as log:
        return log.failures([task_id])[task_id]


# --- passing, failing, advisory, when -------------------------------------------------


def test_a_required_test_that_passes_sends_the_task_to_review_with_its_commit_checked(
    base: FactoryBase, agent: Path,
) -> None:
    qa_config(base, agent)
    scenario(base, "has-work", {"kind": "test", "run": command(HAS_WORK)})
    task_id = add(base, "Do some work")

    done = factory(base, "run", "--once")

    assert done.returncode == 0, done.stdout + done.stderr
    assert task(base, task_id).state is State.REVIEW
    head = git(base.root, "rev-parse", f"factory/{task_id}")
    rounds, checked = qa_state(base, task_id)
    assert (rounds, checked) == (0, head)
    [row] = qa_rows(base, task_id)
    assert (row.result.scenario, str(row.result.verdict), row.result.commit) == ("has-work", "PASS", head)
    assert row.attempt == 1
    output = base.root / row.result.output / "output.log"
    assert f"work-{task_id}.txt" in output.read_text()
    # The way through: checking, then passed to review, with the count.
    kinds = [event.kind for event in events(base, task_id)]
    assert "checking" in kinds
    [passed] = [event for event in events(base, task_id) if event.to_state == "review"]
    assert passed.note == "QA passed: 1 scenario", passed.note
    # The clean checkout went with the check.
    checkouts = base.qa_work_dir / "checkouts"
    assert not checkouts.exists() or not [p for p in checkouts.iterdir() if p.is_dir()]


def test_a_required_failure_goes_back_with_the_report_then_fails_after_max_rounds(
    base: FactoryBase, agent: Path,
) -> None:
    qa_config(base, agent, qa="max_rounds = 1")
    scenario(base, "no-work", {"kind": "test", "run": command(NO_WORK), "retries": 0})
    task_id = add(base, "Do unwanted work")

    done = factory(base, "run", "--once")

    assert done.returncode == 1, done.stdout + done.stderr
    final = task(base, task_id)
    assert final.state is State.FAILED and final.attempts == 2
    # Round one sent it back with the report as feedback, and the next
    # prompt held it: the failing scenario, its reason and its output.
    [rejected] = [event for event in events(base, task_id) if event.from_state == "checking"
                  and event.to_state == "queued"]
    assert "**no-work** (test): FAIL" in rejected.note
    assert "FOUND unwanted work files" in rejected.note
    assert len(rejected.note) <= 3000
    prompt = (run_dir(base, task_id, 2) / "prompt.md").read_text()
    assert "FOUND unwanted work files" in prompt and "no-work" in prompt
    assert "FOUND unwanted work files" not in (run_dir(base, task_id, 1) / "prompt.md").read_text()
    # Round two: no round left, so it failed, with "qa" as the reason on its row.
    why = failure(base, task_id)
    assert why.cause == "qa"
    assert why.reason.startswith("QA failed: no-work FAIL"), why.reason
    assert [str(row.result.verdict) for row in qa_rows(base, task_id)] == ["FAIL", "FAIL"]
    assert qa_state(base, task_id)[0] == 1


def test_on_fail_fail_fails_at_once(base: FactoryBase, agent: Path) -> None:
    qa_config(base, agent, qa='on_fail = "fail"')
    scenario(base, "no-work", {"kind": "test", "run": command(NO_WORK), "retries": 0})
    task_id = add(base, "Do unwanted work")

    factory(base, "run", "--once")

    final = task(base, task_id)
    assert final.state is State.FAILED and final.attempts == 1
    assert failure(base, task_id).cause == "qa"


def test_an_advisory_failure_never_blocks_and_a_scenario_whose_when_does_not_match_is_not_run(
    base: FactoryBase, agent: Path,
) -> None:
    qa_config(base, agent)
    scenario(base, "style", {"kind": "test", "gate": "advisory", "run": command(NO_WORK), "retries": 0})
    scenario(base, "docs-only", {"kind": "test", "run": command("raise SystemExit(1)"), "when": ["docs/**"]})
    scenario(base, "work-files", {"kind": "verify", "run": command(HAS_WORK), "expect": ["work files: \\['work-"],
                                  "when": ["work-*.txt"]})
    (base.qa_dir / "broken.md").write_text("no front matter here\n")
    task_id = add(base, "Do work the linter dislikes")

    done = factory(base, "run", "--once")

    assert done.returncode == 0, done.stdout + done.stderr
    assert task(base, task_id).state is State.REVIEW
    verdicts = {row.result.scenario: str(row.result.verdict) for row in qa_rows(base, task_id)}
    assert verdicts == {"style": "FAIL", "work-files": "PASS"}
    [passed] = [event for event in events(base, task_id) if event.to_state == "review"]
    assert passed.note.splitlines() == ["QA passed: 2 scenarios (1 advisory failed)",
                                        "1 invalid scenario files were not run"]


def test_no_scenario_that_applies_passes_at_once_and_none_at_all_skips_checking(
    base: FactoryBase, agent: Path,
) -> None:
    qa_config(base, agent)
    scenario(base, "docs-only", {"kind": "test", "run": command("raise SystemExit(1)"), "when": ["docs/**"]})
    first = add(base, "Change code only")
    factory(base, "run", "--once")
    assert task(base, first).state is State.REVIEW
    [passed] = [event for event in events(base, first) if event.to_state == "review"]
    assert passed.note == "no QA scenario applies"
    assert not qa_rows(base, first)

    # [qa] enabled = false: straight to review, no checking at all.
    qa_config(base, agent, qa="enabled = false")
    second = add(base, "Change more code")
    factory(base, "run", "--once")
    assert task(base, second).state is State.REVIEW
    assert not events(base, second, "checking")


# --- the judge -------------------------------------------------------------------------


def test_an_eval_is_judged_by_the_demo_judge_from_the_diff(base: FactoryBase, agent: Path) -> None:
    qa_config(base, agent)
    scenario(base, "says-work", {"kind": "eval", "judge": "demo-judge"}, "- the change mentions `work`\n")
    scenario(base, "says-argon2", {"kind": "eval", "judge": "demo-judge", "gate": "advisory"},
             "- the change mentions `argon2`\n")
    task_id = add(base, "Do some work")

    done = factory(base, "run", "--once", env=environment(FACTORY_DEMO_JUDGE_SECONDS="0"))

    assert done.returncode == 0, done.stdout + done.stderr
    assert task(base, task_id).state is State.REVIEW
    rows = {row.result.scenario: row.result for row in qa_rows(base, task_id)}
    assert str(rows["says-work"].verdict) == "PASS" and str(rows["says-argon2"].verdict) == "FAIL"
    assert rows["says-work"].cost_usd and rows["says-work"].kind == "eval"
    folder = base.root / rows["says-work"].output
    prompt = (folder / "prompt.md").read_text()
    assert f"work on {task_id}" in prompt  # the diff it judged
    assert "VERDICT: PASS" in (folder / "answer-1.txt").read_text()


# --- an engine killed, a check cancelled ------------------------------------------------

# Sleeps the first time it runs (the engine is killed meanwhile), not after.
SLOW_ONCE = textwrap.dedent("""\
    import os, pathlib, sys, time
    mark = pathlib.Path(sys.argv[1])
    first = not mark.exists()
    mark.write_text(str(os.getpid()))
    pathlib.Path(sys.argv[1] + ".runs").open("a").write("run\\n")
    time.sleep(30 if first else 0)
""")


def test_an_engine_killed_during_qa_leaves_the_check_to_the_next_engine_counted_once(
    base: FactoryBase, agent: Path, tmp_path: Path, tidy,
) -> None:
    mark = tmp_path / "qa-started"
    script = tmp_path / "slow_once.py"
    script.write_text(SLOW_ONCE)
    qa_config(base, agent)
    scenario(base, "slow", {"kind": "test", "run": ["{python}", str(script), str(mark)], "timeout": 120})
    task_id = add(base, "Do some work")
    env = environment(FACTORY_LEASE_SECONDS="2")

    first = start_factory(base, "run", output=tmp_path / "first.out", env=env)
    tidy.append(first)
    # The file is made, then its pid written: wait for the pid, not the file.
    pid = wait_for(lambda: mark.exists() and mark.read_text().strip(), "the slow QA command to start")
    tidy.append(int(pid))
    assert task(base, task_id).state is State.CHECKING
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)

    second = factory(base, "run", "--once", env=env)

    assert second.returncode == 0, second.stdout + second.stderr
    assert "QA again" in second.stdout
    assert task(base, task_id).state is State.REVIEW
    rows = qa_rows(base, task_id)
    assert [str(row.result.verdict) for row in rows] == ["PASS"]  # counted once
    assert (tmp_path / "qa-started.runs").read_text() == "run\nrun\n"
    assert len(events(base, task_id, "finished", "checking")) == 1  # the agent ran once
    # The first engine's command was stopped by the second.
    wait_for(lambda: not alive(int(mark.read_text())), "the stray QA command to go", limit=10)


def test_cancelling_a_task_in_checking_stops_its_qa(base: FactoryBase, agent: Path, tmp_path: Path, tidy) -> None:
    pid_file = tmp_path / "qa.pid"
    qa_config(base, agent)
    code = f"import os, pathlib, time; pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); time.sleep(60)"
    scenario(base, "hangs", {"kind": "test", "run": command(code), "timeout": 120})
    task_id = add(base, "Do some work")
    engine = start_factory(base, "run", "--once", output=tmp_path / "engine.out")
    tidy.append(engine)
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), "the QA command to start"))
    tidy.append(pid)
    assert alive(pid)

    apply(base, task_id, Action.CANCEL)

    wait_for(lambda: not alive(pid), "the QA command to be stopped", limit=15)
    assert engine.wait(timeout=60) == 0
    assert task(base, task_id).state is State.CANCELLED
    assert not qa_rows(base, task_id)
    assert "Traceback" not in (tmp_path / "engine.out").read_text()


# --- [qa] in factory.toml ------------------------------------------------------------------


def test_the_qa_table_is_read_and_checked_whole() -> None:
    config = config_from_dict({"qa": {"on_fail": "fail", "max_rounds": 0, "max_parallel": 1, "enabled": False}})
    assert (config.qa.on_fail, config.qa.max_rounds, config.qa.max_parallel, config.qa.enabled) == ("fail", 0, 1, False)
    default = config_from_dict({}).qa
    assert (default.on_fail, default.max_rounds, default.max_parallel, default.enabled) == ("requeue", 2, None, True)
    for table, complaint in [
        ({"max_round": 3}, "[qa] unknown key max_round; did you mean max_rounds?"),
        ({"on_fail": "retry"}, "[qa] on_fail must be one of requeue, fail"),
        ({"max_rounds": -1}, "[qa] max_rounds must be a whole number of at least 0"),
        ({"max_parallel": 0}, "[qa] max_parallel must be a whole number of at least 1"),
        ({"enabled": "yes"}, "[qa] enabled must be true or false"),
    ]:
        with pytest.raises(ConfigError) as raised:
            config_from_dict({"qa": table})
        assert complaint in str(raised.value), str(raised.value)


def test_init_writes_the_qa_block_and_the_demo_judge(tmp_path: Path) -> None:
    from factory_tui.backends.agents import render_profiles_toml
    from factory_tui.config import render_initial_config

    text = render_initial_config("x", "main", render_profiles_toml())
    assert "[qa]" in text and "[agents.demo-judge]" in text
    import tomllib

    config = config_from_dict(tomllib.loads(text))
    assert config.qa.on_fail == "requeue" and "demo-judge" in config.agents
    assert BUILTIN_PROFILES["demo-judge"] is DEMO_JUDGE_PROFILE


def test_a_check_longer_than_its_lease_keeps_its_lease(base: FactoryBase, agent: Path, tmp_path: Path, tidy) -> None:
    started, gate = tmp_path / "started", tmp_path / "gate"
    qa_config(base, agent)
    code = (f"import pathlib, time; pathlib.Path({str(started)!r}).touch(); deadline = time.monotonic() + 60\n"
            f"while not pathlib.Path({str(gate)!r}).exists() and time.monotonic() < deadline: time.sleep(0.02)")
    scenario(base, "held", {"kind": "test", "run": command(code)})
    task_id = add(base, "Do some work")
    engine = start_factory(base, "run", "--once", output=tmp_path / "engine.out",
                           env=environment(FACTORY_LEASE_SECONDS="1"))
    tidy.append(engine)
    wait_for(started.exists, "the QA command to start")
    began = time.time()

    def expires() -> float:
        with sqlite3.connect(base.log_path) as conn:
            return conn.execute("SELECT lease_expires FROM tasks WHERE state = 'checking'").fetchone()[0]

    # Renewed past the lease it started with, while the command runs.
    wait_for(lambda: expires() > began + 1.5, "the check's lease to be renewed", limit=15)
    with ExecutionLog.open(base.log_path) as log:
        assert log.reap_expired(actor="test:reaper") == []
    gate.touch()

    assert engine.wait(timeout=60) == 0
    assert task(base, task_id).state is State.REVIEW
    assert not events(base, task_id, "expired", "stopped")
    assert [str(row.result.verdict) for row in qa_rows(base, task_id)] == ["PASS"]
