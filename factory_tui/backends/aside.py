"""A call run in a thread of its own while its caller goes on with other
work: ``Aside(call).result()`` waits for it and returns what it returned
(or raises what it raised). An approval uses it to let git look at a
worktree, or remove one, while the log is read and the history written."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class Aside(Generic[T]):
    """``call`` running in a thread of its own from the moment this is made."""

    def __init__(self, call: Callable[[], T], *, name: str = "aside") -> None:
        self._value: T | None = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = call()
            except BaseException as error:  # handed to whoever asks for the result
                self._error = error

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def result(self) -> T:
        """What the call returned, once it has (what it raised, raised here)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)
