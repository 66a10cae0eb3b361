"""What front matter's keys share between the files that have them (QA
scenarios, living documents): the complaint about one key, a value shown
short in it, and ``when``, the paths and labels that say when a file
applies to a task.

``when`` comes in two shapes: a mapping ``{paths: [...], labels: [...]}``,
or a list (a single string is a list of one). In a scenario the list holds
path globs; in a document it may mix them with ``label:NAME`` items
(``label_items``). Pure.
"""

from __future__ import annotations

from factory_tui.config import unknown_key

WHEN_KEYS = ("paths", "labels")
LABEL_PREFIX = "label:"


class FieldError(Exception):
    """One thing wrong with a file's front matter; ``key`` is the key it is
    about, so that the reason can name the line it is on."""

    def __init__(self, reason: str, key: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.key = key


def shown(value: object) -> str:
    """A value from the file, short and on one line, for a reason."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def when_field(data: dict, *, label_items: bool, never: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The path globs and labels of ``data["when"]`` (none when it is not
    there); ``never`` ends the complaint about a ``when`` that names
    nothing (``so it would never run``)."""
    if "when" not in data:
        return (), ()
    value = data["when"]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or key not in WHEN_KEYS:
                raise FieldError("when: " + unknown_key(str(key), WHEN_KEYS), "when")
        paths = _strings(value.get("paths", []), "when: paths", "a path glob or a list of them")
        labels = _strings(value.get("labels", []), "when: labels", "a label or a list of them")
        labels = tuple(label.removeprefix(LABEL_PREFIX) for label in labels)
    elif label_items:
        items = _strings(value, "when", "a list of path globs and label:NAME items, or {paths: [...], labels: [...]}")
        paths = tuple(item for item in items if not item.startswith(LABEL_PREFIX))
        labels = tuple(item.removeprefix(LABEL_PREFIX) for item in items if item.startswith(LABEL_PREFIX))
    else:
        paths, labels = _strings(value, "when", "a list of path globs, or {paths: [...], labels: [...]}"), ()
    if not paths and not labels:
        raise FieldError(f"when names no path or label, so {never}", "when")
    for glob in paths:
        if glob.startswith("/") or "\x00" in glob or glob.split("/")[0] == "..":
            raise FieldError(f"when: {shown(glob)}: path globs are relative to the repository", "when")
    for label in labels:
        if not label.strip():
            raise FieldError("when: label: needs a name (label:api)", "when")
    return paths, labels


def _strings(value: object, name: str, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise FieldError(f"{name} must be {what}", "when")
    return tuple(item.strip() for item in value)
