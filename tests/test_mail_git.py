"""Mail between factories over git: clones of one project meeting at a bare
repository (real git, in tmp folders), publishing on factory/mail/<name>
without touching the user's checkout, and sync taking what is addressed to
us into the inbox, once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from factory_tui.backends.mail_git import (
    MailGitError,
    SyncLoop,
    SyncReport,
    branch_path,
    mail_branch,
    publish,
    sync,
)
from factory_tui.backends.mailbox import message_files, put, quarantine, read_message
from factory_tui.config import Peer
from factory_tui.mail_model import MessageKind, new_message, render, reply_to
from tests.engine_helpers import wait_for

AT = datetime(2026, 11, 29, 13, 5, 9, tzinfo=UTC)


def git(where: Path, *args: str, input: bytes | None = None) -> str:
    return subprocess.run(["git", "-C", str(where), *args], capture_output=True, check=True,
                          input=input).stdout.decode().strip()


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    """The meeting point: a bare repository with the project's first commit."""
    bare = tmp_path / "hub.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    seed = tmp_path / "seed"
    subprocess.run(["git", "clone", "-q", str(bare), str(seed)], check=True, capture_output=True)
    (seed / "README.md").write_text("# the project\n")
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "start")
    git(seed, "push", "-q", "origin", "HEAD:main")
    return bare


def clone(hub: Path, name: str) -> Path:
    where = hub.parent / name
    subprocess.run(["git", "clone", "-q", str(hub), str(where)], check=True, capture_output=True)
    return where


def send(repo: Path, sender: str, to: list[str], subject: str, body: str = "", **fields) -> tuple:
    """What `factory mail send` does for a remote peer: the outbox copy,
    then the commit on our mail branch."""
    message = new_message(sender, to, subject, body, created=AT, **fields)
    put(box(repo) / "outbox", message)
    data = render(message).encode()
    return message, publish(repo, sender, message, data)


def box(repo: Path) -> Path:
    """A clone's mailbox, kept beside it here (a base keeps it in .factory/)."""
    return repo.parent / f"{repo.name}-mailbox"


def inbox_of(repo: Path) -> list[Path]:
    return list(message_files(box(repo) / "inbox"))


def peers(hub: Path, *names: str) -> list[Peer]:
    return [Peer(name=name, remote=str(hub)) for name in names]


def commit_count(repo: Path, ref: str) -> int:
    return int(git(repo, "rev-list", "--count", ref))


# --- publishing ---------------------------------------------------------------------


def test_publishing_commits_on_the_mail_branch_and_leaves_the_checkout_alone(hub):
    a = clone(hub, "a")
    # The user's own work in progress: a staged change and an unstaged one.
    (a / "README.md").write_text("# the project, staged\n")
    git(a, "add", "README.md")
    (a / "notes.txt").write_text("mine\n")
    before = (git(a, "rev-parse", "HEAD"), git(a, "symbolic-ref", "HEAD"), git(a, "status", "--porcelain"),
              git(a, "diff", "--cached"), (a / ".git" / "index").read_bytes())

    message, first = send(a, "a", ["b"], "Stock, please", "Body.")
    assert git(a, "rev-parse", "refs/heads/factory/mail/a") == first
    assert git(a, "ls-tree", "-r", "--name-only", first) == branch_path(message)
    assert branch_path(message).startswith("outbox/2026/11/")
    assert git(a, "show", f"{first}:{branch_path(message)}") == render(message).strip()
    _, second = send(a, "a", ["b"], "Another")
    assert git(a, "rev-parse", f"{second}^") == first  # one commit per send, on top
    assert len(git(a, "ls-tree", "-r", "--name-only", second).splitlines()) == 2

    after = (git(a, "rev-parse", "HEAD"), git(a, "symbolic-ref", "HEAD"), git(a, "status", "--porcelain"),
             git(a, "diff", "--cached"), (a / ".git" / "index").read_bytes())
    assert after == before
    assert "M  README.md" in after[2]  # still staged, as the user left it


