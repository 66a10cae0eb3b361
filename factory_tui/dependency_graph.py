"""Finding a loop among the dependencies of a batch of new tasks.

A plan file or a batch handed to ``ExecutionLog.add_tasks`` names its own
items (by label) and tasks already in the log. Tasks already in the log can
never depend on items not yet created, so a loop can only run through the
batch's own items: a depth-first walk of those edges finds it. The walk is
iterative (a 100,000-item chain must not hit Python's recursion limit) and
visits each item and edge once, so it is linear in the size of the batch.

Pure: no SQLite, no git, no Textual.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

Node = TypeVar("Node", bound=Hashable)

_ON_PATH, _DONE = 1, 2


def find_cycle(
    nodes: Iterable[Node], depends_on: Callable[[Node], Sequence[Node]]
) -> list[Node] | None:
    """The first loop found, as ``[a, b, …, a]`` where each item depends on
    the next, or None if there is none.

    ``nodes`` are walked in the order given and each node's dependencies in
    the order ``depends_on`` returns them (only nodes among ``nodes`` should
    be returned), so the loop reported is the one a reader finds first when
    following the plan from the top.
    """
    state: dict[Node, int] = {}
    for root in nodes:
        if root in state:
            continue
        # The walk's path, and beside it where each node's edges were left off.
        path: list[Node] = [root]
        positions: list[int] = [0]
        edges: list[Sequence[Node]] = [depends_on(root)]
        state[root] = _ON_PATH
        on_path_index: dict[Node, int] = {root: 0}
        while path:
            top = len(path) - 1
            if positions[top] == len(edges[top]):
                done = path.pop()
                positions.pop()
                edges.pop()
                del on_path_index[done]
                state[done] = _DONE
                continue
            nxt = edges[top][positions[top]]
            positions[top] += 1
            seen = state.get(nxt)
            if seen == _DONE:
                continue
            if seen == _ON_PATH:
                return path[on_path_index[nxt]:] + [nxt]
            state[nxt] = _ON_PATH
            on_path_index[nxt] = len(path)
            path.append(nxt)
            positions.append(0)
            edges.append(depends_on(nxt))
    return None
