"""The mailbox's files: written whole or not at all, read back within
limits, a writer's temporary files passed over, and what is no message
moved into quarantine with its reason."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from factory_tui.backends.mailbox import (
    ReadMessage,
    Unreadable,
    message_files,
    message_path,
    put,
    quarantine,
    quarantined,
    read_message,
    write_atomically,
)
from factory_tui.mail_model import new_message

AT = datetime(2026, 11, 29, 13, 5, 9, tzinfo=UTC)


def test_a_message_is_put_in_its_month_and_read_back(tmp_path):
    inbox = tmp_path / "inbox"
    message = new_message("shop", ["warehouse"], "Stock, please", "Body *here*.", created=AT)
    path = put(inbox, message)
    assert path == inbox / "2026" / "11" / f"2026-11-29T13-05-09Z__stock-please__{message.id}.md"
    assert put(inbox, message) == path  # twice is one file
    found = read_message(path, inside=inbox, max_bytes=4096)
    assert isinstance(found, ReadMessage) and found.message == message and len(found.hash) == 64
    assert list(message_files(inbox)) == [path]
    assert [p.name for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")] == []


def test_temporary_and_hidden_files_are_not_messages(tmp_path):
    for name in (".tmp-1-x.md", "x.md.tmp", "x.md.part", ".hidden.md", "notes.txt", "b.md", "a.md"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.md").write_text("x")
    assert [p.name for p in message_files(tmp_path)] == ["a.md", "b.md", "c.md"]
    assert list(message_files(tmp_path / "missing")) == []


def test_a_failed_write_leaves_nothing(tmp_path):
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare cannot make a mount namespace here (needed for a full disk)")
    script = (
        "import sys; from pathlib import Path\n"
        "from factory_tui.backends.mailbox import write_atomically\n"
        "folder = Path(sys.argv[1])\n"
        "try:\n"
        "    write_atomically(folder, 'big.md', b'x' * (2 * 1024 * 1024))\n"
        "except OSError as error:\n"
        "    print('refused', error.errno)\n"
        "print(sorted(p.name for p in folder.iterdir()))\n"
    )
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size=1m tmpfs "{disk}" && "$0" -c "$1" "{disk}"',
         sys.executable, script],
        capture_output=True, text=True, cwd=os.getcwd(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["refused 28", "[]"]


@pytest.mark.parametrize(("make", "said"), [
    (lambda box: (box / "a.md").write_bytes(b"---\nid: A1\n---\n\xff\xfe"), "not UTF-8 text"),
    (lambda box: (box / "a.md").write_text("no front matter"), "line 1: no front matter"),
    (lambda box: (box / "a.md").write_text("x" * 5000), "a message file may have"),
    (lambda box: (box / "a.md").symlink_to("/etc/passwd"), "a link to a file outside the mailbox"),
    (lambda box: (box / "a.md").symlink_to(box / "missing"), "broken or looping link"),
    (lambda box: os.mkfifo(box / "a.md"), "not a regular file"),
])
def test_what_is_no_message_is_unreadable_with_its_reason(tmp_path, make, said):
    box = tmp_path / "inbox"
    box.mkdir()
    make(box)
    found = read_message(box / "a.md", inside=box, max_bytes=4096)
    assert isinstance(found, Unreadable) and said in found.reason


def test_quarantine_keeps_the_file_and_its_reason_and_never_follows_a_link(tmp_path):
    box, jail = tmp_path / "inbox", tmp_path / "quarantine"
    box.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("keep me")
    (box / "a.md").symlink_to(secret)
    (box / "b.md").write_text("junk")
    first = quarantine(box / "a.md", "a link to a file outside the mailbox; refused", jail)
    assert first.is_symlink() and secret.read_text() == "keep me"
    (box / "a.md").write_text("junk again")
    second = quarantine(box / "a.md", "line 1: no front matter", jail)
    assert second != first and second.name.endswith("-a.md")
    reasons = {item.path.name: item.reason for item in quarantined(jail)}
    assert reasons == {"a.md": "a link to a file outside the mailbox; refused",
                       second.name: "line 1: no front matter"}
    assert not (box / "a.md").exists()


def test_write_atomically_replaces_whole(tmp_path):
    write_atomically(tmp_path, "x.md", b"one")
    write_atomically(tmp_path, "x.md", b"two")
    assert (tmp_path / "x.md").read_bytes() == b"two"
    assert message_path(tmp_path, new_message("a", ["b"], "s", created=AT)).parent == tmp_path / "2026" / "11"
