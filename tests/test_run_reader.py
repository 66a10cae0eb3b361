"""Reading a run's file a window at a time: a 50 MB raw output is never
read whole, a compressed one reads like the original, and what an agent
may leave in its run folder (a link out, a FIFO, a damaged .gz, a name
that tries to climb out) is refused in one line."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from factory_tui.backends import run_reader
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.line_index import LINE_LIMIT
from factory_tui.backends.run_reader import GzipReader, PlainReader, UnreadableRunFile, open_reader
from factory_tui.backends.run_retention import compress_raw
from factory_tui.backends.session import FactorySession
from factory_tui.errors import FactoryError, InvalidInput
from factory_tui.model import NewTask


def numbered(count: int, width: int = 60) -> bytes:
    return b"".join(b"line %07d %s\n" % (n, b"x" * (n % width)) for n in range(count))


def expected(count: int, width: int = 60) -> list[str]:
    return [f"line {n:07d} {'x' * (n % width)}" for n in range(count)]


def test_a_plain_file_reads_by_windows(tmp_path: Path) -> None:
    path = tmp_path / "output.raw"
    path.write_bytes(numbered(1000) + b"no newline at the end")
    with open_reader(path, "output.raw") as reader:
        assert isinstance(reader, PlainReader) and not reader.compressed
        assert reader.line_count() == 1001
        assert reader.lines(0, 2) == expected(2)
        assert reader.lines(998, 10) == [*expected(1000)[998:], "no newline at the end"]
        assert reader.lines(2000, 5) == [] and reader.lines(5, 0) == []


def test_a_growing_file_is_taken_in_by_refresh(tmp_path: Path) -> None:
    path = tmp_path / "transcript.log"
    path.write_bytes(b"one\ntw")
    with open_reader(path, "transcript.log") as reader:
        assert reader.lines(0, 5) == ["one", "tw"]
        with open(path, "ab") as handle:
            handle.write(b"o\nthree\n")
        assert reader.refresh() is True and reader.refresh() is False
        assert (reader.line_count(), reader.lines(0, 5)) == (3, ["one", "two", "three"])


def test_long_lines_are_cut_and_bad_utf8_replaced(tmp_path: Path) -> None:
    path = tmp_path / "output.raw"
    path.write_bytes(b"a" * (LINE_LIMIT + 100) + b"\n\xff\xfe bad\r\n\n")
    with open_reader(path, "output.raw") as reader:
        long, bad, empty = reader.lines(0, 3)
        assert long == "a" * LINE_LIMIT + " … (100 more bytes)"
        assert (bad, empty) == ("\ufffd\ufffd bad", "")
    (tmp_path / "empty").write_bytes(b"")
    with open_reader(tmp_path / "empty", "empty") as reader:
        assert (reader.line_count(), reader.lines(0, 10)) == (0, [])


def test_a_compressed_file_reads_like_the_original(tmp_path: Path, monkeypatch) -> None:
    # Small spacing and few points: the reader keeps many states and thins them.
    monkeypatch.setattr(run_reader, "POINT_SPACING", 16 << 10)
    monkeypatch.setattr(run_reader, "MAX_POINTS", 8)
    data = numbered(40_000)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "output.raw").write_bytes(data)
    compress_raw(folder)
    assert not (folder / "output.raw").exists()
    want = expected(40_000)
    with open_reader(folder / "output.raw.gz", "output.raw") as reader:
        assert isinstance(reader, GzipReader) and reader.compressed
        assert 2 <= reader.checkpoints <= 8
        assert (reader.line_count(), reader.size, reader.problem) == (40_000, len(data), None)
        rng = random.Random(7)
        for start in [0, 39_990, 20_000, 19_999, *(rng.randrange(40_000) for _ in range(30))]:
            assert reader.lines(start, 25) == want[start:start + 25], start
        assert reader.lines(0, 40_000) == want


def test_a_gzip_of_several_members_and_a_cut_one(tmp_path: Path) -> None:
    path = tmp_path / "output.raw.gz"
    path.write_bytes(gzip.compress(b"first\nsec") + gzip.compress(b"ond\nthird\n"))
    with open_reader(path, "output.raw") as reader:
        assert reader.lines(0, 5) == ["first", "second", "third"]
    whole = gzip.compress(numbered(5000))
    path.write_bytes(whole[: len(whole) // 2])
    with open_reader(path, "output.raw") as reader:
        assert reader.problem and "ends early" in reader.problem
        assert 0 < reader.line_count() < 5000
        assert reader.lines(0, 1) == expected(1)
    path.write_bytes(b"\x1f\x8b" + b"not gzip at all" * 10)
    with pytest.raises(UnreadableRunFile, match="is not a readable gzip file"):
        open_reader(path, "output.raw")


def test_a_50_mb_raw_output_is_read_a_window_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "output.raw"
    lines = 540_000
    with open(path, "wb") as handle:
        pad = b"x" * 80
        for start in range(0, lines, 10_000):
            handle.write(b"".join(b"line %07d %s\n" % (n, pad) for n in range(start, start + 10_000)))
    assert path.stat().st_size > 50_000_000
    # In a process of its own, so that its peak memory is the reader's.
    script = (
        "import sys, json\n"
        "from factory_tui.backends.run_reader import open_reader\n"
        "with open_reader(__import__('pathlib').Path(sys.argv[1]), 'output.raw') as reader:\n"
        "    found = [reader.line_count(), reader.lines(270_000, 3), reader.lines(539_999, 5)]\n"
        # VmHWM: this process's own peak (ru_maxrss would count the parent's).
        "peak = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')][0].split()[1]\n"
        "print(json.dumps([*found, int(peak)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True)
    count, middle, last, peak_kb = json.loads(done.stdout)
    assert count == lines
    assert middle == [f"line {n:07d} {'x' * 80}" for n in range(270_000, 270_003)]
    assert last == [f"line {lines - 1:07d} {'x' * 80}"]
    # The index (8 bytes a line) and a chunk at a time: never the 50 MB file.
    assert peak_kb < 48_000, peak_kb


def test_links_fifos_and_missing_files_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("not for the viewer\n")
    (tmp_path / "link").symlink_to(secret)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UnreadableRunFile, match="is a symbolic link; it is not followed"):
        open_reader(tmp_path / "link", "link")
    with pytest.raises(UnreadableRunFile, match="not a regular file"):
        open_reader(tmp_path / "fifo", "fifo")
    with pytest.raises(UnreadableRunFile, match="not there"):
        open_reader(tmp_path / "gone", "gone")


# --- through the session: a run's files by name ---------------------------------------------


@pytest.fixture
def session(base: FactoryBase):
    with FactorySession(base) as opened:
        opened.log.add_task(NewTask(title="a task"), actor="test")
        folder = base.run_dir("T-1", 1)
        (folder / "qa" / "20260101-check").mkdir(parents=True)
        (folder / "transcript.log").write_text("⏺ hello\n")
        (folder / "output.raw").write_bytes(b"raw one\nraw two\n")
        (folder / "qa" / "20260101-check" / "output.log").write_text("checked\n")
        yield opened


def test_a_runs_files_are_read_by_the_name_it_lists(session: FactorySession, base: FactoryBase) -> None:
    folder = base.run_dir("T-1", 1)
    assert session.run_file("T-1", 1, "transcript.log") == folder / "transcript.log"
    with session.open_run_file("T-1", 1, "qa/20260101-check/output.log") as reader:
        assert reader.lines(0, 5) == ["checked"]
    compress_raw(folder)
    # The raw output is found under its own name once compressed.
    assert session.run_file("T-1", 1, "output.raw") == folder / "output.raw.gz"
    with session.open_run_file("T-1", 1, "output.raw") as reader:
        assert reader.compressed and reader.lines(0, 5) == ["raw one", "raw two"]


@pytest.mark.parametrize("name", ["../../log.db", "/etc/passwd", "qa", "qa/../transcript.log/", "nothing"])
def test_a_name_that_is_no_file_of_the_run_reaches_nothing(session: FactorySession, name: str) -> None:
    with pytest.raises(InvalidInput, match="has no file"):
        session.run_file("T-1", 1, name)


def test_a_link_out_of_the_run_folder_is_never_followed(session: FactorySession, base: FactoryBase,
                                                         tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("keep out\n")
    folder = base.run_dir("T-1", 1)
    (folder / "notes.txt").symlink_to(secret)
    (folder / "qa" / "outside").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(InvalidInput, match="symbolic link; it is not followed"):
        session.open_run_file("T-1", 1, "notes.txt")
    # A linked folder is not walked: nothing under it is a file of the run.
    with pytest.raises(InvalidInput, match="has no file"):
        session.run_file("T-1", 1, "qa/outside/secret")
    with pytest.raises(FactoryError, match="T-1 has no run 2"):
        session.run_file("T-1", 2, "transcript.log")
