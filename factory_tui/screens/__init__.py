"""The console's screens: a task in full, an agent's run, help, and the dialogs.

The task and run screens are imported when first opened (see
``TaskActions.warm_up``): their markdown and syntax highlighting would cost
the dashboard's first frame a tenth of a second.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TypeGuard

if TYPE_CHECKING:
    from factory_tui.screens.task import TaskScreen


def is_task_screen(screen: object) -> TypeGuard[TaskScreen]:
    """Whether ``screen`` is a task's screen, without importing its module:
    before that module is imported no screen can be one."""
    module = sys.modules.get("factory_tui.screens.task")
    # While a worker is still importing it (the warm-up), it has no class
    # yet, and so no screen of it can be open.
    task_screen = getattr(module, "TaskScreen", None)
    return task_screen is not None and isinstance(screen, task_screen)
