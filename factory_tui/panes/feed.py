"""What a pane is handed of the execution log: the app follows the log
(one feed for the whole console, backends/feed.py) and gives every pane the
first snapshot (for a big base, its first look and then the rest) and each
change; a pane takes what it shows from them. It is also told which task
the operator's Plan cursor is on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from factory_tui.backends.feed import Changes, Rest, Snapshot


class FeedListener:
    """A pane's side of the log feed; both do nothing unless overridden."""

    def log_loaded(self, snapshot: Snapshot) -> None:
        """The first read of the log (``snapshot.complete``: whole)."""

    def log_completed(self, rest: Rest) -> None:
        """The whole plan and every event's id, after a first look that was
        not complete; changes come after it."""

    def log_changed(self, changes: Changes) -> None:
        """Tasks and events written since the last call, by any process."""

    def task_highlighted(self, task_id: str | None) -> None:
        """The Plan's cursor moved to another task (None: no task)."""
