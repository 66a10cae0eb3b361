"""Writing a new file whole or not at all (a scenario from its template, by
the CLI or the console): a temporary file in the same folder, fsynced, then
linked into place, which refuses a file that exists even if it appeared a
moment ago; with ``force``, renamed over it instead."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from factory_tui.errors import FactoryError


def write_new_file(path: Path, text: str, *, shown: str, force: bool = False, exists_hint: str = "") -> None:
    """``text`` to ``path``; ``shown`` names it in errors, and
    ``exists_hint`` is added to the one that says it exists already."""
    exists = f"{shown} exists{exists_hint or ' already'}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FactoryError(f"cannot make {path.parent}: {error.strerror or error}") from None
    if not force and (path.exists() or path.is_symlink()):
        raise FactoryError(exists)
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise FactoryError(f"cannot write {shown}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if force:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    except FileExistsError:
        raise FactoryError(exists) from None
    except OSError as error:
        raise FactoryError(f"cannot write {shown}: {error.strerror or error}") from None
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
