"""Showing outside text literally (factory_tui.text) and what the `/`
filters mean (factory_tui.filters), in memory and in SQLite alike."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factory_tui.backends.log import ExecutionLog, LogReader
from factory_tui.errors import InvalidInput
from factory_tui.filters import LogFilter, plan_matches
from factory_tui.model import EVENT_KINDS, Action, Event, NewTask, State, Task
from factory_tui.text import dumps_json, literal, one_line

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"
C1 = "".join(chr(c) for c in range(0x80, 0xA0))
# Characters that take no room on screen: a title holding them looks like
# another title, or hides a word break.
INVISIBLE = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e\u2028\u2029"


def raw_controls(text: str) -> list[str]:
    """Characters a terminal would act on, that reorder the text shown, or
    that cannot be seen."""
    return [
        ch for ch in text
        if unicodedata.category(ch) == "Cc" or ch in BIDI or ch in INVISIBLE
    ]


# --- literal ------------------------------------------------------------------


def test_plain_text_is_unchanged() -> None:
    for text in ["", "Ship it", "[bold]markup stays text[/bold]", "naïve café 日本語 🚀"]:
        assert literal(text) == text
        assert literal(text, multiline=True) == text
        assert one_line(text, 100) == text


def test_escape_sequences_become_visible() -> None:
    shown = literal("\x1b[31mred\x1b[0m\x07bell\x00nul\x08bs\x7fdel")
    assert shown == "␛[31mred␛[0m␇bell␀nul␈bs␡del"
    assert raw_controls(shown) == []


def test_newlines_in_one_line_mode_and_multiline() -> None:
    assert literal("one\ntwo") == "one⏎two"
    assert literal("one\r\ntwo") == "one␍⏎two"
    assert literal("one\ntwo", multiline=True) == "one\ntwo"
    assert literal("one\r\ntwo\rthree", multiline=True) == "one\ntwo␍three"
    assert literal("a\n\x1b]0;title\x07", multiline=True) == "a\n␛]0;title␇"


def test_tabs_become_spaces() -> None:
    assert literal("a\tb\x1b") == "a   b␛"
    assert literal("a\tb\x1b", tab=8) == "a       b␛"
    assert "\t" not in literal("\t\t", multiline=True)


def test_c1_controls_and_bidi_overrides_are_escaped() -> None:
    assert literal("\x9b31m") == "\\u009b31m"
    assert literal("abc\u202edcba") == "abc\\u202edcba"
    assert literal("x\u2066y\u2069") == "x\\u2066y\\u2069"
    assert literal("\u200f") == "\\u200f"
    shown = literal(C1 + BIDI)
    assert raw_controls(shown) == []
    assert shown == "".join(f"\\u{ord(ch):04x}" for ch in C1 + BIDI)


@pytest.mark.parametrize("char", list(INVISIBLE))
def test_invisible_characters_are_escaped(char: str) -> None:
    escape = f"\\u{ord(char):04x}"
    assert literal(f"pay{char}pal") == f"pay{escape}pal"
    assert literal(f"pay{char}pal\nnext", multiline=True) == f"pay{escape}pal\nnext"
    assert one_line(f"{char}x", 20) == f"{escape}x"
    # Two titles that look alike are told apart.
    assert literal(f"Deploy{char}") != literal("Deploy")


def test_a_byte_order_mark_and_separators_among_other_text() -> None:
    shown = literal("\ufeffTitle\u2028second\u2029third \u00adsoft", multiline=True)
    assert shown == "\\ufeffTitle\\u2028second\\u2029third \\u00adsoft"
    assert raw_controls(shown) == []
    # Visible characters next to them are untouched: emoji joined by ZWJ
    # show the joiner, the emoji stay.
    assert literal("👩\u200d💻") == "👩\\u200d💻"


@given(st.text(alphabet=st.sampled_from(INVISIBLE + "ab\n")))
@settings(max_examples=100, deadline=None)
def test_literal_never_leaves_an_invisible_character_raw(text: str) -> None:
    assert raw_controls(literal(text)) == []
    assert [ch for ch in raw_controls(literal(text, multiline=True)) if ch != "\n"] == []


@given(st.text())
@settings(max_examples=200, deadline=None)
def test_literal_never_leaves_a_control_raw(text: str) -> None:
    one = literal(text)
    assert raw_controls(one) == []
    assert "\n" not in one
    multi = literal(text, multiline=True)
    assert [ch for ch in raw_controls(multi) if ch != "\n"] == []


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("this is too long", 10, "this is t…"),
        ("a\nb\nc", 3, "a⏎…"),
        ("\x1b[31mred", 4, "␛[3…"),
        ("abc", 1, "…"),
        ("abc", 0, ""),
        ("", 0, ""),
    ],
)
def test_one_line(text: str, width: int, expected: str) -> None:
    assert one_line(text, width) == expected


@given(st.text(), st.integers(min_value=0, max_value=40))
@settings(max_examples=200, deadline=None)
def test_one_line_fits_its_width(text: str, width: int) -> None:
    shown = one_line(text, width)
    assert len(shown) <= width
    assert "\n" not in shown and raw_controls(shown) == []
    full = literal(text)
    if len(full) <= width:
        assert shown == full
    elif width:
        assert shown.endswith("…") and full.startswith(shown[:-1])


def test_dumps_json() -> None:
    data = {"title": "café \x1b[31m\x9b\u202eevil\u200b\ufeff\u2028", "n": [1, None], "ok": True}
    text = dumps_json(data)
    assert raw_controls(text.replace("\n", "")) == []
    assert "café" in text  # readable, not \u00e9
    assert "\\u001b" in text and "\\u009b" in text and "\\u202e" in text
    assert "\\u200b" in text and "\\ufeff" in text and "\\u2028" in text
    # Still JSON, and it reads back as the same data.
    assert json.loads(text) == data


# --- the plan filter ------------------------------------------------------------


def _task(task_id: str = "T-12", state: State = State.REVIEW, title: str = "Write the API") -> Task:
    return Task(id=task_id, title=title, state=state)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", True),
        ("   ", True),
        ("api", True),
        ("API write", True),
        ("t-12", True),
        ("review", True),
        ("review api t-12", True),
        ("queued", False),
        ("api docs", False),
        ("T-13", False),
        ("[red]", False),
    ],
)
def test_plan_matches(query: str, expected: bool) -> None:
    assert plan_matches(_task(), query) is expected


def test_plan_matches_reads_titles_literally() -> None:
    assert plan_matches(_task(title="Add [red]caching[/red]"), "[red]caching")


# --- the log filter -------------------------------------------------------------


def test_log_filter_parse() -> None:
    assert LogFilter.parse("") == LogFilter()
    assert LogFilter.parse("").is_empty
    assert LogFilter.parse("T-12") == LogFilter(task_id="T-12")
    assert LogFilter.parse("t12") == LogFilter(task_id="T-12")
    assert LogFilter.parse("task:12") == LogFilter(task_id="T-12")
    assert LogFilter.parse("approved") == LogFilter(kinds=("approved",))
    assert LogFilter.parse("Kind:Approved held approved") == LogFilter(kinds=("approved", "held"))
    assert LogFilter.parse("T-3 claimed Engine  Lease") == LogFilter(
        task_id="T-3", kinds=("claimed",), text="engine lease")
    # A word that only starts like an id is text.
    assert LogFilter.parse("tests") == LogFilter(text="tests")
    assert LogFilter.parse("12") == LogFilter(text="12")
    assert not LogFilter.parse("x").is_empty


@pytest.mark.parametrize("query", ["kind:nonsense", "task:abc", "task:"])
def test_log_filter_parse_refuses_bad_keys(query: str) -> None:
    with pytest.raises(InvalidInput):
        LogFilter.parse(query)


def _event(**fields) -> Event:
    defaults = dict(id=1, at=0.0, task_id="T-1", kind="note", actor="alice", note="Hello World")
    return Event(**{**defaults, **fields})


def test_log_filter_matches() -> None:
    event = _event()
    assert LogFilter.parse("").matches(event)
    assert LogFilter.parse("T-1").matches(event)
    assert not LogFilter.parse("T-2").matches(event)
    assert LogFilter.parse("note").matches(event)
    assert LogFilter.parse("note approved").matches(event)
    assert not LogFilter.parse("approved").matches(event)
    assert LogFilter.parse("hello ALICE").matches(event)
    assert not LogFilter.parse("hello bob").matches(event)
    assert LogFilter.parse("alice").matches(_event(note=None))
    assert not LogFilter.parse("T-1").matches(_event(task_id=None))


# --- the log filter's SQL side agrees with its Python side -----------------------

ACTORS = ["alice", "Bob", "engine-1", "Zoë", "ÉMILE"]
NOTES = [
    None, "Looks right", "use the NEW api", "Ünïcode Straße", "ÀB testing", "[red]markup[/red]",
    "a\x1b[31mred\x1b[0m", "İstanbul", "100% done_ish", "%_", "Σίσυφος", "tests pass",
]


@pytest.fixture(scope="module")
def busy_log(tmp_path_factory):
    """A real log with varied events: kinds, tasks, actors, notes."""
    path = tmp_path_factory.mktemp("filters") / "log.db"
    with ExecutionLog.open(path, create=True) as log:
        log.add_tasks(
            [NewTask(title=title) for title in ["Write the API", "Ünïcode Title", "İlk iş", "tests"]],
            actor="Zoë",
        )
        for n, note in enumerate(NOTES):
            task_id = f"T-{n % 4 + 1}" if n % 5 else None
            if note is not None:
                log.add_note(task_id, note, actor=ACTORS[n % len(ACTORS)])
        log.apply("T-1", Action.HOLD, actor="Bob", note="waiting for ÀB")
        log.apply("T-1", Action.RELEASE, actor="alice")
        claim = log.claim_next("engine-1")
        assert claim is not None
        log.finish(claim.token, State.REVIEW, note="Tests pass")
        log.apply(claim.task.id, Action.REQUEUE, actor="ÉMILE", note="Use the NEW api")
        log.set_priority("T-3", 4, actor="alice")
        log.add_dependency("T-4", "T-3", actor="Bob")
        events = log.events()
    reader = LogReader(path)
    yield reader, events
    reader.close()


QUERIES = [
    "", "T-1", "t2", "task:T-3", "T-9", "note", "approved", "claimed finished requeued",
    "kind:held", "alice", "ALICE", "bob", "zoë", "ZOË", "émile", "ünïcode", "straße",
    "àb", "ab", "new api", "NEW", "T-1 note", "T-2 requeued émile", "[red]", "␛", "\x1b",
    "%", "_", "%_", "100%", "σίσυφος", "ΣΊΣΥΦΟΣ", "istanbul", "i̇stanbul", "tests pass",
    "created zoë", "priority alice", "depends bob", "engine-1", "nobody",
]


@pytest.mark.parametrize("query", QUERIES)
def test_the_sql_side_returns_exactly_the_matching_events(busy_log, query: str) -> None:
    reader, events = busy_log
    wanted = LogFilter.parse(query)
    expected = [e.id for e in events if wanted.matches(e)]
    assert list(reader.event_ids(**wanted.query_args())) == expected


@given(
    st.lists(
        st.one_of(
            st.sampled_from(sorted(EVENT_KINDS)),
            st.sampled_from(["T-1", "T-2", "T-3", "T-4", "T-5"]),
            st.sampled_from([w for n in NOTES if n for w in n.split()] + ACTORS),
            st.text(min_size=1, max_size=3).filter(lambda s: not s.isspace()),
        ),
        max_size=3,
    ).map(" ".join)
)
@settings(max_examples=150, deadline=None)
def test_the_sql_side_agrees_on_any_query(busy_log, query: str) -> None:
    reader, events = busy_log
    try:
        wanted = LogFilter.parse(query)
    except InvalidInput:
        return
    expected = [e.id for e in events if wanted.matches(e)]
    assert list(reader.event_ids(**wanted.query_args())) == expected


def test_the_busy_log_exercises_every_part_of_the_filter(busy_log) -> None:
    """The agreement tests above are only worth something if the log holds
    events that each part of the filter keeps and drops."""
    _, events = busy_log
    kinds = {e.kind for e in events}
    assert {"created", "note", "held", "released", "claimed", "finished", "requeued",
            "priority", "depends"} <= kinds
    assert any(e.task_id is None for e in events)
    for query in ["ünïcode", "émile", "new api", "T-1 note"]:
        matched = [e for e in events if LogFilter.parse(query).matches(e)]
        assert 0 < len(matched) < len(events), query
