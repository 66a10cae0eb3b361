"""The living documents in git: when each last changed (one ``git log`` for
the whole folder, never one per file), which are not committed as they
are, a document's history (the commits that changed it) and one
version's diff.

Paths are passed to git as literal pathspecs (``--literal-pathspecs``): a
document named ``[bold]x[/].md`` or ``*.md`` names that one file, never a
pattern.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from factory_tui.artifacts_model import DocumentVersion
from factory_tui.errors import FactoryError, InvalidInput

GIT_TIMEOUT = 30
# Commits of the folder's history read to find each document's last change:
# a document untouched in this many changes of the folder falls back to its
# file's modification time.
FOLDER_HISTORY = 5_000
# A document's history, at most (newest first).
HISTORY_LIMIT = 500
# A version's diff, at most (a diff of a 1 MB document, twice).
DIFF_BYTES = 4 << 20
_COMMIT = re.compile(r"[0-9a-fA-F]{4,64}")


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_LITERAL_PATHSPECS": "1", "GIT_OPTIONAL_LOCKS": "0"}
    try:
        return subprocess.run(["git", "-C", str(root), "--literal-pathspecs", *args], capture_output=True,
                              timeout=GIT_TIMEOUT, env=env, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        raise FactoryError(f"git could not be run: {error}") from None


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def last_changes(root: Path, folder: str) -> dict[str, float]:
    """For each file directly in ``folder`` (relative to ``root``), the
    commit time of the last commit on HEAD that changed it."""
    done = _git(root, "log", f"-n{FOLDER_HISTORY}", "-z", "--format=%x01%ct", "--name-only", "--no-renames",
                "HEAD", "--", folder)
    if done.returncode != 0:
        return {}
    found: dict[str, float] = {}
    prefix = folder.rstrip("/") + "/"
    for record in _text(done.stdout).split("\x01"):
        if not record.strip("\x00\n"):
            continue
        stamp, _, names = record.partition("\n")
        try:
            at = float(stamp.strip("\x00").strip())
        except ValueError:
            continue
        for name in names.split("\x00"):
            name = name.strip("\n")
            if name.startswith(prefix) and "/" not in name[len(prefix):]:
                found.setdefault(name[len(prefix):], at)
    return found


def uncommitted(root: Path, folder: str) -> set[str]:
    """Files directly in ``folder`` that differ from HEAD (changed, added,
    untracked); ignored files are not listed."""
    done = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", folder)
    if done.returncode != 0:
        return set()
    prefix = folder.rstrip("/") + "/"
    names: set[str] = set()
    entries = _text(done.stdout).split("\x00")
    skip = False
    for entry in entries:
        if skip:
            skip = False
            continue
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        if "R" in status or "C" in status:
            skip = True  # the next entry is the rename's source
        if path.startswith(prefix) and "/" not in path[len(prefix):]:
            names.add(path[len(prefix):])
    return names


def file_history(root: Path, path: str) -> list[DocumentVersion]:
    """The commits on HEAD that changed ``path``, newest first (renames
    followed)."""
    done = _git(root, "log", f"-n{HISTORY_LIMIT}", "--follow", "-z", "--format=%H%x1f%ct%x1f%an%x1f%s",
                "HEAD", "--", path)
    if done.returncode != 0:
        return []
    versions = []
    for record in _text(done.stdout).split("\x00"):
        fields = record.strip("\n").split("\x1f")
        if len(fields) != 4:
            continue
        commit, at, author, subject = fields
        try:
            versions.append(DocumentVersion(commit=commit, at=float(at), author=author, subject=subject))
        except ValueError:
            continue
    return versions


def version_diff(root: Path, path: str, commit: str, versions: list[DocumentVersion]) -> tuple[str, str]:
    """The full id of ``commit`` (a whole id or a start of one, among
    ``versions``) and what it changed in ``path``, as a unified diff."""
    wanted = commit.strip().lower()
    if not _COMMIT.fullmatch(wanted):
        raise InvalidInput(f"not a commit id: {commit!r} (`factory artifacts history NAME` lists them)")
    matches = [version.commit for version in versions if version.commit.startswith(wanted)]
    if not matches:
        raise InvalidInput(f"{commit!r} is not a commit that changed {Path(path).name} "
                           f"(`factory artifacts history {Path(path).name}` lists them)")
    if len(matches) > 1:
        raise InvalidInput(f"{commit!r} is the start of {len(matches)} commits' ids; give more of it")
    full = matches[0]
    # --follow's commits may know the document by an older name: the diff
    # of that commit, limited to the files it changed under either name.
    done = _git(root, "show", "--format=", "--patch", "--no-color", "--find-renames", full, "--", path)
    if done.returncode == 0 and not done.stdout.strip():
        done = _git(root, "show", "--format=", "--patch", "--no-color", "--find-renames", full)
    if done.returncode != 0:
        raise FactoryError(f"git could not show {full[:10]}: {_text(done.stderr).strip()[:300]}")
    data = done.stdout
    text = _text(data[:DIFF_BYTES])
    if len(data) > DIFF_BYTES:
        text += f"\n[… the diff was cut at {DIFF_BYTES >> 20} MB]\n"
    return full, text
