"""The review screens (issue 7): the diff (wrapped lines, file and hunk
keys, j/k), approving, re-queueing and cancelling from the run screen and
the diff, the review going on to the next task in review, the task screen
(its run, why it failed, a dependency that can never be met), searching a
transcript and opening earlier attempts, the multi-line re-queue note and
$EDITOR, the new-task form's agent profile, and dialogs that count.

Real bases in temporary git repositories, real worktrees and merges, the
real console driven by Pilot; each test checks the log and git, not only
the screen."""

from __future__ import annotations

import contextlib
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textual.widgets import Select, TabbedContent

from factory_tui.app import FactoryApp
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.worktrees import Worktrees
from factory_tui.model import Action, NewTask, State
from factory_tui.screens.dialogs import ChoiceDialog, ConfirmDialog, NewTaskDialog, NoteDialog, counted
from factory_tui.screens.help import HelpScreen, describe_bindings
from factory_tui.screens.run import RunScreen, attempts_in
from factory_tui.screens.task import TaskScreen
from factory_tui.widgets import transcript as transcript_module
from factory_tui.widgets.diff_view import NEXT_ROW, DiffView, PatchView
from factory_tui.widgets.transcript import TranscriptView, find_line
from tests.console_helpers import move_to, ready, wait_until
from tests.engine_helpers import agent_profile, configure

SIZE = (160, 48)
PROJECT = Path(__file__).resolve().parent.parent


# --- a base with tasks in review (what the engine leaves, minus the agent) --------------


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


def commit_on_main(base: FactoryBase, files: dict[str, str]) -> None:
    for name, text in files.items():
        (base.root / name).write_text(text)
    git(base.root, "add", *files)
    git(base.root, "commit", "-q", "-m", "files to change")


def to_review(base: FactoryBase, title: str, files: dict[str, str], *, priority: int = 0) -> str:
    """A task claimed, its worktree and branch made, ``files`` committed on
    the branch and its run ended in review: real git, the real log."""
    worktrees = Worktrees.for_config(base.root, base.config())
    with ExecutionLog.open(base.log_path) as log:
        task = log.add_task(NewTask(title=title, priority=priority), actor="test")
        claim = log.claim_next("test-engine")
        assert claim is not None and claim.task.id == task.id
        prepared = worktrees.prepare_for(task.id, owned=False)
        log.record_branch_start(task.id, prepared.start)
        for name, text in files.items():
            path = prepared.path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert worktrees.commit_all(task.id, f"work on {task.id}")
        log.finish(claim.token, State.REVIEW)
    return task.id


def task_of(base: FactoryBase, task_id: str):
    with ExecutionLog.open(base.log_path) as log:
        return log.get_task(task_id)


def events_of(base: FactoryBase, task_id: str) -> list:
    with ExecutionLog.open(base.log_path) as log:
        return log.events(task_id=task_id)


def has_branch(base: FactoryBase, branch: str) -> bool:
    return bool(git(base.root, "branch", "--list", branch).strip())


def on_main(base: FactoryBase) -> set[str]:
    return set(git(base.root, "ls-tree", "-r", "--name-only", "main").split())


async def open_task_screen(pilot, task_id: str) -> TaskScreen:
    app = pilot.app
    await move_to(pilot, task_id)
    await pilot.press("enter")
    await wait_until(
        pilot, lambda: isinstance(app.screen, TaskScreen) and app.screen.why_loaded, f"{task_id}'s screen"
    )
    return app.screen


async def open_diff(pilot, task_id: str) -> RunScreen:
    """The Plan, enter on the task, d: its run screen on the diff."""
    app = pilot.app
    await open_task_screen(pilot, task_id)
    await pilot.press("d")
    await wait_until(
        pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.task_id == task_id and app.screen.diff_loaded,
        f"{task_id}'s diff",
    )
    patch = app.screen.query_one(PatchView)
    await wait_until(pilot, lambda: patch.laid_out or not patch.text, "the patch laid out")
    return app.screen


def notes(app) -> list[str]:
    """The notifications shown so far: those on screen, and every one
    recorded by ``keep_notes`` (a notification leaves the screen after a few
    seconds, sooner than a slow machine gets to look)."""
    shown = [str(n.message) for n in app._notifications]
    return [*getattr(app, "kept_notes", []), *shown]


