"""The demo agent (``python -m factory_tui.demo_agent``) as the engine runs
it: a real subprocess in a real git repository, its stdout read with the
Claude parser, its commits read back with git."""

from __future__ import annotations

import ast
import json
import os
import runpy
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from factory_tui import demo_agent
from factory_tui.backends.agent_output import Progress, parser_for
from factory_tui.backends.prompt import assemble_prompt
from factory_tui.model import State, Task

LOGIN = Task(id="T-3", title="Write the login endpoint", state=State.RUNNING, body="Add `POST /login`.")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def package_repo(git_repo: Path) -> Path:
    """A repository holding a Python package, as the demo base does."""
    (git_repo / "shopfront").mkdir()
    (git_repo / "shopfront" / "__init__.py").write_text('"""The shop."""\n')
    (git_repo / "tests").mkdir()
    (git_repo / "tests" / "__init__.py").write_text("")
    git(git_repo, "add", ".")
    git(git_repo, "commit", "-q", "-m", "a package")
    return git_repo


@pytest.fixture
def prompt_file(tmp_path: Path) -> Path:
    path = tmp_path / "run" / "prompt.md"
    path.parent.mkdir()
    path.write_text(
        assemble_prompt(LOGIN, attempt=1, branch="main", dependencies=[], feedback=None, documents=[])
    )
    return path


