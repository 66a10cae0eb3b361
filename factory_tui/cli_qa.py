"""``factory qa``: the QA scenarios of a base, from the command line.

``factory qa list`` shows every scenario file in ``.factory/qa/`` (invalid
ones too, with their line and reason: they are listed, never run);
``factory qa new NAME --kind KIND`` writes a commented template to start
from. Reading is open to every caller; writing a scenario is the
operator's, since scenarios are the checks an agent's own work must pass.

Registered on ``factory`` by ``factory_tui/cli.py`` (its last lines), whose
conventions (``needs``, ``--json``, one-line errors) these commands follow.
The two import each other: import ``factory_tui.cli``, not this module
first. What other parts may want of it lives elsewhere (``scenario_json``
in ``qa_scenarios.py``).
"""

from __future__ import annotations

import shlex
import sys

import click

from factory_tui.actors import Need
from factory_tui.backends.new_file import write_new_file
from factory_tui.cli import Context, FactoryGroup, needs, utf8_text
from factory_tui.errors import FactoryError, InvalidInput
from factory_tui.qa_model import InvalidScenario, QaKind, Scenario
from factory_tui.text import dumps_json, literal, one_line

# factory_tui.qa_scenarios (YAML, markdown) is imported by the commands that
# use it: every other command, and `factory --help`, stays as light as before.

# cli.py's two decorators, made again here: cli.py imports this module at its
# end, and across that cycle a type checker cannot tell what its (unannotated)
# ones are.
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
pass_ctx = click.make_pass_decorator(Context)


@click.group(cls=FactoryGroup)
def qa() -> None:
    """Quality assurance: the scenarios in .factory/qa/ that check an agent's work."""


# --- list -----------------------------------------------------------------------


def _what(found: Scenario) -> str:
    """What a scenario runs: its judge, or its command."""
    if found.judge is not None:
        return f"judge {found.judge}" + (f" ×{found.votes}" if found.votes > 1 else "")
    return shlex.join(found.run)


def _when(found: Scenario) -> str:
    parts = list(found.when_paths) + [f"label:{label}" for label in found.when_labels]
    return " ".join(parts) if parts else "always"


@qa.command("list")
@json_option
@pass_ctx
@needs(Need.READ)
def qa_list(ctx: Context, as_json: bool) -> None:
    """List the QA scenarios: kind, gate, judge or command, when they run;
    files that cannot be used are listed as invalid, with line and reason."""
    from factory_tui.backends.agents import load_profiles
    from factory_tui.qa_scenarios import load_scenarios, scenario_json

    base = ctx.base
    found = load_scenarios(base.qa_dir, root=base.root, profiles=load_profiles(base.config()))
    if as_json:
        click.echo(dumps_json([scenario_json(item) for item in found]))
        return
    if not found:
        click.echo("No QA scenarios yet. Write one with `factory qa new NAME --kind test` (or verify, eval, scenario).")
        return
    width = max(4, *(len(literal(item.name)) for item in found))
    click.echo(click.style(f"{'NAME':<{width}}  {'KIND':<8}  {'GATE':<8}  {'RUNS':<40}  WHEN", bold=True))
    # Padded before styling, so that colour codes do not break the columns.
    invalid = click.style(f"{'invalid':<8}", fg="red")
    warning = click.style("warning", fg="yellow")
    for item in found:
        name = literal(item.name)
        if isinstance(item, InvalidScenario):
            where = f"line {item.line}: " if item.line is not None else ""
            click.echo(f"{name:<{width}}  {invalid}  {where}{one_line(item.reason, 200)}")
            continue
        click.echo(
            f"{name:<{width}}  {item.kind.value:<8}  {item.gate.value:<8}  "
            f"{one_line(_what(item), 40):<40}  {one_line(_when(item), 80)}"
        )
        for text in item.warnings:
            click.echo(f"{'':<{width}}  {warning}: {one_line(text, 200)}")


# --- new ------------------------------------------------------------------------


@qa.command("new")
@click.argument("name", callback=utf8_text("the name"))
@click.option("--kind", "-k", required=True, type=click.Choice([kind.value for kind in QaKind]), help="What kind of check.")
@click.option("--force", is_flag=True, help="Overwrite a scenario of that name.")
@json_option
@pass_ctx
@needs(Need.SCENARIOS)
def qa_new(ctx: Context, name: str, kind: str, force: bool, as_json: bool) -> None:
    """Write .factory/qa/NAME.md: a commented template of KIND; prints its path."""
    from factory_tui.backends.agents import default_profile_name, load_profiles
    from factory_tui.qa_scenarios import template, valid_name

    stem = name.removesuffix(".md")
    if not valid_name(stem):
        raise InvalidInput(
            f"not a scenario name: {name!r} (a file name of letters, digits, '.', '_' and '-', "
            "starting with a letter or digit; not README or judge-prompt)"
        )
    base = ctx.base
    config = base.config()
    profiles = load_profiles(config)
    # The offline demo judge when the base has it, so the file is valid as written.
    judge = "demo" if "demo" in profiles else default_profile_name(config, profiles)
    path = base.qa_dir / f"{stem}.md"
    write_new_file(path, template(QaKind(kind), stem, judge=judge), shown=f".factory/qa/{stem}.md", force=force,
                   exists_hint="; --force overwrites it")
    click.echo(dumps_json({"path": str(path)}) if as_json else literal(str(path)))


# --- run ------------------------------------------------------------------------


