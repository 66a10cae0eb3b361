"""Agent profiles: which program runs a task, with what arguments, how its
output reads, how long it may take.

Profiles come from ``[agents.NAME]`` in factory.toml; ``factory init`` writes
working ones for Claude Code, Codex, Aider and the demo agent. The command is
always an argv list with placeholders, never a shell string: a prompt full of
quotes and semicolons reaches the agent as one argument and nothing else.
"""

from __future__ import annotations

import math
import shutil
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path

from factory_tui.config import FactoryConfig, check_keys
from factory_tui.errors import ConfigError

OUTPUT_FORMATS = ("claude-stream-json", "codex-json", "text")
PLACEHOLDERS = ("prompt", "prompt_file", "task_id", "worktree", "python")
PROFILE_KEYS = ("argv", "output", "timeout", "env")
# The order in which an unset default_agent is looked for on PATH.
DETECTION_ORDER = ("claude", "codex", "aider")

BUILTIN_PROFILES: dict[str, dict] = {
    "claude": {
        "argv": [
            "claude", "-p", "{prompt}", "--output-format", "stream-json", "--verbose",
            "--dangerously-skip-permissions",
        ],
        "output": "claude-stream-json",
        "timeout": 3600,
    },
    "codex": {
        "argv": ["codex", "exec", "--json", "--full-auto", "{prompt}"],
        "output": "codex-json",
        "timeout": 3600,
    },
    "aider": {
        "argv": [
            "aider", "--message-file", "{prompt_file}", "--yes-always", "--no-pretty",
            "--no-stream", "--no-check-update",
        ],
        "output": "text",
        "timeout": 3600,
    },
    "demo": {
        "argv": ["{python}", "-m", "factory_tui.demo_agent", "--prompt-file", "{prompt_file}"],
        "output": "claude-stream-json",
        "timeout": 600,
    },
}

# The judge that ships with factory-tui (factory_tui/demo_judge.py): offline
# and deterministic, for QA's eval and scenario files without a model. A
# built-in profile like the others, but never a task's default agent.
DEMO_JUDGE_PROFILE: dict = {
    "argv": ["{python}", "-m", "factory_tui.demo_judge", "--format", "claude-stream-json", "--prompt-file", "{prompt_file}"],
    "output": "claude-stream-json",
    "timeout": 120,
}
BUILTIN_PROFILES["demo-judge"] = DEMO_JUDGE_PROFILE

# The planner that ships with factory-tui (factory_tui/demo_planner.py):
# offline and deterministic, it turns a spec's headings and lists into a
# plan. ``factory plan draft`` runs it when the base names no planner; it is
# there whether factory.toml lists it or not, and never a task's default.
DEMO_PLANNER = "demo-planner"
DEMO_PLANNER_PROFILE: dict = {
    "argv": ["{python}", "-m", "factory_tui.demo_planner", "--prompt-file", "{prompt_file}"],
    "output": "text",
    "timeout": 120,
}
BUILTIN_PROFILES[DEMO_PLANNER] = DEMO_PLANNER_PROFILE


@dataclass(frozen=True, slots=True)
class AgentProfile:
    name: str
    argv: tuple[str, ...]
    output: str = "text"
    timeout: float = 3600.0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def program(self) -> str:
        return self.argv[0]

    def render_argv(self, *, prompt: str, prompt_file: Path, task_id: str, worktree: Path) -> list[str]:
        values = {
            "prompt": prompt,
            "prompt_file": str(prompt_file),
            "task_id": task_id,
            "worktree": str(worktree),
            "python": sys.executable,
        }
        # Each argument is filled in on its own; text from a prompt is never
        # parsed again, so braces inside it stay braces.
        return [arg.format_map(values) for arg in self.argv]

    def available(self) -> bool:
        """Whether the program can be found (on PATH, or as a path)."""
        program = self.program
        if program == "{python}":
            return True
        return shutil.which(program) is not None


