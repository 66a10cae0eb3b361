"""Reading a markdown checklist as a plan, and importing it into a real log."""

from __future__ import annotations

import sqlite3

import pytest

from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.plan_import import import_plan
from factory_tui.errors import PlanSyntaxError
from factory_tui.model import NewTask, State
from factory_tui.plan_file import parse_plan

DOCUMENTED = """\
# The plan

Some prose that is passed over.

- [ ] Set up the schema {#schema priority=2}
  Indented lines under an item are its body (markdown).
- [ ] Write the API {#api after=schema}
- [x] Pick a licence
- [ ] Ship it {after=api,T-4 profile=claude}
"""


def test_the_documented_example() -> None:
    items = parse_plan(DOCUMENTED, "plan.md")
    assert [item.line for item in items] == [5, 7, 8, 9]
    assert [item.title for item in items] == [
        "Set up the schema", "Write the API", "Pick a licence", "Ship it"]
    assert [item.done for item in items] == [False, False, True, False]
    assert [item.label for item in items] == ["schema", "api", None, None]
    assert [item.after for item in items] == [[], ["schema"], [], ["api", "T-4"]]
    assert [item.priority for item in items] == [2, 0, 0, 0]
    assert [item.profile for item in items] == [None, None, None, "claude"]
    assert items[0].body == "Indented lines under an item are its body (markdown)."
    assert [item.body for item in items[1:]] == ["", "", ""]


def test_bodies_come_from_indented_lines_dedented() -> None:
    text = (
        "- [ ] First\n"
        "    Line one of the body.\n"
        "\n"
        "        an indented code block\n"
        "    - a plain bullet in the body\n"
        "\n"
        "\n"
        "Back at the margin: prose, not body.\n"
        "  indented prose after prose is passed over\n"
        "- [ ] Second\n"
        "  body of second\n"
    )
    first, second = parse_plan(text)
    assert first.body == (
        "Line one of the body.\n\n    an indented code block\n- a plain bullet in the body")
    assert second.body == "body of second"


def test_bullets_and_boxes() -> None:
    text = (
        "- [ ] dash\n"
        "* [x] star, done\n"
        "+ [X] plus, done\n"
        "1. [ ] numbered\n"
        "12) [ ] numbered with a paren\n"
        "  - [ ] nested item\n"
        "- plain bullet\n"
        "## - [ ] a heading, not an item\n"
        "-[ ] no space after the dash: prose\n"
    )
    items = parse_plan(text)
    assert [(i.title, i.done) for i in items] == [
        ("dash", False), ("star, done", True), ("plus, done", True),
        ("numbered", False), ("numbered with a paren", False), ("nested item", False)]


def test_a_bullet_that_starts_with_a_link_is_a_plain_bullet() -> None:
    text = (
        "- [The spec](https://example.com/spec) says what to build\n"
        "- [ref link][1] too\n"
        "- [ ] Build it\n"
    )
    [item] = parse_plan(text)
    assert (item.line, item.title) == (3, "Build it")


def test_attributes() -> None:
    text = (
        "- [ ] a {#a}\n"
        "- [ ] b {#b.2_x-y after=a priority=-3 profile=codex}\n"
        "- [ ] c {after=#a,b.2_x-y,t12 priority=+7}\n"
        "- [ ] d {after=a after=#b.2_x-y}\n"
        "- [ ] e { }\n"
        "- [ ] title with {braces} inside {priority=1}\n"
    )
    a, b, c, d, e, f = parse_plan(text)
    assert (b.label, b.after, b.priority, b.profile) == ("b.2_x-y", ["a"], -3, "codex")
    # '#label' and bare labels both work; task ids are normalised.
    assert (c.after, c.priority) == (["a", "b.2_x-y", "T-12"], 7)
    assert d.after == ["a", "b.2_x-y"]
    assert (e.title, e.label, e.after) == ("e", None, [])
    assert (f.title, f.priority) == ("title with {braces} inside", 1)


def test_forward_references_and_existing_task_ids() -> None:
    text = "- [ ] first {after=second,T-3}\n- [ ] second {#second}\n"
    first, second = parse_plan(text)
    assert first.after == ["second", "T-3"]
    assert second.after == []


MALFORMED = [
    # (text, line, words the problem names)
    ("- [y] title", 1, "unknown box [y]"),
    ("- [] title", 1, "unknown box []"),
    ("- [xx] title", 1, "unknown box [xx]"),
    ("intro\n\n- [ ]", 3, "no title"),
    ("- [ ]    {#a}", 1, "no title"),
    ("- [ ]title", 1, "space between the box and the title"),
    ("- [ x", 1, "needs a box"),
    ("- [ ] ok\n- [ ] title {#a after=b", 2, "not closed"),
    ("- [ ] title {colour=red}", 1, "unknown attribute 'colour'"),
    ("- [ ] title {after}", 1, "bad attribute 'after'"),
    ("- [ ] title {priority=}", 1, "bad attribute"),
    ("- [ ] title {priority=high}", 1, "priority must be a whole number"),
    ("- [ ] title {priority=1.5}", 1, "priority must be a whole number"),
    ("- [ ] title {priority=100}", 1, "out of range"),
    ("- [ ] title {#T-3}", 1, "bad label"),
    ("- [ ] title {#3rd}", 1, "bad label"),
    ("- [ ] a {#x}\n- [ ] b\n- [ ] c {#x}", 3, "label #x is already used on line 1"),
    ("- [ ] a\n- [ ] b {after=nowhere}", 2, "no item in this file is labelled #nowhere"),
    ("- [ ] a {#a after=a}", 1, "cannot depend on itself"),
    ("# plan\n- [ ] a {#a after=c}\n- [ ] b {#b after=a}\n- [ ] c {#c after=b}", 2,
     "dependency cycle: #a → #c → #b → #a"),
]


