"""The session history: what goes into a task's landing, and
``.factory/artifacts/history.md`` written from the log.

When the operator's approval lands a task (``operator.py``), its landing
is gathered here first (``gather_landing``: the agent profile of its last
run and the command it ran, its attempts, the latest verdict of each QA
scenario, its runs' cost and tokens, its agent's last words) and written
by the approval's own transaction. Then ``after_landing`` renders the
history file and proposes the refresh task when enough landed
(``refresh.py``), both under the operator lock the approval holds, so two
approvals never write the file at once; a reader never sees half a file
(a temporary file renamed into place).

Why history.md is kept out of git (``.factory/.gitignore`` has
``artifacts/history.md``): it is rewritten at every approval in the
operator's checkout, the very checkout approvals merge into. Tracked, it
would be a modified file there after every landing, and a task branch that
touched it could no longer be fast-forwarded in. The log is the history's
record (``landings``); the file is its rendering for people, and prompts
render it from the log themselves. So the file is written only where git
ignores it (and never over a ``history.md`` that is not the factory's: one
without ``generated: true``): what is refused is a warning, not a failed
approval.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from factory_tui.artifacts_model import Landing, QaVerdict
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.documents import HISTORY_NAME, LivingDocument, parse_document, read_document
from factory_tui.backends.documents_log import REFRESH_SOURCE
from factory_tui.backends.history import HISTORY_BUDGET, render_history
from factory_tui.backends.log import ExecutionLog
from factory_tui.config import FactoryConfig
from factory_tui.errors import FactoryError
from factory_tui.model import Task

LAST_WORDS_KEPT = 2_000
# Landings read per page while the history is rendered: a page holds more
# than the budget shows, so one read is the usual case.
HISTORY_PAGE = 64
GIT_TIMEOUT = 30


# --- a landing --------------------------------------------------------------------


def gather_landing(base: FactoryBase, log: ExecutionLog, task: Task, *, actor: str, commit: str | None,
                   config: FactoryConfig | None = None) -> Landing:
    """The history's entry for ``task`` landing now at ``commit`` (None:
    nothing was merged). Its time is the approval's, set by the log."""
    from factory_tui.backends.qa_checks import last_words
    from factory_tui.backends.runs import read_json

    record = read_json(base.run_dir(task.id, task.attempts) / "run.json") if task.attempts else None
    profile = str(record["profile"]) if record and record.get("profile") else None
    agent = command_name([str(item) for item in record["argv"]]) if record and isinstance(record.get("argv"), list) else None
    if profile is None and task.attempts:
        profile = task.profile
    if profile is not None and agent is None:
        agent = _profile_command(profile, config or _config(base))
    latest: dict[str, QaVerdict] = {}
    for run in log.qa_runs(task_id=task.id, limit=500):
        result = run.result
        latest.setdefault(result.scenario, QaVerdict(result.scenario, str(result.verdict), str(result.gate)))
    _, cost, tokens_in, tokens_out = log.run_totals(task.id)
    words = last_words(log, task.id).strip()
    return Landing(
        task_id=task.id, title=task.title, at=0.0, actor=actor, profile=profile, agent=agent,
        attempts=task.attempts, qa=tuple(sorted(latest.values(), key=lambda item: item.scenario)),
        cost_usd=cost, input_tokens=tokens_in, output_tokens=tokens_out,
        last_words=words[:LAST_WORDS_KEPT] or None, commit=commit, refresh=task.source == REFRESH_SOURCE,
    )


def command_name(argv: list[str]) -> str | None:
    """What an agent's argv runs, in a word, as the run index names it
    (``run_folders.agent_of``: ``claude``, ``factory_tui.demo_agent``),
    never its arguments (they hold the prompt). A profile's own argv says
    ``{python}`` where a run's says the interpreter."""
    from factory_tui.backends.run_folders import agent_of

    return agent_of(["python" if part == "{python}" else part for part in argv])


def _profile_command(name: str, config: FactoryConfig | None) -> str | None:
    if config is None:
        return None
    from factory_tui.backends.agents import load_profiles

    try:
        profile = load_profiles(config).get(name)
    except FactoryError:
        return None
    return command_name(list(profile.argv)) if profile else None


def _config(base: FactoryBase) -> FactoryConfig | None:
    try:
        return base.config()
    except FactoryError:
        return None


# --- the history document --------------------------------------------------------------


def history_text(log: ExecutionLog, *, budget: int = HISTORY_BUDGET) -> str:
    """history.md's text, from the log: the newest landings that fit."""
    return _history(log, budget)[1]