def _placeholder_problem(arg: str) -> str | None:
    """What is wrong with the placeholders of one argv item, or None.

    A placeholder is a bare name: ``str.format`` would also apply a format
    spec (``{prompt:>999999999}`` pads a prompt to a gigabyte, ``{prompt:d}``
    fails on every run), a conversion (``{prompt!r}``), an attribute or an
    index (``{prompt.attr}``, ``{prompt[0]}``), and only when a task runs.
    """
    known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    try:
        parsed = list(string.Formatter().parse(arg))
    except ValueError as error:
        return f"argv has a malformed placeholder in {arg!r}: {error} (write {{{{ and }}}} for a brace)"
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        bare = name.split(".", 1)[0].split("[", 1)[0]
        if bare not in PLACEHOLDERS:
            return f"argv uses an unknown placeholder {written} (known: {known})"
        if written != "{" + bare + "}":
            return (
                f"argv placeholder {written} is not allowed: a placeholder takes no format spec, "
                f"conversion, attribute or index; write {{{bare}}}"
            )
    return None


def profile_from_dict(name: str, data: object, *, source: str = "factory.toml") -> AgentProfile:
    def fail(message: str) -> ConfigError:
        return ConfigError(f"{source}: [agents.{name}] {message}")

    if not isinstance(data, dict):
        raise fail("must be a table")
    if (problem := check_keys(data, PROFILE_KEYS)) is not None:
        raise fail(problem)
    argv = data.get("argv")
    if isinstance(argv, str):
        raise fail('argv must be a list of arguments such as ["claude", "-p", "{prompt}"], not a shell string')
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise fail("argv must be a non-empty list of strings")
    for arg in argv:
        problem = _placeholder_problem(arg)
        if problem is not None:
            raise fail(problem)
    output = data.get("output", "text")
    if output not in OUTPUT_FORMATS:
        raise fail(f"output must be one of {', '.join(OUTPUT_FORMATS)}, not {output!r}")
    timeout = data.get("timeout", 3600)
    # TOML allows nan and inf; neither is a time an agent can be given.
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise fail(f"timeout must be a positive number of seconds, not {timeout!r}")
    env = data.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise fail("env must map names to strings")
    return AgentProfile(name=name, argv=tuple(argv), output=output, timeout=float(timeout), env=dict(env))


def load_profiles(config: FactoryConfig) -> dict[str, AgentProfile]:
    """The base's profiles; the built-in ones when factory.toml names none."""
    tables = config.agents or BUILTIN_PROFILES
    return {name: profile_from_dict(name, data) for name, data in tables.items()}


def default_profile_name(config: FactoryConfig, profiles: dict[str, AgentProfile]) -> str:
    """``default_agent`` if set, else the first of Claude Code, Codex and
    Aider found on PATH, else the demo agent."""
    if config.default_agent:
        if config.default_agent not in profiles:
            raise ConfigError(
                f"factory.toml: default_agent {config.default_agent!r} is not a profile "
                f"(profiles: {', '.join(profiles)})"
            )
        return config.default_agent
    for name in DETECTION_ORDER:
        if name in profiles and profiles[name].available():
            return name
    if "demo" in profiles:
        return "demo"
    return next(iter(profiles))


def profile_for(task_profile: str | None, config: FactoryConfig) -> AgentProfile:
    profiles = load_profiles(config)
    name = task_profile or default_profile_name(config, profiles)
    try:
        return profiles[name]
    except KeyError:
        raise ConfigError(
            f"no agent profile {name!r} in factory.toml (profiles: {', '.join(profiles)})"
        ) from None


def render_profiles_toml() -> str:
    """The ``[agents.*]`` tables ``factory init`` writes."""
    import json

    lines = []
    comments = {
        "claude": "# Claude Code, unattended in its own worktree (stream-json progress).",
        "codex": "# OpenAI Codex CLI (JSONL events).",
        "aider": "# Aider, reading the prompt from a file.",
        "demo": "# The demo agent that ships with factory-tui: edits a file, commits, no model needed.",
        "demo-judge": "# The demo judge for QA's eval and scenario files: offline, checks a rubric against the diff.",
        DEMO_PLANNER: "# The demo planner for `factory plan draft`: offline, a spec's headings and lists become a plan.",
    }
    for name, data in BUILTIN_PROFILES.items():
        lines.append(comments[name])
        lines.append(f"[agents.{name}]")
        lines.append("argv = [" + ", ".join(json.dumps(a) for a in data["argv"]) + "]")
        lines.append(f'output = "{data["output"]}"')
        lines.append(f"timeout = {data['timeout']}")
        lines.append("env = {}")
        lines.append("")
    return "\n".join(lines)
