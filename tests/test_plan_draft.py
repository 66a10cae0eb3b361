"""``factory plan draft SPEC.md`` (issue 10 §4): a planner, run as a real
subprocess, writes a plan that is imported as proposed tasks, or refused
whole with its line.

The planners here are real programs: the package's demo planner, and a
small fake planner script written by the test (an untrusted program, as a
planner agent is) that writes garbage, nothing, 50 MB, markup, a symlink,
hangs, fails, or tries to approve tasks itself."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.model import State
from tests.engine_helpers import alive, configure, environment, factory, factory_argv, wait_for
from tests.helpers import assert_one_line_error, log_tables

TABLES = ("tasks", "task_bodies", "deps", "events", "drafts", "plan_proposals")

SPEC = """\
# Bookshop

## Catalogue

- List books (must)
  - title, author and price
- Search books
- Book page after "List books"

## Orders

- Cart
- Checkout depends on `Cart`
"""

# A planner that does what FAKE_MODE says; it finds the file to write in
# its prompt's `PLAN FILE:` line, as a planner agent reads it.
FAKE_PLANNER = r'''
import os, re, subprocess, sys, time
from pathlib import Path

prompt = Path(sys.argv[1]).read_text()
target = Path(re.search(r"^PLAN FILE: (.+)$", prompt, re.M).group(1))
mode = os.environ["FAKE_MODE"]
print("fake planner at work", flush=True)
if mode == "write":
    target.write_text(os.environ["FAKE_PLAN"])
elif mode == "nothing":
    pass
elif mode == "hang":
    Path(os.environ["FACTORY_RUN"], "hanging").write_text(str(os.getpid()))
    time.sleep(600)
elif mode == "big":
    with open(target, "wb") as handle:
        line = b"- [ ] a task that goes on and on " + b"x" * 60 + b"\n"
        for _ in range(50 * 1024 * 1024 // len(line) + 1):
            handle.write(line)
elif mode == "symlink":
    target.symlink_to("/etc/passwd")
elif mode == "fifo":
    os.mkfifo(target)
elif mode == "fail":
    target.write_text("- [ ] never read\n")
    print("ran out of tokens", flush=True)
    sys.exit(3)
elif mode == "approve":
    done = subprocess.run([sys.executable, "-m", "factory_tui", "task", "approve", "T-1"],
                          capture_output=True, text=True)
    Path(os.environ["FACTORY_RUN"], "approve.txt").write_text(f"{done.returncode}\n{done.stderr}")
    target.write_text("- [ ] planned anyway\n")
'''


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    script = tmp_path / "fake_planner.py"
    script.write_text(FAKE_PLANNER)
    return script


def use_fake(base: FactoryBase, script: Path, mode: str, *, plan: str = "", timeout: float = 60) -> None:
    configure(base, agents={"fake": {
        "argv": ["{python}", str(script), "{prompt_file}"], "output": "text", "timeout": timeout,
        "env": {"FAKE_MODE": mode, "FAKE_PLAN": plan},
    }}, extra='\n[planner]\nprofile = "fake"\n')


@pytest.fixture
def spec(base: FactoryBase) -> Path:
    path = base.root / "SPEC.md"
    path.write_text(SPEC)
    return path


def draft(base: FactoryBase, *args: str) -> subprocess.CompletedProcess:
    """``factory plan draft``; ``SPEC.md`` names the spec at the top of the
    repository (the command runs elsewhere, and takes paths as given)."""
    return factory(base, "plan", "draft", *(str(base.root / arg) if arg == "SPEC.md" else arg for arg in args))


def refused(done: subprocess.CompletedProcess) -> str:
    return assert_one_line_error(done.returncode, done.stdout, done.stderr)


def plan_runs(base: FactoryBase) -> list[Path]:
    folder = base.runs_dir / "plan"
    return sorted(folder.iterdir()) if folder.exists() else []


def tasks(base: FactoryBase):
    with ExecutionLog.open(base.log_path) as log:
        return log.list_tasks()


# --- the demo planner, end to end -------------------------------------------------


def test_the_demo_planner_drafts_proposed_tasks(base: FactoryBase, spec: Path) -> None:
    done = draft(base, "SPEC.md", "--json")
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    made = {task.title: task for task in tasks(base)}
    assert list(made) == ["List books", "Search books", "Book page", "Cart", "Checkout"]
    assert {task.state for task in made.values()} == {State.PROPOSED}
    assert {task.source for task in made.values()} == {"draft:SPEC.md"}
    assert made["List books"].labels == ("catalogue",)
    assert made["List books"].body == "- title, author and price"
    assert made["List books"].priority == 21  # the 2nd of 3 headings (1), and (must) (20)
    assert made["Book page"].depends_on == (made["List books"].id,)
    assert made["Checkout"].depends_on == (made["Cart"].id,)
    assert outcome["draft"]["profile"] == "demo-planner"
    assert [task["id"] for task in outcome["imported"]] == ["T-1", "T-2", "T-3", "T-4", "T-5"]
    # The planner's files are kept.
    [run] = plan_runs(base)
    assert {"prompt.md", "transcript.log", "plan.md", "output.raw", "draft.json"} <= {p.name for p in run.iterdir()}
    assert "PLAN FILE: " + str(run / "plan.md") in (run / "prompt.md").read_text()
    assert json.loads((run / "draft.json").read_text())["result"] == "imported"
    assert outcome["run_dir"] == str(run)


def test_the_text_says_how_many_and_how_to_approve_them(base: FactoryBase, spec: Path) -> None:
    done = draft(base, "SPEC.md")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Drafted SPEC.md with demo-planner: 5 tasks (T-1…T-5), all proposed."
    assert lines[1] == ("Approve them one by one (factory task approve T-1) or all at once "
                        "(factory plan accept --all); factory plan list -s proposed shows them.")
    assert lines[-1].startswith("The planner's files: .factory/runs/plan/")


def test_drafting_the_same_spec_again_makes_no_duplicates(base: FactoryBase, spec: Path) -> None:
    assert draft(base, "SPEC.md").returncode == 0
    spec.write_text(SPEC + "- Gift wrapping\n")
    again = draft(base, str(spec), "--json")  # the same spec, named by another path
    assert again.returncode == 0, again.stderr
    outcome = json.loads(again.stdout)
    assert [task["title"] for task in outcome["imported"]] == ["Gift wrapping"]
    assert [item["task"] for item in outcome["skipped"]] == ["T-1", "T-2", "T-3", "T-4", "T-5"]
    # It waits for the task the earlier draft made for the item before it.
    assert outcome["imported"][0]["depends_on"] == ["T-5"]
    assert len(tasks(base)) == 6
    # The planner was told what was drafted before.
    prompt = (plan_runs(base)[-1] / "prompt.md").read_text()
    assert "T-1 [proposed] List books" in prompt


# --- planners that misbehave ---------------------------------------------------------


def test_a_plan_that_does_not_parse_is_shown_with_its_line_and_nothing_is_imported(
    base: FactoryBase, spec: Path, fake: Path,
) -> None:
    use_fake(base, fake, "write", plan="- [ ] fine\n- [maybe] not a box\n- [ ] also fine\n")
    before = log_tables(base.log_path, TABLES)
    line = refused(draft(base, "SPEC.md"))
    [run] = plan_runs(base)
    shown = str(run.relative_to(base.root))
    assert line == (f"factory: {shown}/plan.md:2: unknown box [maybe]: write [ ] for a task or [x] for a done one; "
                    f"nothing imported (the planner's files: {shown}/)")
    assert log_tables(base.log_path, TABLES) == before
    assert (run / "plan.md").read_text().startswith("- [ ] fine")  # kept to look at
    assert json.loads((run / "draft.json").read_text())["result"] == "refused"


def test_a_draft_cannot_propose_changes_only_a_revision_can(base: FactoryBase, spec: Path, fake: Path) -> None:
    use_fake(base, fake, "write", plan="- [ ] fine\n- [ ] drop it {id=T-1 cancel}\n")
    line = refused(draft(base, "SPEC.md"))
    assert ":2: id=T-1 proposes a change to a task in the log; only `factory plan draft --revise` reads" in line
    assert tasks(base) == []


def test_a_planner_that_writes_nothing(base: FactoryBase, spec: Path, fake: Path) -> None:
    use_fake(base, fake, "nothing")
    line = refused(draft(base, "SPEC.md"))
    shown = str(plan_runs(base)[0].relative_to(base.root))
    assert line == f"factory: the planner wrote no plan ({shown}/plan.md is missing); nothing imported"
    assert "fake planner at work" in (plan_runs(base)[0] / "transcript.log").read_text()


def test_a_planner_that_hangs_is_stopped_at_its_timeout(base: FactoryBase, spec: Path, fake: Path) -> None:
    use_fake(base, fake, "hang", timeout=1.5)
    line = refused(draft(base, "SPEC.md"))
    assert "the planner (fake) did not finish within 1.5 s and was stopped; nothing imported" in line
    pid = int((plan_runs(base)[0] / "hanging").read_text())
    wait_for(lambda: not alive(pid), "the planner to be gone", limit=10)
    assert tasks(base) == []


def test_a_planner_that_fails_says_so(base: FactoryBase, spec: Path, fake: Path) -> None:
    use_fake(base, fake, "fail")
    line = refused(draft(base, "SPEC.md"))
    assert line.startswith("factory: the planner exited 3 (fake): ⏺ ran out of tokens; nothing imported")
    assert tasks(base) == []


def test_a_50_mb_plan_is_refused_unread(base: FactoryBase, spec: Path, fake: Path) -> None:
    use_fake(base, fake, "big")
    line = refused(draft(base, "SPEC.md"))
    assert "plan.md is 50.0 MB, more than the 4.0 MB a plan may be; nothing imported" in line
    assert tasks(base) == []


@pytest.mark.parametrize(("mode", "problem"), [
    ("symlink", "is a symlink, not a file"),
    ("fifo", "is not a regular file"),
])
def test_a_plan_that_is_no_file_is_refused(base: FactoryBase, spec: Path, fake: Path, mode: str, problem: str) -> None:
    use_fake(base, fake, mode)
    assert problem in refused(draft(base, "SPEC.md"))


def test_markup_and_escapes_in_titles_are_stored_literally(base: FactoryBase, spec: Path, fake: Path) -> None:
    title = "[bold red]Launch[/] \x1b[31mnow\x1b[0m \u202eevil"
    use_fake(base, fake, "write", plan=f"- [ ] {title}\n  body with [link](x) and \x1b]0;title\x07\n")
    done = draft(base, "SPEC.md")
    assert done.returncode == 0, done.stderr
    [task] = tasks(base)
    assert task.title == title
    assert task.body == "body with [link](x) and \x1b]0;title\x07"
    listed = factory(base, "plan", "list")
    assert "\x1b" not in listed.stdout and "\u202e" not in listed.stdout
    assert "[bold red]Launch[/] ␛[31mnow␛[0m \\u202eevil" in listed.stdout


def test_a_planner_cannot_approve_tasks(base: FactoryBase, spec: Path, fake: Path) -> None:
    """A planner runs under its run folder's FACTORY_RUN: a `factory`
    command it runs is refused as an agent's that has no live run."""
    assert factory(base, "plan", "add", "already proposed", "--state", "proposed").returncode == 0
    use_fake(base, fake, "approve")
    done = draft(base, "SPEC.md")
    assert done.returncode == 0, done.stderr
    code, said = (plan_runs(base)[0] / "approve.txt").read_text().split("\n", 1)
    assert code == "1" and "claims to be an agent" in said
    assert [(task.title, task.state) for task in tasks(base)] == [
        ("already proposed", State.PROPOSED), ("planned anyway", State.PROPOSED)]


