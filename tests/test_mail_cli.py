"""``factory mail``: list, show (literally; read once shown), ack (an ack
in our outbox marks the original), peers, catch-up, and one-line errors."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from factory_tui.backends.mailbox import put
from factory_tui.mail_model import MessageKind, new_message
from tests.engine_helpers import factory

AT = datetime(2026, 11, 29, 13, 0, 0, tzinfo=UTC)


def test_list_show_ack_and_catch_up(base, tmp_path):
    name = base.config().name
    # Only a peer's message is answered (an ack is an answer); this one's
    # folder is not there, so the ack waits in our outbox, undelivered.
    base.config_path.write_text(base.config_path.read_text() + '\n[peers.warehouse]\npath = "../warehouse"\n')
    message = new_message("warehouse", [name], "Shelf [b]now[/b]", "Body \x1b[2J *md*", created=AT,
                          kind=MessageKind.REQUEST, ack_required=True)
    put(base.inbox_dir, message)
    caught = factory(base, "mail", "catch-up", "--json")
    assert caught.returncode == 0 and json.loads(caught.stdout)["new"] == 1
    listed = factory(base, "mail", "list", "--unread")
    assert message.id in listed.stdout and "Shelf [b]now[/b]" in listed.stdout
    shown = factory(base, "mail", "show", message.id[:24])
    assert shown.returncode == 0 and "Body ␛[2J *md*" in shown.stdout and "\x1b" not in shown.stdout
    assert json.loads(factory(base, "mail", "list", "--unread", "--json").stdout) == []
    acked = factory(base, "mail", "ack", message.id, "--json")
    assert acked.returncode == 0, acked.stderr
    result = json.loads(acked.stdout)
    assert result["acked_at"] is not None
    outbox = list(base.outbox_dir.rglob("*.md"))
    assert len(outbox) == 1 and "kind: ack" in outbox[0].read_text()
    again = factory(base, "mail", "ack", message.id)
    assert again.returncode == 0 and "already" in again.stdout and len(list(base.outbox_dir.rglob("*.md"))) == 1
    thread = json.loads(factory(base, "mail", "list", "--thread", message.id, "--json").stdout)
    assert [item["kind"] for item in thread] == ["ack", "request"]


def test_errors_are_one_line(base, tmp_path):
    for first in ("01AAAAAAAAAAAAAAAAAAAAAAAA", "01AAAAAAAAAAAAAAAAAAAAAAAB"):
        message = new_message("w", ["x"], "S", created=AT)
        put(base.inbox_dir, replace(message, id=first))
    factory(base, "mail", "catch-up")
    bad = tmp_path / "bad.md"
    bad.write_text("no front matter")
    for args, text in ((("show", "nope"), "no such message"), (("show", "01AAAA"), "more than one"),
                       (("ack", "nope"), "no such message"), (("show", str(bad)), "not a message file")):
        done = factory(base, "mail", *args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("factory: ") and text in lines[0], done


def test_peers_say_whether_they_can_be_reached(base, tmp_path, git_repo):
    other = tmp_path / "other"
    (other / ".factory").mkdir(parents=True)
    bare = tmp_path / "meeting.git"
    import subprocess

    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    base.config_path.write_text(base.config_path.read_text() + (
        f'\n[peers.near]\npath = "{other}"\n[peers.gone]\npath = "{tmp_path / "missing"}"\n'
        f'[peers.far]\nremote = "{bare}"\naccept = "queue"\n[peers.lost]\nremote = "{tmp_path / "nothing.git"}"\n'))
    done = factory(base, "mail", "peers", "--json")
    assert done.returncode == 0, done.stderr
    reach = {peer["name"]: (peer["reachable"], peer["accept"]) for peer in json.loads(done.stdout)}
    assert reach == {"near": (True, "manual"), "gone": (False, "manual"), "far": (True, "queue"),
                     "lost": (False, "manual")}
    assert "no" in factory(base, "mail", "peers").stdout


def test_without_an_engine_the_mail_commands_take_in_what_came_first(tmp_path):
    """A peer just put a request in our inbox and nothing runs on our base:
    list shows it, and task makes it a task, with no catch-up by hand."""
    from tests.mail_helpers import two_factories

    shop, mill = two_factories(tmp_path)
    sent = factory(mill, "mail", "send", "--to", "shop", "--subject", "Crates", "--kind", "request")
    assert sent.returncode == 0, sent.stderr
    listed = factory(shop, "mail", "list", "--json")
    assert [item["subject"] for item in json.loads(listed.stdout)] == ["Crates"], listed.stderr
    [item] = json.loads(listed.stdout)
    made = factory(shop, "mail", "task", item["key"])
    assert made.returncode == 0 and "T-1" in made.stdout, made.stderr
    answered = factory(mill, "mail", "list", "--json")
    assert {entry["state"] for entry in json.loads(answered.stdout)} >= {"accepted"}, answered.stdout
