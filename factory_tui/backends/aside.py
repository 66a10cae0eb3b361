"""A call run in a thread of its own while its caller goes on with other
work: ``Aside(call).result()`` waits for it and returns what it returned
(or raises what it raised). An approval uses it to let git look at a
worktree, or remove one, while the log is read and the history written.

The thread is started without waiting for it to be scheduled (as
``threading.Thread.start`` does): that wait is for the new thread to get
the interpreter's lock, up to its switch interval (5 ms) while another
thread runs Python, and the caller has better things to do meanwhile."""

from __future__ import annotations

import _thread
import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class Aside(Generic[T]):
    """``call`` running in a thread of its own from the moment this is made."""

    def __init__(self, call: Callable[[], T], *, name: str = "aside") -> None:
        self.name = name
        self._value: T | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()

        def run() -> None:
            try:
                self._value = call()
            except BaseException as error:  # handed to whoever asks for the result
                self._error = error
            finally:
                self._done.set()

        _thread.start_new_thread(run, ())

    def done(self) -> bool:
        """Whether the call has returned (or raised)."""
        return self._done.is_set()

    def result(self) -> T:
        """What the call returned, once it has (what it raised, raised here)."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)
