"""Deleting a branch that is merged, the way git's files backend does, when
its ref is a plain loose file: a ``git branch -d`` process fewer per
approval, and only where nothing but that file (and its reflog) would be
touched by git either.

``delete_loose_branch`` does git's own steps (refs/files-backend.c): the
ref's lock file made exclusively (``<ref>.lock``), then ``packed-refs.lock``
(so that a ``git pack-refs`` cannot copy the ref meanwhile), the ref read
again under both and found at the commit the caller verified as merged,
absent from ``packed-refs``; then the ref file and its reflog are unlinked,
their empty folders removed, and the locks released.

Anything else returns False before a file is touched, and the caller asks
git: a reftable repository, a ref that is not a loose file holding a
commit id (a symbolic ref, a folder, a packed copy), a lock held by
someone else, a branch checked out, rebased or bisected in any worktree,
a ``reference-transaction`` hook (git would run it), a ``core.hooksPath``
or an ``include`` in any configuration file that would be read (it could
name such a hook), configuration given in the environment, or a
``[branch "<name>"]`` section (git deletes it with the branch).
"""

from __future__ import annotations

import os
from pathlib import Path

# Configuration that could make git do more than unlink the ref: a hook
# folder elsewhere (and in it a reference-transaction hook), or other
# files read in.
_CONFIG_WORDS = (b"hookspath", b"[include", b"includeif")


def delete_loose_branch(common_dir: Path, branch: str, merged_sha: str,
                        admin_dirs: list[Path]) -> bool:
    """Delete ``refs/heads/<branch>`` of the repository whose common git
    folder is ``common_dir`` if it is a loose ref at ``merged_sha`` (which
    the caller found merged) and nothing stands in the way (see the module
    docstring); True if it was deleted, False if git must be asked.
    ``admin_dirs``: the administrative folders of every checkout (the
    common folder for the main one), whose HEAD and rebase or bisect state
    must not name the branch."""
    refname = f"refs/heads/{branch}"
    if not plain_repository(common_dir, hook="reference-transaction", branch=branch):
        return False
    if any(_names_branch(admin, refname, branch) for admin in admin_dirs):
        return False
    ref = common_dir / refname
    lock = ref.with_name(ref.name + ".lock")
    packed_lock = common_dir / "packed-refs.lock"
    if not _read(ref).strip() == merged_sha.encode("ascii"):
        return False
    if not _take(lock):
        return False
    log = common_dir / "logs" / refname
    try:
        if not _take(packed_lock):
            return False
        try:
            # Under both locks: the ref as verified, and no packed copy
            # that would take its place once the loose file is gone.
            if _read(ref).strip() != merged_sha.encode("ascii") or _in_packed_refs(common_dir, refname):
                return False
            ref.unlink()
            log.unlink(missing_ok=True)
        finally:
            packed_lock.unlink(missing_ok=True)
    finally:
        lock.unlink(missing_ok=True)
    _remove_empty_folders(ref.parent, common_dir / "refs" / "heads")
    _remove_empty_folders(log.parent, common_dir / "logs" / "refs" / "heads")
    return True


def plain_repository(common_dir: Path, *, hook: str, branch: str | None = None) -> bool:
    """Files refs, no ``hook`` that git would run, no configuration naming
    ``branch`` or reaching beyond the files read here."""
    if (common_dir / "reftable").exists():
        return False
    if any((key.startswith("GIT_CONFIG") and key != "GIT_CONFIG_NOSYSTEM") or key in ("GIT_DIR", "GIT_COMMON_DIR")
           for key in os.environ):
        # Configuration, or another repository, given to git in the
        # environment (leaving the system's file out only reads less).
        return False
    hooks = common_dir / "hooks" / hook
    if hooks.exists() or hooks.is_symlink():
        return False
    section = f'"{branch}"'.encode() if branch else None
    for path in _config_files(common_dir):
        text = _read(path)
        lowered = text.lower()
        if any(word in lowered for word in _CONFIG_WORDS) or (section is not None and section in text):
            return False
    return True


def _config_files(common_dir: Path) -> list[Path]:
    """Every configuration file git reads (system, global, the
    repository's), as git finds them by default."""
    home = Path(os.environ.get("HOME") or "~").expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    user = Path(xdg) / "git" / "config" if xdg else home / ".config" / "git" / "config"
    return [Path("/etc/gitconfig"), Path("/usr/local/etc/gitconfig"), home / ".gitconfig", user,
            common_dir / "config", common_dir / "config.worktree"]


def _names_branch(admin: Path, refname: str, branch: str) -> bool:
    """Whether a checkout has the branch as its HEAD, or is rebasing or
    bisecting (git refuses to delete a branch in use there)."""
    if _read(admin / "HEAD").strip() == f"ref: {refname}".encode():
        return True
    for state in ("rebase-merge", "rebase-apply"):
        if (admin / state).exists():
            return True
    return (admin / "BISECT_START").exists()


def _in_packed_refs(common_dir: Path, refname: str) -> bool:
    packed = _read(common_dir / "packed-refs")
    return f" {refname}\n".encode() in packed or packed.endswith(f" {refname}".encode())


def _take(lock: Path) -> bool:
    """Make a lock file exclusively, as git does; False if it exists (or
    cannot be made)."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except OSError:
        return False
    os.close(fd)
    return True


def _remove_empty_folders(folder: Path, stop: Path) -> None:
    """Remove ``folder`` and the folders above it below ``stop`` while
    they are empty, as git does after deleting a ref."""
    while folder != stop and folder.is_relative_to(stop):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
