"""How the console writes a moment and a span of time: one format for every
place that shows one (the Log's TIME column, a task's history, the Plan's
age column, the Worktrees' elapsed time), so that the same moment never
reads two ways.

A moment is written as short as it can be without losing what matters:
``14:03:07`` today, ``09-21 14:45`` earlier this year, ``2025-09-21``
before that (at most 11 characters, so it fits one column). A span is at
most five characters: ``4:07``, ``2h05``, ``3d04h``.

Pure: no Textual, so the CLI may use it too. "Today" is the local day of
``now``, which the caller passes (the console's clock, fixed in tests and
pictures).
"""

from __future__ import annotations

import time

# The widest ``moment`` (``09-21 14:45``), for a column.
MOMENT_WIDTH = 11
# The widest ``span`` (``3d04h``), for a column.
SPAN_WIDTH = 5


def moment(at: float, now: float) -> str:
    """``at`` in local time, as short as the distance from ``now`` allows."""
    then = time.localtime(at)
    today = time.localtime(now)
    if then.tm_year == today.tm_year and then.tm_yday == today.tm_yday:
        return time.strftime("%H:%M:%S", then)
    if then.tm_year == today.tm_year:
        return time.strftime("%m-%d %H:%M", then)
    return time.strftime("%Y-%m-%d", then)


def full_moment(at: float) -> str:
    """``at`` in full, local time: ``2026-09-21 14:45:07`` (where a line
    must stand on its own, as in ``factory log``)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def span(seconds: float) -> str:
    """A length of time in at most five characters: 4:07, 2h05, 3d04h,
    12d; a negative span (a clock set back) is 0:00."""
    seconds = max(0, int(seconds))
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
    days = seconds // 86400
    if days < 10:
        return f"{days}d{seconds % 86400 // 3600:02d}h"
    return f"{days}d"
