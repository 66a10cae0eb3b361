"""Mail between factories over git, with no server of our own.

Our outbox is published on a branch named after our factory,
``factory/mail/<name>``, whose tree mirrors the outbox
(``outbox/YYYY/MM/<file name>``), one commit per message. ``publish`` makes
that commit with git's plumbing and a temporary index, so the user's
checked-out branch, index, working tree and HEAD are never touched.

``sync`` meets each peer at its ``remote`` (any URL git reaches: a host, a
bare repository on a shared disk, ssh): it fetches the remote's mail
branches into a namespace of our own (``refs/factory-mail/<peer>/*``, so
nothing of the user's is touched), pushes our branch when the remote lacks
some of it (never forced: it only grows), and takes the messages on the
peers' branches that are addressed to us into our inbox. Several factories
meet at one bare repository without overwriting each other: each pushes only
its own branch, and peers sharing a remote are fetched once.

What was taken from a peer's branch is recorded as a ref,
``refs/factory-mail-taken/<peer>``, pointing at the commit last read. A ref
and not a file: it is updated atomically by git, it lives in the repository
(not in the tracked mailbox folder), and it keeps that commit alive against
``git gc`` so that the next sync reads only what was added after it. So a
message taken and later moved to quarantine does not come back, and a file
that was refused (it does not parse, it is a link, it is too large, it tries
to leave the mailbox) is reported once and not retried: it is the peer's to
fix with a new message.

A message copied into our inbox keeps the sender's bytes (a message file
never changes; its content hash is the same on both sides).

git runs as argv lists with a timeout (its whole process group is killed
then), no terminal prompts, ssh in batch mode, no hooks of the user's on
push, and only the transports that run no command of the URL's choosing;
a remote URL is passed after ``--``.

No SQLite and no Textual: the caller records what the reports say.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from factory_tui.backends.mailbox import is_message_name, message_path, write_atomically
from factory_tui.config import FactoryConfig, MailConfig, Peer
from factory_tui.errors import FactoryError
from factory_tui.mail_model import InvalidMessage, Message, factory_of, file_name, month_folder, parse_bytes

BRANCH_PREFIX = "factory/mail/"
FETCHED_PREFIX = "refs/factory-mail/"
TAKEN_PREFIX = "refs/factory-mail-taken/"
DEFAULT_TIMEOUT = 60.0
# Transports that run no command named by the URL (``ext::`` would).
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"
# Where a message file may be on a mail branch.
_PLACE = re.compile(r"^outbox/[0-9]{4}/[0-9]{2}/([^/]+)$")
_REGULAR_MODES = ("100644", "100755")
_LOCK_NAME = "factory-mail-sync.lock"


class MailGitError(FactoryError):
    """git could not do what mail needed; one line saying why."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A file on a peer's mail branch that was not taken, and why (it is
    the peer's to fix; it is not tried again)."""

    peer: str
    path: str  # on the peer's branch
    reason: str


@dataclass(frozen=True, slots=True)
class PeerSync:
    """What one sync did with one peer."""

    peer: str
    remote: str
    pushed: int = 0  # our messages newly on the peer's remote
    taken: tuple[Path, ...] = ()  # new files in our inbox, from the peer's branch
    refused: tuple[Refused, ...] = ()
    error: str | None = None  # one line: what failed (push, fetch or reading)
    behind: bool = False  # the remote lacks some of our messages: retried next sync


@dataclass(frozen=True, slots=True)
class SyncReport:
    peers: tuple[PeerSync, ...] = ()
    # When the sync began (epoch seconds): what was published before it and
    # not reported behind is on the peers' remotes.
    started: float = 0.0

    @property
    def taken(self) -> tuple[Path, ...]:
        return tuple(path for peer in self.peers for path in peer.taken)

    @property
    def refused(self) -> tuple[Refused, ...]:
        return tuple(item for peer in self.peers for item in peer.refused)

    @property
    def behind(self) -> tuple[str, ...]:
        """The peers that do not have all our messages yet."""
        return tuple(peer.peer for peer in self.peers if peer.behind)

    @property
    def errors(self) -> tuple[tuple[str, str], ...]:
        return tuple((peer.peer, peer.error) for peer in self.peers if peer.error)