# --- the spec -------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "problem"), [
    (lambda path: None, "no such file: {name}"),
    (lambda path: os.mkfifo(path), "{name} is not a regular file (a FIFO or a device?); a spec is a markdown file"),
    (lambda path: path.mkdir(), "{name} is a folder, not a spec file"),
    (lambda path: path.write_bytes(b"# Spec\n\n- caf\xe9\n"), "{name}:3: not UTF-8 text"),
    (lambda path: path.write_text("  \n\n"), "{name} is empty: there is nothing to plan"),
    (lambda path: path.write_bytes(b"- x\n" * 20_000), "{name} is 80,000 bytes; a spec may be at most 65,536"),
])
def test_a_bad_spec_is_one_line_and_nothing_runs(base: FactoryBase, make, problem: str) -> None:
    path = base.root / "BAD.md"
    make(path)
    before = log_tables(base.log_path, TABLES)
    line = refused(draft(base, str(path)))
    assert line.startswith("factory: " + problem.format(name="BAD.md")), line
    assert log_tables(base.log_path, TABLES) == before
    assert plan_runs(base) == []


def test_revise_without_a_spec_needs_an_earlier_draft(base: FactoryBase) -> None:
    assert refused(draft(base, "--revise")) == (
        "factory: no plan was drafted here yet: name the spec (factory plan draft --revise SPEC.md)")
    assert refused(draft(base)) == "factory: name the spec to draft from: factory plan draft SPEC.md"


