"""Reading a run's file a window of lines at a time, whether it is kept
whole or compressed (``output.raw.gz``), for a viewer that shows a 50 MB
output a screenful at a time.

A reader keeps where each line starts (8 bytes a line, found a chunk at a
time: the file is never held whole) and reads only the lines asked for. A
compressed file cannot be read from the middle, so its reader decompresses
it once, a chunk at a time, and keeps the decompressor's state every
megabyte or so of output (zran's way); a window is then read from the
nearest saved state before it. Reading never follows a symbolic link and
never opens a FIFO or a device: a run folder is written by an untrusted
agent.

The text is returned as it is (bytes that are not UTF-8 replaced, a line
longer than ``LINE_LIMIT`` cut with a note); showing it literally is the
viewer's part.
"""

from __future__ import annotations

import errno
import os
import stat
import zlib
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

from factory_tui.backends.line_index import LINE_LIMIT
from factory_tui.errors import FactoryError

# The file is read this much at a time while its lines are found.
SCAN_CHUNK = 4 << 20
# A window's bytes are read in one go up to this much, else line by line.
WINDOW_BYTES = 4 << 20
# Compressed input fed at a time, and output taken at a time (the memory a
# compressed reader needs beyond its index and saved states).
IN_CHUNK = 64 << 10
OUT_CHUNK = 256 << 10
# A decompressor's state is kept every this much output at first; when
# there are more than MAX_POINTS of them, every other one goes and the
# spacing doubles (a state is ~40 KB: MAX_POINTS of them stay under 20 MB).
POINT_SPACING = 1 << 20
MAX_POINTS = 512
GZIP_MAGIC = b"\x1f\x8b"


class UnreadableRunFile(FactoryError):
    """A run's file that cannot be shown (a link, a FIFO, a damaged .gz)."""


