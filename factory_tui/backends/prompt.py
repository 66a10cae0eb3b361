"""The prompt an agent gets for one run of a task.

This module owns the prompt's text: the task (heading and body), merge
conflicts to resolve first, how the run before ended when an engine
interrupted it, what the tasks it depends on
produced, the operator's feedback on a re-queue, its mail (the request it
was made from, and the messages to the task since its last run: replies
to what its agent sent), the living documents, and how to work in a
factory worktree. It is pure: the
engine gathers the inputs from the log and the artifacts folder and writes the
result to the run folder; the same inputs always give the same text.

The prompt stays under ``PROMPT_BUDGET`` bytes of UTF-8 (an agent's context is
finite and a prompt file is read whole): each part has its own cap, and the
living documents share what is left; whatever is cut says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from factory_tui.model import Task

# Bytes of UTF-8; about 25k tokens, a modest share of any agent's context.
PROMPT_BUDGET = 100_000
# Caps for the parts that come before the documents, so that no single part
# can crowd the documents out entirely.
TITLE_BUDGET = 300
BODY_BUDGET = 40_000
FEEDBACK_BUDGET = 10_000
SUMMARY_BUDGET = 2_000
DEPENDENCIES_BUDGET = 20_000
DOCUMENT_NAME_BUDGET = 200
# Mail: each message's body, and the section as a whole; at most this many
# messages (the newest).
MAIL_BODY_BUDGET = 2_000
MAIL_BUDGET = 12_000
MAX_MAIL_SHOWN = 20
# Documents that would each get less room than this are left out (and
# named), last first: a few lines out of a long document mislead more than
# they help.
MIN_DOCUMENT_SHOWN = 1_000
# Documents left out are named, up to this many; room for that is set aside.
MAX_LEFT_OUT_NAMED = 20
LEFT_OUT_RESERVE = MAX_LEFT_OUT_NAMED * (DOCUMENT_NAME_BUDGET + 4) + 200
# Headroom for the markers and list lines whose size is only known late.
SAFETY_MARGIN = 2_000


@dataclass(frozen=True, slots=True)
class Conflicts:
    """Conflicts the agent must resolve before anything else: the files
    holding git's markers after the base branch was merged into the task's
    branch. ``in_progress``: the merge waits to be concluded (``git
    commit``); else it was concluded with the markers still in the files."""

    files: tuple[str, ...]
    base_branch: str
    in_progress: bool = True


@dataclass(frozen=True, slots=True)
class MailNote:
    """A message for the prompt: its id (to answer it), who sent it, its
    kind and (a reply to a request) state, subject and body; all of it
    text from outside, shown literally."""

    key: str
    sender: str
    subject: str
    body: str
    kind: str = "note"
    state: str | None = None


@dataclass(frozen=True, slots=True)
class TaskMail:
    """The task's mail: ``address`` is the task's own (``<factory>/T-3``,
    where replies to its agent's mail come); ``request``, the request it
    was made from; ``messages``, those to the task since its last run
    started, oldest first."""

    address: str
    request: MailNote | None = None
    messages: tuple[MailNote, ...] = ()


@dataclass(frozen=True, slots=True)
class PromptDocument:
    """A living document for the prompt: its name, the text to show,
    ``budget``, the most bytes of it the prompt may hold (None: no cap of
    its own), and its version (``blob``, carried through to what the
    prompt says it shows)."""

    name: str
    text: str
    budget: int | None = None
    blob: str = ""


@dataclass(frozen=True, slots=True)
class DocumentShown:
    """A document that went into a prompt: ``shown`` bytes of its ``size``,
    ``whole`` when nothing was cut."""

    name: str
    shown: int
    size: int
    whole: bool
    blob: str = ""


@dataclass(frozen=True, slots=True)
class Prompt:
    """The prompt's text, the documents it holds (in order) and those it
    left out for room."""

    text: str
    documents: tuple[DocumentShown, ...] = ()
    left_out: tuple[str, ...] = ()


# Conflicted files named in a prompt, at most (the rest are counted).
MAX_CONFLICTS_NAMED = 50


@dataclass(frozen=True, slots=True)
class DependencyOutcome:
    """A task this one depends on, and what it reported when it finished
    (e.g. its last 'finished' note), if anything."""

    task: Task
    summary: str | None = None


def assemble_prompt(
    task: Task,
    *,
    attempt: int,
    branch: str,
    dependencies: list[DependencyOutcome],
    feedback: str | None,
    documents: Sequence[tuple[str, str] | PromptDocument],
    interrupted: str | None = None,
    conflicts: Conflicts | None = None,
    mail: TaskMail | None = None,
    documents_budget: int | None = None,
) -> str:
    """The text of ``build_prompt``."""
    return build_prompt(
        task, attempt=attempt, branch=branch, dependencies=dependencies, feedback=feedback,
        documents=documents, interrupted=interrupted, conflicts=conflicts, mail=mail,
        documents_budget=documents_budget,
    ).text


def build_prompt(
    task: Task,
    *,
    attempt: int,
    branch: str,
    dependencies: list[DependencyOutcome],
    feedback: str | None,
    documents: Sequence[tuple[str, str] | PromptDocument],
    interrupted: str | None = None,
    conflicts: Conflicts | None = None,
    mail: TaskMail | None = None,
    documents_budget: int | None = None,
) -> Prompt:
    """The markdown prompt for ``attempt`` (1 for the first run) of ``task``,
    worked on in a worktree on ``branch``, and which documents it holds.
    ``documents`` are the living documents as (name, content) or
    ``PromptDocument`` (with a budget of its own), in the order of their
    importance (``document_choice.py``); together they get at most
    ``documents_budget`` bytes (``[artifacts] prompt_budget``) of what the
    rest of the prompt leaves.
    ``interrupted``: how the run before this one ended when it was not the
    agent's doing: ``"stopped"`` (its engine was stopped; the attempt was
    given back, so this run is the same attempt again) or ``"expired"``
    (its engine died). ``conflicts``: the merge conflicts to resolve first
    (they come right after the task, before everything else). ``mail``:
    the request the task came from and the messages to it."""
    sections = [
        _heading(task),
        _conflicts(conflicts, branch),
        _body(task),
        _interrupted(interrupted),
        _dependencies(dependencies),
        _feedback(feedback, attempt),
        _mail(mail),
        None,  # the documents: sized last, from what the rest leaves
        _how_to_work(task, attempt=attempt, branch=branch, interrupted=interrupted is not None),
    ]
    used = sum(utf8_len(part) + 2 for part in sections if part)
    room = PROMPT_BUDGET - used - SAFETY_MARGIN
    if documents_budget is not None:
        room = min(room, documents_budget)
    given = [item if isinstance(item, PromptDocument) else PromptDocument(*item) for item in documents]
    sections[7], shown, left_out = _documents(given, room)
    return Prompt("\n\n".join(part for part in sections if part) + "\n", tuple(shown), tuple(left_out))


def heading_line(task_id: str, title: str) -> str:
    """The prompt's first line. The demo agent reads the task's id and title
    back from it, so its shape is kept simple: ``# <id>: <title>``."""
    return f"# {task_id}: {_one_line(cut_to_bytes(title, TITLE_BUDGET)[0])}"