def keep_notes(app) -> None:
    app.kept_notes = []
    notify = app.notify

    def kept(message, *args, **kwargs):
        app.kept_notes.append(str(message))
        return notify(message, *args, **kwargs)

    app.notify = kept


def rendered_rows(view, width: int = 200) -> list[str]:
    return ["".join(s.text for s in view.render_row(n, width)) for n in range(view.row_count)]


# --- 1. the diff ---------------------------------------------------------------------------

LONG = "x = '" + "a long line of code that goes on " * 8 + "END'"


async def test_the_diff_wraps_a_long_line_and_cuts_nothing(base):
    task_id = to_review(base, "long lines", {"long.py": f"{LONG}\nshort = 1\n"})
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        screen = await open_diff(pilot, task_id)
        patch = screen.query_one(PatchView)
        assert patch.size.width < len(LONG)
        rows = rendered_rows(patch, patch.scrollable_content_region.width)
        # The long line takes several rows, the later ones marked as its
        # continuation, and every character of it is on screen.
        first = next(n for n, row in enumerate(rows) if "x = '" in row)
        continued = [row for row in rows[first + 1:] if row.startswith(NEXT_ROW)]
        assert len(continued) >= 2
        shown = "".join(row[1:].strip() for row in rows[first:first + 1 + len(continued)])
        assert "".join(("+" + LONG).split()) == "".join(shown.split())
        assert not any(row.rstrip().endswith("…") for row in rows)
        assert any(row.startswith(" +short = 1") for row in rows)


async def test_diff_keys_move_between_files_and_hunks(base):
    lines = [f"line {n}\n" for n in range(1, 201)]
    commit_on_main(base, {"big.txt": "".join(lines), "small.txt": "small\n"})
    changed = list(lines)
    # Three blocks of changes far apart: three hunks, taller together than the view.
    for first in (5, 90, 180):
        for n in range(first, first + 15):
            changed[n - 1] = f"changed {n}\n"
    task_id = to_review(base, "three hunks", {"big.txt": "".join(changed), "small.txt": "small, changed\n"})
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        screen = await open_diff(pilot, task_id)
        diff = screen.query_one(DiffView)
        files = diff.file_list
        patch = diff.patch
        assert [f.path for f in diff.files] == ["big.txt", "small.txt"]
        assert app.focused is files
        assert len(patch.hunks) == 3
        assert patch.max_scroll_y > patch.hunks[1]

        # } scrolls the patch to each hunk's @@ line in turn; { goes back.
        for hunk in range(3):
            await pilot.press("right_curly_bracket")
            row = patch.hunks[hunk]
            assert patch.cursor == row
            assert patch.row_text(row).startswith("@@")
            assert round(patch.scroll_offset.y) == min(row, patch.max_scroll_y)
        await pilot.press("left_curly_bracket")
        assert patch.cursor == patch.hunks[1]
        assert round(patch.scroll_offset.y) == patch.hunks[1]
        assert "changed 90" in "".join(patch.row_text(r) for r in patch.visible_rows())

        # ] and [ go to the next and previous file.
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: "small, changed" in patch.text and patch.laid_out, "small.txt's patch")
        assert files.highlighted == 1
        await pilot.press("left_square_bracket")
        await wait_until(pilot, lambda: "changed 90" in patch.text and patch.laid_out, "big.txt's patch again")
        assert files.highlighted == 0

        # j and k move in the file list, as in every list.
        await pilot.press("j")
        await wait_until(pilot, lambda: "small, changed" in patch.text, "j to small.txt")
        assert files.highlighted == 1
        await pilot.press("k")
        await wait_until(pilot, lambda: "changed 90" in patch.text, "k to big.txt")
        assert files.highlighted == 0

        # ? names the diff's keys, under their own heading.
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        sections = dict(describe_bindings(app, app.screen.bindings))
        assert {"Next file", "Previous file", "Next hunk", "Previous hunk"} <= {row[1] for row in sections["Diff"]}


