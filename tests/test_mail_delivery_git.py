"""Delivery to a remote peer: published on our mail branch, pending until a
sync pushes it, then delivered; a push that fails leaves it undelivered
with the error, and it is retried and delivered at a later sync. Also a
peer on this machine whose disk is full: failed, retried later."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.mail_model import MessageKind
from tests.engine_helpers import factory
from tests.mail_helpers import OPERATOR, name_base, session, two_factories
from tests.test_mail_git import clone, hub  # noqa: F401 - hub is a fixture


def test_remote_peer_pending_then_delivered_and_a_failed_push_retried(tmp_path, hub):  # noqa: F811 - the fixture
    bare = hub
    shop, _ = FactoryBase.init(clone(bare, "shop"))
    mill, _ = FactoryBase.init(clone(bare, "mill"))
    missing = tmp_path / "moved.git"
    name_base(shop, "shop", f'[peers.mill]\nremote = "{missing}"\n')
    name_base(mill, "mill", f'[peers.shop]\nremote = "{missing}"\n')
    with session(shop) as ours:
        sent = ours.send_mail(["mill"], "Crates", "40 by Friday", kind=MessageKind.REQUEST, actor=OPERATOR)
        assert [(item.factory, item.state) for item in sent.deliveries] == [("mill", "pending")]
    # The peer's remote is not there: the sync fails, the message stays undelivered.
    failed = factory(shop, "mail", "sync")
    assert failed.returncode == 1 and len(failed.stderr.strip().splitlines()) == 1
    listed = json.loads(factory(shop, "mail", "list", "--json").stdout)
    assert listed[0]["undelivered"] is True
    assert "U" in factory(shop, "mail", "list").stdout.splitlines()[1][:5]
    with session(shop) as ours:
        [delivery] = ours.log.undelivered()
        assert delivery.state == "failed" and delivery.last_error
    # The remote is back: the next sync retries and delivers it.
    shutil.copytree(bare, missing)
    synced = factory(shop, "mail", "sync")
    assert synced.returncode == 0, synced.stderr
    with session(shop) as ours:
        assert ours.log.undelivered() == [] and ours.log.deliveries(sent.message.id)[0].state == "delivered"
    assert factory(mill, "mail", "sync").returncode == 0
    assert factory(mill, "mail", "catch-up").returncode == 0
    with session(mill) as theirs:
        assert [item.subject for item in theirs.log.mail_messages(box="inbox")] == ["Crates"]


def test_a_full_peer_disk_fails_and_is_retried_later(tmp_path):
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("unshare (a mount namespace) is not available here")
    shop, mill = two_factories(tmp_path)
    inbox = mill.inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    # Inside the namespace the peer's inbox is a tiny disk, nearly full.
    script = (f"mount -t tmpfs -o size=64k tmpfs {inbox} && "
              f"head -c 60000 /dev/zero > {inbox}/filler 2>/dev/null;")
    body = "x" * 20000
    run = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script + " exec \"$0\" -m factory_tui --base \"$1\" mail send --to mill "
         "--subject Full --body-file \"$2\" --json", _python(), str(shop.root), str(_body(tmp_path, body))],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    sent = json.loads(run.stdout)
    assert sent["deliveries"][0]["state"] == "failed" and "No space" in sent["deliveries"][0]["error"]
    # Outside the namespace the disk has room: the retry delivers it.
    with session(shop) as ours:
        assert ours.log.mail_counts().undelivered == 1
        assert [item.state for item in ours.retry_undelivered()] == ["delivered"]
        assert ours.log.mail_counts().undelivered == 0
    assert len(list(inbox.rglob("*.md"))) == 1


def _python() -> str:
    import sys

    return sys.executable


def _body(tmp_path, text: str):
    path = tmp_path / "body.md"
    path.write_text(text)
    return path
