"""Reading a markdown checklist as a plan (``factory plan import FILE.md``).

The format, in file order::

    - [ ] Set up the schema {#schema priority=2}
      Indented lines under an item are its body (markdown).
    - [ ] Write the API {#api after=schema}
    - [x] Pick a licence
    - [ ] Ship it {after=api,T-4 profile=claude labels=release,docs}

* ``- [ ]`` (or ``*``/``+`` bullets, or ``1.``) starts a task; ``[x]`` makes
  it a done task.
* An optional ``{…}`` at the end of the line holds attributes: ``#name``
  names the item (its handle in this file, for ``after=``; called its label
  in the code and messages, and not a task label), ``after=a,b`` lists what
  it depends on (names of items in the file, before or after it, or ids of
  tasks already in the log), ``priority=N`` (a whole number, higher runs
  first), ``profile=NAME``, ``labels=a,b`` (the task's labels, which QA
  scenarios' ``when: {labels: [...]}`` match; model.LABEL_RULE says what a
  label may hold).
* Every other line (headings, prose, plain bullets) is passed over.

A planner revising a plan (``factory plan draft --revise``) may also write
*changes* to tasks already in the log, an item whose attributes name the
task with ``id=`` and hold one change, its body the reason::

    - [ ] Drop the XML export {id=T-4 cancel}
      The spec no longer asks for it.
    - [ ] Do the login first {id=T-7 priority=5}

A change takes ``[ ]`` and nothing but ``id=``, and ``cancel`` or
``priority=N``. Such items are read only when asked for
(``parse_plan(..., changes=True)``); in any other file ``id=`` is refused
with its line (it was never valid there, so no existing file changes
meaning).

Pure: returns ``PlanItem``s or raises ``PlanSyntaxError`` naming the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from factory_tui.dependency_graph import find_cycle
from factory_tui.errors import FactoryError, PlanSyntaxError, path_text
from factory_tui.model import check_priority, normalize_task_id, split_labels

_ITEM = re.compile(r"^(?P<indent>\s*)(?:[-*+]|\d+[.)])\s+\[(?P<box>[^\]]*)\](?P<rest>.*)$")
_ATTRS = re.compile(r"\{(?P<attrs>[^{}]*)\}\s*$")
_LABEL = re.compile(r"^[A-Za-z][\w.-]*$")
_TASK_ID = re.compile(r"^[Tt]-?\d+$")


@dataclass(slots=True)
class PlanItem:
    line: int
    title: str
    done: bool = False
    label: str | None = None
    after: list[str] = field(default_factory=list)
    priority: int = 0
    profile: str | None = None
    labels: tuple[str, ...] = ()
    body_lines: list[str] = field(default_factory=list)
    # A change to a task already in the log (``id=T-4``): ``cancel``, or a
    # new ``priority`` (``priority_given``).
    task: str | None = None
    cancel: bool = False
    priority_given: bool = False

    @property
    def is_change(self) -> bool:
        return self.task is not None

    @property
    def change(self) -> str | None:
        """``"cancel"`` or ``"priority"`` for a change, else None."""
        if self.task is None:
            return None
        return "cancel" if self.cancel else "priority"

    @property
    def last_line(self) -> int:
        """The item's last line in the file (its body's end)."""
        return self.line + len(self.body_lines)

    @property
    def body(self) -> str:
        lines = list(self.body_lines)
        while lines and not lines[-1].strip():
            lines.pop()
        return _dedent(lines)


def _dedent(lines: list[str]) -> str:
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(indents, default=0)
    return "\n".join(line[cut:] for line in lines)


def parse_plan(text: str, source: str = "plan", *, changes: bool = False) -> list[PlanItem]:
    """The file's items in order; ``changes``: items that change a task
    already in the log (``id=``) are read too, else refused."""
    items: list[PlanItem] = []
    current: PlanItem | None = None
    current_indent = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        match = _ITEM.match(line)
        # A bullet that starts with a markdown link, [text](url) or
        # [text][ref], is a plain bullet: its brackets are not a box.
        is_link = match is not None and match.group("rest")[:1] in ("(", "[")
        if match and not is_link:
            current = _parse_item(match, number, source, changes)
            current_indent = len(match.group("indent"))
            items.append(current)
            continue
        if current is not None:
            indent = len(line) - len(line.lstrip())
            if not line.strip():
                current.body_lines.append("")
                continue
            if indent > current_indent:
                current.body_lines.append(line)
                continue
            current = None
        if not is_link and re.match(r"^\s*(?:[-*+]|\d+[.)])\s+\[", line):
            raise PlanSyntaxError(
                source, number, "a checklist item needs a box like [ ] or [x] and a title"
            )
    _check_references(items, source)
    return items


def _parse_item(match: re.Match, number: int, source: str, changes: bool) -> PlanItem:
    box = match.group("box")
    if box not in (" ", "x", "X"):
        raise PlanSyntaxError(
            source, number, f"unknown box [{box}]: write [ ] for a task or [x] for a done one"
        )
    rest = match.group("rest")
    if rest and not rest[0].isspace():
        raise PlanSyntaxError(source, number, "put a space between the box and the title")
    item = PlanItem(line=number, title="", done=box in "xX")
    attrs = _ATTRS.search(rest)
    if attrs:
        seen = _parse_attrs(item, attrs.group("attrs"), number, source)
        rest = rest[: attrs.start()]
        _check_change(item, seen, number, source, changes)
    elif "{" in rest and "}" not in rest[rest.index("{"):]:
        raise PlanSyntaxError(source, number, "an attribute block opened with { is not closed with }")
    item.title = rest.strip()
    if not item.title:
        raise PlanSyntaxError(source, number, "the item has no title")
    return item


_KNOWN = "write #label, after=…, priority=N, profile=NAME or labels=a,b"


def _parse_attrs(item: PlanItem, text: str, number: int, source: str) -> set[str]:
    """Fill ``item`` from its ``{…}``; returns the attributes written."""
    def fail(problem: str) -> PlanSyntaxError:
        return PlanSyntaxError(source, number, problem)

    seen: set[str] = set()
    for word in text.split():
        if word == "cancel":
            item.cancel = True
            seen.add(word)
            continue
        if word.startswith("#"):
            label = word[1:]
            if not _LABEL.match(label) or _TASK_ID.match(label):
                raise fail(
                    f"bad label {word!r}: a label starts with a letter, is not a task id, "
                    "and holds letters, digits, '.', '_' or '-'"
                )
            item.label = label
            seen.add("#")
            continue
        key, eq, value = word.partition("=")
        if not eq or not value:
            raise fail(f"bad attribute {word!r}: {_KNOWN}")
        seen.add(key)
        if key == "id":
            if not _TASK_ID.match(value):
                raise fail(f"id={value}: not a task id (task ids look like T-12)")
            item.task = normalize_task_id(value)
        elif key == "after":
            item.after.extend(ref for ref in value.split(",") if ref)
        elif key == "priority":
            try:
                item.priority = check_priority(int(value))
            except ValueError:
                raise fail(f"priority must be a whole number, not {value!r}") from None
            except FactoryError as error:
                raise fail(str(error)) from None
            item.priority_given = True
        elif key == "profile":
            item.profile = value
        elif key == "labels":
            try:
                item.labels = tuple(dict.fromkeys((*item.labels, *split_labels(value))))
            except FactoryError as error:
                raise fail(str(error)) from None
        else:
            raise fail(f"unknown attribute {key!r}: {_KNOWN}")
    return seen


def _check_change(item: PlanItem, seen: set[str], number: int, source: str, changes: bool) -> None:
    """An ``id=`` item is a change to a task in the log: only where changes
    are read, with ``[ ]``, and one change (cancel or priority=N) alone."""
    def fail(problem: str) -> PlanSyntaxError:
        return PlanSyntaxError(source, number, problem)

    if item.task is None:
        if item.cancel:
            raise fail("cancel needs id=T-N, the task to cancel (a new task cannot be cancelled)")
        return
    if not changes:
        raise fail(
            f"id={item.task} proposes a change to a task in the log; only "
            "`factory plan draft --revise` reads such items"
        )
    if item.done:
        raise fail(f"a change to {item.task} is written with [ ], not [x]")
    others = sorted(seen - {"id", "cancel", "priority"})
    if others:
        shown = ", ".join("#label" if key == "#" else key for key in others)
        raise fail(f"a change to {item.task} (id=) takes only cancel or priority=N, not {shown}")
    if item.cancel == item.priority_given:
        raise fail(f"a change to {item.task} needs one of cancel or priority=N")


def _check_references(items: list[PlanItem], source: str) -> None:
    changed: dict[str, PlanItem] = {}
    for item in items:
        if item.task is None:
            continue
        if item.task in changed:
            raise PlanSyntaxError(
                source, item.line,
                f"{item.task} is changed on line {changed[item.task].line} already; propose one change a task",
            )
        changed[item.task] = item
    labels: dict[str, PlanItem] = {}
    for item in items:
        if item.label is None:
            continue
        if item.label in labels:
            raise PlanSyntaxError(
                source, item.line,
                f"label #{item.label} is already used on line {labels[item.label].line}",
            )
        labels[item.label] = item
    for item in items:
        resolved = []
        for ref in item.after:
            if ref.startswith("#"):
                ref = ref[1:]
            if ref in labels:
                if labels[ref] is item:
                    raise PlanSyntaxError(source, item.line, f"#{ref} cannot depend on itself")
                resolved.append(ref)
            elif _TASK_ID.match(ref):
                resolved.append(normalize_task_id(ref))
            else:
                raise PlanSyntaxError(
                    source, item.line,
                    f"after={ref}: no item in this file is labelled #{ref}, and it is not a task id",
                )
        item.after = resolved
    _check_cycles(items, labels, source)


def _check_cycles(items: list[PlanItem], labels: dict[str, PlanItem], source: str) -> None:
    """Refuse a loop among the file's own labels (tasks already in the log
    cannot depend on items not yet imported, so no loop can pass through them).
    Linear in the file's size, however long its chains are."""
    loop = find_cycle(
        labels, lambda label: [ref for ref in labels[label].after if ref in labels]
    )
    if loop is not None:
        raise PlanSyntaxError(
            source, labels[loop[0]].line,
            "dependency cycle: " + path_text(["#" + name for name in loop]),
        )


def without_items(text: str, items: list[PlanItem]) -> str:
    """``text`` with the lines of ``items`` (each with its body) left
    blank: the rest of the file reads as before, on the same line numbers."""
    lines = text.splitlines()
    for item in items:
        for number in range(item.line, item.last_line + 1):
            lines[number - 1] = ""
    return "\n".join(lines) + "\n"
