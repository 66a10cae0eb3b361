"""The QA lists: the QA pane's scenarios (one row each: kind, gate, last
verdict, the last verdicts as a sparkline, pass rate, flaky count; an
invalid file marked ``invalid`` with why) and a scenario's history (its
runs, newest first: task, commit, verdict, duration, cost).

They are handed rows (``ScenarioRow``s, runs from the session) and never
read the log or the files themselves; the QA pane and the scenario screen
feed them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.segment import Segment
from rich.style import Style

from factory_tui.qa_marks import QaMark
from factory_tui.qa_model import InvalidScenario, Scenario, Verdict
from factory_tui.text import literal
from factory_tui.times import moment
from factory_tui.widgets.styles import Palette, palette
from factory_tui.widgets.virtual_list import Cell, Column, RowList, VirtualList, fit, header_text, layout_columns, render_cells

if TYPE_CHECKING:
    from factory_tui.backends.qa_log import QaRun, ScenarioStats

# A verdict as one cell of the sparkline, and as the QA column's symbol.
VERDICT_CELL = {
    Verdict.PASS: "▇", Verdict.FLAKY: "▅", Verdict.FAIL: "▁", Verdict.ERROR: "!", Verdict.SKIP: "·",
}
VERDICT_MARK = {
    Verdict.PASS: QaMark.PASSED, Verdict.FLAKY: QaMark.PASSED, Verdict.FAIL: QaMark.FAILED,
    Verdict.ERROR: QaMark.ERROR, Verdict.SKIP: QaMark.NONE,
}
SPARK_WIDTH = 10


def verdict_style(verdict: Verdict | None, colours: Palette) -> Style | None:
    if verdict in (Verdict.PASS, Verdict.FLAKY):
        return colours.good
    if verdict in (Verdict.FAIL, Verdict.ERROR):
        return colours.problem
    return colours.muted


def mark_style(mark: QaMark | str, colours: Palette) -> Style | None:
    """The QA column's colour: green passed, red failed or error."""
    return {QaMark.PASSED: colours.good, QaMark.FAILED: colours.problem, QaMark.ERROR: colours.problem,
            QaMark.CHECKING: colours.muted}.get(QaMark(mark))


@dataclass(frozen=True, slots=True)
class ScenarioRow:
    """A scenario file and its record (``stats`` None: never run)."""

    found: Scenario | InvalidScenario
    stats: ScenarioStats | None = None

    @property
    def name(self) -> str:
        return self.found.name

    @property
    def invalid(self) -> bool:
        return isinstance(self.found, InvalidScenario)


SCENARIO_COLUMNS = (
    Column("name", "SCENARIO", grow=2, least=10),
    Column("kind", "KIND", 8),
    Column("gate", "GATE", 8, drop=2),
    Column("last", "LAST", 6),
    Column("spark", "RECENT", SPARK_WIDTH, drop=1),
    Column("rate", "PASS", 4, right=True),
    Column("flaky", "FLAKY", 5, right=True, drop=3),
)


class ScenarioTable(RowList[ScenarioRow]):
    """The scenarios, by name; invalid files among them."""

    def row_key(self, row: ScenarioRow) -> str:
        return row.name

    def order(self, rows: list[ScenarioRow]) -> list[ScenarioRow]:
        return sorted(rows, key=lambda row: row.name)

    def set_rows(self, rows: list[ScenarioRow]) -> None:
        self.replace_rows(rows)

    def empty_text(self) -> str:
        if not self.loaded:
            return "Reading .factory/qa/…"
        return "No scenarios in .factory/qa/: press n to write one from a template."

    def render_header(self, width: int) -> str:
        return header_text(layout_columns(SCENARIO_COLUMNS, width, 10))

    def row_cache_key(self, index: int):
        row = self.rows[index]
        return (row.found, row.stats)

    def render_row(self, index: int, width: int) -> list[Segment]:
        row = self.rows[index]
        colours = palette(self)
        layout = layout_columns(SCENARIO_COLUMNS, width, 10)
        found = row.found
        if isinstance(found, InvalidScenario):
            where = f"line {found.line}: " if found.line else ""
            # Why it is invalid takes every column after the name.
            name_width = next((w for column, w in layout if column.name == "name"), 10)
            text = literal(f"invalid · {where}{found.reason}")
            return [Segment(fit(literal(found.name), name_width), colours.ident), Segment(" "),
                    Segment(fit(text, max(0, width - name_width - 1)), colours.problem)]
        stats = row.stats
        last = stats.last if stats else None
        spark = [Segment(VERDICT_CELL.get(v, "?"), verdict_style(v, colours))
                 for v in (stats.verdicts[-SPARK_WIDTH:] if stats else ())]
        cells: dict[str, Cell] = {
            "name": (literal(found.name), colours.ident),
            "kind": (str(found.kind), None),
            "gate": (str(found.gate), colours.muted if str(found.gate) == "advisory" else None),
            "last": (str(last) if last else "—", verdict_style(last, colours)),
            "spark": [(segment.text, segment.style) for segment in spark] or [("never run", colours.muted)],
            "rate": (f"{round(100 * stats.pass_rate)}%" if stats else "·", colours.muted if not stats else None),
            "flaky": (str(stats.flaky) if stats and stats.flaky else "·",
                      colours.problem if stats and stats.flaky else colours.muted),
        }
        return render_cells(layout, cells)


RUN_COLUMNS = (
    Column("when", "WHEN", 12),
    Column("task", "TASK", 6),
    Column("commit", "COMMIT", 8, drop=2),
    Column("verdict", "VERDICT", 7),
    Column("duration", "TIME", 7, right=True),
    Column("cost", "COST", 7, right=True, drop=1),
    Column("reason", "WHY", grow=1),
)


class QaRunTable(VirtualList):
    """A scenario's runs, newest first."""

    def __init__(self, *, now: float = 0.0, id: str | None = None) -> None:
        super().__init__(id=id)
        self.runs: list[QaRun] = []
        self.now = now
        self.loaded = False

    def set_runs(self, runs: list[QaRun]) -> None:
        self.runs = list(runs)
        self.loaded = True
        self.rows_changed()

    @property
    def selected_run(self) -> QaRun | None:
        return self.runs[self.cursor] if self.runs and self.cursor < len(self.runs) else None

    @property
    def row_count(self) -> int:
        return len(self.runs)

    def empty_text(self) -> str:
        return "Reading its runs…" if not self.loaded else "Never run yet."

    def render_header(self, width: int) -> str:
        return header_text(layout_columns(RUN_COLUMNS, width, 12))

    def row_cache_key(self, index: int):
        return self.runs[index].id

    def render_row(self, index: int, width: int) -> list[Segment]:
        run = self.runs[index]
        result = run.result
        colours = palette(self)
        cells = {
            "when": (moment(run.at, self.now or run.at), colours.muted),
            "task": (run.task_id or "—", colours.ident),
            "commit": ((result.commit or "")[:8] or "—", colours.muted),
            "verdict": (str(result.verdict), verdict_style(result.verdict, colours)),
            "duration": (f"{result.duration:.1f}s", None),
            "cost": (f"${result.cost_usd:.3f}" if result.cost_usd is not None else "·", colours.muted),
            "reason": (literal(result.reason or ""), None),
        }
        return render_cells(layout_columns(RUN_COLUMNS, width, 12), cells)
