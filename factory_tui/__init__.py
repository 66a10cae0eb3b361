"""factory-tui: the base a software factory stands on (execution log,
workspaces, artifacts, QA, messaging) and the operator's terminal console."""

__version__ = "0.1.0"