def _history(log: ExecutionLog, budget: int) -> tuple[int, str]:
    """(landings in all, history.md's text). Landings are only ever added,
    so the text rendered for the same count and newest landing of the same
    log is taken again: an approval writes the file, and the next prompt
    shows the same history."""
    total, newest = log.landing_mark()
    key = (str(log.path), total, newest, budget)
    with _RENDERED_LOCK:
        if _RENDERED.get("key") == key:
            return total, str(_RENDERED["text"])
    text = render_history(_newest(log, total), total, budget=budget)
    with _RENDERED_LOCK:
        _RENDERED.update(key=key, text=text, document=None)
    return total, text


# The history rendered last, by (log, landings, newest landing, budget), and
# its parsed document once asked for: one log's history is rendered once per
# landing, however often it is shown.
_RENDERED: dict[str, object] = {}
_RENDERED_LOCK = threading.Lock()


def _newest(log: ExecutionLog, total: int):
    """Landings newest first, read a page at a time as the rendering asks."""
    before: int | None = None
    read = 0
    while read < total:
        page = log.landings(limit=HISTORY_PAGE, before_id=before)
        if not page:
            return
        yield from page
        read += len(page)
        before = page[-1].id


def history_document(log: ExecutionLog) -> LivingDocument | None:
    """The session history as a living document (None before the first
    landing), rendered from the log."""
    total, text = _history(log, HISTORY_BUDGET)
    if total == 0:
        return None
    with _RENDERED_LOCK:
        known = _RENDERED.get("document")
        if _RENDERED.get("text") is text and isinstance(known, LivingDocument):
            return known
    document = parse_document(HISTORY_NAME, text.encode("utf-8"))
    with _RENDERED_LOCK:
        if _RENDERED.get("text") is text:
            _RENDERED["document"] = document
    return document


def ours(path: Path, root: Path) -> bool:
    """Whether ``path`` may be (re)written as the history: absent, a
    regular file (no link) whose front matter says ``generated: true``, or
    one that is empty or zeroed (see ``write_atomically``)."""
    try:
        seen = os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        seen = None
    if seen is not None and _WRITTEN.get(str(path)) == _signature(seen):
        return True  # the very file this process wrote last: no need to parse it
    if path.is_symlink():
        return False
    if _blank(path):
        return True  # what a power loss may leave of our unsynced file: nobody's words
    return read_document(path, root=root).generated


def _blank(path: Path) -> bool:
    """A regular file that is empty or holds only NUL bytes."""
    try:
        if not path.is_file() or path.stat().st_size > 1 << 20:
            return False
        return not path.read_bytes().strip(b"\0")
    except OSError:
        return False


# The history files this process wrote, by path: what a stat said of each
# right after. Any other write (an editor's, a rename over it) changes the
# inode, the size or the time, and the file is read again (all but a write
# in place of the same size within the clock's tick after ours).
_WRITTEN: dict[str, tuple[int, int, int, int]] = {}


def _signature(stat: os.stat_result) -> tuple[int, int, int, int]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def write_history(base: FactoryBase, log: ExecutionLog) -> str | None:
    """Write history.md from the log; None, or why it was not written."""
    path = base.artifacts_dir / HISTORY_NAME
    if not ours(path, base.root):
        return (f".factory/artifacts/{HISTORY_NAME} is not the factory's (its front matter lacks generated: true): "
                "the session history was not written there; rename that file to have it written")
    if not _ignored(base.root, path):
        return (f".factory/artifacts/{HISTORY_NAME} is not ignored by git (or is tracked): the session history "
                "was not written, so that the checkout approvals merge into stays clean; `factory init` adds "
                "the rule to .factory/.gitignore (and `git rm --cached` untracks the file)")
    text = history_text(log)
    _WRITTEN.pop(str(path), None)
    try:
        write_atomically(path, text)
        _WRITTEN[str(path)] = _signature(os.lstat(path))
    except OSError as error:
        return f"the session history could not be written to .factory/artifacts/{HISTORY_NAME}: {error.strerror or error}"
    return None


def write_atomically(path: Path, text: str) -> None:
    """The whole file or none of it, for a reader: a temporary file of a
    unique name in the same folder, renamed over ``path``. Not synced: the
    file is a rendering of the log, written again at the next landing, and
    what a power loss may leave of it (an empty or zeroed file) is taken
    as the factory's own (``ours``) and written over."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)


def _ignored(root: Path, path: Path) -> bool:
    """Whether git ignores ``path`` and does not track it. Told without
    git when the factory's own rule settles it (``_surely_ignored``), as at
    nearly every landing; otherwise git's ``check-ignore`` says."""
    if _surely_ignored(root, path):
        return True
    try:
        done = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", str(path.relative_to(root))],
                              capture_output=True, timeout=GIT_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError, ValueError):
        return False
    return done.returncode == 0


