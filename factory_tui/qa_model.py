"""The words of quality assurance, shared by every part that checks an
agent's work: what a scenario file says (``Scenario``, or ``InvalidScenario``
when it cannot be read), and what one run of one scenario found
(``QaResult``).

Pure: no I/O. Reading scenario files is ``qa_scenarios.py``; running them
is ``backends/qa_runner.py`` (commands) and ``backends/qa_judge.py`` (a judge
agent); the gate that sends a task on to review or back to the queue is the
engine's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class QaKind(StrEnum):
    # A command; exit 0 passes. JUnit XML, when the command writes it, gives
    # a verdict per test.
    TEST = "test"
    # A command and patterns its output must (``expect``) and must not
    # (``expect_not``) match.
    VERIFY = "verify"
    # A judge agent reads the task, its diff and its agent's last words, with
    # the scenario's body as the rubric.
    EVAL = "eval"
    # A judge agent follows the body's steps as a user would, in a clean
    # checkout of the work.
    SCENARIO = "scenario"


JUDGED_KINDS = frozenset({QaKind.EVAL, QaKind.SCENARIO})
COMMAND_KINDS = frozenset({QaKind.TEST, QaKind.VERIFY})


class Gate(StrEnum):
    # A failure (or an error) keeps the task from review.
    REQUIRED = "required"
    # Shown and recorded, never blocks.
    ADVISORY = "advisory"


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    # Could not tell (no verdict, a timeout, a command that could not start):
    # never a pass; it blocks a required gate.
    ERROR = "ERROR"
    # Did not apply, or was not run (a cancelled check).
    SKIP = "SKIP"
    # Failed, then passed when run again: it passes the gate, and is counted.
    FLAKY = "FLAKY"


# What lets a task through a required gate.
PASSING = frozenset({Verdict.PASS, Verdict.FLAKY, Verdict.SKIP})

# More steps than this in a ``scenario`` body and the file is told to split:
# a small scenario is done whole, a large one is skipped in parts.
MAX_SCENARIO_STEPS = 7


@dataclass(frozen=True, slots=True)
class Scenario:
    """One ``.factory/qa/NAME.md`` file, read and checked."""

    name: str  # the file's stem
    path: str  # relative to the repository: .factory/qa/NAME.md
    kind: QaKind
    gate: Gate
    body: str  # the markdown under the front matter: rubric, or steps
    version: str  # a hash of the file's bytes: which text a result was for
    run: tuple[str, ...] = ()  # argv of test and verify (never a shell string)
    judge: str | None = None  # an agent profile, for eval and scenario
    timeout: float = 600.0  # seconds, per attempt
    when_paths: tuple[str, ...] = ()  # globs: runs only if the diff touches one
    when_labels: tuple[str, ...] = ()  # runs only for tasks with one of these labels
    retries: int = 0  # a failure is run this many times more (FLAKY if it then passes)
    votes: int = 1  # a judge is asked this many times; the majority counts
    expect: tuple[str, ...] = ()  # verify: regular expressions the output must match
    expect_not: tuple[str, ...] = ()  # verify: ones it must not
    steps: int = 0  # numbered or bulleted steps in a scenario's body
    warnings: tuple[str, ...] = ()  # readable, but worth a word (too many steps)


@dataclass(frozen=True, slots=True)
class InvalidScenario:
    """A scenario file that cannot be used: listed with why, never run."""

    name: str
    path: str
    reason: str
    line: int | None = None  # 1-based, in the file, when known


@dataclass(slots=True)
class QaResult:
    """One run of one scenario against one commit."""

    scenario: str
    version: str
    kind: QaKind
    gate: Gate
    verdict: Verdict
    reason: str  # one line: why (the failing tests, the judge's reason)
    commit: str  # what was checked
    base_commit: str | None = None  # the base branch's commit it was compared with
    duration: float = 0.0  # seconds, all attempts
    attempts: int = 1  # 2 when a failure was run again
    cost_usd: float | None = None  # a judge's
    input_tokens: int | None = None
    output_tokens: int | None = None
    output: str | None = None  # the run's folder, relative to the repository
    # Per test, when known (JUnit): name → PASS / FAIL / ERROR / SKIP.
    tests: dict[str, str] = field(default_factory=dict)

    @property
    def blocks(self) -> bool:
        """Whether this result keeps its task from review."""
        return self.gate is Gate.REQUIRED and self.verdict not in PASSING

    def to_json(self) -> dict:
        return {
            "scenario": self.scenario,
            "version": self.version,
            "kind": str(self.kind),
            "gate": str(self.gate),
            "verdict": str(self.verdict),
            "reason": self.reason,
            "commit": self.commit,
            "base_commit": self.base_commit,
            "duration": round(self.duration, 3),
            "attempts": self.attempts,
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "output": self.output,
            "tests": dict(self.tests),
        }

    @classmethod
    def from_json(cls, data: dict) -> QaResult:
        return cls(
            scenario=data["scenario"],
            version=data.get("version", ""),
            kind=QaKind(data["kind"]),
            gate=Gate(data["gate"]),
            verdict=Verdict(data["verdict"]),
            reason=data.get("reason", ""),
            commit=data.get("commit", ""),
            base_commit=data.get("base_commit"),
            duration=float(data.get("duration") or 0.0),
            attempts=int(data.get("attempts") or 1),
            cost_usd=data.get("cost_usd"),
            input_tokens=data.get("input_tokens"),
            output_tokens=data.get("output_tokens"),
            output=data.get("output"),
            tests=dict(data.get("tests") or {}),
        )
