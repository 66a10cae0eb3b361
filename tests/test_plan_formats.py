"""Reading other tools' plans (plan_formats/): text written in each tool's
own format, the fields the importer ignores included, turned into import
records; every bad input refused with the file and the record to blame.

Pure: no base, no log. The import itself (and the CLI) is
test_plan_sources.py's."""

from __future__ import annotations

import json

import pytest

from factory_tui.model import State, Task
from factory_tui.plan_file import parse_plan
from factory_tui.plan_formats import backlog, beads, taskmaster
from factory_tui.plan_formats.export import markdown_item
from factory_tui.plan_formats.records import (
    Intent,
    Kind,
    SourceBatch,
    SourceError,
    check_batch,
    decode_lines,
    source_label,
)

# --- beads --------------------------------------------------------------------------

# Lines as `bd export` writes them: every field of beads' Issue that the
# importer does not keep is here too (type, assignee, owner, timestamps,
# comments, close reason, estimate, external ref, compaction, metadata).
BEADS_ISSUES = [
    {
        "id": "bd-a1", "title": "Auth epic", "description": "Everything about logging in.",
        "status": "open", "priority": 1, "issue_type": "epic", "owner": "me@example.invalid",
        "created_at": "2026-01-02T10:00:00Z", "created_by": "me", "updated_at": "2026-01-03T10:00:00Z",
    },
    {
        "id": "bd-a1.1", "title": "Login\nform", "description": "Build the form.",
        "design": "A single page.", "acceptance_criteria": "- logs in\n- shows errors",
        "notes": "Ask design.", "status": "in_progress", "priority": 0, "issue_type": "task",
        "assignee": "agent-7", "estimated_minutes": 90, "external_ref": "gh-12",
        "labels": ["ui", "needs review", "[bold]x[/]"],
        "dependencies": [
            {"issue_id": "bd-a1.1", "depends_on_id": "bd-a1", "type": "parent-child",
             "created_at": "2026-01-02T10:00:00Z", "created_by": "me"},
            {"issue_id": "bd-a1.1", "depends_on_id": "bd-b2", "type": "blocks",
             "created_at": "2026-01-02T10:00:00Z", "created_by": "me"},
            {"issue_id": "bd-a1.1", "depends_on_id": "bd-c3", "type": "discovered-from",
             "created_at": "2026-01-02T10:00:00Z"},
        ],
        "comments": [{"id": "1", "issue_id": "bd-a1.1", "author": "me", "text": "hm", "created_at": "2026-01-02T10:00:00Z"}],
        "created_at": "2026-01-02T10:00:00Z", "updated_at": "2026-01-04T10:00:00Z",
        "metadata": {"anything": [1, 2]}, "compaction_level": 0,
    },
    {
        "id": "bd-b2", "title": "Session store", "status": "closed", "priority": 4,
        "issue_type": "chore", "closed_at": "2026-01-05T10:00:00Z", "close_reason": "done",
        "created_at": "2026-01-02T10:00:00Z", "updated_at": "2026-01-05T10:00:00Z",
    },
    {"id": "bd-c3", "title": "Spike", "status": "deferred", "priority": 3, "issue_type": "task",
     "created_at": "2026-01-02T10:00:00Z", "updated_at": "2026-01-02T10:00:00Z"},
]


def beads_text(issues: list[dict]) -> str:
    return "\n".join(json.dumps(issue) for issue in issues) + "\n"


def test_beads_issues_become_records() -> None:
    records = beads.parse_beads(beads_text(BEADS_ISSUES), "issues.jsonl")
    assert [r.source_id for r in records] == ["bd-a1", "bd-a1.1", "bd-b2", "bd-c3"]
    epic, form, store, spike = records
    assert form.title == "Login form"  # one line
    assert form.where == "issues.jsonl:2 (bd-a1.1)"
    # Only `blocks` orders the work; the other links are told in the body.
    assert form.after == ("bd-b2",)
    assert form.body == (
        "Build the form.\n\n## Design\n\nA single page.\n\n## Acceptance criteria\n\n- logs in\n- shows errors"
        "\n\n## Notes\n\nAsk design.\n\n## Links in beads\n\n- part of bd-a1 (Auth epic)\n"
        "- found while working on bd-c3 (Spike)"
    )
    assert form.labels == ("ui", "needs-review", "bold-x")
    # P0 is ours 2, beads' default P2 is our default 0, P4 is -2.
    assert [r.priority for r in records] == [1, 2, -2, -1]
    assert [(r.status, r.intent) for r in records] == [
        ("open", Intent.OPEN), ("in_progress", Intent.OPEN), ("closed", Intent.DONE), ("deferred", Intent.HELD),
    ]
    assert epic.body == "Everything about logging in." and store.body == "" and spike.after == ()


