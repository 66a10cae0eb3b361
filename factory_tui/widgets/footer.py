"""The console's footer: Textual's Footer, without what it kept of every
set of keys it ever showed.

Each time the keys change (focus moves to another pane) the Footer makes
new key widgets and binds each to its own ``compact`` (``data_bind``).
Textual forgets a removed widget's binding only when ``compact`` changes,
which in the console it never does: every move of the focus kept its keys,
their styles and message queues, for as long as the console ran. After each
rebuild the bindings of the keys that are gone are dropped here.
"""

from __future__ import annotations

from textual.widgets import Footer


class ConsoleFooter(Footer):
    """The Footer, its ``compact`` bound only to the keys it shows."""

    async def recompose(self) -> None:
        await super().recompose()
        # Textual's own list of who watches ``compact`` (textual.reactive._watch);
        # it prunes closed nodes the same way, but only when the value changes.
        watchers = getattr(self, "__watchers", {}).get("compact")
        if watchers:
            watchers[:] = [(node, callback) for node, callback in watchers
                           if not (node._closing or node._closed)]
