"""The QA gate hardened (issue 8 §2): a judge run on demand gets the same
material as the gate's, the operator lock is not held while a merge is
checked again, checks take their own slots, engine shutdown stops what QA
runs, clean checkouts and agent worktrees made at once, and hostile
scenarios. Real bases, real git, real subprocesses; waits have deadlines."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.model import State
from tests.engine_helpers import add, git
from tests.test_cli import ok

# A judge that says whether its prompt held the agent's last words.
ECHO_JUDGE = r"""
import sys
prompt = open(sys.argv[1], encoding="utf-8").read()
saw = "the-agents-closing-remark" in prompt
print("saw last words:", "yes" if saw else "no")
print("VERDICT: PASS" if saw else "VERDICT: FAIL")
"""


def add_profile(base: FactoryBase, name: str, argv: list[str], *, timeout: float = 60) -> None:
    text = base.config_path.read_text(encoding="utf-8")
    text += (f"\n[agents.{name}]\nargv = {json.dumps(argv)}\noutput = \"text\"\n"
             f"timeout = {timeout}\nenv = {{}}\n")
    base.config_path.write_text(text, encoding="utf-8")


def write_scenario(base: FactoryBase, name: str, front: dict, body: str = "Judge the work.\n") -> None:
    base.qa_dir.mkdir(parents=True, exist_ok=True)
    lines = ["---"] + [f"{key}: {json.dumps(value)}" for key, value in front.items()] + ["---", "", body]
    (base.qa_dir / f"{name}.md").write_text("\n".join(lines), encoding="utf-8")


def task_in_review(base: FactoryBase, title: str, files: dict[str, str], *, summary: str = "") -> str:
    """A task whose run finished in review with ``summary`` as its last words."""
    from tests.test_review_cli import worktrees

    with ExecutionLog.open(base.log_path) as log:
        task_id = add(base, title)
        claim = log.claim_next("test-engine")
        assert claim is not None and claim.task.id == task_id
        prepared = worktrees(base).prepare_for(task_id, owned=False)
        log.record_branch_start(task_id, prepared.start)
        for name, text in files.items():
            (prepared.path / name).write_text(text)
        assert worktrees(base).commit_all(task_id, f"work on {task_id}")
        log.finish(claim.token, State.REVIEW, data={"summary": summary} if summary else None)
    return task_id


# --- 5. a judge run on demand gets the agent's last words -------------------------------


def test_a_judge_run_on_demand_is_given_the_agents_last_words(base: FactoryBase, tmp_path: Path) -> None:
    script = tmp_path / "echo_judge.py"
    script.write_text(ECHO_JUDGE)
    add_profile(base, "echo-judge", ["{python}", str(script), "{prompt_file}"])
    write_scenario(base, "heard", {"kind": "eval", "judge": "echo-judge"})
    task_id = task_in_review(base, "Say something", {"x.txt": "x\n"},
                             summary="Done. the-agents-closing-remark")

    out = ok(base, "qa", "run", "--task", task_id).stdout

    assert out.startswith("PASS heard (eval, required)"), out
    with ExecutionLog.open(base.log_path) as log:
        [row] = log.qa_runs(task_id=task_id)
    answer = (base.root / row.result.output / "answer-1.txt").read_text()
    assert "saw last words: yes" in answer
