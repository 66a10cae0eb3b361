"""Retention of run artifacts (``[artifacts] keep_runs``, ``old_raw``) and
``factory artifacts gc``: what it plans, what it does with ``--yes``, what
the engine does after a run ends, and what it never does: touch a live run,
leave half a file on a full disk, lose the raw output when killed half-way,
follow a link out of a run folder, or trip over a hostile file name.
Real bases, real runs, ``factory`` as a subprocess; waits have deadlines."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.locks import PathLock
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.run_retention import Candidate, Item, RawOnDisk, live_tasks, plan_retention
from factory_tui.backends.session import FactorySession
from factory_tui.model import NewTask
from tests.engine_helpers import (
    add,
    agent_printed,
    agent_profile,
    configure,
    environment,
    factory,
    factory_argv,
    run_dir,
    start_factory,
    wait_for,
)
from tests.helpers import assert_one_line_error

# --- deciding (pure) -------------------------------------------------------------------------


def run(name: str, whole: int | None = None, compressed: int | None = None, temporary: int | None = None,
        held: bool = False) -> Candidate:
    task, folder = name.split("/")
    return Candidate(task, folder, RawOnDisk(whole, compressed, temporary), held=held)


def steps(items: list[Item]) -> list[tuple[str, str, int]]:
    return [(f"{item.task_id}/{item.folder}", item.step.value, item.bytes) for item in items]


def test_the_newest_runs_stay_whole_and_older_raw_output_is_compressed() -> None:
    runs = [run("T-3/1", whole=30), run("T-2/2", whole=20), run("T-2/1", compressed=5), run("T-1/1", whole=10)]
    assert steps(plan_retention(runs, 2, "compress")) == [("T-1/1", "compress", 10)]
    assert steps(plan_retention(runs, 0, "drop")) == [("T-3/1", "drop", 30), ("T-2/2", "drop", 20),
                                                       ("T-2/1", "drop", 5), ("T-1/1", "drop", 10)]
    assert plan_retention(runs, 4, "compress") == []


def test_a_held_run_counts_among_the_newest_and_is_never_touched() -> None:
    runs = [run("T-9/1", whole=99, held=True), run("T-2/1", whole=20), run("T-1/1", whole=10, temporary=3)]
    assert steps(plan_retention(runs, 1, "compress")) == [("T-2/1", "compress", 20), ("T-1/1", "tidy", 3),
                                                          ("T-1/1", "compress", 10)]
    assert steps(plan_retention(runs, 0, "drop")) == [("T-2/1", "drop", 20), ("T-1/1", "tidy", 3),
                                                      ("T-1/1", "drop", 10)]


def test_a_compression_cut_short_is_finished_or_undone() -> None:
    runs = [run("T-2/1", whole=20, compressed=4), run("T-1/1", whole=10, compressed=2)]
    assert steps(plan_retention(runs, 1, "compress")) == [("T-2/1", "undo", 4), ("T-1/1", "finish", 10)]


def fake_run(base: FactoryBase, task_id: str, raw: bytes, *, attempt: int = 1, started: float = 1000.0) -> Path:
    """A run folder as an ended run leaves it (no agent needed)."""
    folder = run_dir(base, task_id, attempt)
    folder.mkdir(parents=True)
    (folder / "output.raw").write_bytes(raw)
    (folder / "transcript.log").write_text("⏺ done\n")
    (folder / "exit.json").write_text(json.dumps({"exit_code": 0, "started": started, "ended": started + 1}))
    (folder / "run.json").write_text(json.dumps({"task": task_id, "attempt": attempt, "started": started,
                                                 "profile": "demo", "token": f"{task_id}:fake{attempt}"}))
    return folder


# --- through the CLI ----------------------------------------------------------------------------


def settings(base: FactoryBase, keep_runs: int, old_raw: str = "compress", **agents) -> None:
    configure(base, max_parallel=1, agents=agents or None, default_agent=next(iter(agents), "demo"),
              extra=f"\n[artifacts]\nkeep_runs = {keep_runs}\nold_raw = \"{old_raw}\"\n")


def gc(base: FactoryBase, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return factory(base, "artifacts", "gc", *args, env=env)


def three_runs(base: FactoryBase) -> list[str]:
    """Three ended runs, T-1 the oldest, kept whole."""
    settings(base, 50)
    ids = [add(base, f"Task {n}") for n in range(3)]
    for n, task_id in enumerate(ids):
        fake_run(base, task_id, b"output of %d\n" % n * (1000 * (n + 1)), started=1000.0 + n)
    return ids


def raw_states(base: FactoryBase, task_id: str) -> tuple[str, ...]:
    with FactorySession(base) as session:
        [run_] = session.runs_of(task_id)
    return tuple(item.state for item in run_.files if item.name == "output.raw")


def test_gc_shows_what_it_would_free_and_frees_it_with_yes(base: FactoryBase) -> None:
    first, second, third = three_runs(base)
    raws = {task_id: (run_dir(base, task_id) / "output.raw").read_bytes() for task_id in (first, second, third)}
    settings(base, 1)

    plan = gc(base)

    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    assert lines[0].startswith("What gc would free (keep_runs = 1, old_raw = 'compress'): 2 runs, 2 files,")
    assert [line.split()[2] for line in lines[1:3]] == [f".factory/runs/{second}/1/output.raw",
                                                        f".factory/runs/{first}/1/output.raw"]
    assert lines[-1] == "Nothing was changed: `factory artifacts gc --yes` does it."
    assert all((run_dir(base, task_id) / "output.raw").exists() for task_id in raws)
    as_json = json.loads(gc(base, "--json").stdout)
    assert (as_json["done"], as_json["runs"], as_json["files"], as_json["freed"]) == (False, 2, 2, None)
    assert as_json["bytes"] == len(raws[first]) + len(raws[second])

    done = gc(base, "--yes")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("Freed ")
    for task_id in (first, second):
        folder = run_dir(base, task_id)
        assert not (folder / "output.raw").exists()
        assert gzip.decompress((folder / "output.raw.gz").read_bytes()) == raws[task_id]
        # The transcript and the record are kept.
        assert (folder / "transcript.log").exists() and (folder / "run.json").exists()
        assert raw_states(base, task_id) == ("compressed",)
    assert (run_dir(base, third) / "output.raw").read_bytes() == raws[third]
    assert raw_states(base, third) == ("kept",)
    with FactorySession(base) as session:
        assert session.collect_runs(apply=False).items == []

    settings(base, 0, "drop")
    dropped = json.loads(gc(base, "--yes", "--json").stdout)
    assert (dropped["done"], dropped["runs"], dropped["errors"]) == (True, 3, [])
    assert dropped["freed"] > 0
    for task_id in (first, second, third):
        folder = run_dir(base, task_id)
        assert not (folder / "output.raw").exists() and not (folder / "output.raw.gz").exists()
        assert (folder / "transcript.log").exists()
        assert raw_states(base, task_id) == ("dropped",)
    shown = factory(base, "run-info", first)
    assert shown.returncode == 0 and "output.raw" in shown.stdout and "dropped" in shown.stdout
    with FactorySession(base) as session, pytest.raises(Exception, match="was dropped"):
        session.run_file(first, 1, "output.raw")


def test_the_engine_applies_retention_after_a_run_ends(base: FactoryBase) -> None:
    settings(base, 0)
    task_id = add(base, "Write the notes")

    done = factory(base, "run", "--once")

    assert done.returncode == 0, done.stdout + done.stderr
    folder = run_dir(base, task_id)
    wait_for(lambda: (folder / "output.raw.gz").exists() and not (folder / "output.raw").exists(),
             "the engine's retention")
    assert "runs' retention: 1 run(s)" in done.stdout
    assert raw_states(base, task_id) == ("compressed",)
    # Nothing is due any more: gc finds nothing to free.
    assert json.loads(gc(base, "--json").stdout)["items"] == []


def test_gc_never_touches_a_run_whose_agent_is_writing(base: FactoryBase, agent: Path, tmp_path: Path,
                                                       tidy) -> None:
    gate = tmp_path / "gate"
    settings(base, 0, steady=agent_profile(agent, AGENT_GATE=str(gate), AGENT_LINES="5"))
    task_id = add(base, "Write while gc runs")
    engine = start_factory(base, "run", "--once", output=tmp_path / "engine.out")
    tidy.append(engine)
    wait_for(lambda: agent_printed(base, task_id, f"{task_id} line 4"), "the agent's output")
    raw = run_dir(base, task_id) / "output.raw"
    before = raw.read_bytes()

    done = gc(base, "--yes", "--json")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["items"], report["held"]) == ([], [task_id])
    assert raw.read_bytes() == before and not raw.with_name("output.raw.gz").exists()

    gate.touch()
    assert engine.wait(timeout=120) == 0
    # Once it has ended, the engine's own retention takes it.
    wait_for(lambda: raw.with_name("output.raw.gz").exists() and not raw.exists(), "the run compressed")
    assert gzip.decompress(raw.with_name("output.raw.gz").read_bytes()).startswith(before)


def test_a_process_that_names_a_run_holds_it(base: FactoryBase, tidy) -> None:
    folder = run_dir(base, "T-5")
    folder.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                               env={**os.environ, "FACTORY_RUN": str(folder)})
    tidy.append(sleeper)
    try:
        with ExecutionLog.open(base.log_path) as log:
            wait_for(lambda: "T-5" in live_tasks(base, log), "the process seen")
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_full_disk_leaves_the_raw_output_whole_and_nothing_half_written(base: FactoryBase,
                                                                         tmp_path: Path) -> None:
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare cannot make a mount namespace here (needed for a full disk)")
    settings(base, 0)
    add(base, "Said a lot")
    raw = os.urandom(600_000)  # does not compress: the .gz needs as much room again
    fake_run(base, "T-1", raw)
    saved = tmp_path / "saved"
    shutil.copytree(base.runs_dir, saved)
    runs = base.runs_dir
    script = (
        f'mount -t tmpfs -o size=1m tmpfs "{runs}" && cp -a "{saved}/." "{runs}/" && '
        f'"$0" -m factory_tui --base "{base.root}" artifacts gc --yes; echo "rc=$?"; '
        f'ls -A "{runs}/T-1/1"; sha256sum "{runs}/T-1/1/output.raw"'
    )
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script, sys.executable], capture_output=True,
                          text=True, env=environment())
    assert "Traceback" not in done.stdout + done.stderr
    [error] = done.stderr.splitlines()
    assert error.startswith("factory: cannot compress .factory/runs/T-1/1/output.raw: the disk is full"), error
    assert error.endswith("the raw output is kept as it was")
    lines = done.stdout.splitlines()
    assert "rc=1" in lines
    listed = lines[lines.index("rc=1") + 1:-1]
    assert sorted(listed) == ["exit.json", "output.raw", "run.json", "transcript.log"]
    assert lines[-1].split()[0] == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("window", ["retention.swapped", "retention.written"])
def test_gc_killed_half_way_is_finished_by_the_next_and_readers_never_see_two(
        base: FactoryBase, window: str) -> None:
    settings(base, 0)
    add(base, "Said a lot")
    raw = b"".join(b"line %06d of the agent's output\n" % n for n in range(50_000))
    folder = fake_run(base, "T-1", raw)

    killed = gc(base, "--yes", env=environment(FACTORY_FAULTS=f"{window}=kill"))

    assert killed.returncode == -9
    names = sorted(os.listdir(folder))
    if window == "retention.swapped":
        assert {"output.raw", "output.raw.gz"} <= set(names)
    else:
        assert ".output.raw.gz.tmp" in names and "output.raw.gz" not in names
    # Whatever was left, a reader gets one whole raw output, and run-info lists one.
    with FactorySession(base) as session:
        assert [item.name for run_ in session.runs_of("T-1") for item in run_.files].count("output.raw") == 1
        with session.open_run_file("T-1", 1, "output.raw") as reader:
            assert not reader.compressed
            assert reader.line_count() == 50_000 and reader.lines(49_999, 1) == ["line 049999 of the agent's output"]

    again = gc(base, "--yes", "--json")

    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert [item["step"] for item in report["items"]] == (
        ["finish"] if window == "retention.swapped" else ["tidy", "compress"])
    assert sorted(os.listdir(folder)) == ["exit.json", "output.raw.gz", "run.json", "transcript.log"]
    assert gzip.decompress((folder / "output.raw.gz").read_bytes()) == raw
    with FactorySession(base) as session, session.open_run_file("T-1", 1, "output.raw") as reader:
        assert reader.compressed and reader.line_count() == 50_000


def test_a_damaged_copy_beside_the_raw_output_is_made_again(base: FactoryBase) -> None:
    settings(base, 0)
    add(base, "Said a lot")
    folder = fake_run(base, "T-1", b"the real output\n" * 100)
    (folder / "output.raw.gz").write_bytes(gzip.compress(b"something else\n"))

    done = gc(base, "--yes")

    assert done.returncode == 0, done.stderr
    assert gzip.decompress((folder / "output.raw.gz").read_bytes()) == b"the real output\n" * 100
    assert not (folder / "output.raw").exists()


def test_a_raw_output_written_during_compression_is_kept_whole(base: FactoryBase, tmp_path: Path) -> None:
    settings(base, 0)
    add(base, "Still writing")
    folder = fake_run(base, "T-1", b"first part\n" * 1000)
    gate = tmp_path / "go-on"
    gc_process = subprocess.Popen(factory_argv(base, "artifacts", "gc", "--yes"), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env=environment(FACTORY_FAULTS=f"retention.written=wait:{gate}"))
    try:
        wait_for(lambda: (folder / ".output.raw.gz.tmp").exists(), "the compressed copy written")
        with open(folder / "output.raw", "ab") as handle:
            handle.write(b"a late line\n")
        gate.touch()
        out, err = gc_process.communicate(timeout=60)
    finally:
        if gc_process.poll() is None:
            gc_process.kill()
            gc_process.wait()
    assert "changed while it was compressed" in assert_one_line_error(gc_process.returncode, "", err)
    assert (folder / "output.raw").read_bytes() == b"first part\n" * 1000 + b"a late line\n"
    assert sorted(os.listdir(folder)) == ["exit.json", "output.raw", "run.json", "transcript.log"]
    assert out


def test_another_collection_at_work_is_waited_for_then_named(base: FactoryBase) -> None:
    settings(base, 0)
    lock = PathLock(base.dir / "runs.lock")
    assert lock.acquire()
    try:
        done = gc(base, "--yes", env=environment(FACTORY_LOCK_TIMEOUT="0"))
    finally:
        lock.release()
    line = assert_one_line_error(done.returncode, done.stdout, done.stderr)
    assert "another collection of old runs' output is at work" in line


def test_hostile_names_and_links_in_a_run_folder(base: FactoryBase, tmp_path: Path) -> None:
    settings(base, 0)
    with ExecutionLog.open(base.log_path) as log:
        log.add_task(NewTask(title="hostile"), actor="test")
    folder = fake_run(base, "T-1", b"x\n" * 10)
    # The raw output of another run is a link to a file outside: never followed.
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"outside the base\n" * 100)
    linked = fake_run(base, "T-1", b"", attempt=2)
    (linked / "output.raw").unlink()
    (linked / "output.raw").symlink_to(secret)
    (folder / "[bold]x").write_text("markup\n")
    (folder / "\x1b[31mred").write_text("escape\n")
    (folder / os.fsdecode(b"bad-\xff.txt")).write_text("not utf-8\n")
    (folder / os.fsdecode(b"bad-\xfe.txt")).write_text("not utf-8 either\n")
    (folder / "qa").mkdir()
    (folder / "qa" / "out").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(folder / "pipe")

    shown = factory(base, "run-info", "T-1")
    as_json = factory(base, "run-info", "T-1", "--json")
    done = gc(base, "--yes", "--json")

    assert shown.returncode == 0 and as_json.returncode == 0, shown.stderr + as_json.stderr
    assert "\x1b" not in shown.stdout + as_json.stdout
    assert "[bold]x" in shown.stdout and "␛[31mred" in shown.stdout and "bad-\ufffd.txt" in shown.stdout
    runs = {run_["folder"]: run_ for run_ in json.loads(as_json.stdout)["runs"]}
    states = {item["name"]: item["state"] for item in runs["1"]["files"]}
    assert (states["pipe"], states["qa/out"], states["[bold]x"]) == ("special", "link", "kept")
    # Two names that show alike are both listed, and each is read by its own.
    assert {"bad-\ufffd.txt", "bad-\ufffd.txt (2)"} <= set(states)
    with FactorySession(base) as session:
        texts = {session.open_run_file("T-1", 1, name).lines(0, 1)[0]
                 for name in ("bad-\ufffd.txt", "bad-\ufffd.txt (2)")}
    assert texts == {"not utf-8", "not utf-8 either"}
    assert not any(name.startswith("qa/out/") for name in states)
    assert {item["name"]: item["state"] for item in runs["2"]["files"]}["output.raw"] == "link"
    # gc compressed the real one and left the link (and its target) alone.
    assert done.returncode == 0, done.stderr
    assert [(item["folder"], item["step"]) for item in json.loads(done.stdout)["items"]] == [("1", "compress")]
    assert (linked / "output.raw").is_symlink() and not (linked / "output.raw.gz").exists()
    assert secret.read_bytes() == b"outside the base\n" * 100
    with FactorySession(base) as session, pytest.raises(Exception, match="symbolic link"):
        session.open_run_file("T-1", 2, "output.raw")