@qa.command("run")
@click.argument("scenarios", nargs=-1, metavar="[SCENARIO ...]")
@click.option("--task", "task_id", metavar="ID", help="Check this task's branch head (else the base branch's head).")
@json_option
@pass_ctx
@needs(Need.NOTE)
def qa_run(ctx: Context, scenarios: tuple[str, ...], task_id: str | None, as_json: bool) -> None:
    """Run QA now: the SCENARIOs named, else every one that applies to the
    task; prints each verdict and records it. Exit 1 when a required one fails."""
    from factory_tui.backends.qa_checks import verdict_line
    from factory_tui.model import normalize_task_id

    task = normalize_task_id(task_id) if task_id is not None else None
    done = ctx.session.run_qa(task, scenarios, actor=ctx.caller.actor)
    if as_json:
        click.echo(dumps_json({
            "task_id": done.task_id, "commit": done.commit, "blocked": done.blocked,
            "runs": [{"id": run_id, **result.to_json()} for run_id, result in zip(done.run_ids, done.results, strict=True)],
        }))
    elif not done.results:
        click.echo(f"No QA scenario applies to {task or 'the base branch'} at {done.commit[:10]}.")
    else:
        for result in done.results:
            click.echo(verdict_line(result))
    if done.blocked:
        sys.exit(1)


# --- show -----------------------------------------------------------------------


@qa.command("show")
@click.argument("run_id", metavar="RUN")
@json_option
@pass_ctx
@needs(Need.READ)
def qa_show(ctx: Context, run_id: str, as_json: bool) -> None:
    """One QA run: what was checked, its verdict and why, and the end of its output."""
    from factory_tui.backends.qa_checks import output_tail

    try:
        number = int(run_id.removeprefix("#"))
    except ValueError:
        raise InvalidInput(f"not a QA run id: {run_id!r} (a number, as `factory qa history` shows)") from None
    found = ctx.log.qa_run(number)
    if found is None:
        raise FactoryError(f"no QA run {number}")
    path, tail = output_tail(ctx.base, found.result.output)
    if as_json:
        click.echo(dumps_json({**found.to_json(), "output_file": path, "output_tail": tail}))
        return
    result = found.result
    rows = [
        ("run", str(found.id)), ("scenario", result.scenario), ("kind", str(result.kind)),
        ("gate", str(result.gate)), ("verdict", str(result.verdict)), ("reason", result.reason),
        ("task", found.task_id or "-"), ("attempt", str(found.attempt or "-")),
        ("commit", result.commit), ("base", result.base_commit or "-"),
        ("duration", f"{result.duration:.1f}s"), ("attempts", str(result.attempts)),
        ("cost", f"${result.cost_usd:.4f}" if result.cost_usd is not None else "-"),
        ("by", found.actor or "-"), ("output", path or "-"),
    ]
    for label, value in rows:
        click.echo(f"{label + ':':<10} {one_line(literal(value), 300)}")
    for name, verdict in sorted(result.tests.items()):
        if verdict != "PASS":
            click.echo(f"  {verdict} {literal(name)}")
    if tail:
        click.echo("")
        for line in tail:
            click.echo(literal(line))


# --- history --------------------------------------------------------------------


@qa.command("history")
@click.argument("scenario", required=False)
@click.option("--last", "last", type=click.IntRange(1, 10_000), default=20, show_default=True,
              help="How many runs (per scenario) to look at.")
@json_option
@pass_ctx
@needs(Need.READ)
def qa_history(ctx: Context, scenario: str | None, last: int, as_json: bool) -> None:
    """Per scenario: runs, pass rate, flaky runs, mean duration and cost; with
    a SCENARIO: its runs, newest first."""
    log = ctx.log
    if scenario is not None:
        name = scenario.removesuffix(".md")
        runs = log.qa_runs(scenario=name, limit=last)
        if as_json:
            click.echo(dumps_json([item.to_json() for item in runs]))
            return
        if not runs:
            click.echo(f"No runs of {literal(name)} yet.")
            return
        for item in runs:
            result = item.result
            click.echo(
                f"#{item.id:<5} {result.verdict!s:<5} {item.task_id or '-':<6} {result.commit[:10]:<10} "
                f"{result.duration:6.1f}s  {one_line(literal(result.reason), 120)}"
            )
        return
    stats = log.qa_stats(last=last)
    if as_json:
        click.echo(dumps_json([
            {"scenario": s.scenario, "runs": s.runs, "passed": s.passed, "pass_rate": round(s.pass_rate, 3),
             "flaky": s.flaky, "mean_duration": round(s.mean_duration, 3), "mean_cost": s.mean_cost,
             "last": str(s.last) if s.last else None, "verdicts": [str(v) for v in s.verdicts]}
            for s in stats.values()
        ]))
        return
    if not stats:
        click.echo("No QA runs yet. `factory qa run` runs the scenarios now.")
        return
    width = max(8, *(len(literal(name)) for name in stats))
    click.echo(click.style(f"{'SCENARIO':<{width}}  {'RUNS':>4}  {'PASS':>5}  {'FLAKY':>5}  {'MEAN':>7}  {'COST':>8}  LAST",
                           bold=True))
    for s in stats.values():
        cost = f"${s.mean_cost:.4f}" if s.mean_cost is not None else "-"
        click.echo(f"{literal(s.scenario):<{width}}  {s.runs:>4}  {s.pass_rate:>5.0%}  {s.flaky:>5}  "
                   f"{s.mean_duration:>6.1f}s  {cost:>8}  {s.last or '-'}")
