"""A few facts read straight from a repository's loose objects, where a git
process would cost more than the answer: whether a commit descends from
another through a handful of fresh commits.

A task's branch grows by commits the engine and its agent just made, and
git writes a new commit as a loose object (``objects/ab/cdef…``, zlib) until
it packs them. Reading those few files answers "does the branch's head
descend from the commit it was made at" in microseconds, where ``git
merge-base --is-ancestor`` is a process of a few milliseconds. Only a yes is
ever answered here: anything else (a packed or missing commit, too long a
walk, a repository that rewrites its history's view with grafts or replace
refs) is "not known", and the caller asks git.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

# Commits walked at most before giving the question to git.
WALK_LIMIT = 64


def loose_parents(objects: Path, sha: str) -> list[str] | None:
    """The parents of commit ``sha`` when it is a loose object of the
    object store at ``objects``; None when it is not (packed, missing, not a
    commit, unreadable)."""
    try:
        data = zlib.decompress((objects / sha[:2] / sha[2:]).read_bytes())
    except (OSError, ValueError, zlib.error):
        return None
    header, _, body = data.partition(b"\0")
    if not header.startswith(b"commit "):
        return None
    parents: list[str] = []
    # The headers end at the first empty line; parents follow the tree.
    for line in body.split(b"\n"):
        if not line:
            break
        if line.startswith(b"parent "):
            try:
                parents.append(line[7:].decode("ascii"))
            except UnicodeDecodeError:
                return None
    return parents


def history_rewritten(common_dir: Path) -> bool:
    """Whether git's view of this repository's history may differ from
    its commits' own parent links (grafts, replace refs, another object
    store named in the environment): then only git may answer."""
    if os.environ.get("GIT_OBJECT_DIRECTORY") or os.environ.get("GIT_ALTERNATE_OBJECT_DIRECTORIES"):
        return True
    if (common_dir / "info" / "grafts").exists() or (common_dir / "shallow").exists():
        return True
    replace = common_dir / "refs" / "replace"
    try:
        if replace.is_dir() and any(replace.iterdir()):
            return True
        packed = (common_dir / "packed-refs").read_bytes()
    except OSError:
        packed = b""
    return b" refs/replace/" in packed


def descends_through_loose_commits(common_dir: Path, older: str, newer: str) -> bool:
    """True when ``newer`` reaches ``older`` by parent links through loose
    commits alone (at most WALK_LIMIT of them); False means not known."""
    if newer == older:
        return True
    if history_rewritten(common_dir):
        return False
    objects = common_dir / "objects"
    seen: set[str] = set()
    todo = [newer]
    while todo:
        sha = todo.pop()
        if sha == older:
            return True
        if sha in seen:
            continue
        if len(seen) >= WALK_LIMIT:
            return False
        seen.add(sha)
        parents = loose_parents(objects, sha)
        if parents is None:
            return False
        todo.extend(parents)
    return False
