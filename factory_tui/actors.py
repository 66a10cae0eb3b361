"""Who an action is recorded as in the log's events."""

from __future__ import annotations

import getpass
import os


def actor_name(channel: str) -> str:
    """``agent:T-3`` inside an agent's run (``FACTORY_TASK`` set), else
    ``<channel>:<user>``, such as ``cli:alice`` or ``console:alice``."""
    task = os.environ.get("FACTORY_TASK")
    if task:
        return f"agent:{task}"
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment
        user = "operator"
    return f"{channel}:{user}"