def test_every_beads_status_has_a_meaning_and_ours_a_word_there() -> None:
    for status, intent in beads.STATUSES_IN.items():
        issue = {"id": "bd-1", "title": "t", "status": status}
        assert beads.parse_beads(json.dumps(issue), "i.jsonl")[0].intent is intent
    assert set(beads.STATUSES_OUT) == set(State)
    assert all(status in beads.STATUSES_IN for status in beads.STATUSES_OUT.values())
    # Absent status and priority: beads' defaults (open, P2).
    record = beads.parse_beads('{"id": "bd-1", "title": "t"}', "i.jsonl")[0]
    assert (record.status, record.intent, record.priority) == ("open", Intent.OPEN, 0)
    assert [beads.priority_out(p) for p in (5, 2, 0, -2, -9)] == [0, 0, 2, 4, 4]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "bd-1", "title": "t"', "i.jsonl:2: not JSON"),
        ('["bd-1"]', "i.jsonl:2: an issue must be a JSON object"),
        ('{"title": "no id"}', "i.jsonl:2: an issue needs an id"),
        ('{"id": 7, "title": "t"}', "i.jsonl:2: an issue needs an id (text), not 7"),
        ('{"id": "bd-2", "title": 12}', "i.jsonl:2 (bd-2): the title must be text, not 12"),
        ('{"id": "bd-2", "title": "  "}', "i.jsonl:2 (bd-2): the title is empty"),
        ('{"id": "bd-2", "title": "t", "priority": "high"}', "priority must be a whole number from 0 to 4, not 'high'"),
        ('{"id": "bd-2", "title": "t", "priority": 9}', "priority must be a whole number from 0 to 4, not 9"),
        ('{"id": "bd-2", "title": "t", "priority": true}', "not True"),
        ('{"id": "bd-2", "title": "t", "status": "wip"}', "i.jsonl:2 (bd-2): unknown status 'wip' (beads statuses: open"),
        ('{"id": "bd-2", "title": "t", "status": 3}', "status must be text"),
        ('{"id": "bd-2", "title": "t", "labels": "ui"}', "labels must be a list, not 'ui'"),
        ('{"id": "bd-2", "title": "t", "labels": [1]}', "a label must be text, not 1"),
        ('{"id": "bd-2", "title": "t", "dependencies": {"a": 1}}', "dependencies must be a list"),
        ('{"id": "bd-2", "title": "t", "dependencies": ["bd-1"]}', "a dependency must be a JSON object"),
        ('{"id": "bd-2", "title": "t", "dependencies": [{"type": "blocks"}]}', "a dependency needs depends_on_id"),
        ('{"id": "bd-2", "title": "t", "dependencies": [{"issue_id": "bd-9", "depends_on_id": "bd-1"}]}',
         "a dependency of another issue ('bd-9') is listed on this one"),
        ('{"id": "bd-2", "title": "t", "description": ["x"]}', "description must be text"),
    ],
)
def test_bad_beads_lines_are_refused_with_their_line(line: str, message: str) -> None:
    text = '{"id": "bd-1", "title": "fine"}\n' + line + "\n"
    with pytest.raises(SourceError) as caught:
        beads.parse_beads(text, "i.jsonl")
    assert message in str(caught.value)
    assert str(caught.value).startswith("i.jsonl:2")


def test_markup_and_escapes_in_beads_text_are_kept_as_written() -> None:
    issue = {"id": "bd-1", "title": "[bold]x[/] \x1b[31mred", "description": "\x1b]0;title\x07 [link=x]y[/link]"}
    record = beads.parse_beads(json.dumps(issue), "i.jsonl")[0]
    assert record.title == "[bold]x[/] \x1b[31mred"
    assert record.body == "\x1b]0;title\x07 [link=x]y[/link]"


# --- the file's bytes ------------------------------------------------------------------


