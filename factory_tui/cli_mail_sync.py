"""``factory mail sync``: meet the peers that have a git ``remote`` now.

Pushes our mail branch (``factory/mail/<name>``) to each peer's remote,
fetches theirs, and takes what is addressed to us into the inbox
(``backends/mail_git.py`` does the work); prints, per peer, what was pushed
and fetched and what failed. Exit 1 when a peer could not be met: its
messages stay behind and the next sync tries again.

Registered on the ``mail`` group by ``cli_mail.py`` with one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from factory_tui.actors import Need
from factory_tui.cli import Context, needs
from factory_tui.errors import FactoryError
from factory_tui.text import dumps_json, literal, one_line

if TYPE_CHECKING:
    from factory_tui.backends.mail_git import PeerSync, SyncReport

# backends.mail_git (and the message reader's YAML) is imported by the
# command when it runs: `factory --help` and every other command stay light.

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
pass_ctx = click.make_pass_decorator(Context)


def peer_json(peer: PeerSync) -> dict:
    """One peer's part of a sync; the remote's URL is left out (it may hold
    a password)."""
    return {
        "peer": peer.peer,
        "pushed": peer.pushed,
        "fetched": [str(path) for path in peer.taken],
        "refused": [{"path": item.path, "reason": item.reason} for item in peer.refused],
        "error": peer.error,
        "behind": peer.behind,
    }


def peer_text(peer: PeerSync) -> list[str]:
    line = f"{literal(peer.peer)}: pushed {peer.pushed}, fetched {len(peer.taken)} new"
    if peer.error:
        line += f"; {'behind: ' if peer.behind else ''}{one_line(peer.error, 300)}"
    elif peer.behind:
        line += "; behind"
    lines = [line]
    lines.extend(f"  refused {one_line(item.path, 120)}: {one_line(item.reason, 300)}" for item in peer.refused)
    return lines


@click.command("sync")
@json_option
@pass_ctx
@needs(Need.MAIL)
def mail_sync(ctx: Context, as_json: bool) -> None:
    """Push our mail to the peers' git remotes and fetch theirs now."""
    from factory_tui.backends.mail_git import sync

    base = ctx.base
    config = base.config()
    # Failed deliveries first (a peer's folder back, our branch published
    # again), so that this sync pushes them.
    ctx.session.retry_undelivered()
    report: SyncReport = sync(base.root, config.name, config.peers.values(), base.inbox_dir,
                              max_bytes=config.mail.max_bytes)
    ctx.session.record_sync(report)
    # What came is taken into the log now (an engine or a console would do
    # it by itself; without one, `factory mail list` right after a sync
    # would not show it).
    if report.taken:
        ctx.session.mail_ingest().ingest_paths(report.taken)
    if as_json:
        click.echo(dumps_json({"peers": [peer_json(peer) for peer in report.peers]}))
    elif not report.peers:
        click.echo("No peer has a git remote: nothing to sync ([peers.NAME] remote = \"...\" in factory.toml).")
    else:
        for peer in report.peers:
            for line in peer_text(peer):
                click.echo(line)
    if report.errors:
        names = ", ".join(name for name, _ in report.errors)
        raise FactoryError(f"mail sync: could not meet {names}; their mail is tried again at the next sync")
