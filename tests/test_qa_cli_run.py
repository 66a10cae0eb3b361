"""``factory qa run``, ``factory qa show`` and ``factory qa history``
(issue 8 §5): real scenario files and real test commands in clean
checkouts of real git repositories, through click's CliRunner."""

from __future__ import annotations

import json

from factory_tui.backends.log import ExecutionLog
from tests.test_cli import ok, ok_json, refused, run
from tests.test_qa_approve import commit_on_main, main_head, state, with_scenario
from tests.test_review_cli import json_error, to_review

ADVISORY = """---
kind: verify
gate: advisory
run: ["{python}", "-c", "print('hello from verify')"]
expect: ["hello"]
---
"""


def test_qa_run_on_a_task_records_a_pass_that_lets_approve_through(base) -> None:
    with_scenario(base)
    task_id = to_review(base, "switch a on", {"a.txt": "on\n"})
    refused(base, "task", "approve", task_id)

    out = ok(base, "qa", "run", "--task", task_id).stdout
    assert out.startswith("PASS unit (test, required) ") and out.count("\n") == 1
    assert state(base, task_id) == "review"  # on-demand runs never move a task
    assert ok_json(base, "task", "approve", task_id)["state"] == "done"


def test_qa_run_exits_1_when_a_required_one_fails_and_json_says_so(base) -> None:
    with_scenario(base)
    commit_on_main(base, {"b.txt": "on\n"}, "switch b on")
    task_id = to_review(base, "switch a on", {"a.txt": "on\n"})
    (base.qa_dir / "hello.md").write_text(ADVISORY, encoding="utf-8")

    result = run(base, "qa", "run", "--task", task_id)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["PASS", "hello"], ["FAIL", "unit"]]

    result = run(base, "qa", "run", "unit", "--task", task_id, "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["blocked"] is True and [r["verdict"] for r in data["runs"]] == ["FAIL"]
    with ExecutionLog.open(base.log_path) as log:
        assert log.qa_run(data["runs"][0]["id"]).task_id == task_id


def test_qa_run_without_a_task_checks_the_base_branch(base) -> None:
    with_scenario(base)
    data = ok_json(base, "qa", "run")
    assert data["task_id"] is None and data["commit"] == main_head(base)
    assert [r["verdict"] for r in data["runs"]] == ["PASS"]


def test_qa_run_errors_are_one_line(base) -> None:
    with_scenario(base)
    assert "no QA scenario 'nope'" in refused(base, "qa", "run", "nope")
    (base.qa_dir / "broken.md").write_text("---\nkind: nonsense\n---\n", encoding="utf-8")
    assert "scenario broken is invalid" in refused(base, "qa", "run", "broken")
    assert "T-9" in refused(base, "qa", "run", "--task", "T-9")
    assert json_error(run(base, "qa", "run", "nope", "--json"))


def test_qa_show_and_history(base) -> None:
    with_scenario(base)
    task_id = to_review(base, "switch a on", {"a.txt": "on\n"})
    first = ok_json(base, "qa", "run", "--task", task_id)["runs"][0]
    ok(base, "qa", "run")

    shown = ok_json(base, "qa", "show", str(first["id"]))
    assert (shown["scenario"], shown["verdict"], shown["task_id"]) == ("unit", "PASS", task_id)
    assert shown["output_file"].endswith("output.log")
    text = ok(base, "qa", "show", str(first["id"])).stdout
    assert "verdict:   PASS" in text and f"task:      {task_id}" in text
    assert "no QA run 999" in refused(base, "qa", "show", "999")
    assert "not a QA run id" in refused(base, "qa", "show", "abc")

    stats = ok_json(base, "qa", "history")
    assert [(s["scenario"], s["runs"], s["pass_rate"], s["flaky"]) for s in stats] == [("unit", 2, 1.0, 0)]
    assert "unit" in ok(base, "qa", "history").stdout
    runs = ok_json(base, "qa", "history", "unit", "--last", "1")
    assert len(runs) == 1 and runs[0]["task_id"] is None  # newest first
    assert "#" in ok(base, "qa", "history", "unit").stdout
