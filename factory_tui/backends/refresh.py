"""Keeping the living documents current: the task that brings them up to
date.

The factory proposes it (state ``proposed``, label ``artifacts``, source
``artifacts:refresh``) after ``[artifacts] refresh_every`` landings since
the last one (0: never by itself), and whenever the operator asks
(``factory artifacts refresh``; the console through
``FactorySession.propose_refresh``). Its body holds
what landed since the last refresh and the documents as they are, within
``REFRESH_BODY_BUDGET``. The operator approves it like any task, and its
change merges like any other; its landing starts the count anew. Only one
is open at a time (``ExecutionLog.add_refresh_task``): asking again names
the one that is.

``refresh_body`` is pure; ``propose_refresh`` reads the log and the
folder and writes the task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from factory_tui.artifacts_model import Landing
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.documents import HISTORY_NAME, LivingDocument, read_documents
from factory_tui.backends.documents_log import REFRESH_SOURCE
from factory_tui.backends.history import render_entry
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.prompt import BODY_BUDGET, cut_to_bytes, fence_for, utf8_len
from factory_tui.config import FactoryConfig
from factory_tui.model import NewTask, State, Task

REFRESH_TITLE = "Bring the living documents up to date"
REFRESH_LABEL = "artifacts"
# The body fits the prompt's cap for a task's description, with room to spare.
REFRESH_BODY_BUDGET = BODY_BUDGET - 4_000
# Of which the history since the last refresh takes at most this much.
REFRESH_HISTORY_BUDGET = 12_000
# Landings read for the body, at most (the newest).
REFRESH_LANDINGS = 200


@dataclass(frozen=True, slots=True)
class Refresh:
    """What asking for a refresh did: the task, and whether it is new
    (False: one was open already)."""

    task: Task
    created: bool

    def to_json(self) -> dict:
        return {"task": self.task.id, "title": self.task.title, "state": self.task.state.value,
                "created": self.created}


def refresh_due(log: ExecutionLog, config: FactoryConfig) -> bool:
    """Whether enough landed since the last refresh to propose one now."""
    every = config.artifacts.refresh_every
    if every <= 0:
        return False
    return log.landing_count(since=log.refresh_count_start()) >= every and log.open_refresh_task() is None


def propose_if_due(base: FactoryBase, log: ExecutionLog, config: FactoryConfig, *, actor: str) -> Task | None:
    """The refresh task, proposed now if it is due (None: not due)."""
    if not refresh_due(log, config):
        return None
    made = propose_refresh(base, log, actor=actor)
    return made.task if made.created else None


def propose_refresh(base: FactoryBase, log: ExecutionLog, *, actor: str) -> Refresh:
    """Propose the refresh task now, unless one is open (then that one)."""
    found = log.open_refresh_task()
    if found is not None:
        return Refresh(found, False)
    since = log.last_refresh()
    landings = log.landings(limit=REFRESH_LANDINGS, since=since)
    total = log.landing_count(since=since)
    documents = [document for document in read_documents(base.artifacts_dir, root=base.root)
                 if document.name != HISTORY_NAME and not document.generated]
    body = refresh_body(landings, total, documents, first=since is None)
    task, created = log.add_refresh_task(
        NewTask(title=REFRESH_TITLE, body=body, state=State.PROPOSED, source=REFRESH_SOURCE,
                labels=(REFRESH_LABEL,)),
        actor=actor,
    )
    return Refresh(task, created)


def refresh_body(landings: Sequence[Landing], total: int, documents: Sequence[LivingDocument], *,
                 first: bool = False, budget: int = REFRESH_BODY_BUDGET) -> str:
    """The refresh task's description: what to do, the landings since the
    last refresh (newest first, ``total`` of them in all) and the
    documents as they are, all within ``budget`` bytes."""
    since = "since the factory began keeping its history" if first else "since they were last brought up to date"
    parts = [
        "The living documents in `.factory/artifacts/` go into every agent's prompt. Bring them up to "
        f"date with what has landed {since}:",
        "",
        "- keep what still holds, correct what no longer does, and add what the recent work taught "
        "(conventions, commands, the start sequence, pitfalls);",
        "- edit the documents in `.factory/artifacts/` of this worktree and commit them; a new "
        "document is a new `.md` file there;",
        f"- leave `{HISTORY_NAME}` alone: the factory writes it from its log;",
        "- keep each document short: a prompt holds a document up to its `budget` (front matter) "
        "and all of them within `[artifacts] prompt_budget`.",
        "",
    ]
    used = sum(utf8_len(part) + 1 for part in parts)
    history = [f"## What landed {since} ({_count(total, 'task')}, newest first)", ""]
    history_used = 0
    shown = 0
    for landing in landings:
        entry = render_entry(landing)
        if history_used + utf8_len(entry) > REFRESH_HISTORY_BUDGET:
            break
        history.append(entry)
        history_used += utf8_len(entry) + 1
        shown += 1
    if not landings:
        history.append("Nothing has landed since.")
    elif shown < total:
        history.append(f"… and {_count(total - shown, 'earlier landing')} (`{HISTORY_NAME}` and the log have them).")
    history.append("")
    parts += history
    used += sum(utf8_len(part) + 1 for part in history)
    parts += ["## The documents as they are now", ""]
    used += 40
    usable = [document for document in documents if document.usable]
    broken = [document for document in documents if not document.usable]
    if not usable:
        parts.append("There are none yet: write the first ones (conventions, start sequence).")
    room = budget - used - 200 * len(broken) - 200
    for index, document in enumerate(usable):
        share = max(0, room // (len(usable) - index))
        text = document.body
        head = f"### {document.name}\n\n"
        fence = fence_for(text)
        shown_text, cut = cut_to_bytes(text, max(0, share - utf8_len(head) - 2 * len(fence) - 120))
        block = f"{head}{fence}markdown\n{shown_text}\n{fence}"
        if cut:
            block += f"\n\n(cut here: {utf8_len(shown_text):,} of {utf8_len(text):,} bytes shown; the file has the rest)"
        parts += [block, ""]
        room -= utf8_len(block) + 2
    for document in broken:
        where = f" (line {document.line})" if document.line else ""
        parts.append(f"- `{document.name}` cannot be used{where}: {document.problem}; fix it so that prompts take it again")
    body = "\n".join(parts).rstrip() + "\n"
    return cut_to_bytes(body, budget)[0]


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}" + ("" if n == 1 else "s")