# --- sections -------------------------------------------------------------------


def _heading(task: Task) -> str:
    return heading_line(task.id, task.title)


def _body(task: Task) -> str:
    body = task.body.strip()
    if not body:
        return "(The task has no description beyond its title.)"
    shown, was_cut = cut_to_bytes(body, BODY_BUDGET)
    if was_cut:
        shown += "\n\n" + _cut_note("the task's description", shown, body)
    return shown


def _conflicts(conflicts: Conflicts | None, branch: str) -> str | None:
    if conflicts is None or not conflicts.files:
        return None
    base = _one_line(cut_to_bytes(conflicts.base_branch, TITLE_BUDGET)[0])
    names = [f"- `{_one_line(cut_to_bytes(name, DOCUMENT_NAME_BUDGET)[0])}`"
             for name in conflicts.files[:MAX_CONFLICTS_NAMED]]
    if len(conflicts.files) > MAX_CONFLICTS_NAMED:
        names.append(f"- … and {len(conflicts.files) - MAX_CONFLICTS_NAMED} more (`git status` lists them all)")
    listed = "\n".join(names)
    if conflicts.in_progress:
        return (
            "## Merge conflicts to resolve first\n\n"
            f"`{base}` has moved on since this branch was made, and its changes conflict "
            f"with the work on `{branch}`. `{base}` has been merged into this branch for "
            "you, and the merge is waiting for you to finish it: these files hold git's "
            "conflict markers (`<<<<<<<`, `=======`, `>>>>>>>`):\n\n"
            f"{listed}\n\n"
            "Resolve each conflict so that the intent of both sides survives, remove every "
            "marker, `git add` the files and `git commit` to conclude the merge "
            "(`git status` shows what is left). Do this before anything else: the work "
            f"cannot be approved until the branch merges cleanly into `{base}`."
        )
    return (
        "## Merge conflicts to resolve first\n\n"
        f"An earlier run merged `{base}` into this branch and the merge was concluded "
        "with git's conflict markers (`<<<<<<<`, `=======`, `>>>>>>>`) still in these "
        "files:\n\n"
        f"{listed}\n\n"
        "Resolve each conflict so that the intent of both sides survives, remove every "
        "marker and commit, before anything else: the work cannot be approved while "
        "they are there."
    )