def test_decoding_names_the_line_of_bad_utf8_or_a_huge_line() -> None:
    assert decode_lines(b"\xef\xbb\xbfone\ntwo\n", "f", max_line=10) == "one\ntwo\n"
    with pytest.raises(SourceError, match=r"^f:3: not UTF-8 text$"):
        decode_lines(b"one\ntwo\nth\xffree\n", "f", max_line=10)
    with pytest.raises(SourceError, match=r"^f:2: a line of 11 bytes; a line may have 10 at most$"):
        decode_lines(b"one\n" + b"x" * 11 + b"\nthree", "f", max_line=10)


# --- checks of a whole batch ------------------------------------------------------------


def batch_of(*lines: str) -> SourceBatch:
    return SourceBatch(Kind.BEADS, beads.parse_beads("\n".join(lines), "i.jsonl"))


def blocks(*ids: str) -> list[dict]:
    return [{"depends_on_id": target, "type": "blocks"} for target in ids]


def test_a_batch_refuses_duplicate_ids_self_dependencies_and_cycles() -> None:
    duplicate = batch_of('{"id": "bd-1", "title": "a"}', '{"id": "bd-2", "title": "b"}', '{"id": "bd-1", "title": "c"}')
    with pytest.raises(SourceError, match=r"^i.jsonl:3 \(bd-1\): the id bd-1 is given twice \(first at i.jsonl:1 \(bd-1\)\)$"):
        check_batch(duplicate)
    itself = batch_of(json.dumps({"id": "bd-1", "title": "a", "dependencies": blocks("bd-1")}))
    with pytest.raises(SourceError, match=r"bd-1 depends on itself"):
        check_batch(itself)
    loop = batch_of(
        '{"id": "bd-0", "title": "free"}',
        json.dumps({"id": "bd-1", "title": "a", "dependencies": blocks("bd-2")}),
        json.dumps({"id": "bd-2", "title": "b", "dependencies": blocks("bd-3")}),
        json.dumps({"id": "bd-3", "title": "c", "dependencies": blocks("bd-1", "bd-0")}),
    )
    with pytest.raises(SourceError, match=r"^i.jsonl:2 \(bd-1\): dependency cycle: bd-1 → bd-2 → bd-3 → bd-1$"):
        check_batch(loop)


def test_waiting_for_a_deleted_issue_is_no_wait() -> None:
    batch = batch_of(
        '{"id": "bd-1", "title": "gone", "status": "tombstone"}',
        json.dumps({"id": "bd-2", "title": "b", "dependencies": blocks("bd-1", "bd-9")}),
    )
    check_batch(batch)
    # bd-9 is not in the file: whether it was imported before is the log's to say.
    assert batch.records[1].after == ("bd-9",)


def test_labels_from_elsewhere_follow_our_rule() -> None:
    assert source_label("needs review") == "needs-review"
    assert source_label("  -area/ui  ") == "area/ui"
    assert source_label("☃☃") is None
    assert source_label("x" * 60) == "x" * 40


# --- Backlog.md --------------------------------------------------------------------------

# A task file as Backlog.md writes it: an unquoted @assignee (which is not
# YAML), dates, ordinal, milestone and its section markers.
BACKLOG_TASK = """---
id: task-012
title: Add paste-as-markdown support
status: In Progress
assignee: @codex
reporter: [@MrLesk, "@other"]
created_date: '2026-07-26 10:30'
updated_date: 2026-07-27
labels:
  - web-ui
  - enhancement
milestone: m-1
dependencies: [task-3, 4, TASK-0005.1]
parent_task_id: task-10
priority: high
ordinal: 1000
---

## Description

<!-- SECTION:DESCRIPTION:BEGIN -->
Convert rich text to markdown on paste.
<!-- SECTION:DESCRIPTION:END -->

## Acceptance Criteria
<!-- AC:BEGIN -->
- [ ] #1 Lists are converted
- [x] #2 Links are kept
<!-- AC:END -->
"""


def test_a_backlog_task_file_becomes_a_record() -> None:
    path = "backlog/tasks/task-12 - Add-paste.md"
    record = backlog.parse_task(BACKLOG_TASK, path, backlog.BacklogConfig())
    assert record.source_id == "TASK-12"
    assert record.where == f"{path} (TASK-12)"
    assert record.title == "Add paste-as-markdown support"
    assert (record.status, record.intent, record.priority) == ("In Progress", Intent.OPEN, 1)
    assert record.labels == ("web-ui", "enhancement")
    assert record.after == ("TASK-3", "TASK-4", "TASK-5.1")
    assert record.body == (
        "Part of TASK-10.\n\n## Description\n\nConvert rich text to markdown on paste.\n\n"
        "## Acceptance Criteria\n- [ ] #1 Lists are converted\n- [x] #2 Links are kept"
    )


