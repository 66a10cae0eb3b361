"""`factory mail sync` and the engine's sync: two bases, clones of one
project, meeting at a bare repository; real subprocesses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.mail_git import publish
from factory_tui.backends.mailbox import message_files, put, read_message
from factory_tui.mail_model import new_message, render
from tests.engine_helpers import factory, start_factory, wait_for


def make_hub(tmp_path: Path) -> Path:
    hub = tmp_path / "hub.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(hub)], check=True)
    seed = tmp_path / "seed"
    subprocess.run(["git", "clone", "-q", str(hub), str(seed)], check=True, capture_output=True)
    (seed / "README.md").write_text("# the project\n")
    subprocess.run(["git", "-C", str(seed), "add", "."], check=True)
    subprocess.run(["git", "-C", str(seed), "commit", "-q", "-m", "start"], check=True)
    subprocess.run(["git", "-C", str(seed), "push", "-q", "origin", "HEAD:main"], check=True, capture_output=True)
    return hub


def make_base(tmp_path: Path, hub: Path, name: str, peers: dict[str, str], *, interval: int = 60) -> FactoryBase:
    """A clone of the hub's project, made a base named ``name`` whose peers
    are met at the given remotes."""
    where = tmp_path / name
    subprocess.run(["git", "clone", "-q", str(hub), str(where)], check=True, capture_output=True)
    base, _ = FactoryBase.init(where, name=name)
    text = base.config_path.read_text(encoding="utf-8")
    text = text.replace("[mail]\n", f"[mail]\nsync_interval = {interval}\n", 1)
    text += "".join(f"\n[peers.{peer}]\nremote = {json.dumps(remote)}\n" for peer, remote in peers.items())
    base.config_path.write_text(text, encoding="utf-8")
    return base


def send(base: FactoryBase, to: str, subject: str) -> None:
    message = new_message(base.config().name, [to], subject, "Hello.")
    put(base.outbox_dir, message)
    publish(base.root, base.config().name, message, render(message).encode())


def subjects(base: FactoryBase) -> list[str]:
    found = [read_message(path, inside=base.inbox_dir, max_bytes=100_000) for path in message_files(base.inbox_dir)]
    return sorted(item.message.subject for item in found)  # type: ignore[union-attr]


def test_mail_sync_delivers_both_ways_and_says_what_it_did(tmp_path):
    hub = make_hub(tmp_path)
    a = make_base(tmp_path, hub, "alpha", {"beta": str(hub)})
    b = make_base(tmp_path, hub, "beta", {"alpha": str(hub)})
    send(a, "beta", "From alpha")

    done = factory(a, "mail", "sync")
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "beta: pushed 1, fetched 0 new", "")
    done = factory(b, "mail", "sync", "--json")
    assert done.returncode == 0, done.stderr
    [peer] = json.loads(done.stdout)["peers"]
    assert (peer["peer"], peer["pushed"], len(peer["fetched"]), peer["error"]) == ("alpha", 0, 1, None)
    assert subjects(b) == ["From alpha"]
    # Taken into the log by the sync itself: listed at once, no engine running.
    listed = factory(b, "mail", "list", "--json")
    assert [item["subject"] for item in json.loads(listed.stdout)] == ["From alpha"], listed.stdout

    send(b, "alpha", "From beta")
    assert factory(b, "mail", "sync").stdout.strip() == "alpha: pushed 1, fetched 0 new"
    assert factory(a, "mail", "sync").stdout.strip() == "beta: pushed 0, fetched 1 new"
    assert subjects(a) == ["From beta"]
    # Again: nothing new either way.
    assert factory(a, "mail", "sync").stdout.strip() == "beta: pushed 0, fetched 0 new"
    assert subjects(a) == ["From beta"] and subjects(b) == ["From alpha"]


def test_mail_sync_that_cannot_reach_a_peer_says_so_in_one_line_and_exits_1(tmp_path):
    hub = make_hub(tmp_path)
    a = make_base(tmp_path, hub, "alpha", {"beta": str(tmp_path / "nowhere.git")})
    send(a, "beta", "Lost?")
    done = factory(a, "mail", "sync")
    assert done.returncode == 1
    assert done.stdout.startswith("beta: pushed 0, fetched 0 new; behind: fetch: ")
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("factory: mail sync: could not meet beta")
    done = factory(a, "mail", "sync", "--json")
    assert done.returncode == 1 and json.loads(done.stdout)["peers"][0]["behind"] is True


def test_mail_sync_without_remote_peers_has_nothing_to_do(tmp_path):
    hub = make_hub(tmp_path)
    a = make_base(tmp_path, hub, "alpha", {})
    done = factory(a, "mail", "sync")
    assert done.returncode == 0 and "nothing to sync" in done.stdout


def test_the_engine_syncs_mail_on_its_own_and_outlives_a_peer_it_cannot_reach(tmp_path, tidy):
    hub = make_hub(tmp_path)
    later = tmp_path / "later.git"  # beta's meeting point does not exist yet
    a = make_base(tmp_path, hub, "alpha", {"beta": str(later)}, interval=1)
    b = make_base(tmp_path, hub, "beta", {"alpha": str(later)})
    output = tmp_path / "engine.out"
    engine = start_factory(a, "run", output=output)
    tidy.append(engine)
    wait_for(lambda: "mail sync: beta: fetch: " in output.read_text(), "the engine to log the failed sync")

    subprocess.run(["git", "init", "-q", "--bare", str(later)], check=True)
    send(b, "alpha", "Via the engine")
    assert factory(b, "mail", "sync").returncode == 0
    wait_for(lambda: "mail sync: beta: pushed 0, fetched 1 new" in output.read_text(), "the engine to take beta's mail")
    assert subjects(a) == ["Via the engine"]
    assert engine.poll() is None  # the failures did not stop it
    engine.terminate()
    assert engine.wait(60) == 0
    assert "Traceback" not in output.read_text()