def test_publishing_the_same_file_again_makes_no_commit_and_other_bytes_are_refused(hub):
    a = clone(hub, "a")
    message, first = send(a, "a", ["b"], "Once")
    assert publish(a, "a", message, render(message).encode()) == first
    assert commit_count(a, "factory/mail/a") == 1
    with pytest.raises(MailGitError, match="never changes"):
        publish(a, "a", message, render(message).encode() + b"tampered\n")


def test_publishers_racing_each_other_lose_nothing(hub):
    a = clone(hub, "a")
    messages = [new_message("a", ["b"], f"Message {n}", created=AT) for n in range(8)]
    errors: list[BaseException] = []

    def publish_one(message):
        try:
            publish(a, "a", message, render(message).encode())
        except BaseException as error:  # noqa: BLE001 - shown by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=publish_one, args=(message,)) for message in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert commit_count(a, "factory/mail/a") == 8
    assert sorted(git(a, "ls-tree", "-r", "--name-only", "factory/mail/a").splitlines()) == sorted(
        branch_path(message) for message in messages)


def test_a_factory_name_that_cannot_be_a_branch_is_refused(hub):
    a = clone(hub, "a")
    message = new_message("a..b", ["b"], "Hello", created=AT)
    with pytest.raises(MailGitError, match="cannot name a git branch"):
        publish(a, "a..b", message, render(message).encode())


# --- sync -----------------------------------------------------------------------------


def test_mail_goes_both_ways_through_a_bare_repository(hub):
    a, b = clone(hub, "a"), clone(hub, "b")
    request, _ = send(a, "a", ["b/planner"], "Stock, please", "How many widgets?", kind=MessageKind.REQUEST)

    sent = sync(a, "a", peers(hub, "b"), box(a) / "inbox")
    assert [(item.peer, item.pushed, item.taken, item.error, item.behind) for item in sent.peers] == [
        ("b", 1, (), None, False)]
    assert git(hub, "rev-parse", "refs/heads/factory/mail/a") == git(a, "rev-parse", "factory/mail/a")

    received = sync(b, "b", peers(hub, "a"), box(b) / "inbox")
    assert len(received.taken) == 1 and inbox_of(b) == list(received.taken)
    found = read_message(received.taken[0], inside=box(b) / "inbox", max_bytes=10_000)
    assert found.message == request  # type: ignore[union-attr]
    # The sender's bytes, as published: the content hash is the same on both sides.
    assert received.taken[0].read_bytes() == render(request).encode()

    answer = reply_to(request, sender="b", body="Forty.")
    put(box(b) / "outbox", answer)
    publish(b, "b", answer, render(answer).encode())
    assert sync(b, "b", peers(hub, "a"), box(b) / "inbox").peers[0].pushed == 1
    back = sync(a, "a", peers(hub, "b"), box(a) / "inbox")
    assert [read_message(path, inside=box(a) / "inbox", max_bytes=10_000).message.in_reply_to  # type: ignore[union-attr]
            for path in back.taken] == [request.id]
    # Nothing of the user's was touched: no remote-tracking branch, no tag, the same HEAD.
    assert git(a, "for-each-ref", "--format=%(refname)", "refs/remotes/origin/factory") == ""
    assert git(a, "status", "--porcelain", "--untracked-files=no") == ""


def test_syncing_twice_takes_nothing_twice_and_pushes_nothing_new(hub):
    a, b = clone(hub, "a"), clone(hub, "b")
    send(a, "a", ["b"], "Hello")
    sync(a, "a", peers(hub, "b"), box(a) / "inbox")
    assert len(sync(b, "b", peers(hub, "a"), box(b) / "inbox").taken) == 1
    hub_commits = commit_count(hub, "factory/mail/a")

    again_a = sync(a, "a", peers(hub, "b"), box(a) / "inbox")
    again_b = sync(b, "b", peers(hub, "a"), box(b) / "inbox")
    assert (again_a.peers[0].pushed, again_a.taken, again_b.taken) == (0, (), ())
    assert len(inbox_of(b)) == 1
    assert commit_count(hub, "factory/mail/a") == hub_commits
    assert commit_count(a, "factory/mail/a") == 1


