"""``factory mail``: messages between factories, from the command line.

The group; each command lives in a module of its own and is registered
here with one line (``cli_mail_sync.py``: ``factory mail sync``).

Registered on ``factory`` by ``factory_tui/cli.py`` (its last lines); import
``factory_tui.cli``, not this module, first.
"""

from __future__ import annotations

import click

from factory_tui.cli import FactoryGroup


@click.group(cls=FactoryGroup)
def mail() -> None:
    """Messages between factories: .factory/mailbox/, and peers' mail over git."""


from factory_tui.cli_mail_sync import mail_sync  # noqa: E402

mail.add_command(mail_sync)