def mail_branch(factory: str) -> str:
    """``factory/mail/<name>``: where a factory publishes its outbox."""
    return BRANCH_PREFIX + _ref_name(factory)


def branch_path(message: Message) -> str:
    """Where ``message`` is on its sender's mail branch."""
    return f"outbox/{month_folder(message)}/{file_name(message)}"


# --- publishing ----------------------------------------------------------------------


def publish(repo_root: Path, factory: str, message: Message, data: bytes, *,
            timeout: float = DEFAULT_TIMEOUT) -> str:
    """Commit ``data`` (the message's file) onto ``factory/mail/<factory>``
    at ``outbox/YYYY/MM/<file name>``, and return the branch's commit. The
    same file already there makes no commit; another file under that name
    is refused (a message file never changes). Raises MailGitError."""
    git = _Git(repo_root, timeout)
    ref = "refs/heads/" + mail_branch(factory)
    path = branch_path(message)
    identity = {"GIT_AUTHOR_NAME": factory, "GIT_AUTHOR_EMAIL": f"{factory}@factory.invalid",
                "GIT_COMMITTER_NAME": factory, "GIT_COMMITTER_EMAIL": f"{factory}@factory.invalid"}
    blob = git.text("hash-object", "-w", "--stdin", input=data)
    # update-ref with the old value refuses when another publisher moved
    # the branch meanwhile: read it again and make the commit again.
    for _attempt in range(20):
        old = git.commit_of(ref)
        if old is not None:
            there = git.text("ls-tree", "--full-tree", "-z", old, "--", path).rstrip("\0")
            if there:
                if there.split()[2] == blob:
                    return old
                raise MailGitError(f"{path} is already published on {mail_branch(factory)} with other "
                                   "content: a message file never changes")
        with tempfile.TemporaryDirectory(prefix="factory-mail-") as scratch:
            index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            if old is not None:
                git.run("read-tree", old, env=index)
            git.run("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
            tree = git.text("write-tree", env=index)
        parents = ["-p", old] if old is not None else []
        commit = git.text("commit-tree", "--no-gpg-sign", tree, *parents, "-m", f"mail: {file_name(message)}",
                          env=identity)
        try:
            git.run("update-ref", "-m", "factory mail: publish", ref, commit, old or "")
        except MailGitError:
            continue
        return commit
    raise MailGitError(f"{mail_branch(factory)} kept moving while publishing; try again")


# --- sync ----------------------------------------------------------------------------


def sync(repo_root: Path, factory: str, peers: Iterable[Peer], inbox_dir: Path, *,
         max_bytes: int = MailConfig().max_bytes, timeout: float = DEFAULT_TIMEOUT,
         stop: threading.Event | None = None) -> SyncReport:
    """Meet every peer that has a ``remote``: fetch the remote's mail
    branches, push ours when the remote lacks some of it, and take the
    messages on each peer's branch addressed to ``factory`` into
    ``inbox_dir``. Per-peer failures are in the report, never raised; one
    sync at a time per repository (another waits up to ``timeout``).
    ``stop``: set it to end the sync early (its git is killed)."""
    started = time.time()
    git = _Git(repo_root, timeout, stop)
    groups: dict[str, list[Peer]] = {}
    for peer in sorted(peers, key=lambda item: item.name):
        if peer.remote:
            groups.setdefault(peer.remote, []).append(peer)
    if not groups:
        return SyncReport(started=started)
    results: list[PeerSync] = []
    with _sync_lock(git, timeout):
        for remote, members in groups.items():
            if stop is not None and stop.is_set():
                break
            results.extend(_sync_remote(git, factory, remote, members, inbox_dir, max_bytes))
    return SyncReport(tuple(sorted(results, key=lambda item: item.peer)), started)


def _sync_remote(git: _Git, factory: str, remote: str, members: list[Peer], inbox_dir: Path,
                 max_bytes: int) -> list[PeerSync]:
    """One remote, fetched once for every peer that names it."""
    try:
        ours = mail_branch(factory)
        names = {peer.name: _ref_name(peer.name) for peer in members}
    except MailGitError as error:
        return [PeerSync(peer.name, remote, error=str(error)) for peer in members]
    # The namespace is named after the first peer of the remote.
    space = f"{FETCHED_PREFIX}{names[members[0].name]}/"
    local = git.commit_of("refs/heads/" + ours)
    fetch_error = push_error = None
    pushed = 0
    try:
        git.run("fetch", "--quiet", "--prune", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules",
                "--refmap=", "--", remote, f"+refs/heads/{BRANCH_PREFIX}*:{space}*", network=True)
    except MailGitError as error:
        fetch_error = f"fetch: {error}"
    # Fetched first, so that what the remote holds of our branch is known
    # now: nothing new is a cheap comparison, and a remote that lost our
    # branch gets it again.
    there_ref = space + _ref_name(factory)
    there = git.commit_of(there_ref)
    behind = local is not None and local != there
    if behind and fetch_error is None and local is not None:
        try:
            count = git.text("rev-list", "--count", local, *(["^" + there] if there else []))
            git.run("push", "--quiet", "--no-verify", "--porcelain", "--", remote,
                    f"refs/heads/{ours}:refs/heads/{ours}", network=True)
        except MailGitError as error:
            push_error = f"push: {error}"
        else:
            pushed, behind = int(count or 0), False
            # What the remote now holds of ours; the next fetch says it too.
            with contextlib.suppress(MailGitError):
                git.run("update-ref", there_ref, local)
    error_line = fetch_error or push_error
    results = []
    for peer in members:
        if peer.name == factory:
            results.append(PeerSync(peer.name, remote, error="a peer named like this factory: its mail is ours"))
            continue
        taken: list[Path] = []
        refused: list[Refused] = []
        peer_error = error_line
        if fetch_error is None:
            try:
                _take(git, factory, peer.name, space + names[peer.name], inbox_dir, max_bytes, taken, refused)
            except (MailGitError, OSError) as error:
                peer_error = f"taking mail: {_os_text(error)}"
        results.append(PeerSync(peer.name, remote, pushed=pushed, taken=tuple(taken), refused=tuple(refused),
                                error=peer_error, behind=behind))
    return results


def _take(git: _Git, factory: str, peer: str, fetched_ref: str, inbox_dir: Path, max_bytes: int,
          taken: list[Path], refused: list[Refused]) -> None:
    """The messages added to ``peer``'s branch since the last sync, those
    addressed to ``factory`` into ``inbox_dir``."""
    tip = git.commit_of(fetched_ref)
    if tip is None:
        return  # the peer has sent nothing yet
    record = TAKEN_PREFIX + _ref_name(peer)
    last = git.commit_of(record)
    if last == tip:
        return
    wanted: list[tuple[str, str]] = []  # (path, blob)
    for path, mode, blob in _added(git, last, tip):
        reason = _place_problem(path, mode)
        if reason is not None:
            refused.append(Refused(peer, path, reason))
        else:
            wanted.append((path, blob))
    for path, result in _read_blobs(git, wanted, max_bytes):
        if isinstance(result, str):
            refused.append(Refused(peer, path, result))
            continue
        data = result
        try:
            message = parse_bytes(data)
        except InvalidMessage as error:
            refused.append(Refused(peer, path, str(error)))
            continue
        if factory_of(message.sender) != peer:
            refused.append(Refused(peer, path, f"from {message.sender}, but on {peer}'s mail branch"))
            continue
        if not message.addressed_to(factory):
            continue
        target = message_path(inbox_dir, message)
        if target.exists() or target.is_symlink():
            continue  # already here (or taken by a sync just before)
        # An OSError (a full disk) leaves the record where it was: the
        # next sync tries these files again.
        write_atomically(target.parent, target.name, data)
        taken.append(target)
    # The old value makes a concurrent update lose quietly: it read the same.
    with contextlib.suppress(MailGitError):
        git.run("update-ref", "-m", "factory mail: taken", record, tip, last or "")


def _added(git: _Git, last: str | None, tip: str) -> Iterator[tuple[str, str, str]]:
    """(path, mode, blob) of every file added or changed from ``last`` (or
    from nothing) to ``tip``."""
    start = last or git.empty_tree()
    raw = git.output("diff-tree", "-r", "-z", "--no-renames", "--diff-filter=AMT", start, tip)
    parts = raw.split(b"\0")
    for meta, path in zip(parts[0::2], parts[1::2], strict=False):
        if not meta.startswith(b":"):
            continue
        fields = meta[1:].decode("ascii").split()
        yield path.decode("utf-8", "surrogateescape"), fields[1], fields[3]


def _place_problem(path: str, mode: str) -> str | None:
    """Why a file on a mail branch is not to be read, or None."""
    if mode == "120000":
        return "a symbolic link, not a message file"
    if mode == "160000":
        return "a submodule, not a message file"
    if mode not in _REGULAR_MODES:
        return f"not a regular file (mode {mode})"
    if path.startswith("/") or ".." in path.split("/") or "\\" in path:
        return "its path tries to leave the mailbox"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not UTF-8"
    found = _PLACE.match(path)
    if found is None:
        return "not in outbox/YYYY/MM/, where a mail branch holds its messages"
    if not is_message_name(found.group(1)):
        return "not a message file's name (*.md, not hidden, not temporary)"
    return None


def _read_blobs(git: _Git, wanted: list[tuple[str, str]], max_bytes: int) -> Iterator[tuple[str, bytes | str]]:
    """Each wanted file's bytes, or why not (too large): sizes are asked
    first, so that nothing over ``max_bytes`` is read at all."""
    if not wanted:
        return
    sizes = git.output("cat-file", "--batch-check", input="".join(f"{blob}\n" for _, blob in wanted).encode())
    small: list[tuple[str, str]] = []
    for (path, blob), line in zip(wanted, sizes.decode("ascii", "replace").splitlines(), strict=False):
        fields = line.split()
        if len(fields) != 3 or fields[1] != "blob":
            yield path, "not a file git can read"
        elif int(fields[2]) > max_bytes:
            yield path, f"{int(fields[2]):,} bytes; [mail] max_bytes is {max_bytes:,}"
        else:
            small.append((path, blob))
    if not small:
        return
    out = git.output("cat-file", "--batch", input="".join(f"{blob}\n" for _, blob in small).encode())
    at = 0
    for path, _blob in small:
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        yield path, out[header_end + 1: header_end + 1 + size]
        at = header_end + 1 + size + 1


@contextlib.contextmanager
def _sync_lock(git: _Git, timeout: float) -> Iterator[None]:
    """One sync at a time in a repository (the engine's and a command's):
    an advisory lock in git's own folder."""
    common = Path(git.text("rev-parse", "--git-common-dir"))
    if not common.is_absolute():
        common = git.root / common
    with open(common / _LOCK_NAME, "a+b") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise MailGitError("another mail sync of this repository is still running") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the engine's thread ---------------------------------------------------------------


@dataclass(slots=True)
class SyncLoop:
    """``sync`` every ``interval`` seconds in a thread of its own, until
    ``stop``; each report (or MailGitError's line) goes to ``on_report``."""

    repo_root: Path
    factory: str
    peers: tuple[Peer, ...]
    inbox_dir: Path
    interval: float
    max_bytes: int
    on_report: Callable[[SyncReport | str], None]
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="factory-mail-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop, ending a sync in progress (its git is killed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        report = self.on_report
        while not self._stop.is_set():
            try:
                report(sync(self.repo_root, self.factory, self.peers, self.inbox_dir, max_bytes=self.max_bytes,
                            stop=self._stop))
            except FactoryError as error:
                report(str(error))
            except Exception as error:  # noqa: BLE001 - the loop outlives one bad sync; the line says why
                report(f"mail sync failed: {type(error).__name__}: {error}")
            self._stop.wait(self.interval)


# --- running git ----------------------------------------------------------------------


def _ref_name(name: str) -> str:
    """``name`` when it can be a part of a git ref name."""
    if (not name or "/" in name or ".." in name or name.startswith(".") or name.endswith((".", ".lock"))
            or any(char in name for char in " ~^:?*[\\") or any(ord(char) < 0x21 for char in name)):
        raise MailGitError(f"{name!r} cannot name a git branch")
    return name


def _os_text(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}" + (f": {error.filename}" if error.filename else "")
    return str(error)


def _environment(extra: dict[str, str] | None, network: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never", "LC_ALL": "C",
                "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS})
    if network:
        env["GIT_SSH_COMMAND"] = (os.environ.get("GIT_SSH_COMMAND") or "ssh") + " -o BatchMode=yes"
    env.update(extra or {})
    return env


def _failure_line(stderr: bytes) -> str:
    """The line of git's complaint that matters."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    for prefix in ("fatal:", "error:", "!", "remote: error:"):
        for line in lines:
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()[:300]
    return lines[-1][:300] if lines else "git failed"


class _Git:
    """git in one repository: argv lists, a timeout, an optional stop."""

    def __init__(self, root: Path, timeout: float, stop: threading.Event | None = None) -> None:
        self.root = Path(root)
        self.timeout = timeout
        self.stop = stop
        self._empty_tree: str | None = None

    def output(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None,
               network: bool = False) -> bytes:
        argv = ["git", "-C", str(self.root), *args]
        try:
            process = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       env=_environment(env, network), start_new_session=True)
        except OSError as error:
            raise MailGitError(f"cannot run git: {_os_text(error)}") from None
        deadline = time.monotonic() + self.timeout
        pending = input
        while True:
            try:
                out, err = process.communicate(pending, timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pending = None  # communicate keeps what it has not written yet
                stopped = self.stop is not None and self.stop.is_set()
                if stopped or time.monotonic() > deadline:
                    # git's own children (ssh) are in its group: end them too.
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.communicate()
                    raise MailGitError("stopped" if stopped else f"git {args[0]} took longer than "
                                       f"{self.timeout:g} s") from None
        if process.returncode != 0:
            raise MailGitError(_failure_line(err))
        return out

    def run(self, *args: str, **options) -> None:
        self.output(*args, **options)

    def text(self, *args: str, **options) -> str:
        return self.output(*args, **options).decode("utf-8", "surrogateescape").strip()

    def commit_of(self, ref: str) -> str | None:
        """The commit ``ref`` names, or None when there is none."""
        try:
            return self.text("rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}") or None
        except MailGitError:
            return None

    def empty_tree(self) -> str:
        if self._empty_tree is None:
            self._empty_tree = self.text("hash-object", "-t", "tree", "--stdin", input=b"")
        return self._empty_tree


def start_sync_loop(repo_root: Path, config: FactoryConfig, inbox_dir: Path,
                    report: Callable[[str], None],
                    after: Callable[[SyncReport], None] | None = None) -> SyncLoop | None:
    """The engine's sync every ``[mail] sync_interval``, its lines to
    ``report`` (failures, and what moved), each report to ``after`` (the
    engine records deliveries with it); None when no peer has a remote."""
    peers = tuple(peer for peer in config.peers.values() if peer.remote)
    if not peers:
        return None

    def lines(result: SyncReport | str) -> None:
        if isinstance(result, str):
            report(f"mail sync failed: {result}")
            return
        if after is not None:
            try:
                after(result)
            except Exception as error:  # noqa: BLE001 - recording must not end the loop; the line says why
                report(f"mail sync: recording deliveries failed: {error}")
        for peer in result.peers:
            if peer.pushed or peer.taken:
                report(f"mail sync: {peer.peer}: pushed {peer.pushed}, fetched {len(peer.taken)} new")
            for item in peer.refused:
                report(f"mail sync: {peer.peer}: refused {item.path}: {item.reason}")
            if peer.error:
                report(f"mail sync: {peer.peer}: {peer.error}" + ("; tried again at the next sync" if peer.behind else ""))

    loop = SyncLoop(repo_root, config.name, peers, inbox_dir, interval=config.mail.sync_interval,
                    max_bytes=config.mail.max_bytes, on_report=lines)
    loop.start()
    return loop
