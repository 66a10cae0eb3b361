"""``factory.toml``: reading it into a ``FactoryConfig``, and writing the first
one for ``factory init``.

TOML is read with the standard library's ``tomllib``; the first file is
written from a commented template so that a user who opens it sees what each
key does.

Everything is checked when the file is read, agent profiles included: a typo
in a key, a bad timeout or a placeholder the engine could not fill is one line
naming the file and the key before anything runs, never a task that fails
later (or a key silently ignored, leaving a default in force).
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from factory_tui.errors import ConfigError

MERGE_MODES = ("ff", "merge")
# The keys factory.toml may hold; anything else is a typo until proven
# otherwise. [peers] and each profile's env are free maps of names.
TOP_LEVEL_KEYS = (
    "name", "base_branch", "max_parallel", "merge", "default_agent", "worktree", "peers", "agents",
    "console", "qa", "mail", "artifacts", "planner", "log",
)
WORKTREE_KEYS = ("copy", "setup")
# [console]: how the operator console behaves (the console applies them).
CONSOLE_KEYS = ("keymap", "notify", "bell", "title")
# [qa]: the gate between an agent finishing and the operator's review.
QA_KEYS = ("enabled", "on_fail", "max_rounds", "max_parallel")
QA_ON_FAIL = ("requeue", "fail")
# [peers.NAME]: another factory, on this machine (path) or anywhere git
# reaches (remote), and what a request from it becomes.
PEER_KEYS = ("path", "remote", "accept")
PEER_ACCEPT = ("manual", "propose", "queue")
# [mail]: messages between factories; [mail.sources.NAME] are other tools'
# archives read as they are (never written).
MAIL_KEYS = ("sync_interval", "max_bytes", "sources")
SOURCE_KEYS = ("path",)
# [artifacts]: the living documents' share of a prompt, when the factory
# proposes to bring them up to date, and how long runs keep their files.
ARTIFACTS_KEYS = ("prompt_budget", "refresh_every", "stale_after", "keep_runs", "old_raw")
ARTIFACTS_OLD_RAW = ("compress", "drop")
# [planner]: the agent profile that turns a spec into a plan.
PLANNER_KEYS = ("profile",)
# [log]: the execution log's durability on power loss and its upkeep.
LOG_KEYS = ("synchronous", "keep_progress_days")
LOG_SYNCHRONOUS = ("normal", "full")
# A peer's or a source's name: also a factory's address, and a folder name.
PEER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# [agents] holds profiles (tables) and these plain keys: ``may``, the list of
# operator actions agents are allowed as well.
AGENTS_KEYS = ("may",)


def unknown_key(key: str, known: Iterable[str]) -> str:
    """The complaint about ``key``, with the nearest known key as a
    suggestion when one is close ("did you mean max_parallel?")."""
    known = list(known)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key {key}; did you mean {close[0]}?"
    return f"unknown key {key} (known: {', '.join(known)})"


def check_keys(table: dict, known: Iterable[str], *, where: str = "") -> str | None:
    """The complaint about the first key of ``table`` not in ``known``, or
    None; ``where`` (``[worktree] ``) says which table it is in."""
    known = tuple(known)
    for key in table:
        if key not in known:
            return where + unknown_key(key, known)
    return None


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """``[console]``: ``keymap`` maps the console's binding ids to keys
    (Textual's keymap: ``"ctrl+a"``, or several as ``"a,ctrl+a"``);
    ``notify``, ``bell`` and ``title`` switch the ways the console says a
    task needs the operator (a notification, the terminal bell, the count
    waiting for review in the terminal's title)."""

    keymap: dict[str, str] = field(default_factory=dict)
    notify: bool = True
    bell: bool = True
    title: bool = True


@dataclass(frozen=True, slots=True)
class QaConfig:
    """``[qa]``: ``enabled`` runs the scenarios of ``.factory/qa/`` on a
    finished run before review; a required one failing sends the task back
    to the queue with the report as feedback (``on_fail = "requeue"``) at
    most ``max_rounds`` times, then fails it (at once with ``"fail"``).
    ``max_parallel``: checks at once, in slots of their own; None: they
    share the engine's ``max_parallel`` with agent runs."""

    enabled: bool = True
    on_fail: str = "requeue"
    max_rounds: int = 2
    max_parallel: int | None = None


@dataclass(frozen=True, slots=True)
class Peer:
    """Another factory: ``path`` on this machine, or ``remote`` a git URL
    its mail branch is pushed to and fetched from. ``accept``: what a
    request from it becomes without the operator (manual: nothing)."""

    name: str
    path: str | None = None
    remote: str | None = None
    accept: str = "manual"


@dataclass(slots=True)
class MailConfig:
    sync_interval: float = 60.0  # seconds between the engine's git syncs
    max_bytes: int = 256 * 1024  # a larger file is quarantined, not read
    sources: dict[str, str] = field(default_factory=dict)  # name → folder


@dataclass(frozen=True, slots=True)
class ArtifactsConfig:
    """``[artifacts]``: ``prompt_budget``, the bytes of a prompt the living
    documents may fill together; ``refresh_every``, landings after which
    the factory proposes a task that brings the documents up to date (0:
    only on the operator's word); ``stale_after``, landings after which a
    document unchanged meanwhile is marked stale; ``keep_runs``, the newest
    runs that keep every file whole; older runs' raw output is compressed
    or dropped (``old_raw``), their transcript and record kept."""

    prompt_budget: int = 60_000
    refresh_every: int = 10
    stale_after: int = 20
    keep_runs: int = 50
    old_raw: str = "compress"


@dataclass(frozen=True, slots=True)
class PlannerConfig:
    """``[planner]``: ``profile``, the agent profile ``factory plan draft``
    runs (None: a profile named ``planner`` if there is one, else the demo
    planner)."""

    profile: str | None = None


@dataclass(frozen=True, slots=True)
class LogConfig:
    """``[log]``: ``synchronous``, what a commit waits for (SQLite's
    ``PRAGMA synchronous`` in WAL mode). ``"normal"``: a commit is written to
    the log's WAL file, which is flushed to the disk at each checkpoint; a
    power loss (not a crash of the program: that loses nothing) can lose
    the last transactions before it, never corrupt the log. ``"full"``: each
    commit waits for the WAL to reach the disk; nothing committed is lost,
    at the cost of one flush per transition.

    ``keep_progress_days``: how long the agents' progress lines stay in the
    log (None: for ever); the engine deletes older ones
    (backends/log_upkeep.py). Nothing else in the log is ever deleted."""

    synchronous: str = "normal"
    keep_progress_days: float | None = None


@dataclass(slots=True)
class FactoryConfig:
    name: str
    base_branch: str = "main"
    max_parallel: int = 2
    merge: str = "ff"
    default_agent: str | None = None
    # The profiles' tables, checked; [agents] may is not among them.
    agents: dict[str, dict] = field(default_factory=dict)
    peers: dict[str, Peer] = field(default_factory=dict)
    worktree_copy: list[str] = field(default_factory=list)
    worktree_setup: list[str] | None = None
    # `[agents] may`: what agents may do beyond reading, noting and proposing.
    agent_may: tuple[str, ...] = ()
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    qa: QaConfig = field(default_factory=QaConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    artifacts: ArtifactsConfig = field(default_factory=ArtifactsConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    log: LogConfig = field(default_factory=LogConfig)
    raw: dict = field(default_factory=dict)


def load_config(path: Path) -> FactoryConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing (run `factory init`)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} cannot be read: {error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    return config_from_dict(data, source=str(path))


def config_from_dict(data: dict, *, source: str = "factory.toml") -> FactoryConfig:
    # The profiles' own checks live with the profiles (agents builds on this
    # module, so it is imported here rather than at the top).
    from factory_tui.backends.agents import BUILTIN_PROFILES, profile_from_dict

    def fail(message: str) -> ConfigError:
        return ConfigError(f"{source}: {message}")

    if (problem := check_keys(data, TOP_LEVEL_KEYS)) is not None:
        raise fail(problem)
    name = data.get("name", "factory")
    if not isinstance(name, str) or not name.strip():
        raise fail("name must be a non-empty string")
    base_branch = data.get("base_branch", "main")
    if not isinstance(base_branch, str) or not base_branch.strip():
        raise fail("base_branch must be a non-empty string")
    max_parallel = data.get("max_parallel", 2)
    if isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1:
        raise fail(f"max_parallel must be a whole number of at least 1, not {max_parallel!r}")
    merge = data.get("merge", "ff")
    if merge not in MERGE_MODES:
        raise fail(f"merge must be one of {', '.join(MERGE_MODES)}, not {merge!r}")
    agents = data.get("agents", {})
    if not isinstance(agents, dict):
        raise fail("[agents] must be a table of profiles")
    # `may` is a key of [agents] beside the profiles, never a profile itself.
    agent_may = _agent_may(agents.get("may", []), fail)
    profiles = {}
    for key, value in agents.items():
        if key in AGENTS_KEYS:
            continue
        if not isinstance(value, dict):
            # Not a profile, so a plain key of [agents]: only the known ones.
            raise fail("[agents] " + unknown_key(key, AGENTS_KEYS))
        profile_from_dict(key, value, source=source)
        profiles[key] = value
    default_agent = data.get("default_agent")
    if default_agent is not None and not isinstance(default_agent, str):
        raise fail("default_agent must be a profile name")
    known_profiles = profiles or BUILTIN_PROFILES
    if default_agent is not None and default_agent not in known_profiles:
        raise fail(f"default_agent {default_agent!r} is not a profile (profiles: {', '.join(known_profiles)})")
    peers = _peers(data.get("peers", {}), fail)
    worktree = data.get("worktree", {})
    if not isinstance(worktree, dict):
        raise fail("[worktree] must be a table")
    if (problem := check_keys(worktree, WORKTREE_KEYS, where="[worktree] ")) is not None:
        raise fail(problem)
    copy = worktree.get("copy", [])
    if not isinstance(copy, list) or not all(isinstance(v, str) for v in copy):
        raise fail("[worktree] copy must be a list of paths")
    setup = worktree.get("setup")
    if setup is not None and (
        not isinstance(setup, list) or not setup or not all(isinstance(v, str) for v in setup)
    ):
        raise fail('[worktree] setup must be an argv list such as ["npm", "ci"], not a shell string')
    console = _console(data.get("console", {}), fail)
    qa = _qa(data.get("qa", {}), fail)
    mail = _mail(data.get("mail", {}), fail)
    artifacts = _artifacts(data.get("artifacts", {}), fail)
    planner = _planner(data.get("planner", {}), fail, profiles or BUILTIN_PROFILES)
    log = _log(data.get("log", {}), fail)
    return FactoryConfig(
        name=name.strip(),
        base_branch=base_branch.strip(),
        max_parallel=max_parallel,
        merge=merge,
        default_agent=default_agent,
        agents=profiles,
        peers=peers,
        worktree_copy=list(copy),
        worktree_setup=list(setup) if setup else None,
        agent_may=agent_may,
        console=console,
        qa=qa,
        mail=mail,
        artifacts=artifacts,
        planner=planner,
        log=log,
        raw=data,
    )


def _agent_may(may: object, fail) -> tuple[str, ...]:
    """``[agents] may``: the operator's actions agents are allowed as well,
    by name; a name that means nothing is refused rather than ignored."""
    from factory_tui.actors import MAY_NAMES

    if not isinstance(may, list) or not all(isinstance(v, str) for v in may):
        raise fail(f'[agents] may must be a list of actions such as ["cancel"] ({", ".join(MAY_NAMES)})')
    for name in may:
        if name not in MAY_NAMES:
            raise fail(f"[agents] may: unknown action {name!r} (actions: {', '.join(MAY_NAMES)})")
    return tuple(dict.fromkeys(may))


def _console(table: object, fail) -> ConsoleConfig:
    """``[console]``, checked whole: known keys, switches that are true or
    false, and a keymap of binding ids to key strings."""
    if not isinstance(table, dict):
        raise fail("[console] must be a table")
    if (problem := check_keys(table, CONSOLE_KEYS, where="[console] ")) is not None:
        raise fail(problem)
    switches = {}
    for key in ("notify", "bell", "title"):
        value = table.get(key, True)
        if not isinstance(value, bool):
            raise fail(f"[console] {key} must be true or false, not {value!r}")
        switches[key] = value
    keymap = table.get("keymap", {})
    if not isinstance(keymap, dict):
        raise fail('[console] keymap must be a table of binding ids and keys, such as { approve = "a" }')
    for binding, keys in keymap.items():
        if isinstance(keys, dict):
            # TOML reads plan.approve = "a" as a table plan holding approve.
            raise fail(
                f'[console] keymap: {binding} is a table; a binding id with a dot is quoted: "{binding}.…" = "key"'
            )
        if not isinstance(keys, str) or not keys.strip() or any(not part.strip() for part in keys.split(",")):
            raise fail(f'[console] keymap: {binding} must be a key such as "ctrl+a" (several: "a,ctrl+a"), not {keys!r}')
    return ConsoleConfig(keymap=dict(keymap), **switches)


def _qa(table: object, fail) -> QaConfig:
    """``[qa]``, checked whole: known keys, each of its type and range."""
    if not isinstance(table, dict):
        raise fail("[qa] must be a table")
    if (problem := check_keys(table, QA_KEYS, where="[qa] ")) is not None:
        raise fail(problem)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail(f"[qa] enabled must be true or false, not {enabled!r}")
    on_fail = table.get("on_fail", "requeue")
    if on_fail not in QA_ON_FAIL:
        raise fail(f"[qa] on_fail must be one of {', '.join(QA_ON_FAIL)}, not {on_fail!r}")
    max_rounds = table.get("max_rounds", 2)
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 0:
        raise fail(f"[qa] max_rounds must be a whole number of at least 0, not {max_rounds!r}")
    max_parallel = table.get("max_parallel")
    if max_parallel is not None and (
        isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
    ):
        raise fail(f"[qa] max_parallel must be a whole number of at least 1, not {max_parallel!r}")
    return QaConfig(enabled=enabled, on_fail=on_fail, max_rounds=max_rounds, max_parallel=max_parallel)


def _peers(table: object, fail) -> dict[str, Peer]:
    """``[peers]``: ``NAME = "path"`` (the first form, still valid) or
    ``[peers.NAME]`` with path or remote, and accept."""
    if not isinstance(table, dict):
        raise fail("[peers] must be a table")
    peers: dict[str, Peer] = {}
    for name, value in table.items():
        if not PEER_NAME.match(name):
            raise fail(f"[peers] {name!r} cannot be a factory's name (letters, digits, . _ -)")
        if isinstance(value, str):
            value = {"path": value}
        if not isinstance(value, dict):
            raise fail(f"[peers] {name} must be a path or a table with path or remote, not {value!r}")
        if (problem := check_keys(value, PEER_KEYS, where=f"[peers.{name}] ")) is not None:
            raise fail(problem)
        path, remote = value.get("path"), value.get("remote")
        for key, given in (("path", path), ("remote", remote)):
            if given is not None and (not isinstance(given, str) or not given.strip()):
                raise fail(f"[peers.{name}] {key} must be a non-empty string")
        if (path is None) == (remote is None):
            raise fail(f"[peers.{name}] needs one of path (same machine) or remote (a git URL), not "
                       + ("both" if path is not None else "neither"))
        accept = value.get("accept", "manual")
        if accept not in PEER_ACCEPT:
            raise fail(f"[peers.{name}] accept must be one of {', '.join(PEER_ACCEPT)}, not {accept!r}")
        peers[name] = Peer(name=name, path=path, remote=remote, accept=accept)
    return peers


def _mail(table: object, fail) -> MailConfig:
    """``[mail]``, checked whole, with its ``[mail.sources.NAME]`` tables."""
    if not isinstance(table, dict):
        raise fail("[mail] must be a table")
    if (problem := check_keys(table, MAIL_KEYS, where="[mail] ")) is not None:
        raise fail(problem)
    interval = table.get("sync_interval", 60)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 1:
        raise fail(f"[mail] sync_interval must be a number of seconds of at least 1, not {interval!r}")
    max_bytes = table.get("max_bytes", 256 * 1024)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1024:
        raise fail(f"[mail] max_bytes must be a whole number of at least 1024, not {max_bytes!r}")
    sources_table = table.get("sources", {})
    if not isinstance(sources_table, dict):
        raise fail("[mail] sources must be tables: [mail.sources.NAME] path = \"...\"")
    sources: dict[str, str] = {}
    for name, source in sources_table.items():
        if not PEER_NAME.match(name):
            raise fail(f"[mail.sources] {name!r} cannot be a source's name (letters, digits, . _ -)")
        if not isinstance(source, dict):
            raise fail(f"[mail.sources.{name}] must be a table with path")
        if (problem := check_keys(source, SOURCE_KEYS, where=f"[mail.sources.{name}] ")) is not None:
            raise fail(problem)
        path = source.get("path")
        if not isinstance(path, str) or not path.strip():
            raise fail(f"[mail.sources.{name}] path must be a non-empty string (a folder such as "
                       ".../projects/<slug>)")
        sources[name] = path
    return MailConfig(sync_interval=float(interval), max_bytes=max_bytes, sources=sources)


def _artifacts(table: object, fail) -> ArtifactsConfig:
    """``[artifacts]``, checked whole: known keys, each of its type and range."""
    if not isinstance(table, dict):
        raise fail("[artifacts] must be a table")
    if (problem := check_keys(table, ARTIFACTS_KEYS, where="[artifacts] ")) is not None:
        raise fail(problem)
    defaults = ArtifactsConfig()
    # key → the least it may be; a prompt budget under 1 KB shows nothing.
    least = {"prompt_budget": 1024, "refresh_every": 0, "stale_after": 1, "keep_runs": 0}
    numbers: dict[str, int] = {}
    for key, minimum in least.items():
        value = table.get(key, getattr(defaults, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise fail(f"[artifacts] {key} must be a whole number of at least {minimum}, not {value!r}")
        numbers[key] = value
    old_raw = table.get("old_raw", defaults.old_raw)
    if old_raw not in ARTIFACTS_OLD_RAW:
        raise fail(f"[artifacts] old_raw must be one of {', '.join(ARTIFACTS_OLD_RAW)}, not {old_raw!r}")
    return ArtifactsConfig(old_raw=old_raw, **numbers)


def _planner(table: object, fail, profiles: dict) -> PlannerConfig:
    """``[planner]``: its profile must be one of the base's (or the built-in
    demo planner, which every base has)."""
    from factory_tui.backends.agents import DEMO_PLANNER

    if not isinstance(table, dict):
        raise fail("[planner] must be a table")
    if (problem := check_keys(table, PLANNER_KEYS, where="[planner] ")) is not None:
        raise fail(problem)
    profile = table.get("profile")
    if profile is None:
        return PlannerConfig()
    if not isinstance(profile, str) or not profile.strip():
        raise fail(f"[planner] profile must be a profile's name, not {profile!r}")
    if profile not in profiles and profile != DEMO_PLANNER:
        raise fail(f"[planner] profile {profile!r} is not a profile (profiles: {', '.join(profiles)})")
    return PlannerConfig(profile=profile)


def _log(table: object, fail) -> LogConfig:
    """``[log]``, checked whole: known keys, and a durability by name."""
    if not isinstance(table, dict):
        raise fail("[log] must be a table")
    if (problem := check_keys(table, LOG_KEYS, where="[log] ")) is not None:
        raise fail(problem)
    synchronous = table.get("synchronous", LogConfig().synchronous)
    if synchronous not in LOG_SYNCHRONOUS:
        raise fail(f"[log] synchronous must be one of {', '.join(LOG_SYNCHRONOUS)}, not {synchronous!r}")
    days = table.get("keep_progress_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int | float) or not days > 0
                             or days == float("inf")):
        raise fail(f"[log] keep_progress_days must be a number of days above 0, not {days!r}")
    return LogConfig(synchronous=synchronous, keep_progress_days=float(days) if days is not None else None)


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string for everything we write.
    return json.dumps(value, ensure_ascii=False)


def render_initial_config(name: str, base_branch: str, agents: str = "") -> str:
    """The first factory.toml; ``agents`` is the text of its [agents.*] tables."""
    return f"""\
# factory-tui configuration (tracked in git). The README's "factory.toml"
# section lists every key.

# Shown in the console's header and in messages to other factories.
name = {_toml_string(name)}

# Task branches start from this branch, and approved work merges into it.
base_branch = {_toml_string(base_branch)}

# How many agents may run at once.
max_parallel = 2

# How an approved task branch lands: "ff" fast-forwards when it can and
# otherwise makes a merge commit; "merge" always makes a merge commit.
merge = "ff"

# The agent profile tasks run with, unless a task names its own. When unset,
# the first of claude, codex and aider found on PATH, else the demo agent.
# default_agent = "claude"

# New worktrees: files to copy in from this checkout, and a command to run
# there (an argv list, never a shell string).
[worktree]
copy = []
# setup = ["npm", "ci"]

# The operator console: how it says a task needs you (reached review,
# failed, blocked), each switchable, and keys of your own for its bindings.
[console]
notify = true   # a notification
bell = true     # the terminal bell
title = true    # the count waiting for review in the terminal's title
# keymap = {{ "binding-id" = "ctrl+a" }}   # the README lists the binding ids

# Quality assurance: the scenarios in .factory/qa/ run on an agent's
# finished work before it reaches review. A required one failing sends the
# task back with the report as feedback ("requeue"), at most max_rounds
# times, then fails it; "fail" fails it at once. QA checks share the
# engine's max_parallel slots unless given their own.
[qa]
# enabled = true
# on_fail = "requeue"
# max_rounds = 2
# max_parallel = 1

# Other factories this one exchanges messages with: by path on this
# machine, or by a git remote (mail travels on a factory/mail/<name> branch).
# accept: what a request from the peer becomes: "manual" (the operator's
# key), "propose" (a proposed task) or "queue" (a queued task).
[peers]
# backend = "../backend-repo"
# [peers.billing]
# remote = "git@example.com:acme/billing.git"
# accept = "propose"

# Messages: how often the engine syncs mail over git, the largest message
# file read, and other tools' archives read as they are (never written).
[mail]
# sync_interval = 60
# max_bytes = 262144
# [mail.sources.agent-mail]
# path = "../agent-mail-archive/projects/backend"

# Living documents (.factory/artifacts/*.md) and run artifacts: the bytes
# of a prompt the documents share, the landings after which the factory
# proposes a task to bring them up to date (0: only when asked), the
# landings after which an unchanged document is marked stale, and how many
# of the newest runs keep their raw output (older: "compress" or "drop").
[artifacts]
# prompt_budget = 60000
# refresh_every = 10
# stale_after = 20
# keep_runs = 50
# old_raw = "compress"

# The planner: the agent profile `factory plan draft` runs to turn a spec
# into a plan (unset: a profile named "planner", else the demo planner,
# which reads headings and lists and needs no model).
[planner]
# profile = "claude"

# The execution log (log.db). synchronous: what each commit waits for.
# "normal": the log is flushed to the disk at checkpoints, so a power loss
# (not a crash) may lose the last transactions, never corrupt the log;
# "full": every commit waits for the disk, nothing committed is lost, each a
# little slower. keep_progress_days: how many days the agents' progress
# lines are kept (unset: for ever); the engine deletes older ones in small
# batches; no transition, note, message or QA result is ever deleted.
[log]
# synchronous = "normal"
# keep_progress_days = 30

# Agent profiles. argv placeholders: {{prompt}} {{prompt_file}} {{task_id}}
# {{worktree}} {{python}}; output: claude-stream-json, codex-json or text;
# timeout in seconds; env adds to the agent's environment.
{agents}"""