async def test_the_diff_is_read_again_each_time_it_is_shown(base):
    task_id = to_review(base, "still growing", {"one.txt": "1\n", "two.txt": "2\n"})
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        screen = await open_diff(pilot, task_id)
        diff = screen.query_one(DiffView)
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: diff.shown == 1, "two.txt shown")
        # The agent (here: the test) writes another file meanwhile.
        (base.worktrees_dir / task_id / "three.txt").write_text("3\n")
        await pilot.press("t", "d")
        await wait_until(pilot, lambda: [f.path for f in diff.files] == ["one.txt", "three.txt", "two.txt"],
                         "the new file in the diff")
        # The file that was shown still is.
        assert diff.file_list.highlighted == 2 and "+2" in diff.patch.text


async def test_approve_from_the_diff_merges_and_says_when_no_review_is_left(base):
    task_id = to_review(base, "the only one", {"only.txt": "only\n"})
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await open_diff(pilot, task_id)
        await pilot.press("a")
        await wait_until(pilot, lambda: task_of(base, task_id).state is State.DONE, "approved from the diff")
        # Nothing else waits for review: back to the dashboard, and it says so.
        await wait_until(pilot, lambda: len(app.screen_stack) == 1, "the dashboard")
        await wait_until(pilot, lambda: any("back to the dashboard" in m for m in notes(app)), "the notification")
    assert "only.txt" in on_main(base)
    assert not has_branch(base, f"factory/{task_id}")
    assert events_of(base, task_id)[-1].kind == "approved"


async def test_requeue_from_the_diff_keeps_the_note_and_the_branch(base):
    task_id = to_review(base, "needs another go", {"again.txt": "first try\n"})
    branch_head = git(base.root, "rev-parse", f"factory/{task_id}").strip()
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await open_diff(pilot, task_id)
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, NoteDialog), "the note")
        await pilot.press(*"Redo it", "enter", *"say why", "ctrl+s")
        await wait_until(pilot, lambda: task_of(base, task_id).state is State.QUEUED, "re-queued from the diff")
    event = events_of(base, task_id)[-1]
    assert (event.kind, event.note) == ("requeued", "Redo it\nsay why")
    assert task_of(base, task_id).feedback == "Redo it\nsay why"
    # The work waits on its branch for the next attempt; nothing merged.
    assert git(base.root, "rev-parse", f"factory/{task_id}").strip() == branch_head
    assert "again.txt" not in on_main(base)


async def test_cancel_from_the_run_screen_asks_and_keeps_the_branch(base):
    task_id = to_review(base, "not wanted after all", {"unwanted.txt": "no\n"})
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await open_task_screen(pilot, task_id)
        await pilot.press("t")  # the run screen, on its transcript
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question")
        assert task_of(base, task_id).state is State.REVIEW
        await pilot.press("y")
        await wait_until(pilot, lambda: task_of(base, task_id).state is State.CANCELLED, "cancelled")
    assert events_of(base, task_id)[-1].kind == "cancelled"
    assert has_branch(base, f"factory/{task_id}")
    assert "unwanted.txt" not in on_main(base)
    assert not (base.worktrees_dir / task_id).exists()


# --- 2. the review goes on ---------------------------------------------------------------


async def test_approving_on_the_run_screen_goes_on_to_the_next_task_in_review(base):
    low = to_review(base, "low", {"low.txt": "low\n"}, priority=0)
    high = to_review(base, "high", {"high.txt": "high\n"}, priority=2)
    middle = to_review(base, "middle", {"middle.txt": "middle\n"}, priority=1)
    app = FactoryApp(base, engine=False)
    keep_notes(app)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await open_diff(pilot, high)
        # In the Plan's order: by priority, then id.
        for approved, following, path in ((high, middle, "middle.txt"), (middle, low, "low.txt")):
            await pilot.press("a")
            await wait_until(pilot, lambda t=approved: task_of(base, t).state is State.DONE, f"{approved} approved")
            await wait_until(
                pilot,
                lambda t=following: isinstance(app.screen, RunScreen) and app.screen.task_id == t and app.screen.diff_loaded,
                f"{following}'s diff",
            )
            screen = app.screen
            assert screen.query_one(TabbedContent).active == "diff"
            assert [f.path for f in screen.query_one(DiffView).files] == [path]
            # The notice may be shown a moment after the next diff is.
            await wait_until(pilot, lambda t=following: any(f"Next in review: {t}" in m for m in notes(app)),
                             f"the notice naming {following}")
            # The dashboard is right under it: esc would leave the review.
            assert len(app.screen_stack) == 2
        await pilot.press("a")
        await wait_until(pilot, lambda: task_of(base, low).state is State.DONE, f"{low} approved")
        await wait_until(pilot, lambda: len(app.screen_stack) == 1, "the dashboard")
        await wait_until(pilot, lambda: any("No other task waits for review" in m for m in notes(app)),
                         "the notice that none is left")
    assert {"low.txt", "high.txt", "middle.txt"} <= on_main(base)


