"""backends/aside.py: a call in a thread of its own, its result (or what it
raised) handed to whoever waits for it."""

from __future__ import annotations

import threading

import pytest

from factory_tui.backends.aside import Aside


def test_the_call_runs_beside_the_caller_and_its_result_waits():
    go = threading.Event()
    aside = Aside(lambda: go.wait(10) and "done")
    # The call is under way (waiting for go) while the caller goes on.
    go.set()
    assert aside.result() == "done"


def test_what_the_call_raised_is_raised_to_whoever_asks():
    def fails() -> int:
        raise ValueError("git could not tell")

    aside = Aside(fails)
    with pytest.raises(ValueError, match="git could not tell"):
        aside.result()