def _interrupted(how: str | None) -> str | None:
    if how is None:
        return None
    why = {
        "stopped": "the engine running it was stopped",
        "expired": "the engine running it ended without finishing it",
    }.get(how, "it was cut short")
    return (
        "## The previous run was interrupted\n\n"
        f"The run before this one did not finish: {why}, not because of anything "
        "in the work. What it did is committed on this branch: read `git log` and "
        "`git show` to see how far it got, and carry on from there."
    )


def _dependencies(dependencies: list[DependencyOutcome]) -> str | None:
    if not dependencies:
        return None
    lines = [
        "## What earlier tasks produced",
        "",
        "This task builds on these tasks. What each one reported when it finished:",
        "",
    ]
    size = sum(utf8_len(line) + 1 for line in lines)
    for index, outcome in enumerate(dependencies):
        entry = _dependency_entry(outcome)
        if size + utf8_len(entry) > DEPENDENCIES_BUDGET:
            rest = [o.task.id for o in dependencies[index:]]
            named = ", ".join(rest[:MAX_LEFT_OUT_NAMED]) + (", …" if len(rest) > MAX_LEFT_OUT_NAMED else "")
            lines.append(f"- … and {len(rest)} more, left out to keep this prompt short: {named}")
            break
        lines.append(entry)
        size += utf8_len(entry) + 1
    return "\n".join(lines)


def _dependency_entry(outcome: DependencyOutcome) -> str:
    task = outcome.task
    title = _one_line(cut_to_bytes(task.title, TITLE_BUDGET)[0])
    head = f"- **{task.id}: {title}** ({task.state.value})"
    summary = (outcome.summary or "").strip()
    if not summary:
        return head + "\n  No summary was recorded."
    shown, was_cut = cut_to_bytes(summary, SUMMARY_BUDGET)
    if was_cut:
        shown += " " + _cut_note("the summary", shown, summary)
    # Indented under its list item, so markdown keeps it with its task.
    return head + "\n" + "\n".join(f"  {line}" if line else "" for line in shown.splitlines())


def _feedback(feedback: str | None, attempt: int) -> str | None:
    text = (feedback or "").strip()
    if not text:
        return None
    earlier = f"attempt {attempt - 1}" if attempt > 1 else "an earlier attempt"
    shown, was_cut = cut_to_bytes(text, FEEDBACK_BUDGET)
    if was_cut:
        shown += "\n\n" + _cut_note("the feedback", shown, text)
    return (
        "## Feedback from the operator\n\n"
        f"This is attempt {attempt}. The operator sent the task back after "
        f"{earlier} with this feedback; address it first:\n\n{shown}"
    )


