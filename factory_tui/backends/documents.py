"""The living documents on disk: ``.factory/artifacts/*.md``, each read with
its optional front matter, its git blob id and what is wrong with it.

Front matter (YAML between ``---`` lines, or ``---json``; all keys
optional):

* ``title``: what the document is called (default: its first ``# ``
  heading, else its file name);
* ``include``: ``always``, ``when`` or ``never`` (default ``when`` if it
  has a ``when``, else ``always``);
* ``when``: path globs and task labels that make it apply, as a list
  (``[src/api/**, "label:api"]``: an item ``label:NAME`` is a label, the
  rest path globs, as QA scenarios' globs read) or as a mapping
  ``{paths: [...], labels: [...]}`` like a QA scenario's;
* ``budget``: the most bytes of it a prompt may hold;
* ``generated``: written by the factory (``history.md``), never by hand.

A document whose front matter cannot be read (or that is no regular file
inside the repository, too large, not UTF-8) is still listed, with its
``problem`` and the line it is on, and never goes into a prompt.

Files only: no SQLite, no git process (the blob id is computed here, as
``git hash-object`` would). Which documents a prompt takes is
``document_choice.py``'s; the session history is ``landings.py``'s.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from factory_tui.artifacts_model import Include
from factory_tui.front_matter import FrontMatterError, type_name
from factory_tui.front_matter import split as split_front_matter
from factory_tui.front_matter_fields import LABEL_PREFIX, FieldError, shown, when_field

# A document is a page people write: a larger file is a mistake (a log
# pasted in), and reading it into every prompt would cost every run.
MAX_DOCUMENT_BYTES = 1 << 20
# More documents than this are listed as not read: a folder of thousands
# of files is not living documents, and every prompt reads them all.
MAX_DOCUMENTS = 200
# The session history (landings.py writes it; the factory's, not the operator's).
HISTORY_NAME = "history.md"
KNOWN_KEYS = ("title", "include", "when", "budget", "generated")
# A budget smaller than this shows a few words and a cut note: a typo.
MIN_BUDGET = 100
# A document name on the command line: a file name in the folder, never a path.
NAME_PATTERN = re.compile(r"[^/\\\x00]+")
TITLE_LIMIT = 200


@dataclass(frozen=True, slots=True)
class LivingDocument:
    """One file of ``.factory/artifacts/``. ``body`` is its text after the
    front matter (what a prompt shows); ``blob`` the git blob id of its
    bytes (empty when it could not be read); ``problem`` (and ``line``):
    why it never goes into a prompt."""

    name: str
    title: str
    body: str = ""
    blob: str = ""
    size: int = 0
    include: Include = Include.ALWAYS
    when_paths: tuple[str, ...] = ()
    when_labels: tuple[str, ...] = ()
    budget: int | None = None
    generated: bool = False
    problem: str | None = None
    line: int | None = None
    mtime: float | None = None
    text: str = field(default="", repr=False)

    @property
    def when(self) -> tuple[str, ...]:
        """``when`` as one list: the globs, then ``label:NAME`` items."""
        return self.when_paths + tuple(LABEL_PREFIX + label for label in self.when_labels)

    @property
    def usable(self) -> bool:
        return self.problem is None


def blob_id(data: bytes) -> str:
    """The git blob id of ``data``: what ``git hash-object`` prints for a
    file holding it (sha1 of ``blob <size>\\0`` and the bytes)."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


# --- reading the folder -----------------------------------------------------------


def document_paths(folder: Path) -> list[Path]:
    """The ``*.md`` files of ``folder`` by name (hidden files, such as a
    half-written temporary file, and sub-folders left out)."""
    try:
        entries = sorted(folder.iterdir(), key=lambda path: path.name)
    except OSError:  # missing, not a folder, unreadable: no documents
        return []
    return [entry for entry in entries if entry.name.endswith(".md") and not entry.name.startswith(".")
            and not (entry.is_dir() and not entry.is_symlink())]


