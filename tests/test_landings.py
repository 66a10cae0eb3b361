"""The session history after approvals (issue 10 §1): a real engine runs
the demo agent, the operator approves through the CLI, and the landing is
in the log (who, which agent, attempts, QA, cost, last words, the commit)
and in ``.factory/artifacts/history.md``, which the next prompt reads and
which never dirties the checkout approvals merge into. Attacks: a landing
with no runs, a history.md that is not the factory's, two approvals racing
the rendering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.documents import blob_id, parse_document
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.session import FactorySession
from factory_tui.model import Action, NewTask, State
from tests.engine_helpers import add, configure, factory, git, run_dir, task, wait_for
from tests.test_operator import GATE_HOOK, finish, in_review, install_hook, start, waiting_or_done


def commit_factory(base: FactoryBase) -> None:
    """The base's tracked files committed, as an operator would: the
    artifacts are tracked, so a dirty history.md would show."""
    git(base.root, "add", ".factory")
    git(base.root, "commit", "-q", "-m", "the factory")


def history(base: FactoryBase) -> str:
    return (base.artifacts_dir / "history.md").read_text(encoding="utf-8")


def test_an_approval_lands_the_task_in_the_history_and_the_next_prompt_reads_it(base: FactoryBase) -> None:
    configure(base, max_parallel=1)
    base.qa_dir.mkdir(parents=True, exist_ok=True)
    (base.qa_dir / "smoke.md").write_text('---\nkind: test\nrun: ["{python}", "-c", "pass"]\n---\nRuns.\n')
    (base.artifacts_dir / "conventions.md").write_text("# Conventions\n\nSmall commits.\n")
    commit_factory(base)
    first = add(base, "Write the notes")
    ran = factory(base, "run", "--once")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert task(base, first).state is State.REVIEW

    approved = factory(base, "task", "approve", first)

    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert approved.stderr == ""
    head = git(base.root, "rev-parse", "main")
    with FactorySession(base) as session:
        [landed] = session.landings()
    assert (landed.task_id, landed.title, landed.commit, landed.attempts) == (first, "Write the notes", head, 1)
    assert landed.actor.startswith("cli:")
    assert (landed.profile, landed.agent) == ("demo", "factory_tui.demo_agent")
    assert [(v.scenario, v.verdict, v.gate) for v in landed.qa] == [("smoke", "PASS", "required")]
    assert landed.cost_usd and landed.cost_usd > 0 and landed.input_tokens and landed.output_tokens
    assert landed.last_words and "notes/T-1.md" in landed.last_words
    text = history(base)
    assert parse_document("history.md", text.encode()).generated
    assert f"## {first}: Write the notes" in text and f"commit `{head[:10]}`" in text
    assert "smoke PASS (required)" in text and landed.last_words.splitlines()[0] in text
    # Rewritten at every landing and still the checkout is clean: git ignores it.
    assert git(base.root, "status", "--porcelain") == ""

    second = add(base, "Write more notes")
    ran = factory(base, "run", "--once")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    prompt = (run_dir(base, second) / "prompt.md").read_text()
    assert prompt.index("### conventions.md") < prompt.index("### history.md")  # the history last
    assert f"## {first}: Write the notes" in prompt
    with FactorySession(base) as session:
        read = {item.name: item for item in session.prompt_documents(second, 1)}
    assert read["history.md"].blob == blob_id(text.encode()) and read["history.md"].whole
    approved = factory(base, "task", "approve", second)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert history(base).index(f"## {second}:") < history(base).index(f"## {first}:")  # newest first
    assert git(base.root, "status", "--porcelain") == ""


def review_without_runs(log: ExecutionLog, title: str) -> str:
    """A task taken to review with no agent run, no branch and no cost."""
    made = log.add_task(NewTask(title=title), actor="test")
    claim = log.claim_next("test-engine", lease_seconds=600)
    assert claim is not None and claim.task.id == made.id
    log.finish(claim.token, State.REVIEW)
    return made.id


def test_a_landing_with_no_runs_is_in_the_history_as_it_is(base: FactoryBase) -> None:
    with FactorySession(base) as session:
        task_id = review_without_runs(session.log, "Nothing ran [bold]here[/]")
        outcome = session.apply(task_id, Action.APPROVE, actor="console:op")
        assert outcome.task.state is State.DONE and outcome.warning is None
        [landed] = session.landings()
    assert (landed.commit, landed.cost_usd, landed.input_tokens, landed.last_words, landed.qa) == (None, None, None, None, ())
    text = history(base)
    assert f"## {task_id}: Nothing ran [bold]here[/]" in text  # the title as written
    assert "nothing to merge" in text and "Cost: not reported" in text


def test_a_history_md_that_is_not_the_factorys_is_never_overwritten(base: FactoryBase) -> None:
    own = "# History\n\nWhat we did in 2019, by hand.\n"
    (base.artifacts_dir / "history.md").write_text(own)
    with FactorySession(base) as session:
        task_id = review_without_runs(session.log, "Land it")
        outcome = session.apply(task_id, Action.APPROVE, actor="cli:op")
        assert outcome.task.state is State.DONE
        assert "is not the factory's" in (outcome.warning or "") and "is not the factory's" in outcome.message
        assert session.log.landing_count() == 1  # landed and recorded all the same
        assert session.document_text("history.md") == own  # the operator's document, as it is
    assert history(base) == own


def test_a_history_md_git_would_track_is_not_written(base: FactoryBase) -> None:
    gitignore = base.dir / ".gitignore"
    gitignore.write_text(gitignore.read_text().replace("artifacts/history.md\n", ""))
    with FactorySession(base) as session:
        task_id = review_without_runs(session.log, "Land it")
        outcome = session.apply(task_id, Action.APPROVE, actor="cli:op")
        assert "is not ignored by git" in (outcome.warning or "")
        # The prompt's history comes from the log: still there.
        assert "## T-1: Land it" in session.document_text("history.md")
    assert not (base.artifacts_dir / "history.md").exists()
    # `factory init` adds the rule an older base lacks; then it is written.
    again = factory(base, "init", str(base.root), "--json")
    assert json.loads(again.stdout)["ignore_rules_added"] == ["artifacts/history.md"]


def test_two_approvals_racing_the_history_rendering_both_land_and_no_reader_sees_half_a_file(
    base: FactoryBase, tmp_path: Path,
) -> None:
    first, second = in_review(base, "Write the notes", "Write more notes")
    install_hook(base, "reference-transaction", GATE_HOOK)
    gate, held = tmp_path / "gate", tmp_path / "held"
    seen: list[str] = []
    stop = threading.Event()

    def read_all_the_time() -> None:
        path = base.artifacts_dir / "history.md"
        while not stop.is_set():
            try:
                seen.append(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                pass

    reader = threading.Thread(target=read_all_the_time)
    reader.start()
    try:
        one = start(base, "task", "approve", first, HOOK_GATE=str(gate), HOOK_HELD=str(held))
        wait_for(held.exists, "the first approval to reach its landing")
        two = start(base, "task", "approve", second)
        wait_for(lambda: waiting_or_done(two, base), "the second approval to wait for the first")
        gate.touch()
        for process in (one, two):
            status, out, err = finish(process)
            assert status == 0, out + err
        wait_for(lambda: f"## {second}:" in history(base) and f"## {first}:" in history(base), "both in the history")
    finally:
        stop.set()
        reader.join()
    assert seen, "the reader never saw the file"
    for text in seen:
        document = parse_document("history.md", text.encode())
        assert document.generated and document.usable, text  # always whole
        assert text.rstrip().endswith(("out", "attempt", ".", "`")), text
    with ExecutionLog.open(base.log_path) as log:
        assert sorted(landed.task_id for landed in log.landings()) == sorted([first, second])


def test_a_full_disk_leaves_the_history_as_it_was(base: FactoryBase, tmp_path: Path) -> None:
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare cannot make a mount namespace here (needed for a full disk)")
    with FactorySession(base) as session:
        for n in range(40):
            session.apply(review_without_runs(session.log, f"Task {n} " + "word " * 30), Action.APPROVE, actor="cli:op")
    before = history(base)
    script = (
        "import sys; from pathlib import Path\n"
        "from factory_tui.backends.base import FactoryBase\n"
        "from factory_tui.backends.landings import write_history\n"
        "from factory_tui.backends.log import ExecutionLog\n"
        "base = FactoryBase(Path(sys.argv[1]))\n"
        "(base.artifacts_dir / 'history.md').write_text(sys.argv[2])\n"
        "free = 1024 * 1024 - 8 * 1024\n"
        "try:\n"
        "    (base.artifacts_dir / 'filler').write_bytes(b'x' * free)\n"
        "except OSError:\n"
        "    pass\n"
        "with ExecutionLog.open(base.log_path) as log:\n"
        "    print(write_history(base, log))\n"
        "print((base.artifacts_dir / 'history.md').read_text() == sys.argv[2])\n"
        "print(sorted(p.name for p in base.artifacts_dir.iterdir() if p.name != 'filler'))\n"
    )
    folder = base.artifacts_dir
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size=1m tmpfs "{folder}" && "$0" -c "$1" "$2" "$3"',
         sys.executable, script, str(base.root), before],
        capture_output=True, text=True, cwd=os.getcwd(),
    )
    assert done.returncode == 0, done.stderr
    said, same, left = done.stdout.splitlines()
    assert said.startswith("the session history could not be written to .factory/artifacts/history.md: No space")
    assert same == "True" and left == "['history.md']"  # the old file whole, no temporary file left


# --- whether git ignores the history, told without git where the rules settle it ---


def git_says_ignored(base: FactoryBase) -> bool:
    done = subprocess.run(["git", "-C", str(base.root), "check-ignore", "-q", ".factory/artifacts/history.md"],
                          capture_output=True, check=False)
    return done.returncode == 0


def history_path(base: FactoryBase) -> Path:
    return base.artifacts_dir / "history.md"


def test_the_factorys_own_rule_settles_it_without_git_and_agrees_with_git(base: FactoryBase) -> None:
    from factory_tui.backends.landings import _ignored, _surely_ignored

    commit_factory(base)
    assert _surely_ignored(base.root, history_path(base))
    assert git_says_ignored(base) and _ignored(base.root, history_path(base))


@pytest.mark.parametrize("change", [
    "negated in .factory/.gitignore", "re-included by artifacts/.gitignore", "a tab after the rule",
    "tracked although ignored", "index version 4", "split index",
])
def test_whatever_the_rules_cannot_settle_git_decides(base: FactoryBase, change: str) -> None:
    from factory_tui.backends.landings import _ignored, _surely_ignored

    commit_factory(base)
    rules = base.dir / ".gitignore"
    if change == "negated in .factory/.gitignore":
        rules.write_text(rules.read_text() + "!artifacts/history.md\n")
    elif change == "re-included by artifacts/.gitignore":
        (base.artifacts_dir / ".gitignore").write_text("!history.md\n")
    elif change == "a tab after the rule":
        rules.write_text(rules.read_text().replace("artifacts/history.md\n", "artifacts/history.md\t\n"))
    elif change == "tracked although ignored":
        history_path(base).write_text("---\ngenerated: true\n---\n")
        git(base.root, "add", "-f", ".factory/artifacts/history.md")
    elif change == "index version 4":
        git(base.root, "update-index", "--index-version", "4")
    else:
        git(base.root, "update-index", "--split-index")
    assert not _surely_ignored(base.root, history_path(base))
    # git's own answer, whatever it is, is the one taken.
    assert _ignored(base.root, history_path(base)) == git_says_ignored(base)
    if change in ("index version 4", "split index"):
        assert git_says_ignored(base)
    else:
        assert not git_says_ignored(base)


def test_a_history_replaced_by_the_operator_after_a_landing_is_left_as_it_is(base: FactoryBase) -> None:
    with FactorySession(base) as session:
        first = review_without_runs(session.log, "Land it")
        assert session.apply(first, Action.APPROVE, actor="cli:op").warning is None
        assert "## T-1: Land it" in history(base)
        # The operator writes their own file over the one the factory wrote.
        own = "# History\n\nKept by hand from now on.\n"
        history_path(base).write_text(own)
        second = review_without_runs(session.log, "Land another")
        outcome = session.apply(second, Action.APPROVE, actor="cli:op")
        assert "is not the factory's" in (outcome.warning or "")
    assert history(base) == own


@pytest.mark.parametrize("left", [b"", b"\0" * 4096])
def test_an_empty_or_zeroed_history_left_by_a_power_loss_is_written_over(base: FactoryBase, left: bytes) -> None:
    history_path(base).write_bytes(left)
    with FactorySession(base) as session:
        task_id = review_without_runs(session.log, "Land it")
        outcome = session.apply(task_id, Action.APPROVE, actor="cli:op")
        assert outcome.warning is None
        assert f"## {task_id}: Land it" in session.document_text("history.md")
    assert f"## {task_id}: Land it" in history(base)


def test_the_history_is_rendered_once_per_landing_however_often_it_is_shown(
    base: FactoryBase, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from factory_tui.backends import landings

    rendered: list[int] = []
    real = landings.render_history

    def counted(items, total, **kwargs):
        rendered.append(total)
        return real(items, total, **kwargs)

    monkeypatch.setattr(landings, "render_history", counted)
    [first] = in_review(base, "Write the notes")
    with ExecutionLog.open(base.log_path) as log:
        from factory_tui.backends.operator import Operator

        Operator(base, log).apply(first, Action.APPROVE, actor="operator")
        written = (base.artifacts_dir / "history.md").read_text()
        shown = landings.history_document(log)
        assert shown is not None and landings.history_document(log) is shown
        assert landings.history_text(log) == written and "Write the notes" in written
        assert rendered == [1]  # the approval's file, and every look after it: one rendering
        # Another landing, written by another connection (as another
        # process would): rendered anew, once.
        with FactorySession(base) as session:
            second = review_without_runs(session.log, "Another one")
            session.apply(second, Action.APPROVE, actor="console:op")
        assert rendered == [1, 2]
        assert "Another one" in landings.history_text(log) and rendered == [1, 2]