def _open(path: Path, shown: str) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnreadableRunFile(f"{shown} is a symbolic link; it is not followed") from None
        if error.errno == errno.ENOENT:
            raise UnreadableRunFile(f"{shown} is not there (any more)") from None
        raise UnreadableRunFile(f"cannot read {shown}: {error.strerror or error}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnreadableRunFile(f"{shown} is not a regular file; it is not read")
    return fd


def _decode(data: bytes, full_length: int) -> str:
    text = data.rstrip(b"\n").rstrip(b"\r").decode("utf-8", errors="replace")
    if full_length > LINE_LIMIT:
        text += f" … ({full_length - LINE_LIMIT:,} more bytes)"
    return text


class RunFileReader:
    """A file of a run, by lines: ``line_count()`` and ``lines(start,
    count)``. ``refresh()`` takes in what was written since (a live run's
    file grows). Use it from a worker thread, never a screen's loop: opening
    a compressed file decompresses it once."""

    compressed = False

    def __init__(self, fd: int, shown: str) -> None:
        self._fd: int | None = fd
        self.shown = shown
        self._starts = array("q", [0])
        self._size = 0
        # Why the file could not be read to its end (a truncated .gz), if so.
        self.problem: str | None = None

    # --- what subclasses give ----------------------------------------------------

    def _read(self, start: int, length: int) -> bytes:
        raise NotImplementedError

    def refresh(self) -> bool:
        """Take in bytes written since the last look; True if there were any."""
        return False

    # --- lines -----------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Bytes of text (decompressed) known so far."""
        return self._size

    def _index(self, offset: int, data: bytes) -> None:
        found = data.find(b"\n")
        starts = self._starts
        while found != -1:
            starts.append(offset + found + 1)
            found = data.find(b"\n", found + 1)

    def line_count(self) -> int:
        count = len(self._starts)
        # A file that ends with a newline has no line after it.
        if self._starts[-1] >= self._size:
            count -= 1
        return max(0, count)

    def _end_of(self, index: int) -> int:
        return self._starts[index + 1] if index + 1 < len(self._starts) else self._size

    def _length(self, index: int) -> int:
        """A line's bytes, without its newline."""
        return self._end_of(index) - self._starts[index] - (1 if index + 1 < len(self._starts) else 0)

    def lines(self, start: int, count: int) -> list[str]:
        """Lines ``start`` to ``start + count - 1`` (fewer at the end)."""
        start = max(0, start)
        last = min(self.line_count(), start + max(0, count))
        if start >= last:
            return []
        begin, end = self._starts[start], self._end_of(last - 1)
        if end - begin <= WINDOW_BYTES:
            data = self._read(begin, end - begin)
            return [_decode(data[self._starts[i] - begin:self._starts[i] - begin + min(LINE_LIMIT, self._length(i))],
                            self._length(i)) for i in range(start, last)]
        found = []
        for i in range(start, last):
            length = self._length(i)
            found.append(_decode(self._read(self._starts[i], min(length, LINE_LIMIT)), length))
        return found

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunFileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _descriptor(self) -> int:
        if self._fd is None:
            raise UnreadableRunFile(f"{self.shown} was closed")
        return self._fd


class PlainReader(RunFileReader):
    """A file kept whole; it may still grow."""

    def __init__(self, fd: int, shown: str) -> None:
        super().__init__(fd, shown)
        self.refresh()

    def refresh(self) -> bool:
        fd = self._descriptor()
        grown = False
        while True:
            data = os.pread(fd, SCAN_CHUNK, self._size)
            if not data:
                return grown
            self._index(self._size, data)
            self._size += len(data)
            grown = True

    def _read(self, start: int, length: int) -> bytes:
        return os.pread(self._descriptor(), length, start)


@dataclass(frozen=True, slots=True)
class _Point:
    """A decompressor's state: where its input resumes in the file, and the
    output offset it resumes at."""

    input_offset: int
    output_offset: int
    state: object  # a zlib decompressor, copied


def _decompressor():
    return zlib.decompressobj(wbits=31)  # gzip


class _Stream:
    """Decompressing a gzip file (one member or several) from a saved
    state, a piece of output at a time."""

    def __init__(self, fd: int, point: _Point) -> None:
        self.fd = fd
        self.position = point.input_offset  # of the next read
        self.pending = b""  # read, not yet consumed
        self.output = point.output_offset
        self.inflater = point.state.copy()  # type: ignore[attr-defined]
        # Nothing fed to the current member yet: ending here is a clean end.
        self.fresh = point.input_offset == 0
        self.ended = False

    def mark(self) -> _Point:
        return _Point(self.position - len(self.pending), self.output, self.inflater.copy())

    def step(self) -> bytes:
        """The next piece of output; b"" at the end."""
        while not self.ended:
            if not self.pending:
                out = b"" if self.fresh else self.inflater.decompress(b"", OUT_CHUNK)
                if not out:
                    self.pending = os.pread(self.fd, IN_CHUNK, self.position)
                    self.position += len(self.pending)
                    if not self.pending:
                        self.ended = True
                        return b""
                    out = self.inflater.decompress(self.pending, OUT_CHUNK)
                    self.fresh = False
                    self.pending = self.inflater.unconsumed_tail
            else:
                out = self.inflater.decompress(self.pending, OUT_CHUNK)
                self.fresh = False
                self.pending = self.inflater.unconsumed_tail
            if self.inflater.eof:
                # The member ended: another may follow; anything else (zero
                # padding some tools add) is the end of the file.
                rest = self.inflater.unused_data
                self.inflater = _decompressor()
                self.fresh = True
                self.pending = rest
                if rest and not rest.startswith(GZIP_MAGIC):
                    self.ended = True
            if out:
                self.output += len(out)
                return out
        return b""


class GzipReader(RunFileReader):
    """A compressed file (``output.raw.gz``), decompressed once to find its
    lines and the states to read it again from."""

    compressed = True

    def __init__(self, fd: int, shown: str) -> None:
        super().__init__(fd, shown)
        self._points: list[_Point] = []
        self._cursor: _Stream | None = None
        self._scan()

    def _scan(self) -> None:
        stream = _Stream(self._descriptor(), _Point(0, 0, _decompressor()))
        points = [stream.mark()]
        spacing = POINT_SPACING
        try:
            while chunk := stream.step():
                self._index(stream.output - len(chunk), chunk)
                if stream.output - points[-1].output_offset >= spacing:
                    points.append(stream.mark())
                    if len(points) > MAX_POINTS:
                        points = points[::2]
                        spacing *= 2
        except zlib.error as error:
            raise UnreadableRunFile(f"{self.shown} is not a readable gzip file ({error})") from None
        self._size = stream.output
        self._points = points
        if not stream.fresh:
            self.problem = f"{self.shown} ends early: it was cut short; what it holds is shown"

    @property
    def checkpoints(self) -> int:
        """How many decompressor states are kept."""
        return len(self._points)

    def _read(self, start: int, length: int) -> bytes:
        end = start + length
        index = bisect_right([point.output_offset for point in self._points], start) - 1
        point = self._points[max(0, index)]
        stream = self._cursor
        if stream is None or not (point.output_offset <= stream.output <= start):
            stream = _Stream(self._descriptor(), point)
        found = bytearray()
        try:
            while stream.output < end:
                before = stream.output
                chunk = stream.step()
                if not chunk:
                    break
                low, high = max(start, before) - before, min(end, stream.output) - before
                if low < high:
                    found += chunk[low:high]
        except zlib.error as error:
            raise UnreadableRunFile(f"{self.shown} is not a readable gzip file ({error})") from None
        self._cursor = stream
        return bytes(found)


def open_reader(path: Path, shown: str) -> RunFileReader:
    """A reader of the file at ``path`` (``shown``: its name in messages):
    a compressed one for a gzip file, else a plain one."""
    fd = _open(path, shown)
    try:
        head = os.pread(fd, 2, 0)
        if path.name.endswith(".gz") and head == GZIP_MAGIC:
            return GzipReader(fd, shown)
        return PlainReader(fd, shown)
    except BaseException:
        os.close(fd)
        raise
