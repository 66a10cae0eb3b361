"""What the factory keeps as artifacts, as plain records: the living
documents of ``.factory/artifacts/`` with what the log knows of them, a
version of one, and a run's files and figures.

Pure: the records the session gives the CLI (``factory artifacts``,
``factory run-info``) and the console's Artifacts pane; the backends fill
them (the documents, the history of landings, the run index), the screens
only show them. Every text field is text from outside (a document's title,
a file name), shown literally.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Include(StrEnum):
    """When a living document goes into a prompt (its ``include``)."""

    ALWAYS = "always"
    WHEN = "when"  # its ``when`` (path globs, task labels) matches the task
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """One living document as the Artifacts pane and ``factory artifacts
    list`` show it. ``name``: its file name in ``.factory/artifacts/``;
    ``updated``: epoch seconds of the last commit that changed it (its
    modification time while uncommitted); ``prompts``: prompts that
    included it; ``landings_since``: tasks landed since it last changed,
    and ``stale`` when that is ``[artifacts] stale_after`` or more;
    ``generated``: the factory writes it (``history.md``), never the
    operator; ``problem``: why its front matter could not be read (it is
    then left out of prompts and listed with the reason)."""

    name: str
    title: str
    include: Include = Include.ALWAYS
    when: tuple[str, ...] = ()
    budget: int | None = None
    size: int = 0
    updated: float | None = None
    prompts: int = 0
    landings_since: int = 0
    stale: bool = False
    generated: bool = False
    problem: str | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        data["include"] = self.include.value
        data["when"] = list(self.when)
        return data


@dataclass(frozen=True, slots=True)
class DocumentVersion:
    """A commit that changed a document: its history (``h`` in the pane,
    ``factory artifacts history NAME``), newest first."""

    commit: str
    at: float
    author: str
    subject: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RunFile:
    """A file of a run's folder: ``kind`` is prompt, transcript, raw, diff,
    qa, record or other; ``state`` is kept, compressed or dropped (by
    ``[artifacts] keep_runs``); ``size`` is its bytes on disk now."""

    name: str
    kind: str
    size: int
    state: str = "kept"

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of a task (an attempt) as the log indexes it: when, how it
    ended, what it cost, what it changed, what it read and its files."""

    task_id: str
    attempt: int
    started_at: float | None = None
    ended_at: float | None = None
    outcome: str | None = None
    profile: str | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    diff_summary: str | None = None
    # (document name, git blob id) of what its prompt included.
    documents: tuple[tuple[str, str], ...] = ()
    files: tuple[RunFile, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        data = asdict(self)
        data["documents"] = [{"name": name, "blob": blob} for name, blob in self.documents]
        data["files"] = [f.to_json() for f in self.files]
        return data


def size_text(size: int) -> str:
    """At most six characters: 950 B, 12.3 KB, 4.5 MB, 1.2 GB."""
    if size < 1000:
        return f"{size} B"
    for unit, scale in (("KB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if size < scale * 999.5 or unit == "GB":
            value = size / scale
            return f"{value:.1f} {unit}" if value < 99.95 else f"{value:.0f} {unit}"
    return f"{size} B"  # not reached