def test_a_message_taken_and_then_quarantined_does_not_come_back(hub):
    a, b = clone(hub, "a"), clone(hub, "b")
    send(a, "a", ["b"], "Hello")
    sync(a, "a", peers(hub, "b"), box(a) / "inbox")
    [taken] = sync(b, "b", peers(hub, "a"), box(b) / "inbox").taken
    quarantine(taken, "the operator's ingestion refused it", box(b) / "quarantine")
    send(a, "a", ["b"], "Second")
    sync(a, "a", peers(hub, "b"), box(a) / "inbox")
    [second] = sync(b, "b", peers(hub, "a"), box(b) / "inbox").taken
    assert "second" in second.name and inbox_of(b) == [second]


def test_three_factories_at_one_bare_repository_each_get_their_own_mail(hub):
    a, b, c = clone(hub, "a"), clone(hub, "b"), clone(hub, "c")
    send(a, "a", ["b"], "A to B")
    send(a, "a", ["c"], "A to C")
    send(b, "b", ["c"], "B to C", cc=("a",))
    send(c, "c", ["a", "b"], "C to both")
    everyone = {"a": a, "b": b, "c": c}
    for _round in range(2):
        for name, repo in everyone.items():
            report = sync(repo, name, peers(hub, *(other for other in everyone if other != name)), box(repo) / "inbox")
            assert report.errors == () and report.behind == ()
    subjects = {name: sorted(read_message(path, inside=box(repo) / "inbox", max_bytes=10_000).message.subject  # type: ignore[union-attr]
                             for path in inbox_of(repo)) for name, repo in everyone.items()}
    assert subjects == {"a": ["B to C", "C to both"], "b": ["A to B", "C to both"], "c": ["A to C", "B to C"]}
    # Each branch on the hub is its owner's, with all its mail.
    assert commit_count(hub, "factory/mail/a") == 2
    assert commit_count(hub, "factory/mail/b") == commit_count(hub, "factory/mail/c") == 1


def test_mail_from_a_factory_that_is_not_a_peer_is_not_taken(hub):
    a, b, c = clone(hub, "a"), clone(hub, "b"), clone(hub, "c")
    send(c, "c", ["b"], "From a stranger")
    sync(c, "c", peers(hub, "b"), box(c) / "inbox")
    send(a, "a", ["b"], "From a peer")
    sync(a, "a", peers(hub, "b"), box(a) / "inbox")
    report = sync(b, "b", peers(hub, "a"), box(b) / "inbox")
    assert ["from-a-peer" in path.name for path in report.taken] == [True]


def test_peers_sharing_a_remote_are_fetched_once(hub, tmp_path, monkeypatch):
    a, b = clone(hub, "a"), clone(hub, "b")
    send(b, "b", ["a"], "From B")
    sync(b, "b", peers(hub, "a"), box(b) / "inbox")
    trace = tmp_path / "trace"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    report = sync(a, "a", peers(hub, "b", "c", "d"), box(a) / "inbox")
    monkeypatch.delenv("GIT_TRACE")
    assert [peer.peer for peer in report.peers] == ["b", "c", "d"] and len(report.taken) == 1
    assert trace.read_text().count("built-in: git fetch") == 1


def test_a_push_that_fails_is_reported_and_delivered_at_a_later_sync(hub, tmp_path):
    a, b = clone(hub, "a"), clone(hub, "b")
    later = tmp_path / "later.git"  # not there yet
    send(a, "a", ["b"], "Wait for me")
    failed = sync(a, "a", [Peer("b", remote=str(later))], box(a) / "inbox")
    [peer] = failed.peers
    assert peer.behind and failed.behind == ("b",) and peer.pushed == 0
    assert peer.error and "\n" not in peer.error and str(later) in peer.error

    subprocess.run(["git", "init", "-q", "--bare", str(later)], check=True)
    delivered = sync(a, "a", [Peer("b", remote=str(later))], box(a) / "inbox")
    assert (delivered.peers[0].pushed, delivered.peers[0].error, delivered.behind) == (1, None, ())
    received = sync(b, "b", [Peer("a", remote=str(later))], box(b) / "inbox")
    assert len(received.taken) == 1


