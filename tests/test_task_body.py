"""A task's description on the task screen: markdown when it is small, plain
wrapped text with a note when it is not, and the console never waits for
either. Plain tests of the wrapping and the measure, then Pilot tests on the
real console over a real base."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from textual.widgets import Markdown, Static

from factory_tui.app import FactoryApp
from factory_tui.backends.log import ExecutionLog
from factory_tui.model import NewTask
from factory_tui.screens.task import TaskScreen
from factory_tui.widgets.task_body import (
    MARKDOWN_BLOCKS,
    MARKDOWN_CHARS,
    PlainBody,
    TaskBody,
    too_big_for_markdown,
    wrap_rows,
)
from tests.console_helpers import ready, wait_until

SIZE = (160, 48)

# What made the console freeze: markdown dense with links, bold and code.
DENSE = (
    "Some **bold text** and a [link](https://example.com/docs/{n}) with `inline code`, "
    "then _emphasis_.\n\n- item with **bold** and [a link](https://example.com/{n})\n"
    "- item two with `code()`\n\n```python\ndef f{n}(x):\n    return x * {n}\n```\n\n"
)


def dense_body(size: int) -> str:
    parts, total, n = [], 0, 0
    while total < size:
        part = DENSE.format(n=n)
        parts.append(part)
        total += len(part)
        n += 1
    return "".join(parts)[:size]


def rows(text: str, width: int) -> list[str]:
    starts, ends = wrap_rows(text, width)
    return [text[a:b] for a, b in zip(starts, ends, strict=True)]


# --- wrapping ---------------------------------------------------------------------


def test_lines_wrap_at_spaces_and_long_words_are_cut() -> None:
    assert rows("hello world this is a test", 10) == ["hello", "world this", "is a test"]
    assert rows("supercalifragilistic", 10) == ["supercalif", "ragilistic"]
    assert rows("one\n\ntwo\n", 10) == ["one", "", "two", ""]
    assert rows("", 10) == [""]


def test_wide_characters_wrap_by_cells() -> None:
    shown = rows("日本語のテキスト", 6)
    assert shown == ["日本語", "のテキ", "スト"]
    assert all(cell_len(row) <= 6 for row in shown)


@given(st.text(alphabet=st.sampled_from("ab \n日é\u0301"), max_size=300), st.integers(min_value=1, max_value=30))
@settings(max_examples=200, deadline=None)
def test_wrapped_rows_fit_and_keep_every_character(text: str, width: int) -> None:
    starts, ends = wrap_rows(text, width)
    shown = [text[a:b] for a, b in zip(starts, ends, strict=True)]
    # A double-width character needs two cells, whatever the width.
    assert all(cell_len(row) <= max(width, 2) for row in shown)
    # In order, nothing lost: only the newlines and the spaces rows were
    # broken at are left out.
    assert list(starts) == sorted(starts)
    assert "".join(shown).replace(" ", "") == text.replace("\n", "").replace(" ", "")


# --- the measure ------------------------------------------------------------------------


def test_what_is_too_big_for_markdown() -> None:
    assert too_big_for_markdown("") is None
    assert too_big_for_markdown("# Title\n\nSome **bold** and `code`.\n\n- one\n- two\n") is None
    assert too_big_for_markdown("word " * (MARKDOWN_CHARS // 5)) is None
    long = "word " * (MARKDOWN_CHARS // 5 + 1)
    assert too_big_for_markdown(long) == (
        f"{len(long):,} characters, over the markdown limit of {MARKDOWN_CHARS:,} characters"
    )
    assert too_big_for_markdown("x" * 150_000).startswith("150 KB, over")
    many = "\n\n".join(f"paragraph {n}" for n in range(MARKDOWN_BLOCKS + 1))
    assert too_big_for_markdown(many) == f"{MARKDOWN_BLOCKS + 1} blocks, over the markdown limit of {MARKDOWN_BLOCKS}"


# --- on screen ------------------------------------------------------------------------


def add_task(base, body: str, title: str = "A task") -> None:
    with ExecutionLog.open(base.log_path) as log:
        log.add_task(NewTask(title=title, body=body), actor="test")


async def open_task(pilot) -> TaskScreen:
    app = await ready(pilot)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, TaskScreen), "the task screen")
    return app.screen


async def test_a_huge_body_shows_as_plain_text_with_a_note(base):
    body = dense_body(1_500_000)
    add_task(base, body)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_task(pilot)
        box = screen.query_one(TaskBody)
        await wait_until(pilot, lambda: box.rendered, "the plain text")
        assert box.mode == "plain"
        note = screen.query_one("#task-body-note", Static)
        assert note.display
        assert str(note.render()) == (
            f"Shown as plain text: 1.5 MB, over the markdown limit of {MARKDOWN_CHARS:,} characters."
        )
        # The markdown is shown as it is written, not rendered: a screenful
        # of rows, not a widget a block.
        plain = screen.query_one(PlainBody)
        assert plain.display and not screen.query_one("#task-body-scroll").display
        assert plain.line(0).startswith("Some **bold text** and a [link](https://example.com/docs/0) with")
        assert plain.row_count > 20_000
        assert len(screen.query_one(Markdown).children) == 0
        assert len(screen.query("*")) < 60
        # Keys work on it: to the last row and back.
        plain.focus()
        await pilot.press("G")
        await wait_until(pilot, lambda: plain.cursor == plain.row_count - 1, "the last row")
        assert plain.scroll_offset.y > 20_000
        await pilot.press("g")
        await wait_until(pilot, lambda: plain.cursor == 0, "the first row")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, TaskScreen), "the screen to close")


async def test_the_screen_answers_keys_while_a_huge_body_is_prepared(base):
    add_task(base, dense_body(1_500_000))
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_task(pilot)
        # At once, before the body is ready: the screen's keys are answered.
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: app.screen is not screen, "the help screen")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen, "back on the task")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, TaskScreen), "the screen to close")
        # And the console goes on: the plan still moves.
        await pilot.press("j")


async def test_a_small_body_renders_as_markdown(base):
    add_task(base, "# Plan\n\nSome **bold**, a [link](https://example.com) and `code`.\n\n- one\n- two\n")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_task(pilot)
        box = screen.query_one(TaskBody)
        await wait_until(pilot, lambda: box.rendered, "the markdown")
        assert box.mode == "markdown"
        assert not screen.query_one("#task-body-note", Static).display
        assert not screen.query_one(PlainBody).display
        markdown = screen.query_one(Markdown)
        kinds = [type(block).__name__ for block in markdown.children]
        assert kinds == ["MarkdownH1", "MarkdownParagraph", "MarkdownBulletList"]


async def test_a_body_with_many_blocks_is_plain_text_too(base):
    body = "\n\n".join(f"- point **{n}**" for n in range(MARKDOWN_BLOCKS))
    add_task(base, body)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_task(pilot)
        box = screen.query_one(TaskBody)
        await wait_until(pilot, lambda: box.rendered, "the body")
        assert box.mode == "plain"
        assert str(screen.query_one("#task-body-note", Static).render()) == (
            # The list, and an item and a paragraph a point.
            f"Shown as plain text: {MARKDOWN_BLOCKS * 2 + 1} blocks, over the markdown limit of {MARKDOWN_BLOCKS}."
        )
        assert screen.query_one(PlainBody).line(0) == "- point **0**"


@pytest.mark.parametrize("size", [100, 2_000_000])
async def test_invisible_characters_in_a_body_are_shown(base, size):
    body = "pay\u200bpal\ufeff and a soft\u00adhyphen\n\n" + "x" * size
    add_task(base, body)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_task(pilot)
        box = screen.query_one(TaskBody)
        await wait_until(pilot, lambda: box.rendered, "the body")
        if box.mode == "markdown":
            shown = str(screen.query_one(Markdown).children[0].content)
        else:
            shown = screen.query_one(PlainBody).line(0)
        assert "pay\\u200bpal\\ufeff and a soft\\u00adhyphen" in shown
        assert "\u200b" not in shown and "\ufeff" not in shown and "\u00ad" not in shown
