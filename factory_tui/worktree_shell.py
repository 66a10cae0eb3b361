"""The shell and the editor the console opens in a task's worktree (``o`` and
``e`` on the Worktrees pane): which program runs, and with what environment.

A worktree is a checkout of the repository, ``.factory/factory.toml``
included, so ``factory`` typed there would find the worktree's copy of the
base, see no log in it, and offer ``factory init``: a second log beside the
real one. ``FACTORY_BASE`` points every ``factory`` run from that shell at
the base the console shows. The operator is not an agent, so the variables
that speak for an agent's run are never passed on, whatever the console's
own environment holds.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path

from factory_tui.errors import FactoryError

# What an agent's run is given and the operator's shell must not carry: the
# task it works on, its run folder, and its run's secret token.
AGENT_VARIABLES = ("FACTORY_TASK", "FACTORY_RUN", "FACTORY_TOKEN")


def operator_environment(base_root: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) for a program the operator
    runs in a worktree of the base at ``base_root``."""
    env = dict(os.environ if environ is None else environ)
    for name in AGENT_VARIABLES:
        env.pop(name, None)
    env["FACTORY_BASE"] = str(base_root)
    return env


def shell_argv(environ: Mapping[str, str]) -> list[str]:
    """The operator's login shell ($SHELL), else bash, else sh."""
    return [environ.get("SHELL") or shutil.which("bash") or "/bin/sh"]


def editor_argv(environ: Mapping[str, str], *, target: str | None = ".") -> list[str]:
    """$VISUAL or $EDITOR (a command with its options, ``code --wait``) on
    ``target`` (the worktree's folder; None: the caller adds a file), else vi."""
    editor = environ.get("VISUAL") or environ.get("EDITOR") or "vi"
    try:
        words = shlex.split(editor)
    except ValueError as error:
        raise FactoryError(f"cannot read the editor command {editor!r}: {error}") from None
    if not words:
        words = ["vi"]
    return [*words, target] if target is not None else words


def runnable(argv: list[str], environ: Mapping[str, str]) -> list[str]:
    """``argv`` when its program is found on the ``PATH`` of ``environ``;
    else FactoryError saying so in one line (before the console suspends
    itself for a program that cannot start)."""
    if shutil.which(argv[0], path=environ.get("PATH")) is None:
        raise FactoryError(f"cannot open {argv[0]}: not found")
    return argv
