"""The log's file on disk: an empty or foreign ``log.db`` is refused, never
taken for a new log; a new log is readable by its owner only; a read-only
base and a full disk each get one line saying so, and reads go on working
where SQLite can read.

We run as root, so permission bits do not stop writes: a read-only base is a
read-only bind mount, and a full disk a tiny tmpfs, each inside a mount
namespace of its own (``unshare -rm``); those tests are skipped where
``unshare`` cannot make one."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog, LogReader
from factory_tui.backends.schema import _create_log, open_connection
from factory_tui.errors import LogCorrupt
from factory_tui.model import NewTask, State
from tests.helpers import assert_one_line_error, log_tables

PROJECT = Path(__file__).resolve().parent.parent


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTORY_")}
    # The subprocesses run this checkout's code, wherever their cwd is.
    env["PYTHONPATH"] = str(PROJECT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def factory(base: FactoryBase, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "factory_tui", "--base", str(base.root), *args],
        capture_output=True, text=True, env=environment(), timeout=120, check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def fingerprint(path: Path) -> tuple[bytes, int, int]:
    info = path.stat()
    return path.read_bytes(), info.st_mtime_ns, info.st_mode


def files_beside(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir()}


# --- an empty or foreign log.db is refused, never taken for a new one ------------


@pytest.mark.parametrize(
    "content", [b"", b"# my notes\nnot a database\n"], ids=["empty", "a text file"]
)
def test_a_log_that_is_not_sqlite_is_refused_by_every_command(
    base: FactoryBase, content: bytes
) -> None:
    """An empty log.db used to be migrated into a fresh log: the plan
    silently started again at T-1 over whatever was lost."""
    base.log_path.write_bytes(content)
    os.utime(base.log_path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = fingerprint(base.log_path)
    files = files_beside(base.log_path)
    for args in (("plan", "list"), ("plan", "add", "x"), ("status",), ("log",), ("note", "hi")):
        done = factory(base, *args)
        line = assert_one_line_error(done.returncode, done.stdout, done.stderr)
        assert f"the log {base.log_path} is not a readable SQLite database" in line, args
    # `factory init` does not take it for a missing log either: it says so.
    init = factory(base, "init", str(base.root))
    line = assert_one_line_error(init.returncode, init.stdout, init.stderr)
    assert f"the log {base.log_path} is not a readable SQLite database" in line
    assert fingerprint(base.log_path) == before
    assert files_beside(base.log_path) == files
    for opener in (
        lambda: ExecutionLog.open(base.log_path, create=True),
        lambda: LogReader(base.log_path),
    ):
        with pytest.raises(LogCorrupt, match="not a readable SQLite database"):
            opener()
    assert fingerprint(base.log_path) == before


def test_a_new_log_never_replaces_a_file_that_appeared_meanwhile(tmp_path: Path) -> None:
    """``create`` builds the log aside and links it into place: a file put at
    the path after the check for it (another `factory init`, a restore) is
    kept as it is, and nothing is left beside it."""
    path = tmp_path / "log.db"
    path.write_bytes(b"someone else's file")
    _create_log(path, 1000)
    assert path.read_bytes() == b"someone else's file"
    assert files_beside(path) == {"log.db"}


def test_a_new_log_is_built_whole_before_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    ExecutionLog.open(path, create=True).close()
    assert files_beside(path) <= {"log.db", "log.db-wal", "log.db-shm"}
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0
    finally:
        conn.close()


# --- the log is the owner's alone ---------------------------------------------


def test_a_new_log_and_its_wal_and_shm_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    old = os.umask(0)  # the mode must not depend on the user's umask
    try:
        with ExecutionLog.open(path, create=True) as log:
            log.add_task(NewTask(title="a"), actor="t")
            # While a connection is open, the -wal and -shm files exist.
            with ExecutionLog.open(path) as other:
                assert other.get_task("T-1").title == "a"
                modes = {
                    name: stat.S_IMODE((tmp_path / name).stat().st_mode)
                    for name in ("log.db", "log.db-wal", "log.db-shm")
                }
    finally:
        os.umask(old)
    assert modes == {"log.db": 0o600, "log.db-wal": 0o600, "log.db-shm": 0o600}


def test_factory_init_makes_a_log_only_its_owner_can_read(git_repo: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "factory_tui", "init", str(git_repo)],
        capture_output=True, text=True, env=environment(), timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    log = git_repo / ".factory" / "log.db"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    # A log made before this rule keeps its mode: only new logs are made so.
    log.chmod(0o644)
    conn = open_connection(log)
    conn.close()
    assert stat.S_IMODE(log.stat().st_mode) == 0o644


# --- a read-only base, a full disk ---------------------------------------------


def _unshare_or_skip() -> str:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("`unshare` is not installed: a read-only or full file system needs a mount namespace")
    probe = subprocess.run(
        [unshare, "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt 2>/dev/null || mount -t tmpfs tmpfs /tmp"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"`unshare -rm` cannot make a mount namespace here: {probe.stderr.strip()}")
    return unshare


# Runs inside the namespace: set the file system up, run each command,
# report every outcome as JSON on the last line of stdout.
RUNNER = textwrap.dedent(
    r"""
    import json, os, subprocess, sys
    spec = json.loads(sys.argv[1])
    results = {}

    def sh(command):
        subprocess.run(command, shell=True, check=True)

    def factory(*args):
        done = subprocess.run([sys.executable, "-m", "factory_tui", "--base", spec["base"], *args],
                              capture_output=True, text=True, timeout=120)
        return {"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}

    for step in spec["steps"]:
        kind, name, value = step
        if kind == "sh":
            sh(value)
        elif kind == "factory":
            results[name] = factory(*value)
        elif kind == "py":
            results[name] = eval(value)
    print(json.dumps(results))
    """
)


def in_namespace(unshare: str, tmp_path: Path, base: str, steps: list) -> dict:
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    done = subprocess.run(
        [unshare, "-rm", sys.executable, str(runner), json.dumps({"base": base, "steps": steps})],
        capture_output=True, text=True, env=environment(), timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.splitlines()[-1])


WRITES = {
    "plan add": ("plan", "add", "a new task"),
    "note": ("note", "a note"),
    "task approve": ("task", "approve", "T-2"),
    "task hold": ("task", "hold", "T-1"),
}


def _seed(log_path: Path) -> None:
    with ExecutionLog.open(log_path) as log:
        log.add_task(NewTask(title="queued one"), actor="seed")          # T-1
        log.add_task(NewTask(title="proposed one", state=State.PROPOSED), actor="seed")  # T-2
        log.add_note("T-1", "seeded", actor="seed")


def test_a_read_only_base_says_so_and_still_reads(base: FactoryBase, tmp_path: Path) -> None:
    unshare = _unshare_or_skip()
    _seed(base.log_path)
    before = log_tables(base.log_path)
    plan = tmp_path / "plan.md"
    plan.write_text("- [ ] imported\n")
    folder = str(base.dir)
    steps: list = [
        ("sh", "", f"mount --bind '{folder}' '{folder}' && mount -o remount,bind,ro '{folder}'"),
        ("factory", "plan list", ["plan", "list"]),
        ("factory", "plan show", ["plan", "show", "T-1"]),
        ("factory", "status", ["status"]),
        ("factory", "log", ["log"]),
        *(("factory", name, list(args)) for name, args in WRITES.items()),
        ("factory", "plan import", ["plan", "import", str(plan)]),
        ("factory", "run", ["run", "--once"]),
    ]
    results = in_namespace(unshare, tmp_path, str(base.root), steps)
    # The engine says it too, in one line on stderr, and stops.
    run = results["run"]
    assert run["code"] == 1 and "Traceback" not in run["stdout"] + run["stderr"], run
    assert run["stderr"].startswith("factory: ") and len(run["stderr"].splitlines()) == 1, run
    assert "read-only" in run["stderr"], run
    for name in ("plan list", "plan show", "status", "log"):
        assert results[name]["code"] == 0, (name, results[name])
        assert "Traceback" not in results[name]["stderr"]
    assert "queued one" in results["plan list"]["stdout"]
    assert "proposed one" in results["plan list"]["stdout"]
    assert "seeded" in results["plan show"]["stdout"]
    assert "queued    1" in results["status"]["stdout"]
    assert "seeded" in results["log"]["stdout"]
    for name in (*WRITES, "plan import"):
        result = results[name]
        line = assert_one_line_error(result["code"], result["stdout"], result["stderr"])
        # An operator's action meets the read-only folder at its lock,
        # before the log; either way the line says read-only.
        assert (f"the log {base.log_path} is read-only" in line
                or f"the base {base.dir} is read-only" in line), (name, line)
    assert log_tables(base.log_path) == before


def test_a_full_disk_says_so_keeps_the_log_whole_and_still_reads(tmp_path: Path) -> None:
    unshare = _unshare_or_skip()
    disk = tmp_path / "disk"
    disk.mkdir()
    repo = disk / "repo"
    log_path = repo / ".factory" / "log.db"
    body = tmp_path / "body.md"  # outside the full disk: only the log is short of room
    body.write_text("x" * 300_000)
    python = f"'{sys.executable}'"
    git = "git -c user.name=t -c user.email=t@example.invalid"
    steps: list = [
        ("sh", "", f"mount -t tmpfs -o size=1m tmpfs '{disk}'"),
        ("sh", "", f"git init -q -b main '{repo}' && {git} -C '{repo}' commit -q --allow-empty -m start"),
        ("sh", "", f"{python} -m factory_tui init '{repo}' >/dev/null"),
        ("sh", "", f"{python} -m factory_tui --base '{repo}' plan add 'queued one' >/dev/null"),
        ("sh", "", f"{python} -m factory_tui --base '{repo}' plan add 'proposed one' --state proposed >/dev/null"),
        ("sh", "", f"{python} -m factory_tui --base '{repo}' note --task T-1 seeded >/dev/null"),
        ("py", "mode", f"oct(os.stat('{log_path}').st_mode & 0o777)"),
        ("py", "before", f"open('{log_path}', 'rb').read().hex()"),
        # Fill the disk to the last block.
        ("sh", "", f"dd if=/dev/zero of='{disk}/filler' bs=4096 2>/dev/null || true"),
        ("py", "free", f"os.statvfs('{disk}').f_bavail"),
        ("factory", "big body", ["plan", "add", "big", "--body-file", str(body)]),
        *(("factory", name, list(args)) for name, args in WRITES.items()),
        ("factory", "plan list", ["plan", "list"]),
        ("factory", "status", ["status"]),
        ("factory", "log", ["log"]),
        # Room again: the log is whole, holds what it held, and takes writes.
        ("sh", "", f"rm '{disk}/filler'"),
        ("py", "integrity", f"__import__('sqlite3').connect('{log_path}').execute('PRAGMA integrity_check').fetchone()[0]"),
        ("py", "tasks", f"__import__('sqlite3').connect('{log_path}').execute('SELECT seq, title, state FROM tasks ORDER BY seq').fetchall()"),
        ("py", "events", f"__import__('sqlite3').connect('{log_path}').execute('SELECT kind FROM events ORDER BY id').fetchall()"),
        ("factory", "after", ["plan", "add", "after the disk was freed"]),
    ]
    results = in_namespace(unshare, tmp_path, str(repo), steps)
    assert results["mode"] == "0o600"
    assert results["free"] == 0
    for name in ("big body", *WRITES):
        result = results[name]
        line = assert_one_line_error(result["code"], result["stdout"], result["stderr"])
        assert line == (
            f"factory: the disk holding {log_path} is full; free some space and try again "
            "(nothing was written)"
        ), (name, line)
    for name in ("plan list", "status", "log"):
        assert results[name]["code"] == 0, (name, results[name])
    assert "queued one" in results["plan list"]["stdout"]
    assert "proposed one" in results["plan list"]["stdout"]
    assert "queued    1" in results["status"]["stdout"]
    assert "seeded" in results["log"]["stdout"]
    assert results["integrity"] == "ok"
    assert results["tasks"] == [[1, "queued one", "queued"], [2, "proposed one", "proposed"]]
    assert results["events"] == [["created"], ["created"], ["note"]]
    assert results["after"]["code"] == 0 and results["after"]["stdout"].strip() == "T-3"


def test_a_log_in_a_folder_with_uri_characters_in_its_name(tmp_path: Path) -> None:
    """The log is opened by a file: URI; a path holding ?, #, %, spaces or
    non-ASCII letters must still name the same file."""
    folder = tmp_path / "odd ?#% näme&mode=ro"
    folder.mkdir()
    path = folder / "log.db"
    with ExecutionLog.open(path, create=True) as log:
        log.add_task(NewTask(title="a"), actor="t")
    with ExecutionLog.open(path) as log:
        assert [t.title for t in log.list_tasks()] == ["a"]
        log.add_task(NewTask(title="b"), actor="t")
    assert files_beside(path) <= {"log.db", "log.db-wal", "log.db-shm"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd ?#% näme&mode=ro"]
