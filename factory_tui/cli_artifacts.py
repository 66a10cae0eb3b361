"""``factory artifacts``: the factory's inventory from the command line.

The group only; its commands live with what they show: the living
documents (``list``, ``show``, ``history``, ``refresh``) in
``cli_documents.py``, the runs' files (``gc``) in ``cli_runs.py``, which
also gives ``factory run-info``. Each registers itself with one line at
the end of this module.

Registered on ``factory`` by ``factory_tui/cli.py`` (its last lines), whose
conventions (``needs``, ``--json``, one-line errors) these commands follow.
"""

from __future__ import annotations

import click

from factory_tui.cli import FactoryGroup


@click.group(cls=FactoryGroup)
def artifacts() -> None:
    """Living documents (.factory/artifacts/) and what every run read and produced."""


# --- runs' files: gc here, and `factory run-info` (cli_runs.py) ------------------

from factory_tui.cli_runs import register_runs  # noqa: E402

register_runs(artifacts)

# --- the living documents: list, show, history, refresh (cli_documents.py) -------

from factory_tui.cli_documents import documents_history, documents_list, documents_refresh, documents_show  # noqa: E402

for _command in (documents_list, documents_show, documents_history, documents_refresh):
    artifacts.add_command(_command)