def read_documents(folder: Path, *, root: Path, skip: frozenset[str] = frozenset()) -> list[LivingDocument]:
    """Every document of ``folder``, by name; ``root``: the repository,
    which no document may lead out of (a link to ``~/.ssh`` is refused, a
    FIFO never opened). Never raises for what a file holds. ``skip``:
    names whose documents the caller has from elsewhere (left out)."""
    found: list[LivingDocument] = []
    inside = os.path.realpath(root)
    for index, path in enumerate(document_paths(folder)):
        if path.name in skip:
            continue
        if index >= MAX_DOCUMENTS:
            found.append(_refused(path.name, f"not read: the folder holds more than {MAX_DOCUMENTS} documents"))
            continue
        found.append(read_document(path, root=root, inside=inside))
    return found


def read_document(path: Path, *, root: Path, inside: str | None = None) -> LivingDocument:
    """One document; ``inside``: ``root`` resolved already (a folder's
    worth of documents resolves it once).

    Every prompt reads every document, so a document read before whose
    file has not changed since (same inode, size, modification and change
    times) is taken from ``_PARSED`` instead of being read and parsed
    again. A file changed within ``RACY_SECONDS`` of being read is not
    kept: a change within the clock's resolution would not show in its
    times (git's "racy" files, handled the same way)."""
    real = os.path.realpath(path)
    inside = inside or os.path.realpath(root)
    if real != inside and not real.startswith(inside.rstrip(os.sep) + os.sep):
        if not os.path.exists(real):
            return _refused(path.name, "cannot be read: a broken or looping link")
        return _refused(path.name, "a link to a file outside the repository; refused")
    try:
        info = os.stat(real)
    except OSError:
        return _refused(path.name, "cannot be read: a broken or looping link")
    key = (path.name, real, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    with _PARSED_LOCK:
        known = _PARSED.get(key)
    if known is not None:
        return known
    data, problem = _read(real, info)
    if data is None:
        return _refused(path.name, problem)
    document = parse_document(path.name, data, mtime=info.st_mtime)
    if time.time() - max(info.st_mtime, info.st_ctime) > RACY_SECONDS:
        with _PARSED_LOCK:
            if len(_PARSED) >= PARSED_KEPT:
                _PARSED.pop(next(iter(_PARSED)))
            _PARSED[key] = document
    return document


# Documents parsed already, by their file's identity and times (see
# read_document): a few hundred small records.
PARSED_KEPT = 1024
RACY_SECONDS = 2.0
_PARSED: dict[tuple, LivingDocument] = {}
_PARSED_LOCK = threading.Lock()


def _read(real: str, info: os.stat_result) -> tuple[bytes | None, str]:
    """The bytes of the file at ``real`` (a path inside the repository,
    links resolved), or None and why not: no FIFO or device is ever
    opened, and the size is limited (as ``front_matter.read_limited``)."""
    if not stat.S_ISREG(info.st_mode):
        return None, "not a regular file"
    if info.st_size > MAX_DOCUMENT_BYTES:
        return None, f"{info.st_size:,} bytes: a living document may have {MAX_DOCUMENT_BYTES // 1024} KB at most"
    try:
        with open(real, "rb") as handle:
            # One byte past the limit: the file may have grown since.
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as error:
        return None, f"cannot be read: {error.strerror or error}"
    if len(data) > MAX_DOCUMENT_BYTES:
        return None, f"over {MAX_DOCUMENT_BYTES // 1024} KB: a living document may have that much at most"
    return data, ""


def _refused(name: str, reason: str, line: int | None = None, **known) -> LivingDocument:
    return LivingDocument(name=name, title=known.pop("title", _stem(name)), problem=_one_line(reason), line=line,
                          **known)


# --- one document -----------------------------------------------------------------


def parse_document(name: str, data: bytes, *, mtime: float | None = None) -> LivingDocument:
    """The document named ``name`` whose file holds ``data``. Pure."""
    blob, size = blob_id(data), len(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return _refused(name, "not UTF-8 text", data[: error.start].count(b"\n") + 1,
                        blob=blob, size=size, mtime=mtime)
    if "\x00" in text:
        return _refused(name, "holds NUL bytes: not a text document", text[: text.index("\x00")].count("\n") + 1,
                        blob=blob, size=size, mtime=mtime)
    data_keys: dict = {}
    key_lines: dict[str, int] = {}
    body = text
    if _has_front_matter(text):
        try:
            front = split_front_matter(text, example="title: …", least="one key (title, include, when, budget)")
        except FrontMatterError as error:
            return _refused(name, f"front matter: {error.reason}", error.line, blob=blob, size=size, mtime=mtime,
                            text=text)
        data_keys, key_lines, body = front.data, front.key_lines, front.body
    try:
        fields = _fields(data_keys, body, name)
    except FieldError as error:
        return _refused(name, error.reason, key_lines.get(error.key) if error.key else None,
                        blob=blob, size=size, mtime=mtime, text=text)
    return LivingDocument(name=name, body=body.strip("\n") + "\n" if body.strip() else "", blob=blob, size=size,
                          mtime=mtime, text=text, **fields)


def _has_front_matter(text: str) -> bool:
    """Whether ``text`` opens with front matter: a ``---`` (or ``---json``)
    line first. A document without one is all body, with the defaults."""
    first = text.lstrip("\n").split("\n", 1)[0].rstrip()
    return first in ("---", "---json")


def _fields(data: dict, body: str, name: str) -> dict:
    for key in data:
        if not isinstance(key, str) or key not in KNOWN_KEYS:
            raise FieldError(_unknown_key(str(key)), str(key))
    when_paths, when_labels = _when(data)
    include = _include(data, bool(when_paths or when_labels))
    return {
        "title": _title(data, body, name),
        "include": include,
        "when_paths": when_paths,
        "when_labels": when_labels,
        "budget": _budget(data),
        "generated": _generated(data),
    }


def _unknown_key(key: str) -> str:
    close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown key {shown(key)} (known: {', '.join(KNOWN_KEYS)}){hint}"


def _title(data: dict, body: str, name: str) -> str:
    if "title" in data:
        value = data["title"]
        if not isinstance(value, str | int | float) or isinstance(value, bool) or not str(value).strip():
            raise FieldError(f"title must be text, not {type_name(value)}", "title")
        return _one_line(str(value))[:TITLE_LIMIT]
    for line in body.splitlines():
        if line.startswith("# ") and line[2:].strip():
            return _one_line(line[2:])[:TITLE_LIMIT]
    return _stem(name)


def _include(data: dict, has_when: bool) -> Include:
    if "include" not in data:
        return Include.WHEN if has_when else Include.ALWAYS
    value = data["include"]
    try:
        include = Include(value)
    except ValueError:
        raise FieldError(f"include must be always, when or never, not {shown(value)}", "include") from None
    if include is Include.WHEN and not has_when:
        raise FieldError("include: when needs a when (path globs or label:NAME items)", "include")
    if include is Include.ALWAYS and has_when:
        raise FieldError("include: always with a when: say include: when, or leave the when out", "include")
    return include


def _when(data: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Path globs and labels, from either shape of ``when``."""
    return when_field(data, label_items=True, never="the document would never apply")


def _budget(data: dict) -> int | None:
    if "budget" not in data or data["budget"] is None:
        return None
    value = data["budget"]
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_BUDGET:
        raise FieldError(f"budget must be a whole number of bytes, at least {MIN_BUDGET}, not {shown(value)}", "budget")
    return value


def _generated(data: dict) -> bool:
    value = data.get("generated", False)
    if not isinstance(value, bool):
        raise FieldError(f"generated must be true or false, not {shown(value)}", "generated")
    return value


# --- names ------------------------------------------------------------------------


def file_name(name: str) -> str | None:
    """The file name a document name given by someone means (``conventions``
    or ``conventions.md``), or None when it cannot name a file in the folder
    (a path, ``..``, empty)."""
    name = name.strip()
    if not name or NAME_PATTERN.fullmatch(name) is None or name in (".", "..") or name.startswith("."):
        return None
    return name if name.endswith(".md") else name + ".md"


def _stem(name: str) -> str:
    return name.removesuffix(".md")


def _one_line(text: str) -> str:
    return " ".join(text.split())
