"""Where each line of a growing text file starts, found a chunk at a time,
so that a 50 MB transcript can be shown a screenful at a time (Toolong's
way): the viewer keeps 8 bytes a line and reads only the lines it draws."""

from __future__ import annotations

import os
from array import array
from pathlib import Path

CHUNK = 4 << 20
LINE_LIMIT = 8192


def scan_line_starts(path: Path, offset: int, *, limit: int | None = None) -> tuple[array, int]:
    """The starts of the lines that begin after byte ``offset`` (each just
    after a newline), and how far the file was read."""
    starts = array("q")
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            position = offset
            while True:
                want = CHUNK if limit is None else min(CHUNK, limit - (position - offset))
                if want <= 0:
                    break
                chunk = handle.read(want)
                if not chunk:
                    break
                found = chunk.find(b"\n")
                while found != -1:
                    starts.append(position + found + 1)
                    found = chunk.find(b"\n", found + 1)
                position += len(chunk)
    except FileNotFoundError:
        return starts, offset
    return starts, position


def read_line(fd: int, start: int, end: int) -> str:
    """The line between two offsets (without its newline), at most
    ``LINE_LIMIT`` bytes of it."""
    length = max(0, end - start)
    data = os.pread(fd, min(length, LINE_LIMIT), start)
    text = data.rstrip(b"\n").rstrip(b"\r").decode("utf-8", errors="replace")
    if length > LINE_LIMIT:
        text += f" … ({length - LINE_LIMIT:,} more bytes)"
    return text