def test_a_push_the_remote_rejects_is_reported_never_forced(hub):
    a = clone(hub, "a")
    send(a, "a", ["b"], "First")
    sync(a, "a", peers(hub, "b"), box(a) / "inbox")
    # Someone else's history under our name on the hub (another clone that
    # also calls itself a): ours is not forced over it.
    other = clone(hub, "other")
    git(other, "checkout", "-q", "--orphan", "x")
    git(other, "commit", "-q", "--allow-empty", "-m", "not ours")
    git(other, "push", "-q", "-f", "origin", "x:factory/mail/a")
    hub_tip = git(hub, "rev-parse", "factory/mail/a")
    send(a, "a", ["b"], "Second")
    report = sync(a, "a", peers(hub, "b"), box(a) / "inbox")
    assert report.behind == ("b",) and report.peers[0].error.startswith("push: ")
    assert git(hub, "rev-parse", "factory/mail/a") == hub_tip


def test_hostile_files_on_a_peers_branch_are_refused_once(hub):
    a, b = clone(hub, "a"), clone(hub, "b")
    good, _ = send(a, "a", ["b"], "Fine")
    # Files a hostile (or broken) peer could commit on its branch by hand.
    blob = git(a, "hash-object", "-w", "--stdin", input=b"---\nnot: [a message\n")
    big = git(a, "hash-object", "-w", "--stdin", input=render(new_message("a", ["b"], "Big", "x" * 5000, created=AT)).encode())
    link = git(a, "hash-object", "-w", "--stdin", input=b"/etc/passwd")
    spoof = git(a, "hash-object", "-w", "--stdin", input=render(new_message("c", ["b"], "Spoof", created=AT)).encode())
    index = {"GIT_INDEX_FILE": str(a / ".git" / "hostile-index")}
    subprocess.run(["git", "-C", str(a), "read-tree", "factory/mail/a"], check=True, env={**os.environ, **index})
    for mode, oid, path in (("100644", blob, "outbox/2026/11/broken.md"), ("100644", big, "outbox/2026/11/big.md"),
                            ("120000", link, "outbox/2026/11/link.md"), ("100644", blob, "elsewhere.md"),
                            ("100644", spoof, "outbox/2026/11/spoof.md")):
        subprocess.run(["git", "-C", str(a), "update-index", "--add", "--cacheinfo", f"{mode},{oid},{path}"],
                       check=True, env={**os.environ, **index})
    tree = subprocess.run(["git", "-C", str(a), "write-tree"], check=True, capture_output=True, text=True,
                          env={**os.environ, **index}).stdout.strip()
    commit = git(a, "commit-tree", tree, "-p", "factory/mail/a", "-m", "hostile")
    git(a, "update-ref", "refs/heads/factory/mail/a", commit)
    sync(a, "a", peers(hub, "b"), box(a) / "inbox")

    report = sync(b, "b", peers(hub, "a"), box(b) / "inbox", max_bytes=2048)
    assert [path.name for path in report.taken] == [put(b / "unused", good).name]
    reasons = {item.path: item.reason for item in report.refused}
    assert set(reasons) == {"outbox/2026/11/broken.md", "outbox/2026/11/big.md", "outbox/2026/11/link.md",
                            "elsewhere.md", "outbox/2026/11/spoof.md"}
    assert "symbolic link" in reasons["outbox/2026/11/link.md"]
    assert "max_bytes" in reasons["outbox/2026/11/big.md"]
    assert reasons["outbox/2026/11/broken.md"].startswith("line ")
    assert "outbox/YYYY/MM" in reasons["elsewhere.md"]
    assert "on a's mail branch" in reasons["outbox/2026/11/spoof.md"]
    assert len(inbox_of(b)) == 1
    # Reported once, not every sync.
    assert sync(b, "b", peers(hub, "a"), box(b) / "inbox", max_bytes=2048).refused == ()


def test_a_hostile_remote_url_is_a_remote_not_an_option(hub, tmp_path):
    a = clone(hub, "a")
    send(a, "a", ["b"], "Hello")
    witness = tmp_path / "ran"
    for url in (f"--upload-pack=touch {witness}", f"--receive-pack=touch {witness}", f"ext::sh -c 'touch {witness}'"):
        report = sync(a, "a", [Peer("b", remote=url)], box(a) / "inbox")
        assert report.behind == ("b",) and report.peers[0].error
    assert not witness.exists()