async def test_the_next_review_comes_round_from_the_top(base):
    first = to_review(base, "first", {"first.txt": "1\n"}, priority=1)
    second = to_review(base, "second", {"second.txt": "2\n"}, priority=0)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        # Starting from the last of the review group: the next is the first.
        await open_diff(pilot, second)
        await pilot.press("a")
        await wait_until(
            pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.task_id == first, "the first task's run"
        )
    assert task_of(base, second).state is State.DONE
    assert task_of(base, first).state is State.REVIEW


# --- 3. the task screen --------------------------------------------------------------------


async def test_task_screen_opens_its_diff_and_its_transcript(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        screen = await open_diff(pilot, "T-3")
        assert screen.query_one(TabbedContent).active == "diff"
        assert [f.path for f in screen.query_one(DiffView).files] == ["shopfront/login.py"]
        await pilot.press("escape")
        assert isinstance(app.screen, TaskScreen)
        for key in ("t", "enter"):
            await pilot.press(key)
            await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), f"{key}: the run screen")
            assert app.screen.query_one(TabbedContent).active == "transcript"
            view = app.screen.query_one(TranscriptView)
            await wait_until(pilot, lambda v=view: v.row_count == 10, "the transcript")
            assert "attempt 1" in str(app.screen.query_one("#run-title").render())
            await pilot.press("escape")
            assert isinstance(app.screen, TaskScreen)


async def test_why_a_task_failed_is_at_the_top_of_its_screen(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        screen = await open_task_screen(pilot, "T-8")
        assert screen.failure is not None
        reason = "agent exited 1: test_session_expiry still fails 1 run in 5"
        assert screen.failure.reason == reason
        meta = screen.query_one("#task-meta").visual
        assert str(meta).splitlines()[0] == f" ✗ failed: {reason}"
        # In the theme's error colour.
        assert any("$text-error" in str(span.style) for span in meta.spans)
        # A task that did not fail says nothing of it.
        await pilot.press("escape")
        screen = await open_task_screen(pilot, "T-6")
        assert screen.failure is None and screen.never is None
        assert "failed" not in str(screen.query_one("#task-meta").visual)


async def test_a_task_that_can_never_run_offers_to_drop_the_dependency(demo_base):
    with ExecutionLog.open(demo_base.log_path) as log:
        log.apply("T-6", Action.CANCEL, actor="test")  # T-13 waits for it
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        screen = await open_task_screen(pilot, "T-13")
        assert screen.never is not None and screen.never.through == ("T-6",)
        meta = str(screen.query_one("#task-meta").visual)
        assert "can never run as it is: waits for T-6 (cancelled)" in meta
        assert "drop_dependency" in {b.binding.action for b in screen.active_bindings.values()}
        # Asked first; n keeps it.
        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question")
        await pilot.press("n")
        await wait_until(pilot, lambda: app.screen is screen, "back on the task screen")
        assert task_of(demo_base, "T-13").depends_on == ("T-6",)
        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question")
        await pilot.press("y")
        await wait_until(pilot, lambda: task_of(demo_base, "T-13").depends_on == (), "the dependency dropped")
        # The log feed refreshes the screen: it can run now, and says nothing more.
        await wait_until(pilot, lambda: screen.never is None and screen.detail.task.depends_on == (), "the screen")
        assert "never" not in str(screen.query_one("#task-meta").visual)
    event = events_of(demo_base, "T-13")[-1]
    assert event.kind == "undepends" and event.actor.startswith("console:")
    assert event.note == "no longer depends on T-6"


async def test_several_dead_dependencies_are_offered_one_by_one_and_counted(demo_base):
    # T-12 waits for T-3 and T-5; both cancelled.
    with ExecutionLog.open(demo_base.log_path) as log:
        log.apply("T-3", Action.CANCEL, actor="test")
        log.apply("T-5", Action.CANCEL, actor="test")
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        screen = await open_task_screen(pilot, "T-12")
        assert set(screen.never.through) == {"T-3", "T-5"}
        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "the choice")
        assert "2 dependencies lead there" in app.screen.detail
        second = screen.never.through[1]
        await pilot.press("2")
        await wait_until(pilot, lambda: second not in task_of(demo_base, "T-12").depends_on, f"{second} dropped")
    assert len(task_of(demo_base, "T-12").depends_on) == 1