def test_backlog_statuses_and_priorities_come_from_its_config() -> None:
    config = backlog.parse_config(
        'statuses: ["Backlog", "Doing", "Review", "Shipped"]\ndefault_status: "Backlog"\n'
        'priorities: [urgent, high, normal, low, someday]\ntask_prefix: "back"\n',
        "backlog/config.yml",
    )
    def record(front: str):
        return backlog.parse_task(f"---\nid: 7\ntitle: t\n{front}---\n", "f.md", config)

    assert record("status: shipped\n").intent is Intent.DONE  # the last status, case aside
    assert record("status: Review\n").intent is Intent.OPEN
    assert record("").status == "Backlog"  # no status: the default one
    assert record("").source_id == "BACK-7"  # a bare number: the project's prefix
    assert [record(f"priority: {p}\n").priority for p in ("urgent", "high", "normal", "low", "someday")] == [2, 1, 0, -1, -2]
    with pytest.raises(SourceError, match=r"^f.md \(BACK-7\): unknown status 'Done' \(the project's statuses: Backlog, Doing, Review, Shipped\)$"):
        record("status: Done\n")
    with pytest.raises(SourceError, match=r"unknown priority 'medium'"):
        record("priority: medium\n")
    # Backlog.md's own defaults when there is no config.
    defaults = backlog.BacklogConfig()
    assert defaults.intent("done", "x") is Intent.DONE and defaults.intent("to do", "x") is Intent.OPEN


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id: task-1\ntitle: t\n", "f.md:1: no front matter"),
        ("---\nid: task-1\ntitle: [unclosed\n---\n", "f.md:4: YAML"),
        ("---\nid: task-1\ntitle: t\n", "the front matter has no closing --- line"),
        ("---\ntitle: t\n---\n", "a task id must be text like task-12, not None"),
        ("---\nid: task one\ntitle: t\n---\n", "not a task id: 'task one'"),
        ("---\nid: task-1\ntitle: [a, b]\n---\n", "f.md (TASK-1): the title must be text, not ['a', 'b']"),
        ("---\nid: task-1\ntitle: t\ndependencies: task-2\n---\n", "dependencies must be a list, not 'task-2'"),
        ("---\nid: task-1\ntitle: t\nlabels: [{a: 1}]\n---\n", "a label must be text"),
        ("---\nid: task-1\ntitle: t\nstatus: [x]\n---\n", "status must be text"),
        ("---\nid: task-1\ntitle: t\nstatus: Doing\n---\n", "unknown status 'Doing' (the project's statuses: To Do, In Progress, Done)"),
    ],
)
def test_bad_backlog_files_are_refused_with_the_file(text: str, message: str) -> None:
    with pytest.raises(SourceError) as caught:
        backlog.parse_task(text, "f.md", backlog.BacklogConfig())
    assert message in str(caught.value)
    assert str(caught.value).startswith("f.md")


def test_a_renamed_prefix_still_names_the_task() -> None:
    config = backlog.BacklogConfig(prefix="back")
    first = backlog.parse_task("---\nid: back-1\ntitle: a\n---\n", "a.md", config)
    second = backlog.parse_task("---\nid: back-2\ntitle: b\ndependencies: [task-1, task-9]\n---\n", "b.md", config)
    backlog.follow_renamed_prefix([first, second], "back")
    assert second.after == ("BACK-1", "TASK-9")  # TASK-9 is nobody: the log says so later
    assert backlog.archived_id("task-07.2 - Old-thing.md") == "TASK-7.2"


# --- Task Master -------------------------------------------------------------------------


def tm_task(number: int, **fields) -> dict:
    task = {
        "id": number, "title": f"Task {number}", "description": f"Do {number}.", "status": "pending",
        "dependencies": [], "priority": "medium", "details": "", "testStrategy": "", "subtasks": [],
        # Read and not kept.
        "complexity": 7, "recommendedSubtasks": 3, "expansionPrompt": "split it", "updatedAt": "2026-01-01T00:00:00Z",
    }
    task.update(fields)
    return task


