"""$EDITOR on a file of the base (a QA scenario, a living document): the
console suspends while the editor has the terminal, and comes back when it
exits. The file's path comes from the session (which checks the name);
the editor's argv from the operator's environment (worktree_shell.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from factory_tui.context import console
from factory_tui.errors import FactoryError
from factory_tui.text import literal

if TYPE_CHECKING:
    from factory_tui.backends.session import FactorySession


def edit_file(where, path_of: Callable[[FactorySession], Path], *, after: Callable[[], object] | None = None) -> None:
    """Open the file ``path_of(session)`` in $EDITOR; ``after`` runs once
    the editor exits. A name the session refuses, or no terminal to hand
    over, is a notification."""
    from factory_tui.worktree_shell import editor_argv, operator_environment, runnable

    app = where.app
    session = console(where).session
    try:
        path = path_of(session)
        env = operator_environment(session.base.root)
        argv = runnable(editor_argv(env, target=None), env) + [str(path)]
    except FactoryError as error:
        app.notify(literal(str(error)), severity="error", markup=False)
        return
    try:
        with app.suspend():
            subprocess.run(argv, cwd=session.base.root, env=env, check=False)
    except Exception as error:  # no terminal to hand over (tests, headless)
        app.notify(literal(f"cannot open {argv[0]} here: {error}"), severity="error", markup=False)
        return
    if after is not None:
        after()
