"""Fault points: named places in the engine where a test makes the process
die, stop or wait, so that a crash window is hit exactly, not by luck.

``FACTORY_FAULTS`` holds ``point=action`` pairs separated by commas; an
action may end in ``@N`` to act only the N-th time the point is reached:

    kill            SIGKILL this process
    stop            SIGSTOP this process (a test sends SIGCONT)
    fail            raise InjectedFault (ENOSPC, as a full disk would)
    bug             raise RuntimeError (as a bug of ours would)
    wait:PATH       wait until PATH exists

Unset (as always outside tests), ``point`` costs one dictionary look-up.
"""

from __future__ import annotations

import errno
import os
import signal
import time

ENV = "FACTORY_FAULTS"


class InjectedFault(OSError):
    """A failure a test asked for at a fault point."""


def _parse(text: str) -> dict[str, tuple[str, int]]:
    plan: dict[str, tuple[str, int]] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        name, _, action = part.partition("=")
        action, _, nth = action.partition("@")
        plan[name.strip()] = (action.strip(), int(nth) if nth.strip().isdigit() else 1)
    return plan


_plan = _parse(os.environ.get(ENV, ""))
_seen: dict[str, int] = {}


def point(name: str) -> None:
    """Act as ``FACTORY_FAULTS`` says for this point, if it says anything."""
    if not _plan or name not in _plan:
        return
    action, nth = _plan[name]
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] != nth:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif action == "fail":
        raise InjectedFault(errno.ENOSPC, f"No space left on device (injected at {name})")
    elif action == "bug":
        raise RuntimeError(f"injected bug at {name}")
    elif action.startswith("wait:"):
        path = action[len("wait:"):]
        deadline = time.monotonic() + 300
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)


def reload() -> None:
    """Read ``FACTORY_FAULTS`` again (for a test in this process)."""
    global _plan
    _plan = _parse(os.environ.get(ENV, ""))
    _seen.clear()