TM_TAGGED = {
    "master": {
        "tasks": [
            tm_task(1, status="done", priority="high", details="Use SQLite.", testStrategy="Run the tests."),
            tm_task(2, dependencies=[1], subtasks=[
                {"id": 1, "title": "Schema", "description": "Tables.", "status": "done", "dependencies": [],
                 "details": "", "parentTaskId": 2},
                {"id": 2, "title": "API", "description": "Routes.", "status": "in-progress", "dependencies": [1, "1"],
                 "acceptanceCriteria": "- answers", "testStrategy": "curl it"},
            ]),
            tm_task(3, status="deferred", priority="low", dependencies=["2.2"]),
        ],
        "metadata": {"created": "2026-01-01T00:00:00Z", "description": "Main tag"},
    },
    "feature-x": {"tasks": [tm_task(1, status="cancelled", priority="critical")], "metadata": {}},
}


def test_task_master_tasks_and_subtasks_become_records() -> None:
    records = taskmaster.parse_taskmaster(json.dumps(TM_TAGGED), "tasks.json")
    assert [r.source_id for r in records] == ["1", "2", "2.1", "2.2", "3"]
    first, parent, schema, api, deferred = records
    assert first.body == "Do 1.\n\n## Details\n\nUse SQLite.\n\n## Test strategy\n\nRun the tests."
    assert (first.intent, first.priority) == (Intent.DONE, 1)
    # The parent waits for its parts; each part for what the parent waits for.
    assert parent.after == ("1", "2.1", "2.2")
    assert schema.after == ("1",)
    # A number is a sibling subtask, text a task id (as Task Master reads them).
    assert api.after == ("2.1", "1")
    assert api.body == "Part of task 2: Task 2\n\nRoutes.\n\n## Test strategy\n\ncurl it\n\n## Acceptance criteria\n\n- answers"
    assert api.priority == 0 and api.intent is Intent.OPEN
    assert (deferred.after, deferred.intent, deferred.priority) == (("2.2",), Intent.HELD, -1)
    assert api.where == "tasks.json (task 2.2, subtasks[1] of tasks[1])"
    other = taskmaster.parse_taskmaster(json.dumps(TM_TAGGED), "tasks.json", "feature-x")
    assert [(r.source_id, r.intent, r.priority) for r in other] == [("feature-x:1", Intent.CANCELLED, 2)]
    # The older file: the tasks at the top, read as master's.
    legacy = taskmaster.parse_taskmaster(json.dumps({"tasks": TM_TAGGED["master"]["tasks"]}), "tasks.json")
    assert [r.source_id for r in legacy] == ["1", "2", "2.1", "2.2", "3"]
    # A file with one tag only: that one.
    only = taskmaster.parse_taskmaster(json.dumps({"feature-x": TM_TAGGED["feature-x"]}), "tasks.json")
    assert [r.source_id for r in only] == ["feature-x:1"]


@pytest.mark.parametrize(
    ("data", "tag", "message"),
    [
        ("[1, 2]", None, "tasks.json: the file must hold a JSON object"),
        ('{"master": {"tasks": [1]}}', None, "tasks.json (tasks[0]): a task must be a JSON object, not 1"),
        ('{"a": {"tasks": []}, "b": {"tasks": []}}', None, "no master tag and several others: name one with --tag (a, b)"),
        ('{"master": {"tasks": []}}', "nope", "no tag 'nope' with tasks (tags: master)"),
        ('{"tasks": [{"id": "x", "title": "t"}]}', None, "a task's id must be a whole number, not 'x'"),
        ('{"tasks": [{"id": 1, "title": "t", "dependencies": [1.5]}]}', None, "(task 1, tasks[0]): a dependency must be a task id"),
        ('{"tasks": [{"id": 1, "title": "t", "status": "paused"}]}', None, "unknown status 'paused' (Task Master statuses: pending"),
        ('{"tasks": [{"id": 1, "title": "t", "priority": 3}]}', None, "unknown priority 3"),
        ('{"tasks": [{"id": 1, "title": "t", "subtasks": {"id": 1}}]}', None, "subtasks must be a list"),
        ('{"tasks": [{"id": 1, "title": "t", "subtasks": [{"id": 1}]}]}', None, "(task 1.1, subtasks[0] of tasks[0]): the title must be text"),
        ('{"tasks": [\n  {"id": 1,,}\n]}', None, "tasks.json:2: not JSON"),
    ],
)
def test_bad_task_master_files_are_refused_with_the_record(data: str, tag: str | None, message: str) -> None:
    with pytest.raises(SourceError) as caught:
        taskmaster.parse_taskmaster(data, "tasks.json", tag)
    assert message in str(caught.value)