def _mail(mail: TaskMail | None) -> str | None:
    if mail is None or (mail.request is None and not mail.messages):
        return None
    lines = ["## Mail", ""]
    if mail.request is not None:
        asked = mail.request
        lines += [
            f"This task is the request {_code(asked.key)} from {_code(asked.sender)}: "
            f"{_code(_short(asked.subject))}. When it ends, the outcome goes back to them by itself; "
            f"to ask them something meanwhile: `factory mail reply {asked.key} --body-file -`.",
            "",
        ]
    if mail.messages:
        shown = list(mail.messages[-MAX_MAIL_SHOWN:])
        left = len(mail.messages) - len(shown)
        lines += [f"Messages to this task ({_code(mail.address)}) since its last run started, oldest first"
                  + (f" ({left} older ones left out)" if left else "") + ":", ""]
        size = sum(utf8_len(line) + 1 for line in lines)
        for index, message in enumerate(shown):
            entry = _mail_entry(message)
            if size + utf8_len(entry) > MAIL_BUDGET:
                lines.append(f"- … and {len(shown) - index} more: `factory mail list --unread` lists them")
                break
            lines += [entry, ""]
            size += utf8_len(entry) + 1
        lines.append(f"Answer one with `factory mail reply ID --body-file -` (it goes from {_code(mail.address)}); "
                     "`factory mail show ID` shows one whole.")
    return "\n".join(lines).rstrip()


def _mail_entry(message: MailNote) -> str:
    kind = message.kind + (f", {message.state}" if message.state else "")
    head = (f"### From {_code(message.sender)}: {_code(_short(message.subject))}\n\n"
            f"id {_code(message.key)} ({kind})")
    body = message.body.strip()
    if not body:
        return head + "\n\n(no body)"
    shown, was_cut = cut_to_bytes(body, MAIL_BODY_BUDGET)
    fence = fence_for(shown)
    # Fenced: the message's own markdown stays inside, read as its text.
    block = f"{head}\n\n{fence}text\n{shown}\n{fence}"
    if was_cut:
        block += "\n" + _cut_note("the message", shown, body)
    return block


def _short(text: str) -> str:
    return _one_line(cut_to_bytes(text, TITLE_BUDGET)[0])


