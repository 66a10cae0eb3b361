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


class RunOutcome(StrEnum):
    """How a run ended (``running`` while it has not)."""

    RUNNING = "running"
    FINISHED = "finished"  # the agent finished its work (review, or QA next)
    FAILED = "failed"  # an error, a failure the agent reported, nothing done
    TIMED_OUT = "timed out"
    STOPPED = "stopped"  # cancelled, or the engine stopped it (set aside)
    EXPIRED = "expired"  # its lease ran out while no engine watched it
    UNKNOWN = "unknown"  # a folder that says nothing of its end


class FileKind(StrEnum):
    """What a file of a run's folder is."""

    PROMPT = "prompt"  # prompt.md
    TRANSCRIPT = "transcript"  # transcript.log
    RAW = "raw"  # output.raw (output.raw.gz once compressed)
    DIFF = "diff"  # diff.stat: what the run's branch changed
    QA = "qa"  # qa/<stamp>-<scenario>/…: a QA check's output
    RECORD = "record"  # run.json, exit.json, exit.code, agent.pid
    OTHER = "other"


class FileState(StrEnum):
    """Where a run's file stands (``[artifacts] keep_runs`` and ``old_raw``
    change the raw output of older runs)."""

    KEPT = "kept"
    COMPRESSED = "compressed"  # output.raw kept as output.raw.gz
    DROPPED = "dropped"  # removed by retention; only its record is left
    LINK = "link"  # a symbolic link: listed, never followed
    SPECIAL = "special"  # a FIFO, socket or device: listed, never read


@dataclass(frozen=True, slots=True)
class RunFile:
    """A file of a run's folder: ``name`` is its path in the folder
    (``qa/<stamp>-<scenario>/output.log`` for a QA output; ``output.raw``
    whether kept whole or compressed); ``kind`` is prompt, transcript, raw,
    diff, qa, record or other; ``state`` is kept, compressed or dropped (by
    ``[artifacts] keep_runs``), or link or special for what is never read;
    ``size`` is its bytes on disk now; ``path`` where it is, from the
    repository's top (the compressed file's for a compressed raw output)."""

    name: str
    kind: str
    size: int
    state: str = "kept"
    path: str = ""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of a task (an attempt) as the log indexes it: when, how it
    ended, what it cost, what it changed, what it read and its files.

    ``folder``: its folder under ``runs/<task>/``, the attempt's number,
    or ``<attempt>.stopped`` for a run the engine stopped and set aside
    (that attempt ran again); ``agent``: the program its profile ran;
    ``files_changed``, ``lines_added``, ``lines_removed``: the task's
    branch when the run ended against where it left the base branch
    (``diff_summary`` says the same in words); ``path``: the run's folder
    from the repository's top."""

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
    folder: str = ""
    agent: str | None = None
    exit_code: int | None = None
    files_changed: int | None = None
    lines_added: int | None = None
    lines_removed: int | None = None
    path: str = ""

    @property
    def live(self) -> bool:
        return self.outcome == RunOutcome.RUNNING

    @property
    def size(self) -> int:
        """Bytes its files take on disk now."""
        return sum(item.size for item in self.files)

    def to_json(self) -> dict:
        data = asdict(self)
        data["documents"] = [{"name": name, "blob": blob} for name, blob in self.documents]
        data["files"] = [f.to_json() for f in self.files]
        return data


# --- what prompts read, and the session history ---------------------------------


@dataclass(frozen=True, slots=True)
class PromptDocument:
    """A living document one prompt included (``prompt_documents`` in the
    log): which version (``blob``, its git blob id), how much of it
    (``shown`` of ``size`` bytes; ``whole`` when nothing was cut)."""

    task_id: str
    attempt: int
    name: str
    blob: str
    shown: int
    size: int
    whole: bool
    at: float

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class QaVerdict:
    """One QA scenario's latest verdict on a task, as its landing keeps it."""

    scenario: str
    verdict: str
    gate: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Landing:
    """A task that landed (approved and merged): one entry of the session
    history, as it was when it landed. ``profile``: the agent profile of its
    last run, ``agent`` the command it ran (``claude``,
    ``factory_tui.demo_agent``); ``last_words``: what its agent said last;
    ``commit``: the base branch's commit after the merge (None: nothing
    was merged); ``refresh``: the task was the factory's own update of the
    living documents."""

    task_id: str
    title: str
    at: float
    actor: str
    profile: str | None = None
    agent: str | None = None
    attempts: int = 0
    qa: tuple[QaVerdict, ...] = ()
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    last_words: str | None = None
    commit: str | None = None
    refresh: bool = False
    id: int = 0

    def to_json(self) -> dict:
        data = asdict(self)
        data["qa"] = [verdict.to_json() for verdict in self.qa]
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
