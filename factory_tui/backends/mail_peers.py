"""Whether each peer named in factory.toml can be reached now: a peer on
this machine by its base's folder, a peer over git by ``git ls-remote``
(no prompt: a remote that wants a password is unreachable, not a hang)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from factory_tui.backends.base import FACTORY_DIR
from factory_tui.config import Peer

LS_REMOTE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class PeerStatus:
    peer: Peer
    reachable: bool
    detail: str  # why not, or where

    def to_json(self) -> dict:
        return {"name": self.peer.name, "path": self.peer.path, "remote": self.peer.remote,
                "accept": self.peer.accept, "reachable": self.reachable, "detail": self.detail}


def peer_status(root: Path, peer: Peer) -> PeerStatus:
    """``peer`` looked at from the base at ``root``."""
    if peer.path is not None:
        where = (root / Path(peer.path).expanduser()).resolve()
        if (where / FACTORY_DIR).is_dir():
            return PeerStatus(peer, True, str(where))
        if where.is_dir():
            return PeerStatus(peer, False, f"{where} is no factory base (no {FACTORY_DIR}/)")
        return PeerStatus(peer, False, f"{where} does not exist")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}
    try:
        done = subprocess.run(["git", "ls-remote", "--heads", str(peer.remote)], cwd=root, env=env,
                              capture_output=True, text=True, timeout=LS_REMOTE_SECONDS,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return PeerStatus(peer, False, f"no answer within {LS_REMOTE_SECONDS:.0f} s")
    except OSError as error:
        return PeerStatus(peer, False, f"git cannot run: {error.strerror or error}")
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return PeerStatus(peer, False, lines[-1].strip() if lines else f"git ls-remote exited {done.returncode}")
    return PeerStatus(peer, True, str(peer.remote))
