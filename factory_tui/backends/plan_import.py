"""Importing a markdown checklist into the log: ``plan_file`` reads it, this
module writes it.

Everything is checked before the log's write lock is taken (the file's
syntax, labels and loops, then the task ids it names against the log); the
write is then one short transaction of bulk inserts, all or nothing. A
100,000-item chain takes seconds, and other writers wait for about one.

Importing is idempotent: an item is known by the file it came from (its
name, the tasks' ``source``) and its title, so importing a file again
creates only the items that are new and names those it skipped. A title
that appears twice in a file stands for two tasks: the n-th item of a title
is the n-th task of that title from the file. An item that depends on a
skipped one depends on the task that item made before."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from factory_tui.backends.log import ExecutionLog, NewTask
from factory_tui.errors import PlanSyntaxError, UnknownTask
from factory_tui.model import State, Task
from factory_tui.plan_file import parse_plan


@dataclass(frozen=True, slots=True)
class Skipped:
    """A checklist item imported before: its line in the file, its title,
    and the task it made then."""

    line: int
    title: str
    task_id: str

    def to_json(self) -> dict:
        return {"line": self.line, "title": self.title, "task": self.task_id}


@dataclass(frozen=True, slots=True)
class Imported:
    """What an import did: the tasks it created, in file order, and the
    items it skipped because an earlier import of the file made them."""

    tasks: list[Task]
    skipped: list[Skipped]

    def to_json(self) -> dict:
        return {
            "imported": [task.to_json() for task in self.tasks],
            "skipped": [item.to_json() for item in self.skipped],
        }


def import_plan(
    log: ExecutionLog,
    text: str,
    *,
    source: str,
    actor: str,
    state: State = State.PROPOSED,
    proposer: str | None = None,
) -> Imported:
    """Create a task per checklist item not imported before, in file order.
    Unticked items start in ``state``; ticked ones are done. Nothing is
    written if any line is wrong. ``proposer`` (an agent, ``agent:T-3``):
    every item is only proposed, ticked or not, with the agent as its
    source (and its earlier imports are what an item is matched against)."""
    items = parse_plan(text, source)
    if not items:
        raise PlanSyntaxError(source, 1, "no checklist items (lines like `- [ ] title`) found")
    task_source = proposer or f"import:{source}"
    earlier: dict[str, deque[str]] = {}
    for task_id, title in log.titles_from(task_source):
        earlier.setdefault(title, deque()).append(task_id)
    fresh, skipped = [], []
    made_before: dict[str, str] = {}  # a skipped item's label → its task
    for item in items:
        queue = earlier.get(item.title.strip())
        if queue:
            task_id = queue.popleft()
            skipped.append(Skipped(item.line, item.title.strip(), task_id))
            if item.label:
                made_before[item.label] = task_id
        else:
            fresh.append(item)
    if not fresh:
        return Imported([], skipped)
    new = [
        NewTask(
            title=item.title,
            body=item.body,
            priority=item.priority,
            state=State.PROPOSED if proposer else state,
            after=tuple(made_before.get(ref, ref) for ref in item.after),
            profile=item.profile,
            source=task_source,
            labels=item.labels,
        )
        for item in fresh
    ]
    try:
        batch = log.check_tasks(
            new,
            handles=[item.label for item in fresh],
            done=[item.done and not proposer for item in fresh],
        )
    except UnknownTask as error:
        line = next(
            (item.line for item in fresh if error.task_id in item.after), fresh[0].line
        )
        raise PlanSyntaxError(source, line, f"after={error.task_id}: no such task in the log") from None
    return Imported(log.add_checked(batch, actor=actor), skipped)
