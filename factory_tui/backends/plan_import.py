"""Importing a markdown checklist into the log: ``plan_file`` reads it, this
module writes it.

Everything is checked before the log's write lock is taken (the file's
syntax, labels and loops, then the task ids it names against the log); the
write is then one short transaction of bulk inserts, all or nothing. A
100,000-item chain takes seconds, and other writers wait for about one."""

from __future__ import annotations

from factory_tui.backends.log import ExecutionLog, NewTask
from factory_tui.errors import PlanSyntaxError, UnknownTask
from factory_tui.model import State, Task
from factory_tui.plan_file import parse_plan


def import_plan(
    log: ExecutionLog,
    text: str,
    *,
    source: str,
    actor: str,
    state: State = State.PROPOSED,
    proposer: str | None = None,
) -> list[Task]:
    """Create a task per checklist item, in file order. Unticked items start
    in ``state``; ticked ones are done. Nothing is written if any line is
    wrong. ``proposer`` (an agent, ``agent:T-3``): every item is only
    proposed, ticked or not, with the agent as its source."""
    items = parse_plan(text, source)
    if not items:
        raise PlanSyntaxError(source, 1, "no checklist items (lines like `- [ ] title`) found")
    new = [
        NewTask(
            title=item.title,
            body=item.body,
            priority=item.priority,
            state=State.PROPOSED if proposer else state,
            after=tuple(item.after),
            profile=item.profile,
            source=proposer or f"import:{source}",
        )
        for item in items
    ]
    try:
        batch = log.check_tasks(
            new,
            labels=[item.label for item in items],
            done=[item.done and not proposer for item in items],
        )
    except UnknownTask as error:
        line = next(
            (item.line for item in items if error.task_id in item.after), 1
        )
        raise PlanSyntaxError(source, line, f"after={error.task_id}: no such task in the log") from None
    return log.add_checked(batch, actor=actor)
