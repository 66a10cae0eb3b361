"""Finding a run's processes by FACTORY_RUN (backends/processes.py), with
real processes: the environments are read first and the process table only
when one names the run, so these pin down what each pass must still find."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from factory_tui.backends import processes
from tests.engine_helpers import alive, wait_for

pytestmark = pytest.mark.skipif(not processes.proc_available(), reason="needs /proc")

# A parent naming the run starts a child that clears its environment (env -i):
# the child no longer names the run, but is found through its parent.
PARENT = r"""
import subprocess, sys, time
from pathlib import Path
child = subprocess.Popen(["env", "-i", sys.executable, "-c", "import time; time.sleep(300)"])
Path(sys.argv[1]).write_text(str(child.pid))
time.sleep(300)
"""


def start(run: Path, *argv: str, **env: str) -> subprocess.Popen:
    clean = {key: value for key, value in os.environ.items() if key != "FACTORY_RUN"}
    return subprocess.Popen(list(argv), env={**clean, **env}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def started():
    procs: list[subprocess.Popen] = []
    others: list[int] = []
    yield procs, others
    for pid in others:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_run_with_no_process_left_finds_nothing(tmp_path: Path, started) -> None:
    run = tmp_path / "runs" / "T-1" / "1"
    other = start(tmp_path, sys.executable, "-c", "import time; time.sleep(300)",
                  FACTORY_RUN=str(tmp_path / "runs" / "T-2" / "1"))
    started[0].append(other)
    wait_for(lambda: processes.run_of(other.pid) is not None, "the other run's process to start", limit=10)
    assert processes.of_run(run) == []
    # The other run's process is found by its own run, not by this one.
    assert [found.pid for found in processes.of_run(tmp_path / "runs" / "T-2" / "1")] == [other.pid]


def test_a_child_that_cleared_its_environment_is_found_through_its_parent(tmp_path: Path, started) -> None:
    run = tmp_path / "runs" / "T-1" / "1"
    child_file = tmp_path / "child.pid"
    parent = start(tmp_path, sys.executable, "-c", PARENT, str(child_file), FACTORY_RUN=str(run))
    started[0].append(parent)
    child = int(wait_for(lambda: child_file.exists() and child_file.read_text(), "the child to start", limit=10))
    started[1].append(child)
    wait_for(lambda: alive(child) and processes.run_of(child) is None, "the child's own environment", limit=10)
    found = {item.pid: item for item in processes.of_run(run)}
    assert set(found) == {parent.pid, child}
    assert found[child].ppid == parent.pid and found[child].run == str(run)
    # Of a task: any of its runs, by the runs/<task>/ prefix.
    assert {item.pid for item in processes.of_task(run.parent)} == {parent.pid, child}
    assert processes.of_task(tmp_path / "runs" / "T-10") == []


def test_a_zombie_is_not_a_live_member(tmp_path: Path, started) -> None:
    run = tmp_path / "runs" / "T-1" / "1"
    zombie = start(tmp_path, sys.executable, "-c", "pass", FACTORY_RUN=str(run))
    started[0].append(zombie)
    # Not reaped (no wait()): it stays a zombie until the fixture reaps it.
    wait_for(lambda: processes._stat(str(zombie.pid)) is not None
             and processes._stat(str(zombie.pid))[0] == "Z", "the process to become a zombie", limit=10)
    assert processes.of_run(run) == []
    assert not processes.is_live_member(zombie.pid, run)