def test_a_sync_loop_runs_until_stopped(hub):
    a, b = clone(hub, "a"), clone(hub, "b")
    send(a, "a", ["b"], "By the loop")
    reports: list[SyncReport | str] = []
    loop = SyncLoop(a, "a", tuple(peers(hub, "b")), box(a) / "inbox", interval=0.1, max_bytes=10_000,
                    on_report=reports.append)
    loop.start()
    try:
        wait_for(lambda: len(reports) >= 2, "two syncs", limit=30)
    finally:
        loop.stop()
    assert loop._thread is not None and not loop._thread.is_alive()
    assert isinstance(reports[0], SyncReport) and reports[0].peers[0].pushed == 1
    assert len(sync(b, "b", peers(hub, "a"), box(b) / "inbox").taken) == 1


def test_mail_branch_names():
    assert mail_branch("shop") == "factory/mail/shop"
    with pytest.raises(MailGitError):
        mail_branch("x.lock")


HANGING_SSH = """#!/bin/sh
echo "$$ $*" >> "{record}"
exec sleep 120
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def hanging_ssh(tmp_path, monkeypatch) -> Path:
    """An ssh that never answers; it writes its pid and arguments first."""
    record = tmp_path / "ssh-record"
    script = tmp_path / "hanging-ssh"
    script.write_text(HANGING_SSH.format(record=record))
    script.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(script))
    return record


def test_a_remote_that_never_answers_times_out_and_its_ssh_is_ended(hub, hanging_ssh):
    a = clone(hub, "a")
    report = sync(a, "a", [Peer("b", remote="ssh://example.invalid/hub.git")], box(a) / "inbox", timeout=1)
    assert report.behind == () and "took longer than 1 s" in (report.peers[0].error or "")
    pid, arguments = hanging_ssh.read_text().split(" ", 1)
    assert "BatchMode=yes" in arguments  # never a prompt for a password
    wait_for(lambda: not alive(int(pid)), "the ssh that hung to be ended")


def test_stopping_the_sync_loop_ends_a_sync_in_progress(hub, hanging_ssh):
    a = clone(hub, "a")
    loop = SyncLoop(a, "a", (Peer("b", remote="ssh://example.invalid/hub.git"),), box(a) / "inbox",
                    interval=60, max_bytes=10_000, on_report=lambda report: None)
    loop.start()
    wait_for(hanging_ssh.exists, "the sync to reach the remote")
    loop.stop(timeout=30)
    assert loop._thread is not None and not loop._thread.is_alive()
    pid = int(hanging_ssh.read_text().split()[0])
    wait_for(lambda: not alive(pid), "the ssh to be ended")


def test_mail_that_cannot_be_written_to_a_full_disk_is_taken_at_the_next_sync(hub, tmp_path):
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare cannot make a mount namespace here (needed for a full disk)")
    a, b = clone(hub, "a"), clone(hub, "b")
    send(a, "a", ["b"], "Through a full disk", "x" * 20_000)
    sync(a, "a", peers(hub, "b"), box(a) / "inbox")
    script = (
        "import sys; from pathlib import Path\n"
        "from factory_tui.backends.mail_git import sync\n"
        "from factory_tui.config import Peer\n"
        "hub, repo, disk = (Path(arg) for arg in sys.argv[1:])\n"
        "filler = disk / 'filler'\n"
        "try:\n"
        "    filler.write_bytes(b'f' * (60 * 1024))\n"
        "except OSError:\n"
        "    pass\n"
        "full = sync(repo, 'b', [Peer('a', remote=str(hub))], disk / 'inbox')\n"
        "print(len(full.taken), full.peers[0].error)\n"
        "filler.unlink()\n"
        "later = sync(repo, 'b', [Peer('a', remote=str(hub))], disk / 'inbox')\n"
        "print(len(later.taken), later.peers[0].error)\n"
    )
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size=64k tmpfs "{disk}" && "$0" -c "$1" "$2" "$3" "{disk}"',
         sys.executable, script, str(hub), str(b)],
        capture_output=True, text=True, cwd=os.getcwd(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["0 taking mail: No space left on device", "1 None"]
