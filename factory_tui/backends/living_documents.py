"""The living documents as the factory uses them: the folder's documents
with the session history rendered from the log, those a prompt takes (for
the engine), and what the log and git know of each (for ``factory
artifacts`` and the Artifacts pane).

Composes ``documents.py`` (the files), ``landings.py`` (the history),
``document_choice.py`` (which apply), ``document_versions.py`` (git) and
the log's records; owns nothing of its own but the names a caller may
ask for.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

from factory_tui.artifacts_model import DocumentInfo, DocumentVersion
from factory_tui.backends.base import FACTORY_DIR, FactoryBase
from factory_tui.backends.document_choice import Chosen, TaskFacts, choose_documents, paths_named
from factory_tui.backends.documents import HISTORY_NAME, LivingDocument, file_name, read_documents
from factory_tui.backends.landings import history_document, ours
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.prompt import PromptDocument
from factory_tui.config import FactoryConfig
from factory_tui.errors import InvalidInput
from factory_tui.model import Task

FOLDER = f"{FACTORY_DIR}/artifacts"


def current_documents(base: FactoryBase, log: ExecutionLog) -> list[LivingDocument]:
    """The folder's documents, by name, with ``history.md`` as the log has
    it now (the file may lag or be missing; a ``history.md`` that is not
    the factory's is left as the operator's own document)."""
    path = base.artifacts_dir / HISTORY_NAME
    if not ours(path, base.root):
        return read_documents(base.artifacts_dir, root=base.root)
    # The file is the log's rendering: its text is taken from the log (not
    # read and parsed again), its time from the file.
    others = read_documents(base.artifacts_dir, root=base.root, skip=frozenset({HISTORY_NAME}))
    history = history_document(log)
    if history is None:
        return others
    try:
        mtime: float | None = os.stat(path).st_mtime
    except OSError:
        mtime = None
    history = replace(history, mtime=mtime)
    return sorted([*others, history], key=lambda document: document.name)


def facts_for(task: Task, changed: Sequence[str] = ()) -> TaskFacts:
    """What chooses documents for ``task``: its labels, the files its
    branch changed already, and the paths its title and body name."""
    return TaskFacts(labels=task.labels, paths=tuple(dict.fromkeys([*changed, *paths_named(task.title, task.body)])))


def wants_paths(documents: Sequence[LivingDocument]) -> bool:
    """Whether any document applies by path (else a branch's changed files
    need not be asked of git)."""
    return any(document.usable and document.when_paths for document in documents)


def for_prompt(documents: Sequence[LivingDocument], facts: TaskFacts) -> tuple[list[Chosen], list[PromptDocument]]:
    """The documents a prompt takes, most specific first, as the prompt
    wants them: the body (front matter is the factory's), its budget."""
    chosen = choose_documents(documents, facts)
    return chosen, [PromptDocument(item.name, item.document.body, item.document.budget, item.document.blob)
                    for item in chosen]


# --- what the CLI and the pane ask ---------------------------------------------------


def document_infos(base: FactoryBase, log: ExecutionLog, config: FactoryConfig) -> list[DocumentInfo]:
    """Every document with what git and the log know of it."""
    from factory_tui.backends.document_versions import last_changes, uncommitted

    documents = current_documents(base, log)
    changed = last_changes(base.root, FOLDER)
    dirty = uncommitted(base.root, FOLDER)
    counts = log.prompt_counts()
    updated: list[float | None] = []
    newest = log.landings(limit=1)
    for document in documents:
        if document.generated:
            updated.append(newest[0].at if newest else document.mtime)
        elif document.name in dirty or document.name not in changed:
            updated.append(document.mtime)
        else:
            updated.append(changed[document.name])
    since = log.landing_counts_since([at if at is not None else 0.0 for at in updated])
    stale_after = config.artifacts.stale_after
    infos = []
    for document, at, landed in zip(documents, updated, since, strict=True):
        infos.append(DocumentInfo(
            name=document.name, title=document.title, include=document.include, when=document.when,
            budget=document.budget, size=document.size, updated=at, prompts=counts.get(document.name, 0),
            landings_since=0 if document.generated else landed,
            stale=not document.generated and document.usable and landed >= stale_after,
            generated=document.generated, problem=_problem(document),
        ))
    return infos


def _problem(document: LivingDocument) -> str | None:
    if document.problem is None:
        return None
    return f"line {document.line}: {document.problem}" if document.line else document.problem


def find_document(base: FactoryBase, log: ExecutionLog, name: str) -> LivingDocument:
    """The document ``name`` names (``conventions`` or ``conventions.md``);
    InvalidInput for a name that is no file name of the folder, or none
    that is there."""
    wanted = file_name(name)
    if wanted is None:
        raise InvalidInput(f"not a document name: {name!r} (a file name in {FOLDER}/, such as conventions.md)")
    for document in current_documents(base, log):
        if document.name == wanted:
            return document
    raise InvalidInput(f"no living document {wanted!r} in {FOLDER}/ (`factory artifacts list` lists them)")


def document_text(base: FactoryBase, log: ExecutionLog, name: str) -> str:
    """The document's whole text as it is now (the history: as the log
    renders it); bytes that are not UTF-8 shown replaced."""
    document = find_document(base, log, name)
    if document.text:
        return document.text
    from factory_tui.front_matter import read_limited

    data, problem = read_limited(base.artifacts_dir / document.name, inside=base.root, limit=1 << 20,
                                 what="a living document")
    if data is None:
        raise InvalidInput(f"{FOLDER}/{document.name} cannot be shown: {problem}")
    return data.decode("utf-8", errors="replace")


def document_history(base: FactoryBase, log: ExecutionLog, name: str) -> list[DocumentVersion]:
    from factory_tui.backends.document_versions import file_history

    document = find_document(base, log, name)
    return file_history(base.root, f"{FOLDER}/{document.name}")


def document_diff(base: FactoryBase, log: ExecutionLog, name: str, commit: str) -> tuple[str, str]:
    """(the whole commit id, its diff of the document)."""
    from factory_tui.backends.document_versions import file_history, version_diff

    document = find_document(base, log, name)
    path = f"{FOLDER}/{document.name}"
    return version_diff(base.root, path, commit, file_history(base.root, path))