# --- 4. the transcript: search and earlier attempts ------------------------------------------


def write_transcript(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


async def open_transcript(pilot, base: FactoryBase, task_id: str, attempt: int) -> TranscriptView:
    app = pilot.app
    await app.push_screen(RunScreen(
        task_id, title="a task", transcript=base.transcript_path(task_id, attempt),
        worktree=base.worktree_path(task_id), branch=f"factory/{task_id}", attempt=attempt,
    ))
    view = app.screen.query_one(TranscriptView)
    return view


async def test_slash_searches_the_transcript_and_n_and_shift_n_go_on(base, monkeypatch):
    with ExecutionLog.open(base.log_path) as log:
        log.add_task(NewTask(title="t"), actor="test")
    lines = [f"line {n} of plain output" for n in range(3000)]
    hits = [120, 1500, 2900]
    for n in hits:
        lines[n] = f"line {n}: the NEEDLE is here"
    write_transcript(base.transcript_path("T-1", 1), lines)
    # Small chunks: the search crosses many of them, never reading the file whole.
    monkeypatch.setattr(transcript_module, "SEARCH_CHUNK", 4096)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        view = await open_transcript(pilot, base, "T-1", 1)
        await wait_until(pilot, lambda: view.row_count == 3000, "the transcript")
        await wait_until(pilot, lambda: view.cursor == 2999, "the cursor following the end")

        def on_screen(line: int) -> bool:
            return line in view.visible_rows()

        await pilot.press("slash")
        bar = app.screen.query_one("#transcript-search")
        assert app.focused is bar
        await pilot.press(*"needle", "enter")
        # From the last line, round to the first match; lower case matches NEEDLE.
        await wait_until(pilot, lambda: view.cursor == hits[0], "the first match")
        assert on_screen(hits[0]) and app.focused is view
        assert any("went round" in m for m in notes(app))
        await pilot.press("n")
        await wait_until(pilot, lambda: view.cursor == hits[1], "the next match")
        assert on_screen(hits[1])
        await pilot.press("n")
        await wait_until(pilot, lambda: view.cursor == hits[2], "the third")
        await pilot.press("N")
        await wait_until(pilot, lambda: view.cursor == hits[1], "the previous match")
        assert on_screen(hits[1])
        # The match is marked in its line.
        row = view.render_row(hits[1], 100)
        assert any(segment.text == "NEEDLE" and segment.style and segment.style.reverse for segment in row)
        # A capital makes the search exact: nothing holds "Needle".
        await pilot.press("slash", *["backspace"] * 6, *"Needle", "enter")
        await wait_until(pilot, lambda: any("No line holds 'Needle'" in m for m in notes(app)), "no match")
        assert view.cursor == hits[1]
        # esc closes the bar; esc again leaves the screen.
        await pilot.press("slash", "escape")
        assert not bar.display and app.focused is view


def naive_find(lines: list[str], cursor: int, query: str, backward: bool) -> tuple[int | None, bool]:
    fold = query == query.lower()
    holds = [query.lower() in line.lower() if fold else query in line for line in lines]
    n = len(lines)
    order = list(range(cursor - 1, -1, -1)) + list(range(n - 1, cursor - 1, -1)) if backward else \
        list(range(cursor + 1, n)) + list(range(0, cursor + 1))
    for position, index in enumerate(order):
        if holds[index]:
            wrapped = position >= (cursor if backward else n - cursor - 1)
            return index, wrapped
    return None, False


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(st.text(alphabet="abcAB é\t", max_size=30), min_size=1, max_size=40),
    query=st.text(alphabet="abcAB é", min_size=1, max_size=4),
    data=st.data(),
)
def test_find_line_agrees_with_reading_every_line(tmp_path_factory, lines, query, data):
    path = tmp_path_factory.mktemp("search") / "transcript.log"
    raw = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(raw)
    starts, at = [], 0
    for line in lines:
        starts.append(at)
        at += len((line + "\n").encode("utf-8"))
    cursor = data.draw(st.integers(0, len(lines) - 1))
    backward = data.draw(st.booleans())
    old = transcript_module.SEARCH_CHUNK
    transcript_module.SEARCH_CHUNK = data.draw(st.integers(1, 64))
    try:
        found = find_line(path, starts, len(raw), cursor, query, backward=backward)
    finally:
        transcript_module.SEARCH_CHUNK = old
    # (The alphabet's only non-ASCII letter is lower case: folding ASCII
    # letters is all the case there is to fold.)
    assert found == naive_find(lines, cursor, query, backward)