# --- the planner's profile -----------------------------------------------------------------


def test_the_planner_profile_is_chosen_in_order(base: FactoryBase, spec: Path, fake: Path) -> None:
    plan = "- [ ] from the profile named planner\n"
    configure(base, agents={"planner": {"argv": ["{python}", str(fake), "{prompt_file}"], "output": "text",
                                        "env": {"FAKE_MODE": "write", "FAKE_PLAN": plan}}})
    assert json.loads(draft(base, "SPEC.md", "--json").stdout)["draft"]["profile"] == "planner"
    # --profile wins; the demo planner is there whatever factory.toml lists.
    assert json.loads(draft(base, "SPEC.md", "--profile", "demo-planner", "--json").stdout)["draft"]["profile"] == (
        "demo-planner")
    line = refused(draft(base, "SPEC.md", "--profile", "nope"))
    assert line == "factory: no agent profile 'nope' in factory.toml (profiles: demo, planner, demo-planner)"


def test_an_unknown_planner_in_factory_toml_is_one_line(base: FactoryBase, spec: Path) -> None:
    configure(base, extra='\n[planner]\nprofile = "ghost"\n')
    line = refused(draft(base, "SPEC.md"))
    assert line.endswith("[planner] profile 'ghost' is not a profile (profiles: demo)")


