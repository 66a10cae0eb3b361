"""Changes to tasks already in the log, in the plan format (``{id=T-4
cancel}``, ``{id=T-4 priority=5}``): read only where asked for, every
other file reads as before."""

from __future__ import annotations

import pytest

from factory_tui.errors import PlanSyntaxError
from factory_tui.plan_file import parse_plan, without_items

REVISION = """\
# Revision

- [ ] A new task {#new after=T-2}
- [ ] Drop the XML export {id=T-4 cancel}
  The spec no longer asks for it.

  Second paragraph of the reason.
- [ ] Sooner {id=t7 priority=5}
- [ ] Another new one {after=new}
"""


def test_changes_are_read_with_their_reasons() -> None:
    items = parse_plan(REVISION, "plan.md", changes=True)
    assert [(item.title, item.task, item.change) for item in items] == [
        ("A new task", None, None),
        ("Drop the XML export", "T-4", "cancel"),
        ("Sooner", "T-7", "priority"),
        ("Another new one", None, None),
    ]
    assert items[1].body == "The spec no longer asks for it.\n\nSecond paragraph of the reason."
    assert (items[2].priority, items[2].body) == (5, "")
    assert items[3].after == ["new"]


def test_a_file_without_changes_reads_as_before() -> None:
    assert parse_plan(REVISION.replace("{id=T-4 cancel}", "").replace("{id=t7 priority=5}", "")) == parse_plan(
        REVISION.replace("{id=T-4 cancel}", "").replace("{id=t7 priority=5}", ""), changes=True)


def test_an_import_refuses_a_change_with_its_line() -> None:
    with pytest.raises(PlanSyntaxError) as refused:
        parse_plan(REVISION, "plan.md")
    assert str(refused.value) == (
        "plan.md:4: id=T-4 proposes a change to a task in the log; only "
        "`factory plan draft --revise` reads such items")


@pytest.mark.parametrize(("line", "problem"), [
    ("- [ ] x {id=T-4}", "a change to T-4 needs one of cancel or priority=N"),
    ("- [ ] x {id=T-4 cancel priority=2}", "a change to T-4 needs one of cancel or priority=N"),
    ("- [x] x {id=T-4 cancel}", "a change to T-4 is written with [ ], not [x]"),
    ("- [ ] x {cancel}", "cancel needs id=T-N, the task to cancel (a new task cannot be cancelled)"),
    ("- [ ] x {id=T-4 cancel #h}", "a change to T-4 (id=) takes only cancel or priority=N, not #label"),
    ("- [ ] x {id=T-4 priority=2 after=T-1 labels=a}",
     "a change to T-4 (id=) takes only cancel or priority=N, not after, labels"),
    ("- [ ] x {id=four cancel}", "id=four: not a task id (task ids look like T-12)"),
    ("- [ ] x {id=T-4 priority=500}", "priority 500 is out of range (-99 to 99)"),
])
def test_a_malformed_change_is_refused_with_its_line(line: str, problem: str) -> None:
    with pytest.raises(PlanSyntaxError) as refused:
        parse_plan(f"# plan\n{line}\n", "plan.md", changes=True)
    assert str(refused.value) == f"plan.md:2: {problem}"


def test_one_change_a_task() -> None:
    text = "- [ ] a {id=T-4 cancel}\n- [ ] b {id=T4 priority=1}\n"
    with pytest.raises(PlanSyntaxError, match="plan.md:2: T-4 is changed on line 1 already"):
        parse_plan(text, "plan.md", changes=True)


def test_without_items_blanks_the_changes_and_keeps_line_numbers() -> None:
    items = parse_plan(REVISION, "plan.md", changes=True)
    rest = without_items(REVISION, [item for item in items if item.is_change])
    assert len(rest.splitlines()) == len(REVISION.splitlines())
    left = parse_plan(rest, "plan.md")
    assert [(item.line, item.title) for item in left] == [(3, "A new task"), (9, "Another new one")]