def agent_env(**knobs: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTORY_")}
    env.update({"FACTORY_DEMO_SECONDS": "0", "FACTORY_DEMO_FAIL_RATE": "0", **knobs})
    return env


def run_agent(
    cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "factory_tui.demo_agent", *args],
        cwd=cwd,
        env=env or agent_env(),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def progress(stdout: str) -> list[Progress]:
    parser = parser_for("claude-stream-json")
    items = [item for line in stdout.splitlines() for item in parser.feed(line)]
    return items + parser.finish()


def test_a_run_commits_a_new_file_and_reports_progress(package_repo: Path, prompt_file: Path) -> None:
    before = git(package_repo, "rev-parse", "HEAD")
    done = run_agent(package_repo, "--prompt-file", str(prompt_file), env=agent_env(FACTORY_TASK="T-3"))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    # Every line is a JSON object, as Claude's stream-json is.
    assert all(isinstance(json.loads(line), dict) for line in done.stdout.splitlines())
    items = progress(done.stdout)
    kinds = [item.kind for item in items]
    assert kinds[0] == "system" and kinds[-1] == "result"
    assert {"text", "tool"} <= set(kinds)
    assert "error" not in kinds and "tool_result" not in kinds
    assert "Write: shopfront/t_3_write_the_login_endpoint.py" in [item.text for item in items]
    result = items[-1]
    assert result.text.startswith("finished: success · 4 turns")
    assert result.data["cost_usd"] > 0
    assert result.data["input_tokens"] > 0 and result.data["output_tokens"] > 0
    # A real commit on top of the old head, adding the task's file.
    assert git(package_repo, "rev-parse", "HEAD~1") == before
    assert git(package_repo, "log", "-1", "--format=%s") == "T-3: Write the login endpoint"
    assert git(package_repo, "show", "--name-status", "--format=", "HEAD") == (
        "A\tshopfront/t_3_write_the_login_endpoint.py"
    )
    assert git(package_repo, "status", "--porcelain") == ""
    ast.parse((package_repo / "shopfront" / "t_3_write_the_login_endpoint.py").read_text())


def test_a_second_run_goes_on_in_the_same_file(package_repo: Path, prompt_file: Path) -> None:
    for _ in range(2):
        assert run_agent(package_repo, "--prompt-file", str(prompt_file)).returncode == 0
    assert git(package_repo, "log", "-1", "--format=%s") == "T-3: Write the login endpoint (run 2)"
    assert git(package_repo, "show", "--name-status", "--format=", "HEAD") == (
        "M\tshopfront/t_3_write_the_login_endpoint.py"
    )
    ast.parse((package_repo / "shopfront" / "t_3_write_the_login_endpoint.py").read_text())


def test_without_a_package_it_writes_a_note_from_a_prompt_on_stdin(git_repo: Path) -> None:
    prompt = "# T-12: Document the API\n\nExplain every route.\n"
    done = run_agent(git_repo, stdin=prompt)
    assert done.returncode == 0, done.stderr
    assert git(git_repo, "show", "--name-status", "--format=", "HEAD") == "A\tnotes/T-12.md"
    note = (git_repo / "notes" / "T-12.md").read_text()
    assert note.startswith("# T-12: Document the API\n")
    assert "> Explain every route." in note


def test_a_title_full_of_quotes_still_makes_valid_python(package_repo: Path, tmp_path: Path) -> None:
    odd = Task(id="T-8", title='Fix """quotes""" and \\ back\'slashes', state=State.RUNNING)
    path = tmp_path / "odd.md"
    path.write_text(assemble_prompt(odd, attempt=1, branch="b", dependencies=[], feedback=None, documents=[]))
    assert run_agent(package_repo, "--prompt-file", str(path)).returncode == 0
    written = package_repo / "shopfront" / "t_8_fix_quotes_and_back_slashes.py"
    namespace = runpy.run_path(str(written))
    assert namespace["TITLE"] == odd.title
    assert namespace["describe"]() == f"T-8: {odd.title}"


def test_a_failing_run_commits_its_work_and_ends_with_an_error(package_repo: Path, prompt_file: Path) -> None:
    before = git(package_repo, "rev-parse", "HEAD")
    done = run_agent(package_repo, "--prompt-file", str(prompt_file), env=agent_env(FACTORY_DEMO_FAIL_RATE="1"))
    assert done.returncode == 1
    items = progress(done.stdout)
    assert items[-1].kind == "error"
    assert items[-1].text.startswith("failed: error_during_execution")
    assert items[-1].data["cost_usd"] > 0
    assert any(item.kind == "tool_result" and item.text.startswith("tool error:") for item in items)
    assert git(package_repo, "rev-parse", "HEAD~1") == before


def test_a_seed_makes_the_run_repeatable(tmp_path: Path, prompt_file: Path) -> None:
    outcomes = []
    for name in ("one", "two"):
        repo = tmp_path / name
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        git(repo, "commit", "-q", "--allow-empty", "-m", "start")
        done = run_agent(
            repo, "--prompt-file", str(prompt_file),
            env=agent_env(FACTORY_DEMO_FAIL_RATE="0.5", FACTORY_DEMO_SEED="seven"),
        )
        result = progress(done.stdout)[-1]
        outcomes.append((done.returncode, result.kind, result.data["cost_usd"], result.data["output_tokens"]))
    assert outcomes[0] == outcomes[1]


def test_it_uses_a_fallback_identity_when_git_has_none(git_repo: Path, prompt_file: Path, tmp_path: Path) -> None:
    env = {
        k: v for k, v in agent_env().items()
        if not k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_")) and k != "EMAIL"
    }
    home = tmp_path / "home"
    home.mkdir()
    env.update(HOME=str(home), GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    done = run_agent(git_repo, "--prompt-file", str(prompt_file), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    name, email = demo_agent.FALLBACK_IDENTITY
    assert git(git_repo, "log", "-1", "--format=%an <%ae>") == f"{name} <{email}>"
    # A configured identity is the one used.
    git(git_repo, "config", "user.name", "Repo Owner")
    git(git_repo, "config", "user.email", "owner@repo.invalid")
    assert run_agent(git_repo, "--prompt-file", str(prompt_file), env=env).returncode == 0
    assert git(git_repo, "log", "-1", "--format=%an <%ae>") == "Repo Owner <owner@repo.invalid>"


def test_sigterm_stops_it_promptly_with_a_last_line(package_repo: Path, prompt_file: Path) -> None:
    agent = subprocess.Popen(
        [sys.executable, "-m", "factory_tui.demo_agent", "--prompt-file", str(prompt_file)],
        cwd=package_repo,
        env=agent_env(FACTORY_DEMO_SECONDS="600"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = agent.stdout.readline()
        assert json.loads(first)["subtype"] == "init"
        agent.send_signal(signal.SIGTERM)
        # Far below the ten minutes the run would take: it stopped, not finished.
        stdout, _ = agent.communicate(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 143
    last = progress(stdout)[-1]
    assert last.kind == "error"
    assert "stopped by SIGTERM" in last.text


@pytest.mark.parametrize(
    ("where", "args", "knobs", "message"),
    [
        ("outside", ["--prompt-file", "PROMPT"], {}, "demo_agent: not a git repository"),
        ("repo", ["--prompt-file", "missing.md"], {}, "demo_agent: prompt file not found: missing.md"),
        ("repo", [], {}, "demo_agent: the prompt is empty"),
        ("repo", ["--prompt-file", "PROMPT"], {"FACTORY_DEMO_SECONDS": "soon"},
         "demo_agent: FACTORY_DEMO_SECONDS must be a number, not 'soon'"),
        ("repo", ["--prompt-file", "PROMPT"], {"FACTORY_DEMO_FAIL_RATE": "2"},
         "demo_agent: FACTORY_DEMO_FAIL_RATE must be between 0 and 1, not 2"),
    ],
)
def test_it_cannot_start_without_its_inputs(
    where: str, args: list[str], knobs: dict, message: str,
    git_repo: Path, tmp_path: Path, prompt_file: Path,
) -> None:
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    cwd = outside if where == "outside" else git_repo
    head = git(git_repo, "rev-parse", "HEAD")
    args = [str(prompt_file) if arg == "PROMPT" else arg for arg in args]
    done = run_agent(cwd, *args, env=agent_env(GIT_CEILING_DIRECTORIES=str(tmp_path), **knobs))
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(message)
    assert git(git_repo, "rev-parse", "HEAD") == head


def test_the_prompt_heading_names_the_task_for_the_agent() -> None:
    prompt = assemble_prompt(LOGIN, attempt=1, branch="b", dependencies=[], feedback=None, documents=[])
    task = demo_agent.task_from_prompt(prompt, None)
    assert (task.id, task.title) == ("T-3", "Write the login endpoint")
    assert demo_agent.task_from_prompt(prompt, "T-99").id == "T-99"
    loose = demo_agent.task_from_prompt("\n\nJust do something useful\nplease", None)
    assert (loose.id, loose.title) == ("task", "Just do something useful")


def test_the_output_is_spread_over_the_seconds_asked() -> None:
    stream = demo_agent.Stream(6.0)
    stream.pace(6)
    assert stream.pause == 1.0
    stream = demo_agent.Stream(0.0)
    stream.pace(7)
    assert stream.pause == 0.0
