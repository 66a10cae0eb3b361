"""Which living documents a task's prompt takes, and in what order.

``choose_documents`` is pure: the documents (``documents.py``), the task's
labels and the paths that matter for it (the files its branch changed
already, on a later attempt, and the paths its title and body name:
``paths_named``) in; the documents that apply out, most specific first:

1. documents whose ``when`` matched a path, the most specific glob first
   (the longer its fixed start before any wildcard: ``src/api/**`` before
   ``src/**`` before ``*.py``), then by name;
2. documents whose ``when`` matched a label of the task, by name;
3. ``include: always`` documents, by name;
4. generated documents (the session history, ``history.md``) last.

``include: never`` never goes in, nor a ``when`` that matched nothing, nor
a document with a problem. Each comes with its own ``budget`` (the most of
it a prompt may hold); the prompt (``prompt.py``) then fits them all into
``[artifacts] prompt_budget`` and what the rest of the prompt leaves, in
this order: when they do not all fit, documents are left out from the end
of the list (the least specific first) until each one left can show at
least ``MIN_DOCUMENT_SHOWN`` bytes; the room is then shared, small
documents whole and the large ones cut to the same length. Every cut says
so where it is, and the documents left out are named at the end of the
section.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from factory_tui.artifacts_model import Include
from factory_tui.backends.documents import LivingDocument
from factory_tui.qa_scenarios import glob_matches

# Paths taken from a task's title and body, at most: a body that is a long
# file listing must not make choosing cost more than the prompt itself.
MAX_NAMED_PATHS = 200
# A word that names a file: has a folder part or an extension, no scheme.
_PATHISH = re.compile(r"(?<![\w/.:-])(?:\./)?([\w.-]+(?:/[\w.-]+)*/?)")
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,9}$")


@dataclass(frozen=True, slots=True)
class TaskFacts:
    """What decides which documents apply: the task's labels and the
    repository paths that matter for it."""

    labels: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Chosen:
    """A document for the prompt, and why it applies (``path GLOB``,
    ``label NAME``, ``always`` or ``generated``)."""

    document: LivingDocument
    reason: str

    @property
    def name(self) -> str:
        return self.document.name


def choose_documents(documents: Iterable[LivingDocument], facts: TaskFacts) -> list[Chosen]:
    """The documents that apply to a task with ``facts``, most specific first."""
    by_path: list[tuple[int, str, Chosen]] = []
    by_label: list[tuple[str, Chosen]] = []
    always: list[tuple[str, Chosen]] = []
    generated: list[tuple[str, Chosen]] = []
    labels = set(facts.labels)
    for document in documents:
        if not document.usable or document.include is Include.NEVER:
            continue
        if document.generated:
            generated.append((document.name, Chosen(document, "generated")))
        elif document.include is Include.ALWAYS:
            always.append((document.name, Chosen(document, "always")))
        else:
            glob = best_glob(document.when_paths, facts.paths)
            if glob is not None:
                by_path.append((-specificity(glob), document.name, Chosen(document, f"path {glob}")))
                continue
            label = next((label for label in document.when_labels if label in labels), None)
            if label is not None:
                by_label.append((document.name, Chosen(document, f"label {label}")))
    by_path.sort(key=lambda item: item[:2])
    return ([item[2] for item in by_path] + [item[1] for item in sorted(by_label, key=lambda item: item[0])]
            + [item[1] for item in sorted(always, key=lambda item: item[0])]
            + [item[1] for item in sorted(generated, key=lambda item: item[0])])


def best_glob(globs: Sequence[str], paths: Sequence[str]) -> str | None:
    """The most specific of ``globs`` that matches one of ``paths``."""
    matching = [glob for glob in globs if any(glob_matches(glob, path) for path in paths)]
    return max(matching, key=specificity, default=None)


def specificity(glob: str) -> int:
    """How much of ``glob`` is fixed: the characters before its first
    wildcard (``src/api/**``: 8; ``*.py``: 0)."""
    match = re.search(r"[*?\[]", glob.removeprefix("./"))
    return len(glob.removeprefix("./")) if match is None else match.start()


def paths_named(*texts: str) -> tuple[str, ...]:
    """The repository paths a task's title and body name, in order, each
    once: words with a folder part (``src/api/users.py``, ``docs/``) or a
    file extension (``README.md``); URLs are not paths."""
    found: dict[str, None] = {}
    for text in texts:
        for word in re.split(r"[\s`'\"()<>\[\]{},;]+", text):
            if "://" in word or word.startswith(("/", "~")):
                continue
            word = word.rstrip(".:!?")
            match = _PATHISH.fullmatch(word)
            if match is None:
                continue
            path = match.group(1)
            if ".." in PurePosixPath(path).parts or not ("/" in path or _EXTENSION.search(path)):
                continue
            found[path] = None
            if path.endswith("/"):
                found[path.rstrip("/")] = None
            if len(found) >= MAX_NAMED_PATHS:
                return tuple(found)
    return tuple(found)