@pytest.mark.parametrize(("text", "line", "problem"), MALFORMED, ids=[m[2] for m in MALFORMED])
def test_every_malformed_line_is_named(text: str, line: int, problem: str) -> None:
    with pytest.raises(PlanSyntaxError) as caught:
        parse_plan(text, "plan.md")
    error = caught.value
    assert (error.source, error.line) == ("plan.md", line)
    assert problem in error.problem
    assert str(error) == f"plan.md:{line}: {error.problem}"
    assert "\n" not in str(error)


def test_text_without_items_parses_to_nothing() -> None:
    assert parse_plan("# Just a heading\n\n- a plain bullet\n") == []
    assert parse_plan("") == []


# --- import --------------------------------------------------------------------


def _everything(log: ExecutionLog) -> tuple[list, list]:
    conn = sqlite3.connect(log.path)
    try:
        return (
            conn.execute("SELECT * FROM tasks ORDER BY seq").fetchall(),
            conn.execute("SELECT * FROM events ORDER BY id").fetchall(),
        )
    finally:
        conn.close()


def test_import_the_documented_example(log: ExecutionLog) -> None:
    log.add_tasks([NewTask(title=f"existing {n}") for n in range(4)], actor="seed")  # T-1..T-4
    tasks = import_plan(log, DOCUMENTED, source="plan.md", actor="alice").tasks
    assert [t.id for t in tasks] == ["T-5", "T-6", "T-7", "T-8"]
    schema, api, licence, ship = tasks
    assert (schema.title, schema.state, schema.priority) == ("Set up the schema", State.PROPOSED, 2)
    assert schema.body == "Indented lines under an item are its body (markdown)."
    assert (api.state, api.depends_on) == (State.PROPOSED, ("T-5",))
    assert licence.state is State.DONE
    assert (ship.depends_on, ship.profile) == (("T-6", "T-4"), "claude")
    assert all(t.source == "import:plan.md" for t in tasks)
    created = [e for e in log.events(kinds=["created"]) if e.task_id in {t.id for t in tasks}]
    assert [(e.actor, e.to_state) for e in created] == [
        ("alice", "proposed"), ("alice", "proposed"), ("alice", "done"), ("alice", "proposed")]


def test_import_in_another_state_with_forward_references(log: ExecutionLog) -> None:
    text = "- [ ] Deploy {after=build}\n- [ ] Build {#build after=t1}\n"
    log.add_task(NewTask(title="existing"), actor="seed")
    deploy, build = import_plan(log, text, source="p.md", actor="a", state=State.QUEUED).tasks
    assert (deploy.id, deploy.state, deploy.depends_on) == ("T-2", State.QUEUED, ("T-3",))
    assert (build.id, build.depends_on) == ("T-3", ("T-1",))
    # The queue honours the imported dependencies.
    claim = log.claim_next("w")
    assert claim is not None and claim.task.id == "T-1"
    assert log.claim_next("w") is None


@pytest.mark.parametrize(("text", "line", "problem"), MALFORMED, ids=[m[2] for m in MALFORMED])
def test_import_writes_nothing_when_a_line_is_wrong(
    log: ExecutionLog, text: str, line: int, problem: str
) -> None:
    log.add_task(NewTask(title="existing"), actor="seed")
    before = _everything(log)
    with pytest.raises(PlanSyntaxError) as caught:
        import_plan(log, text + "\n- [ ] a fine item {#fine}\n", source="plan.md", actor="a")
    assert caught.value.line == line
    assert problem in caught.value.problem
    assert _everything(log) == before


def test_import_of_an_unknown_task_id_names_its_line(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="existing"), actor="seed")
    before = _everything(log)
    text = "- [ ] one\n- [ ] two {after=T-1}\n\n- [ ] three {after=T-1,T-42}\n"
    with pytest.raises(PlanSyntaxError) as caught:
        import_plan(log, text, source="plan.md", actor="a")
    assert caught.value.line == 4
    assert "T-42" in str(caught.value)
    assert _everything(log) == before


@pytest.mark.parametrize("text", ["", "# A plan\n\nOnly prose.\n- a plain bullet\n"])
def test_import_of_a_file_without_items(log: ExecutionLog, text: str) -> None:
    before = _everything(log)
    with pytest.raises(PlanSyntaxError) as caught:
        import_plan(log, text, source="empty.md", actor="a")
    assert (caught.value.source, caught.value.line) == ("empty.md", 1)
    assert "no checklist items" in str(caught.value)
    assert _everything(log) == before
