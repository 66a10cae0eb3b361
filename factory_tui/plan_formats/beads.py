"""beads' ``.beads/issues.jsonl`` read as import records.

One JSON object per line, as ``bd`` writes it: ``id``, ``title``,
``description``, ``design``, ``acceptance_criteria``, ``notes``,
``status``, ``priority`` (0 = critical … 4 = backlog, 2 when absent),
``labels``, and ``dependencies``: objects ``{issue_id, depends_on_id,
type}`` on the issue that depends.

* ``blocks`` (and a dependency without a type, which beads takes as one)
  orders the work: the issue waits for ``depends_on_id``.
* Every other type (``parent-child``, ``related``, ``relates-to``,
  ``discovered-from``, ``duplicates``, ``supersedes``, ``tracks`` …) does
  not order the work here; it is kept as a line of the task's body under
  "Links in beads" (``part of bd-1 "Auth epic"``), so that an agent still
  knows it.
* The body is the description, then the design, the acceptance criteria
  and the notes under their headings.
* Read and not kept: ``issue_type``, ``assignee``, ``owner``, timestamps,
  ``close_reason``, ``comments``, ``external_ref`` and the rest.

Priorities: ours is 2 - theirs (P0 → 2, P2 → 0, P4 → -2), so beads'
default is ours; back, 2 - ours within 0 … 4.
"""

from __future__ import annotations

import json

from factory_tui.model import State
from factory_tui.plan_formats.records import (
    Intent,
    Kind,
    SourceError,
    SourceRecord,
    Vocabulary,
    clean_title,
    join_sections,
    list_field,
    section,
    short,
    source_labels,
    status_intent,
    text_field,
    where,
)

STATUSES_IN = {
    "open": Intent.OPEN,
    "in_progress": Intent.OPEN,
    "blocked": Intent.OPEN,  # what it waits for is its dependencies here
    "hooked": Intent.OPEN,  # claimed by a worker there: work still to do here
    "deferred": Intent.HELD,
    "pinned": Intent.HELD,  # a standing marker there, not work to run
    "closed": Intent.DONE,
    "tombstone": Intent.CANCELLED,  # deleted there
}
STATUSES_OUT = {
    State.PROPOSED: "open",
    State.QUEUED: "open",
    State.HELD: "deferred",
    State.RUNNING: "in_progress",
    State.CHECKING: "in_progress",
    State.REVIEW: "in_progress",
    State.FAILED: "blocked",
    State.DONE: "closed",
    State.CANCELLED: "closed",
}
DEFAULT_PRIORITY = 2
ORDERING = "blocks"
# How a link that does not order the work reads in the body.
LINK_WORDS = {
    "parent-child": "part of",
    "related": "related to",
    "relates-to": "related to",
    "discovered-from": "found while working on",
    "duplicates": "a duplicate of",
    "supersedes": "supersedes",
    "tracks": "tracks",
    "conditional-blocks": "runs only if this one fails:",
    "waits-for": "waits for the parts of",
}


def priority_in(value: int) -> int:
    return DEFAULT_PRIORITY - value


def priority_out(priority: int) -> int:
    return max(0, min(4, DEFAULT_PRIORITY - priority))


VOCABULARY = Vocabulary(Kind.BEADS, STATUSES_IN, STATUSES_OUT, priority_out)


def parse_beads(text: str, path: str) -> list[SourceRecord]:
    """Every issue of the file, in file order; blank lines are passed over."""
    issues: list[tuple[int, dict]] = []
    # Lines end at a newline only: JSON may hold a line separator (U+2028)
    # raw inside a string, which splitlines would break the line at.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            issue = json.loads(line)
        except json.JSONDecodeError as error:
            raise SourceError(where(path, number), f"not JSON: {error.msg} (column {error.colno})") from None
        except RecursionError:
            raise SourceError(where(path, number), "not JSON: nested too deeply") from None
        if not isinstance(issue, dict):
            raise SourceError(where(path, number), f"an issue must be a JSON object, not {short(issue)}")
        issues.append((number, issue))
    titles = {
        issue["id"]: issue["title"] for _, issue in issues
        if isinstance(issue.get("id"), str) and isinstance(issue.get("title"), str)
    }
    return [_record(issue, number, path, titles) for number, issue in issues]


def _record(issue: dict, number: int, path: str, titles: dict[str, str]) -> SourceRecord:
    source_id = issue.get("id")
    if not isinstance(source_id, str) or not source_id.strip():
        raise SourceError(where(path, number), f"an issue needs an id (text), not {short(source_id)}")
    at = where(path, number, source_id)
    title = clean_title(issue.get("title"), at)
    status = issue.get("status") or "open"
    if not isinstance(status, str):
        raise SourceError(at, f"status must be text, not {short(status)}")
    priority = issue.get("priority", DEFAULT_PRIORITY)
    if priority is None:
        priority = DEFAULT_PRIORITY
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 4:
        raise SourceError(at, f"priority must be a whole number from 0 to 4, not {short(priority)}")
    after: list[str] = []
    links: list[str] = []
    for dependency in list_field(issue.get("dependencies"), "dependencies", at):
        if not isinstance(dependency, dict):
            raise SourceError(at, f"a dependency must be a JSON object, not {short(dependency)}")
        target = dependency.get("depends_on_id")
        if not isinstance(target, str) or not target:
            raise SourceError(at, f"a dependency needs depends_on_id (text), not {short(target)}")
        owner = dependency.get("issue_id", source_id)
        if owner not in (None, "", source_id):
            raise SourceError(at, f"a dependency of another issue ({short(owner)}) is listed on this one")
        kind = dependency.get("type") or ORDERING
        if not isinstance(kind, str):
            raise SourceError(at, f"a dependency's type must be text, not {short(kind)}")
        if kind == ORDERING:
            after.append(target)
            continue
        words = LINK_WORDS.get(kind, f"{kind}:")
        named = titles.get(target)
        links.append(f"- {words} {target}" + (f" ({named})" if named else ""))
    body = join_sections(
        text_field(issue.get("description"), "description", at),
        section("Design", text_field(issue.get("design"), "design", at)),
        section("Acceptance criteria", text_field(issue.get("acceptance_criteria"), "acceptance_criteria", at)),
        section("Notes", text_field(issue.get("notes"), "notes", at)),
        section("Links in beads", "\n".join(links)),
    )
    return SourceRecord(
        source_id=source_id,
        title=title,
        status=status,
        intent=status_intent(STATUSES_IN, status, at, "beads"),
        where=at,
        path=path,
        body=body,
        priority=priority_in(priority),
        labels=source_labels(list_field(issue.get("labels"), "labels", at), at),
        after=tuple(after),
    )
