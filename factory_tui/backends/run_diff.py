"""A run's diff summary: what the task's branch holds when the run ends,
against where it left the base branch (their merge base, or the commit the
branch was made at when they share none), in files changed and lines added
and removed; and ``diff.stat``, the summary kept in the run's folder.

    3 files changed, +12 -4 (1a2b3c4d5e6f..9f8e7d6c5b4a)
    +10 -2  src/app.py
    +2 -2   README.md
    -  -    logo.png

The first line is the summary (read back by ``parse_summary`` for a run the
log did not index); the others are per file, binary files with ``-``. File
names are shown literally (a newline or an escape in a name cannot break
the file's lines or a terminal showing it).

The engine computes it (git, in its own thread) when a run ends; nothing
else runs git for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from factory_tui.text import literal

_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SUMMARY = re.compile(r"^(\d+) files? changed, \+(\d+) -(\d+)(?: \(([0-9a-f]{7,64})\.\.([0-9a-f]{7,64})\))?$")


@dataclass(frozen=True, slots=True)
class DiffSummary:
    files: int
    added: int
    removed: int
    base: str | None = None
    head: str | None = None
    # (added, removed, path); None counts for a binary file.
    per_file: tuple[tuple[int | None, int | None, str], ...] = field(default=(), compare=False)

    @property
    def text(self) -> str:
        """``3 files, +12 -4``."""
        return summary_text(self.files, self.added, self.removed)


def summary_text(files: int, added: int, removed: int) -> str:
    return f"{files} file{'s' if files != 1 else ''}, +{added} -{removed}"


def render_stat(summary: DiffSummary) -> str:
    """The text of ``diff.stat``."""
    files = summary.files
    head = f"{files} file{'s' if files != 1 else ''} changed, +{summary.added} -{summary.removed}"
    if summary.base and summary.head:
        head += f" ({summary.base[:12]}..{summary.head[:12]})"
    lines = [head]
    for added, removed, path in summary.per_file:
        counts = f"+{added} -{removed}" if added is not None and removed is not None else "-  -"
        lines.append(f"{counts:<12}{literal(path)}")
    return "\n".join(lines) + "\n"


def parse_summary(text: str) -> DiffSummary | None:
    """The summary line of a ``diff.stat``, or None if it is not one."""
    first = text.split("\n", 1)[0].strip()
    match = _SUMMARY.match(first)
    if not match:
        return None
    files, added, removed, base, head = match.groups()
    return DiffSummary(int(files), int(added), int(removed), base, head)


def parse_numstat(data: bytes) -> list[tuple[int | None, int | None, str]]:
    """``git diff --numstat -z`` output: (added, removed, path) per file;
    a rename's path is its new name."""
    tokens = data.split(b"\0")
    found: list[tuple[int | None, int | None, str]] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not token:
            continue
        parts = token.split(b"\t", 2)
        if len(parts) < 3:
            continue
        added = int(parts[0]) if parts[0].isdigit() else None
        removed = int(parts[1]) if parts[1].isdigit() else None
        path = parts[2]
        if not path:
            # A rename or copy: the old name and the new one follow.
            index += 2
            path = tokens[index - 1] if index - 1 < len(tokens) else b""
        found.append((added, removed, path.decode("utf-8", errors="replace")))
    return found


def summarise(numstat: list[tuple[int | None, int | None, str]], base: str, head: str) -> DiffSummary:
    return DiffSummary(
        files=len(numstat),
        added=sum(added or 0 for added, _, _ in numstat),
        removed=sum(removed or 0 for _, removed, _ in numstat),
        base=base, head=head, per_file=tuple(numstat),
    )


def branch_summary(
    root, base_branch: str, branch: str, branch_start: str | None, *, head: str | None = None,
    since: str | None = None,
) -> DiffSummary | None:
    """The diff summary of ``branch`` against where it left ``base_branch``
    (git, in the repository at ``root``); None when the branch is gone or
    git cannot tell. ``head``: the branch's commit when the caller has read
    it already (from the ref's file); ``since``: their merge base when the
    caller knows it (the base branch's commit, when the head descends from
    it): a git process fewer each."""
    import git  # GitPython costs ~0.1 s to import: only the engine's end of a run needs it

    runner = git.Git(str(root))

    def run(*args: str, raw: bool = False) -> tuple[int, str | bytes]:
        try:
            status, out, _ = runner.execute(
                ["git", *args], with_extended_output=True, with_exceptions=False,
                stdout_as_string=not raw, env={"GIT_OPTIONAL_LOCKS": "0"},
            )
        except git.GitCommandNotFound:
            return 1, b"" if raw else ""
        return status, out if out is not None else (b"" if raw else "")

    if head is None or not _FULL_SHA.fullmatch(head):
        status, found = run("rev-parse", "--verify", "-q", f"refs/heads/{branch}^{{commit}}")
        if status != 0 or not isinstance(found, str) or not found.strip():
            return None
        head = found.strip()
    if since is None or not _FULL_SHA.fullmatch(since):
        status, found = run("merge-base", f"refs/heads/{base_branch}", head)
        since = found.strip() if status == 0 and isinstance(found, str) else ""
    if not since and branch_start and _FULL_SHA.fullmatch(branch_start):
        since = branch_start
    if not since:
        return None
    status, out = run("diff", "--numstat", "-z", "--no-renames", "--no-color", "--no-ext-diff", since, head, raw=True)
    if status != 0 or not isinstance(out, bytes):
        return None
    return summarise(parse_numstat(out), since, head)