def _code(text: str) -> str:
    """Inline code that its own backticks cannot close."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _documents(documents: list[PromptDocument], budget: int) -> tuple[str | None, list[DocumentShown], list[str]]:
    """The section, the documents it shows and those it leaves out."""
    if not documents:
        return None, [], []
    intro = (
        "## Living documents\n\n"
        "The project's shared knowledge: follow its practices, and keep "
        "these documents in mind as you work."
    )
    # The list of documents left out is kept short, and its room set aside
    # (a third of a small budget at most: it names fewer then).
    reserve = min(LEFT_OUT_RESERVE, max(budget, 0) // 3)
    budget -= utf8_len(intro) + 2 + reserve
    named = [_one_line(cut_to_bytes(item.name, DOCUMENT_NAME_BUDGET)[0]) for item in documents]
    # Room each block needs besides its content: heading, fence, cut note.
    fences = [fence_for(item.text) for item in documents]
    overheads = [utf8_len(_document_block(name, "", fence)) + 120 for name, fence in zip(named, fences, strict=True)]
    wholes = [utf8_len(item.text) for item in documents]
    # A document's own budget caps it before the documents share the room.
    sizes = [whole if item.budget is None else min(whole, item.budget)
             for whole, item in zip(wholes, documents, strict=True)]
    # The caller's order is the order of importance: keep as many documents,
    # from the first, as can each be shown whole or at a useful length.
    kept, level = 0, None
    for count in range(len(named), 0, -1):
        level = _water_level(sizes[:count], overheads[:count], budget)
        if level is None or level >= MIN_DOCUMENT_SHOWN:
            kept = count
            break
    blocks = [intro]
    shown_documents = []
    for index, (name, item) in enumerate(zip(named[:kept], documents[:kept], strict=True)):
        content = item.text
        shown, was_cut = cut_to_bytes(content, sizes[index] if level is None else min(level, sizes[index]))
        block = _document_block(name, shown, fences[index])
        if was_cut:
            block += "\n\n" + _cut_note(f"`{name}`", shown, content)
        blocks.append(block)
        shown_documents.append(DocumentShown(item.name, utf8_len(shown), wholes[index], not was_cut, item.blob))
    left_out = named[kept:]
    if left_out:
        lead = "Left out to keep this prompt short (read them in the repository if you need them): "
        room = reserve - utf8_len(lead) - 40
        shown_names: list[str] = []
        for name in left_out[:MAX_LEFT_OUT_NAMED]:
            entry = f"`{name}`"
            if utf8_len(entry) + 2 > room:
                break
            shown_names.append(entry)
            room -= utf8_len(entry) + 2
        listed = ", ".join(shown_names)
        if len(left_out) > len(shown_names):
            more = len(left_out) - len(shown_names)
            listed += f" and {more} more" if shown_names else f"{more} documents"
        blocks.append(lead + listed)
    return "\n\n".join(blocks), shown_documents, [item.name for item in documents[kept:]]


def _water_level(sizes: list[int], overheads: list[int], budget: int) -> int | None:
    """The most bytes each document may show so that all of them fit in
    ``budget``: small ones are shown whole and the large ones share what is
    left equally. None when every document fits whole."""
    room = budget - sum(overheads)
    ordered = sorted(sizes)
    for position, size in enumerate(ordered):
        left = len(ordered) - position
        if size * left > room:
            return max(room // left, -1)
        room -= size
    return None


def _document_block(name: str, content: str, fence: str) -> str:
    body = content if content.endswith("\n") or not content else content + "\n"
    # Fenced, so that the document's own headings stay inside it.
    info = "markdown" if name.lower().endswith((".md", ".markdown")) else ""
    return f"### {name}\n\n{fence}{info}\n{body}{fence}"


def _how_to_work(task: Task, *, attempt: int, branch: str, interrupted: bool = False) -> str:
    lines = [
        "## How to work here",
        "",
        (
            f"- You are in a git worktree of the project, on branch `{branch}`. "
            "Stay on it: do not switch branches, and do not push."
        ),
        (
            "- Commit your work as you go, in small commits with clear messages. "
            "Anything left uncommitted when you finish is committed for you."
        ),
        (
            '- `factory note "…"` logs a note for the operator: what you found, '
            "what you decided, what needs their attention."
        ),
        (
            f'- `factory plan add --after {task.id} "title"` proposes a follow-up task '
            "for work that does not belong in this one."
        ),
        (
            "- When the task is done, stop. The operator reviews the branch and "
            "either merges it or sends it back with feedback."
        ),
    ]
    if attempt > 1:
        lines.insert(
            3,
            f"- This is attempt {attempt}: the branch already holds the work of "
            "earlier attempts. Read `git log` before you start.",
        )
    elif interrupted:
        lines.insert(
            3,
            "- The branch already holds the work of the interrupted run. Read "
            "`git log` before you start.",
        )
    return "\n".join(lines)


# --- text helpers -----------------------------------------------------------------


def utf8_len(text: str) -> int:
    # surrogatepass: a stray surrogate from outside is measured, not an error.
    return len(text.encode("utf-8", "surrogatepass"))


def cut_to_bytes(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` bytes of UTF-8, at a line break when
    one is near the end; and whether anything was cut."""
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= limit:
        return text, False
    limit = max(limit, 0)
    shown = ""
    # Back off from a cut that splits a character (at most three bytes).
    for back in range(4):
        try:
            shown = encoded[: max(limit - back, 0)].decode("utf-8", "surrogatepass")
            break
        except UnicodeDecodeError:
            continue
    newline = shown.rfind("\n")
    if newline > len(shown) // 2:
        shown = shown[:newline]
    return shown.rstrip(), True


def fence_for(content: str) -> str:
    """A backtick fence longer than any backtick run in ``content``, so the
    document cannot close its own code block (CommonMark's rule)."""
    if "`" not in content:
        return "```"
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    return "`" * max(3, longest + 1)


def _one_line(text: str) -> str:
    return " ".join(text.split("\n")).strip()


def _cut_note(what: str, shown: str, whole: str) -> str:
    return f"[{what} was cut here: {_kb(utf8_len(shown))} of {_kb(utf8_len(whole))} shown]"


def _kb(size: int) -> str:
    return f"{size / 1000:.1f} KB" if size >= 1000 else f"{size} bytes"