# --- SIGKILL in the middle of the import ------------------------------------------------------


def test_a_draft_killed_mid_import_leaves_nothing_and_a_rerun_imports_all(base: FactoryBase, spec: Path) -> None:
    before = log_tables(base.log_path, TABLES)
    killed = factory(base, "plan", "draft", str(spec),
                     env=environment(FACTORY_FAULTS="draft.imported=kill"))
    assert killed.returncode == -9
    assert log_tables(base.log_path, TABLES) == before  # the tasks were written, not committed
    done = draft(base, "SPEC.md")
    assert done.returncode == 0, done.stderr
    assert len(tasks(base)) == 5


def test_two_drafts_of_one_spec_at_once_make_each_task_once(base: FactoryBase, spec: Path) -> None:
    """Each import reads what was drafted before under the log's write
    lock, so the second sees the first's tasks."""
    runs = [subprocess.Popen(factory_argv(base, "plan", "draft", str(spec)), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=environment()) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert [task.title for task in tasks(base)] == ["List books", "Search books", "Book page", "Cart", "Checkout"]


def test_sigterm_stops_the_planner_and_imports_nothing(base: FactoryBase, spec: Path, tidy: list) -> None:
    process = subprocess.Popen(
        factory_argv(base, "plan", "draft", str(spec)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=environment(FACTORY_DEMO_PLANNER_SECONDS="300"),
    )
    tidy.append(process)
    pid_file = wait_for(lambda: next(iter(base.runs_dir.glob("plan/*/agent.pid")), None), "the planner to start")
    planner = int(wait_for(lambda: pid_file.read_text().strip(), "its pid"))
    process.terminate()
    out, err = process.communicate(timeout=60)
    line = assert_one_line_error(process.returncode, out, err)
    assert line.startswith("factory: stopped by SIGTERM: the planner (demo-planner) was stopped; nothing imported")
    wait_for(lambda: not alive(planner), "the planner to be gone", limit=10)
    assert tasks(base) == []


def test_a_spec_named_with_markup_escapes_and_bytes_that_are_not_utf8(base: FactoryBase) -> None:
    path = base.root / os.fsdecode(b"\xff[red]x\x1b[31m.md")
    path.write_text(SPEC)
    done = factory(base, "plan", "draft", str(path))
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    assert done.stdout.splitlines()[0] == "Drafted \ufffd[red]x␛[31m.md with demo-planner: 5 tasks (T-1…T-5), all proposed."
    assert {task.source for task in tasks(base)} == {"draft:\ufffd[red]x\x1b[31m.md"}
    # The same name, read the same way: drafting it again skips them all.
    assert json.loads(factory(base, "plan", "draft", str(path), "--json").stdout)["imported"] == []
