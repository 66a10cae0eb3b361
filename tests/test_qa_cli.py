"""``factory qa list`` and ``factory qa new`` on real bases in temporary git
repositories: what is listed (invalid files too), the template written, the
names and overwrites refused, who may write a scenario, and a folder that
cannot be written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from factory_tui.backends.agents import BUILTIN_PROFILES
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog, NewTask
from factory_tui.qa_model import QaKind, Scenario
from factory_tui.qa_scenarios import read_scenario, template
from tests.engine_helpers import configure, toml_value
from tests.test_cli import ok, ok_json, refused, run
from tests.test_identity import REFUSED_AS_AGENT, agent_env, factory, refusal


def scenario_file(base: FactoryBase, name: str, text: str) -> Path:
    base.qa_dir.mkdir(parents=True, exist_ok=True)
    path = base.qa_dir / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    return path


def scenario_folder(base: FactoryBase) -> list[str]:
    """What is in .factory/qa/ besides the .gitkeep that init writes."""
    if not base.qa_dir.exists():
        return []
    return sorted(p.name for p in base.qa_dir.iterdir() if p.name != ".gitkeep")


STEPS = "".join(f"{n}. Step {n}.\n" for n in range(1, 9))


# --- qa list ----------------------------------------------------------------------


def test_list_with_no_scenarios(base: FactoryBase) -> None:
    assert "No QA scenarios yet" in ok(base, "qa", "list").stdout
    assert ok_json(base, "qa", "list") == []


def test_list_shows_every_scenario_invalid_ones_with_line_and_reason(base: FactoryBase) -> None:
    scenario_file(base, "unit", "---\nkind: test\nrun: python -m pytest -q\nwhen: ['src/**']\n---\n")
    scenario_file(base, "broken", "---\nkind: test\nrun: [pytest]\ntimout: 3\n---\n")
    scenario_file(base, "journey", f"---\nkind: scenario\njudge: demo\ngate: advisory\nwhen: {{labels: [ui]}}\n---\n{STEPS}")
    scenario_file(base, "README", "# not a scenario\n")
    listed = ok(base, "qa", "list").stdout.splitlines()
    assert listed[0].split() == ["NAME", "KIND", "GATE", "RUNS", "WHEN"]
    assert listed[1].split(None, 2) == ["broken", "invalid", "line 4: unknown key timout; did you mean timeout?"]
    assert listed[2].split() == ["journey", "scenario", "advisory", "judge", "demo", "label:ui"]
    assert listed[3].split() == ["warning:", "8", "steps:", "split", "it", "into", "scenarios", "of", "7", "or", "fewer"]
    assert listed[4].split() == ["unit", "test", "required", "python", "-m", "pytest", "-q", "src/**"]
    assert len(listed) == 5

    rows = {row["name"]: row for row in ok_json(base, "qa", "list")}
    assert list(rows) == ["broken", "journey", "unit"]
    assert rows["broken"] == {
        "name": "broken", "path": ".factory/qa/broken.md", "valid": False, "line": 4,
        "reason": "unknown key timout; did you mean timeout?",
    }
    assert rows["journey"]["judge"] == "demo" and rows["journey"]["steps"] == 8
    assert rows["journey"]["warnings"] == ["8 steps: split it into scenarios of 7 or fewer"]
    assert rows["unit"]["run"] == ["python", "-m", "pytest", "-q"]
    assert rows["unit"]["when"] == {"paths": ["src/**"], "labels": []}
    assert rows["unit"]["retries"] == 1 and rows["unit"]["valid"] is True


def test_list_knows_the_bases_own_profiles(base: FactoryBase) -> None:
    configure(base, agents={"reviewer": dict(BUILTIN_PROFILES["demo"])})
    scenario_file(base, "a", "---\nkind: eval\njudge: reviewer\n---\nThe rubric.\n")
    scenario_file(base, "b", "---\nkind: eval\njudge: claude\n---\nThe rubric.\n")
    rows = ok_json(base, "qa", "list")
    assert rows[0]["valid"] is True and rows[0]["judge"] == "reviewer"
    assert rows[1]["valid"] is False
    assert rows[1]["reason"] == "unknown judge profile 'claude' (profiles: demo, reviewer)"


def test_list_shows_names_and_reasons_literally(base: FactoryBase) -> None:
    scenario_file(base, "\x1b[31mred", "---\nkind: \"\\e[2J\"\n---\n")
    out = ok(base, "qa", "list").stdout
    assert "\x1b" not in out
    assert "␛[31mred" in out


# --- qa new -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(QaKind))
def test_new_writes_the_commented_template(base: FactoryBase, kind: QaKind) -> None:
    path = ok(base, "qa", "new", "smoke", "--kind", kind.value).stdout.strip()
    assert path == str(base.qa_dir / "smoke.md")
    assert Path(path).read_text(encoding="utf-8") == template(kind, "smoke")
    found = read_scenario(Path(path), root=base.root, profiles=BUILTIN_PROFILES)
    assert isinstance(found, Scenario) and found.kind is kind
    assert ok_json(base, "qa", "list")[0]["valid"] is True
    # No temporary file is left beside it.
    assert scenario_folder(base) == ["smoke.md"]


def test_new_json_and_a_name_given_with_its_suffix(base: FactoryBase) -> None:
    assert ok_json(base, "qa", "new", "api.v2.md", "--kind", "verify") == {"path": str(base.qa_dir / "api.v2.md")}


def test_new_names_a_judge_the_base_has(base: FactoryBase) -> None:
    # A base whose profiles do not include the demo judge.
    claude = BUILTIN_PROFILES["claude"]
    lines = ['name = "no demo"', 'base_branch = "main"', "", "[agents.claude]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in claude.items()]
    base.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ok(base, "qa", "new", "review", "--kind", "eval")
    assert ok_json(base, "qa", "list")[0] | {"judge": "claude", "valid": True} == ok_json(base, "qa", "list")[0]


def test_new_refuses_to_overwrite_without_force(base: FactoryBase) -> None:
    mine = scenario_file(base, "smoke", "---\nkind: test\nrun: [make, check]\n---\nmine\n")
    line = refused(base, "qa", "new", "smoke", "--kind", "eval")
    assert line == "factory: .factory/qa/smoke.md exists; --force overwrites it"
    assert mine.read_text() == "---\nkind: test\nrun: [make, check]\n---\nmine\n"
    ok(base, "qa", "new", "smoke", "--kind", "eval", "--force")
    assert mine.read_text() == template(QaKind.EVAL, "smoke")


@pytest.mark.parametrize("name", ["../outside", "a/b", "/tmp/x", ".hidden", "-x", "README", "readme.md", "judge-prompt", "a b", "ümlaut", ""])
def test_new_refuses_a_name_that_is_no_plain_file_name(base: FactoryBase, name: str) -> None:
    line = refused(base, "qa", "new", "--kind", "test", "--", name)
    assert line.startswith("factory: not a scenario name: ")
    assert scenario_folder(base) == []
    assert not (base.dir / "outside.md").exists()


def test_new_needs_a_known_kind(base: FactoryBase) -> None:
    assert "--kind" in refused(base, "qa", "new", "x", code=2)
    assert "'judge'" in refused(base, "qa", "new", "x", "--kind", "judge", code=2)


# --- who may --------------------------------------------------------------------------


def test_an_agent_may_list_scenarios_but_not_write_them(base: FactoryBase) -> None:
    with ExecutionLog.open(base.log_path) as log:
        log.add_task(NewTask(title="the agent's task"), actor="test")
        claim = log.claim_next("test-engine", lease_seconds=600)
        assert claim is not None
        env = agent_env(base, claim)
        line = refusal(factory(env, "qa", "new", "lenient", "--kind", "eval"))
        assert line == f"factory: {REFUSED_AS_AGENT}writing QA scenarios is the operator's (see [agents] may in factory.toml)"
        assert not (base.qa_dir / "lenient.md").exists()
        listed = factory(env, "qa", "list", "--json")
        assert listed.returncode == 0 and json.loads(listed.stdout) == []
        # The operator may grant it.
        configure(base, extra='\n[agents]\nmay = ["scenarios"]\n')
        granted = factory(env, "qa", "new", "lenient", "--kind", "eval")
        assert granted.returncode == 0, granted.stderr
        assert (base.qa_dir / "lenient.md").is_file()


# --- a folder that cannot be written ------------------------------------------------------

READ_ONLY_SCRIPT = r"""
set -e
mount --bind -o ro "$QA" "$QA"
"$PY" -m factory_tui --base "$ROOT" qa new smoke --kind test > "$OUT/stdout" 2> "$OUT/stderr" || echo $? > "$OUT/status"
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) for a read-only bind mount")
def test_new_in_a_read_only_folder_is_one_line_and_writes_nothing(base: FactoryBase, tmp_path: Path) -> None:
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -rm is not allowed here: {probe.stderr.decode().strip()}")
    base.qa_dir.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "out"
    out.mkdir()
    env = {"QA": str(base.qa_dir), "PY": sys.executable, "ROOT": str(base.root), "OUT": str(out), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", READ_ONLY_SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (out / "status").read_text().strip() == "1"
    assert (out / "stdout").read_text() == ""
    error = (out / "stderr").read_text()
    assert error.startswith("factory: cannot write .factory/qa/smoke.md: ") and len(error.splitlines()) == 1, error
    assert scenario_folder(base) == []


def test_the_qa_commands_are_listed_in_help(base: FactoryBase) -> None:
    result = run(base, "qa", "--help")
    assert result.exit_code == 0
    assert "list" in result.stdout and "new" in result.stdout


def test_the_cli_loads_the_scenario_reader_only_for_qa_commands() -> None:
    script = (
        "import sys\nfrom factory_tui.cli import main\n"
        "print(sorted(m for m in ('yaml', 'frontmatter', 'markdown_it', 'factory_tui.qa_scenarios') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