# The rule `factory init` writes to .factory/.gitignore for the history.
_OUR_RULES = (f"artifacts/{HISTORY_NAME}", f"/artifacts/{HISTORY_NAME}")
# Environment that moves git's repository, index or configuration: then
# only git can say.
_GIT_PLACES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_CONFIG_PARAMETERS",
               "GIT_CONFIG_COUNT")


def _surely_ignored(root: Path, path: Path) -> bool:
    """True only when git would surely say ``.factory/artifacts/history.md``
    is ignored and untracked, read from files; False means "ask git".

    Ignored: ``.factory/.gitignore`` holds the rule ``factory init`` wrote
    and no negation (``!``), and ``.factory/artifacts/`` has no
    ``.gitignore`` of its own. A deeper .gitignore overrides every shallower
    one and all of them override ``info/exclude`` and ``core.excludesFile``
    (gitignore(5)), so nothing else can re-include the file. Untracked: the
    main checkout's index (version 2 or 3, not split, not sparse) does not
    hold the path; each entry there holds its whole path, NUL-ended."""
    factory_dir = root / ".factory"
    if path != factory_dir / "artifacts" / HISTORY_NAME or any(name in os.environ for name in _GIT_PLACES):
        return False
    rules = factory_dir / ".gitignore"
    try:
        # git does not follow a link on the way (nor a linked .gitignore).
        if any(place.is_symlink() for place in (factory_dir, factory_dir / "artifacts", rules)):
            return False
        if os.path.lexists(factory_dir / "artifacts" / ".gitignore"):
            return False
        lines = rules.read_bytes().decode("utf-8").split("\n")
    except (OSError, UnicodeDecodeError):
        return False
    # git drops trailing spaces (not tabs, not a carriage return: such a
    # line matches no rule of ours here, and git is asked).
    patterns = [line.rstrip(" ") for line in lines if line.strip() and not line.startswith("#")]
    if any(pattern.startswith("!") for pattern in patterns) or not any(p in _OUR_RULES for p in patterns):
        return False
    return _surely_untracked(root / ".git", f".factory/artifacts/{HISTORY_NAME}")


def _surely_untracked(git_dir: Path, name: str) -> bool:
    """True only when the index in ``git_dir`` surely lacks ``name``."""
    if not git_dir.is_dir() or any(git_dir.glob("sharedindex.*")) or (git_dir / "info" / "sparse-checkout").exists():
        return False  # a linked checkout, a split index, a sparse checkout: git says
    try:
        data = (git_dir / "index").read_bytes()
    except FileNotFoundError:
        return True  # no index yet: nothing is tracked
    except OSError:
        return False
    if data[:4] != b"DIRC" or int.from_bytes(data[4:8], "big") not in (2, 3):
        return False  # version 4 compresses paths: git says
    # A longer path ending the same way also matches: then git says.
    return name.encode("utf-8") + b"\0" not in data


# --- after a landing -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AfterLanding:
    """What followed a landing: what went wrong (the task landed anyway),
    and the refresh task if one was proposed."""

    warnings: tuple[str, ...] = ()
    proposed: Task | None = None

    def lines(self) -> list[str]:
        news = [f"{self.proposed.id} proposed: {self.proposed.title}"] if self.proposed else []
        return [*self.warnings, *news]


def after_landing(base: FactoryBase, log: ExecutionLog, *, actor: str) -> AfterLanding:
    """What follows a landing (under the approval's operator lock): the
    history file written, and the refresh task proposed when
    ``[artifacts] refresh_every`` landings have come since the last one.
    Never raises for either."""
    from factory_tui.backends.refresh import propose_if_due

    warnings: list[str] = []
    try:
        warning = write_history(base, log)
    except FactoryError as error:
        warning = f"the session history could not be written: {error}"
    if warning:
        warnings.append(warning)
    proposed = None
    config = _config(base)
    if config is not None:
        try:
            proposed = propose_if_due(base, log, config, actor=actor)
        except (FactoryError, OSError) as error:
            warnings.append(f"the living documents' refresh could not be proposed: {error}")
    return AfterLanding(tuple(warnings), proposed)