def test_task_master_duplicate_ids_are_told_apart_by_their_place() -> None:
    data = {"tasks": [tm_task(1, subtasks=[{"id": 1, "title": "a"}, {"id": 1, "title": "b"}])]}
    batch = SourceBatch(Kind.TASKMASTER, taskmaster.parse_taskmaster(json.dumps(data), "tasks.json"))
    with pytest.raises(SourceError) as caught:
        check_batch(batch)
    assert str(caught.value) == (
        "tasks.json (task 1.1, subtasks[1] of tasks[0]): the id 1.1 is given twice "
        "(first at tasks.json (task 1.1, subtasks[0] of tasks[0]))"
    )


# --- the checklist export ------------------------------------------------------------------


def test_a_task_written_as_a_checklist_item_reads_back() -> None:
    task = Task(
        id="T-4", title="Ship {it}", state=State.DONE, priority=-2, profile="claude", labels=("a", "b/c"),
        body="- [ ] not an item\n- [link](http://x)\n\n  indented\n1. [x] numbered", depends_on=("T-1", "T-2"),
    )
    text = markdown_item(task, cancelled={"T-2"})
    assert text.splitlines()[0] == "- [x] Ship {it} {#task-4 after=task-1 priority=-2 profile=claude labels=a,b/c}"
    first = Task(id="T-1", title="First", state=State.QUEUED)
    items = parse_plan(markdown_item(first, set()) + text)
    assert [(i.title, i.label, i.done) for i in items] == [("First", "task-1", False), ("Ship {it}", "task-4", True)]
    read = items[1]
    assert (read.after, read.priority, read.profile, read.labels) == (["task-1"], -2, "claude", ("a", "b/c"))
    # A body line that would be an item of its own is escaped; a link is not.
    assert read.body == "- \\[ ] not an item\n- [link](http://x)\n\n  indented\n1. \\[x] numbered"
    assert markdown_item(Task(id="T-9", title="x", state=State.CANCELLED), set()) == ""


# --- the README's tables are these ---------------------------------------------------------


def readme_table(after: str) -> list[list[str]]:
    """The rows of the first table after the line starting with ``after``."""
    from pathlib import Path

    lines = (Path(__file__).resolve().parent.parent / "README.md").read_text().splitlines()
    start = next(number for number, line in enumerate(lines) if line.startswith(after))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]  # past the heading and the rule


def words(cell: str) -> list[str]:
    import re

    return re.findall(r"`([^`]+)`", cell)


def test_the_readme_says_how_states_map_as_the_code_does() -> None:
    out = readme_table("**Ours → theirs**")
    assert [words(row[0])[0] for row in out] == [state.value for state in State]
    for row in out:
        state = State(words(row[0])[0])
        assert words(row[1]) == [beads.STATUSES_OUT[state]]
        assert words(row[2]) == [backlog.STATUSES_OUT[state]]
        assert words(row[3]) == [taskmaster.STATUSES_OUT[state]]
    into = readme_table("**Statuses, theirs → ours**")
    meaning = {"start": Intent.OPEN, "`held`": Intent.HELD, "`done`": Intent.DONE, "`cancelled`": Intent.CANCELLED}
    told_beads, told_taskmaster = {}, {}
    for row in into:
        intent = meaning[row[3]]
        told_beads.update(dict.fromkeys(words(row[0]), intent))
        told_taskmaster.update(dict.fromkeys(words(row[2]), intent))
    assert told_beads == beads.STATUSES_IN
    assert told_taskmaster == taskmaster.STATUSES_IN


def test_line_ends_from_elsewhere_are_read() -> None:
    # A raw line separator inside a JSON string is text, not a line end.
    text = '{"id": "bd-1", "title": "a\u2028b", "description": "x\u2028y"}\r\n{"id": "bd-2", "title": "c"}\r\n'
    records = beads.parse_beads(text, "i.jsonl")
    assert [(r.source_id, r.title, r.body) for r in records] == [("bd-1", "a b", "x\u2028y"), ("bd-2", "c", "")]
    windows = BACKLOG_TASK.replace("\n", "\r\n")
    assert backlog.parse_task(windows, "f.md", backlog.BacklogConfig()).source_id == "TASK-12"