async def test_p_opens_earlier_attempts_newest_first(base):
    with ExecutionLog.open(base.log_path) as log:
        log.add_task(NewTask(title="t"), actor="test")
    runs = base.task_runs_dir("T-1")
    for folder in ("1", "2", "2.stopped", "3"):
        write_transcript(runs / folder / "transcript.log", [f"output of run {folder}", "more"])
    assert [a.folder for a in attempts_in(runs)] == ["3", "2", "2.stopped", "1"]
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        view = await open_transcript(pilot, base, "T-1", 3)
        screen = app.screen
        title = screen.query_one("#run-title")
        await wait_until(pilot, lambda: view.row_count == 2 and screen.attempts, "the newest transcript")
        assert view.line(0) == "output of run 3"
        assert "attempt 3" in str(title.render()) and "1 of 4 runs" in str(title.render())
        for folder, label in (("2", "attempt 2 "), ("2.stopped", "attempt 2, stopped"), ("1", "attempt 1 "), ("3", "attempt 3 ")):
            await pilot.press("p")
            await wait_until(pilot, lambda f=folder: view.row_count == 2 and view.line(0) == f"output of run {f}",
                             f"run {folder}'s transcript")
            assert label in str(title.render())


async def test_p_with_a_single_attempt_says_so(base):
    with ExecutionLog.open(base.log_path) as log:
        log.add_task(NewTask(title="t"), actor="test")
    write_transcript(base.transcript_path("T-1", 1), ["only run"])
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        view = await open_transcript(pilot, base, "T-1", 1)
        await wait_until(pilot, lambda: view.row_count == 1, "the transcript")
        await pilot.press("p")
        await wait_until(pilot, lambda: any("no other attempt" in m for m in notes(app)), "the notification")
        assert view.line(0) == "only run"


# --- 5. the re-queue note: several lines, or $EDITOR --------------------------------------------


@pytest.fixture
def no_terminal(monkeypatch):
    # Pilot has no terminal to hand over; the editor runs all the same.
    monkeypatch.setattr(FactoryApp, "suspend", lambda self: contextlib.nullcontext())


async def test_ctrl_e_writes_the_note_in_the_editor(demo_base, tmp_path, monkeypatch, no_terminal):
    editor = tmp_path / "editor.sh"
    editor.write_text(
        "#!/bin/sh\n"
        f'env | grep -E "^FACTORY_" | sort > "{tmp_path}/editor.env"\n'
        '{ cat "$1"; printf "\\nwritten in the editor\\n"; } > "$1.new" && mv "$1.new" "$1"\n'
    )
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", f"{editor}")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("FACTORY_TOKEN", "an-agents-token")
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-8")
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, NoteDialog), "the note")
        dialog = app.screen
        await pilot.press(*"typed first", "ctrl+e")
        await wait_until(pilot, lambda: "written in the editor" in dialog.text_area.text, "the editor's text")
        assert dialog.text_area.text == "typed first\nwritten in the editor"
        assert not notes(app)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: task_of(demo_base, "T-8").state is State.QUEUED, "re-queued")
    assert task_of(demo_base, "T-8").feedback == "typed first\nwritten in the editor"
    # The editor ran as the operator, on this base, with no agent's token.
    assert (tmp_path / "editor.env").read_text() == f"FACTORY_BASE={demo_base.root}\n"


