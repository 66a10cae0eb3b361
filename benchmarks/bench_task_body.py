"""How long the task screen takes to show a task's body: the figures the
markdown limits (``MARKDOWN_CHARS``, ``MARKDOWN_BLOCKS`` in
factory_tui/widgets/task_body.py) were set from.

    python benchmarks/bench_task_body.py [--runs 3] [--sizes 1000,3000,6000,12000]

For each kind and size, a body is rendered as markdown (the limits lifted
for the measure) in the real console, headless at 160×48: from asking for
the task screen to the body mounted and the next frame drawn, median of
``--runs``, beside the body's blocks (what the Markdown widget makes a widget
of). Kinds: "dense" (links, bold, inline code, lists and a code block every
few lines), "lists", "prose" (paragraphs with a little emphasis) and "one
paragraph". Then a 1.5 MB dense body with the limits in force: the time to
the note and the plain text on screen, a key to its last row, and the peak
memory of the process.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from factory_tui.app import FactoryApp  # noqa: E402
from factory_tui.backends.base import FactoryBase  # noqa: E402
from factory_tui.backends.log import ExecutionLog  # noqa: E402
from factory_tui.model import NewTask  # noqa: E402
from factory_tui.screens.task import TaskScreen  # noqa: E402
from factory_tui.widgets import task_body  # noqa: E402
from factory_tui.widgets.task_body import PlainBody, TaskBody  # noqa: E402

KINDS = {
    "dense": (
        "Some **bold text** and a [link to the docs](https://example.com/docs/page{n}) with "
        "`inline code` here, then _emphasis_ and more words to fill the line.\n\n"
        "- item one with **bold** and [a link](https://example.com/{n})\n- item two with `code()`\n\n"
        "```python\ndef f{n}(x):\n    return x * {n}\n```\n\n"
    ),
    "lists": "- item one with **bold** and [a link](https://example.com/{n})\n- item two with `code()`\n\n",
    "prose": (
        "The service answers **every** request within the budget; when it cannot, it says so "
        "and the client retries later, as the [runbook](https://example.com/runbook/{n}) "
        "describes. Nothing else changes in this step, and the tests cover each branch.\n\n"
    ),
    "one paragraph": "words **bold** [a link](https://example.com/{n}) `code` and more text here. ",
}


def body(kind: str, size: int) -> str:
    parts, total, n = [], 0, 0
    while total < size:
        part = KINDS[kind].format(n=n)
        parts.append(part)
        total += len(part)
        n += 1
    return "".join(parts)[:size]


def blocks(text: str) -> int:
    saved = task_body.MARKDOWN_BLOCKS
    task_body.MARKDOWN_BLOCKS = -1
    try:
        reason = task_body.too_big_for_markdown(text) or ""
    finally:
        task_body.MARKDOWN_BLOCKS = saved
    return int(reason.split(" blocks")[0].split()[-1].replace(",", "")) if "blocks" in reason else 0


def make_base(folder: Path, bodies: list[str]) -> FactoryBase:
    subprocess.run(["git", "init", "-q", "-b", "main", str(folder)], check=True)
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
                    "commit", "-q", "--allow-empty", "-m", "start"], check=True)
    base, _ = FactoryBase.init(folder, name="bench")
    with ExecutionLog.open(base.log_path) as log:
        for n, text in enumerate(bodies):
            log.add_task(NewTask(title=f"body {n}", body=text), actor="bench")
    return base


async def wait(pilot, condition, limit: float = 600.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError
        await pilot.pause(0.005)


async def time_open(app: FactoryApp, pilot, task_id: str) -> tuple[float, TaskScreen]:
    started = time.perf_counter()
    app.open_task(task_id)
    await wait(pilot, lambda: isinstance(app.screen, TaskScreen) and app.screen.detail is not None)
    screen = app.screen
    box = screen.query_one(TaskBody)
    await wait(pilot, lambda: box.rendered)
    await pilot.pause()  # the frame with the body in it
    return time.perf_counter() - started, screen


async def markdown_times(sizes: list[int], runs: int) -> None:
    task_body.MARKDOWN_CHARS = task_body.MARKDOWN_BLOCKS = 10**9  # markdown whatever the size
    cases = [("no body", 0, "")] + [(kind, size, body(kind, size)) for kind in KINDS for size in sizes]
    with tempfile.TemporaryDirectory() as folder:
        base = make_base(Path(folder), [text for _, _, text in cases])
        app = FactoryApp(base, engine=False)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait(pilot, lambda: app.plan_ready)
            for n, (kind, size, text) in enumerate(cases):
                times = []
                for _ in range(runs):
                    took, _screen = await time_open(app, pilot, f"T-{n + 1}")
                    times.append(took)
                    app.pop_screen()
                    await pilot.pause()
                print(f"  {kind:<13} {size:>7,} chars {blocks(text):>5} blocks  on screen in "
                      f"{statistics.median(times):6.3f} s  ({', '.join(f'{t:.3f}' for t in times)})", flush=True)


async def plain_time(chars: int, max_blocks: int) -> None:
    task_body.MARKDOWN_CHARS, task_body.MARKDOWN_BLOCKS = chars, max_blocks
    big = body("dense", 1_500_000)
    with tempfile.TemporaryDirectory() as folder:
        base = make_base(Path(folder), [big])
        app = FactoryApp(base, engine=False)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait(pilot, lambda: app.plan_ready)
            took, screen = await time_open(app, pilot, "T-1")
            plain = screen.query_one(PlainBody)
            plain.focus()
            started = time.perf_counter()
            await pilot.press("G")
            await wait(pilot, lambda: plain.cursor == plain.row_count - 1)
            await pilot.pause()
            keys = time.perf_counter() - started
            print(f"  1.5 MB dense body: note and plain text ({plain.row_count:,} rows) on screen in "
                  f"{took:.3f} s; G to its last row drawn in {keys:.3f} s", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"  peak memory of this process: {rss} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1000,3000,6000,12000")
    args = parser.parse_args()
    limits = task_body.MARKDOWN_CHARS, task_body.MARKDOWN_BLOCKS
    print(f"markdown, by kind and size (median of {args.runs}):")
    asyncio.run(markdown_times([int(s) for s in args.sizes.split(",")], args.runs))
    print(f"plain text (limits: {limits[0]:,} characters, {limits[1]} blocks):")
    asyncio.run(plain_time(*limits))


if __name__ == "__main__":
    main()
