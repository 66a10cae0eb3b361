"""The demo's peer factory (issue 9, the demo): a second throwaway base
beside the demo with the mail the two exchanged so far, the request it
sends once the demo is open, and that request's whole path headless: a
task by the CLI, done by the demo agent under a real engine, approved,
and answered in the peer's inbox. Then ``factory demo`` itself, in a real
terminal (a pty): the request reaches its console's engine, and quitting
removes the demo and its peer."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from factory_tui import demo_peer
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.demo import PEER_NAME, REQUESTED_TASK, build_demo, peer_root
from factory_tui.backends.demo_mail import LIVE_REQUEST, NOTE, REQUEST, request_id
from factory_tui.backends.log import ExecutionLog
from factory_tui.errors import FactoryError
from factory_tui.mail_model import MessageKind, RequestState, parse
from factory_tui.model import State
from tests.conftest import DEMO_START
from tests.engine_helpers import environment, factory, git, wait_for
from tests.test_cli import ok, refused


def mail_files(root: Path) -> dict[str, str]:
    box = root / ".factory" / "mailbox"
    return {path.relative_to(box).as_posix(): path.read_text() for path in sorted(box.rglob("*.md"))}


def messages(root: Path, box: str):
    return [parse(path.read_text()) for path in sorted((root / ".factory" / "mailbox" / box).rglob("*.md"))]


# --- the peer and the mail so far ------------------------------------------------------------


def test_the_demo_has_a_peer_beside_it_each_naming_the_other(demo_base: FactoryBase) -> None:
    peer = FactoryBase(peer_root(demo_base.root))
    assert peer.root == demo_base.root.parent / "shopfront-warehouse"
    assert peer.config().name == PEER_NAME
    assert git(peer.root, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    ours, theirs = demo_base.config().peers[PEER_NAME], peer.config().peers["shopfront"]
    assert (demo_base.root / ours.path).resolve() == peer.root.resolve()
    assert (peer.root / theirs.path).resolve() == demo_base.root.resolve()
    assert ours.accept == "manual"
    # The peer is reachable as the CLI sees it.
    listed = ok(demo_base, "mail", "peers").stdout
    assert PEER_NAME in listed and "yes" in listed


def test_the_mail_so_far_a_note_answered_and_a_request_done_and_answered(demo_base: FactoryBase) -> None:
    peer = FactoryBase(peer_root(demo_base.root))
    received = {m.subject: m for m in messages(demo_base.root, "inbox")}
    assert set(received) == {NOTE.subject, REQUEST.subject}
    assert received[REQUEST.subject].kind is MessageKind.REQUEST
    assert received[REQUEST.subject].id == request_id(DEMO_START)
    answers = messages(peer.root, "inbox")
    assert [(m.in_reply_to, m.state) for m in answers if m.thread == request_id(DEMO_START)] == [
        (request_id(DEMO_START), RequestState.ACCEPTED), (request_id(DEMO_START), RequestState.COMPLETED)]
    completed = next(m for m in answers if m.state is RequestState.COMPLETED)
    assert completed.task == REQUESTED_TASK
    # The merge commit it names is the one the history's task landed at.
    commit = completed.body.split("Merge commit: ", 1)[1].split()[0]
    assert git(demo_base.root, "merge-base", "--is-ancestor", commit, "main") == ""
    assert "shopfront/health.py" in git(demo_base.root, "show", "--name-only", "--format=", commit)
    with ExecutionLog.open(demo_base.log_path) as log:
        task = log.get_task(REQUESTED_TASK)
        assert task.state is State.DONE and task.source == f"mail:{request_id(DEMO_START)}"
        assert log.mail_message(request_id(DEMO_START)).task_id == REQUESTED_TASK
        counts = log.mail_counts()
        assert (counts.unread, counts.waiting_requests, counts.undelivered) == (0, 0, 0)
    with ExecutionLog.open(peer.log_path) as log:
        assert log.mail_counts().unread == 0
        assert len(log.mail_messages()) == 5


def test_the_demo_and_its_mail_are_the_same_every_time(tmp_path: Path) -> None:
    first = build_demo(tmp_path / "a" / "shopfront", start=DEMO_START)
    second = build_demo(tmp_path / "b" / "shopfront", start=DEMO_START)
    assert mail_files(first.root) == mail_files(second.root) != {}
    assert mail_files(peer_root(first.root)) == mail_files(peer_root(second.root)) != {}
    with ExecutionLog.open(first.log_path) as one, ExecutionLog.open(second.log_path) as other:
        shape = lambda log: [(m.key, m.created, m.read_at, m.task_id) for m in log.mail_messages()]  # noqa: E731
        assert shape(one) == shape(other)


def test_a_peer_folder_in_the_way_stops_the_demo_before_anything_is_built(tmp_path: Path) -> None:
    (tmp_path / "shopfront-warehouse").mkdir()
    (tmp_path / "shopfront-warehouse" / "mine.txt").write_text("keep me")
    with pytest.raises(FactoryError, match="shopfront-warehouse is not empty"):
        build_demo(tmp_path / "shopfront", start=DEMO_START)
    assert not any((tmp_path / "shopfront").iterdir())
    assert "not empty" in refused(None, "demo", "--no-console", "--path", str(tmp_path / "shopfront"))


# --- the request, start to end, headless ---------------------------------------------------------


def test_the_peers_request_becomes_a_task_the_agent_does_and_the_approval_answers(demo_base: FactoryBase) -> None:
    peer = peer_root(demo_base.root)
    sent = subprocess.run([sys.executable, "-m", "factory_tui.demo_peer", str(peer), "--after", "0"],
                          capture_output=True, text=True, timeout=60, env=environment())
    assert sent.returncode == 0, sent.stderr
    [request] = [m for m in messages(demo_base.root, "inbox") if m.subject == LIVE_REQUEST.subject]
    assert request.kind is MessageKind.REQUEST and request.sender == PEER_NAME
    # The peer keeps its copy; its log knows it sent it.
    assert request.id in {m.id for m in messages(peer, "outbox")}

    # The operator: the mail in, the request a task (only it runs: the
    # history's other ready work is held, to keep this quick).
    assert factory(demo_base, "mail", "catch-up").returncode == 0
    for held in ("T-6",):
        assert factory(demo_base, "task", "hold", held).returncode == 0
    made = factory(demo_base, "mail", "task", request.id)
    assert made.returncode == 0, made.stderr
    task_id = made.stdout.split()[0]
    accepted = wait_for(lambda: [m for m in messages(peer, "inbox") if m.in_reply_to == request.id], "accepted")
    assert [m.state for m in accepted] == [RequestState.ACCEPTED] and accepted[0].task == task_id

    # The engine and the demo agent (QA sends the first attempt back once).
    ran = factory(demo_base, "run", "--once")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    with ExecutionLog.open(demo_base.log_path) as log:
        assert log.get_task(task_id).state is State.REVIEW
    approved = factory(demo_base, "task", "approve", task_id)
    assert approved.returncode == 0, approved.stderr
    head = git(demo_base.root, "rev-parse", "main")

    # The peer's inbox has the answer, with the merge commit, in the thread.
    done = [m for m in messages(peer, "inbox") if m.in_reply_to == request.id and m.state is RequestState.COMPLETED]
    assert len(done) == 1
    assert done[0].thread == request.id and done[0].task == task_id
    assert f"{task_id} is done: {LIVE_REQUEST.subject}" in done[0].body
    commit = done[0].body.split("Merge commit: ", 1)[1].split()[0]
    assert head.startswith(commit)
    # The peer's operator reads it with its own CLI.
    assert factory(FactoryBase(peer), "mail", "catch-up").returncode == 0
    listed = factory(FactoryBase(peer), "mail", "list", "--unread").stdout
    assert listed.count(f"Re: {LIVE_REQUEST.subject}") == 2


def test_the_peer_gives_up_quietly_when_the_demo_is_gone_and_stops_when_told(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-m", "factory_tui.demo_peer", str(tmp_path / "nowhere"),
                           "--after", "0"], capture_output=True, text=True, timeout=60)
    assert (gone.returncode, gone.stderr) == (0, "")
    bad = subprocess.run([sys.executable, "-m", "factory_tui.demo_peer", str(tmp_path), "--after", "-1"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--after" in bad.stderr and "Traceback" not in bad.stderr
    base = build_demo(tmp_path / "shopfront", start=DEMO_START)
    waiting = demo_peer.start(peer_root(base.root), after=600)
    demo_peer.stop(waiting)
    assert waiting.returncode is not None
    assert LIVE_REQUEST.subject not in str(mail_files(base.root))


def test_a_peer_that_cannot_deliver_says_so_in_one_line(demo_base: FactoryBase) -> None:
    import shutil

    peer = peer_root(demo_base.root)
    moved = demo_base.root.with_name("elsewhere")
    shutil.move(demo_base.root, moved)
    failed = subprocess.run([sys.executable, "-m", "factory_tui.demo_peer", str(peer), "--after", "0"],
                            capture_output=True, text=True, timeout=60, env=environment())
    assert failed.returncode == 1
    assert failed.stderr.startswith("demo_peer: shopfront: ") and failed.stderr.count("\n") == 1


# --- factory demo, in a terminal -----------------------------------------------------------------


def test_no_console_and_path_build_the_demo_and_its_peer_and_keep_them(tmp_path: Path) -> None:
    built = Path(ok(None, "demo", "--no-console", env={"TMPDIR": str(tmp_path)}).stdout.strip())
    assert built.parent.parent == tmp_path and (peer_root(built) / ".factory").is_dir()
    kept = tmp_path / "kept" / "shop"
    assert ok(None, "demo", "--no-console", "--path", str(kept)).stdout.strip() == str(kept)
    assert FactoryBase(peer_root(kept)).config().name == PEER_NAME


class Terminal:
    """``factory demo`` in a pseudo-terminal, its screen output drained."""

    def __init__(self, env: dict[str, str], size: tuple[int, int] = (120, 40)) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        self.master = master
        self.process = subprocess.Popen([sys.executable, "-m", "factory_tui", "demo"], stdin=slave, stdout=slave,
                                        stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.output = bytearray()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output.extend(chunk)

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())


def test_factory_demo_gets_the_peers_request_and_quitting_removes_demo_and_peer(tmp_path: Path) -> None:
    env = environment(TMPDIR=str(tmp_path), TERM="xterm-256color", FACTORY_DEMO_PEER_AFTER="0.5",
                      FACTORY_DEMO_SECONDS="30")
    terminal = Terminal(env)
    try:
        root = wait_for(lambda: next(iter(tmp_path.glob("factory-demo-*/shopfront/.factory/log.db")), None),
                        "the demo base", limit=60).parent.parent

        def arrived() -> bool:
            with ExecutionLog.open(root / ".factory" / "log.db") as log:
                return any(m.subject == LIVE_REQUEST.subject for m in log.mail_messages(box="inbox"))

        wait_for(arrived, "the peer's request in the console's log", limit=60)

        def quit_it() -> bool:
            terminal.press("q")
            try:
                terminal.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                terminal.press("s")  # agents at work: stop them
                return False
            return True

        wait_for(quit_it, "the console to quit", limit=90)
    finally:
        if terminal.process.poll() is None:
            os.killpg(terminal.process.pid, 9)
            terminal.process.wait()
    assert terminal.process.returncode == 0, bytes(terminal.output[-2000:])
    assert not root.parent.exists()
    assert "was removed" in terminal.output.decode(errors="replace")