async def test_an_editor_that_cannot_start_is_a_notification(demo_base, monkeypatch, no_terminal):
    monkeypatch.setenv("EDITOR", "/no/such/editor --wait")
    monkeypatch.delenv("VISUAL", raising=False)
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-8")
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, NoteDialog), "the note")
        dialog = app.screen
        await pilot.press(*"keep me", "ctrl+e")
        await wait_until(pilot, lambda: any("cannot open /no/such/editor" in m for m in notes(app)), "the notification")
        # Nothing lost: the dialog is open with what was typed.
        assert app.screen is dialog and dialog.text_area.text == "keep me"
        assert task_of(demo_base, "T-8").state is State.FAILED
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, NoteDialog), "the dialog closed")
    assert task_of(demo_base, "T-8").state is State.FAILED


# --- 6. the new-task form's agent profile -------------------------------------------------------


async def test_the_new_task_form_picks_the_agent_profile(base, agent):
    configure(base, agents={"careful": agent_profile(agent)})
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewTaskDialog), "the form")
        profile = app.screen.query_one("#profile", Select)
        assert [str(option[0]) for option in profile._options] == ["default", "demo", "careful"]
        await pilot.press(*"Careful")
        profile.focus()
        await pilot.press("enter", "down", "down", "enter")
        await wait_until(pilot, lambda: profile.value == "careful", "careful chosen")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, NewTaskDialog), "the form closed")
        # And one with the default: no profile set on the task.
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewTaskDialog), "the form")
        await pilot.press(*"Default", "ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, NewTaskDialog), "the form closed")
    assert task_of(base, "T-1").profile == "careful"
    assert task_of(base, "T-2").profile is None


# --- 7. dialogs count ----------------------------------------------------------------------------


def test_counted_chooses_the_form_by_count():
    assert counted(1, "agent") == "1 agent"
    assert counted(2, "agent") == "2 agents"
    assert counted(0, "worktree") == "0 worktrees"
    assert counted(1, "dependency", "dependencies") == "1 dependency"
    assert counted(3, "dependency", "dependencies") == "3 dependencies"


def test_no_console_text_says_agent_s_or_worktree_s():
    pattern = re.compile(r"\w\(s\)")
    console_sources = [
        *(PROJECT / "factory_tui" / "screens").glob("*.py"),
        *(PROJECT / "factory_tui" / "panes").glob("*.py"),
        *(PROJECT / "factory_tui" / "widgets").glob("*.py"),
        PROJECT / "factory_tui" / "app.py",
        PROJECT / "factory_tui" / "actions.py",
    ]
    offenders = [
        f"{path.name}: {line.strip()}"
        for path in console_sources
        for line in path.read_text().splitlines()
        if pattern.search(line)
    ]
    assert offenders == []


async def test_the_clean_up_dialog_counts_its_worktrees(demo_base):
    # Cancelled in the log alone: their worktrees stay, orphaned.
    with ExecutionLog.open(demo_base.log_path) as log:
        log.apply("T-8", Action.CANCEL, actor="test")
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("2")
        await wait_until(pilot, lambda: any(r.task_id == "T-8" and r.status == "orphaned" for r in app.worktree_table.rows),
                         "T-8 orphaned")
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question")
        assert app.screen.question == "Remove 1 orphaned worktree?"
        await pilot.press("n")
        with ExecutionLog.open(demo_base.log_path) as log:
            log.apply("T-3", Action.CANCEL, actor="test")
        await wait_until(pilot, lambda: sum(r.status == "orphaned" for r in app.worktree_table.rows) == 2, "two orphans")
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question")
        assert app.screen.question == "Remove 2 orphaned worktrees?"


# --- the picture: a diff with a wrapped long line ------------------------------------------------


def test_snapshot_of_a_diff_with_a_wrapped_line(snap_compare, demo_base):
    async def run_before(pilot):
        await ready(pilot)
        await open_diff(pilot, "T-3")
        await pilot.pause()

    app = FactoryApp(demo_base, engine=False, clock=lambda: 1_790_000_000.0 + 2 * 3600)
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)



def test_snapshot_of_a_failed_task_saying_why(snap_compare, demo_base):
    async def run_before(pilot):
        await ready(pilot)
        await open_task_screen(pilot, "T-8")
        await pilot.pause()

    app = FactoryApp(demo_base, engine=False, clock=lambda: 1_790_000_000.0 + 2 * 3600)
    assert snap_compare(app, terminal_size=(120, 30), run_before=run_before)
