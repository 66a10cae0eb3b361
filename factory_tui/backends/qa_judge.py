"""Running a judge agent: asking it (once per vote), keeping what it said,
and reading its verdict.

    <out_dir>/
        prompt.md          what the judge was asked (the same for every vote)
        answer-N.txt       vote N's answer: the judge's own words (for a JSON
                           output format, the text of its messages), the
                           last ANSWER_KEEP bytes at most
        answer-N.raw       vote N's raw stream, when the format is JSON (the
                           last ANSWER_KEEP bytes at most)
        judge.json         the outcome: verdict, reason, each vote, figures

A judge is an agent profile like any other (argv with placeholders, output
format, env) and runs like an agent: its own session and process group, and
``FACTORY_RUN=<out_dir>`` in its environment, so that stopping it
(``runs.AgentRun.stop``) stops whatever it started too. Its stdout and
stderr come through a pipe and only their tail is kept, in memory and on
disk: a judge that prints 50 MB costs no more than one that prints 1 MB.
Cost and tokens are read from the whole stream, as the engine reads an
agent's (``agent_output``).

Never a pass by default: a judge that cannot start, does not answer in time,
exits non-zero, says it failed, or gives no verdict is ``ERROR``.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

from factory_tui.backends.agent_output import parser_for
from factory_tui.backends.agents import DEMO_JUDGE_PROFILE as DEMO_JUDGE_PROFILE  # its home: the built-in profiles
from factory_tui.backends.agents import AgentProfile
from factory_tui.backends.runs import GRACE_SECONDS, AgentRun, write_json, write_private
from factory_tui.qa_model import Verdict
from factory_tui.qa_verdict import majority, parse_verdict

# What is kept of each answer (and of its raw stream): its end, where the
# verdict is.
ANSWER_KEEP = 1 << 20
READ_CHUNK = 64 << 10
# A line longer than this is taken as it is rather than held whole.
LINE_LIMIT = 1 << 20
# How long the judge's output pipe may stay open after the judge and its
# run's processes are gone (a process that cleared its environment and left
# the group): after this the answer is what came so far.
DRAIN_SECONDS = 5.0
# Variables of the engine's own agent runs that a judge must not inherit:
# a judge is not the task's agent and may not act as it.
AGENT_VARIABLES = ("FACTORY_TASK", "FACTORY_TOKEN", "FACTORY_RUN", "FACTORY_FAULTS")


@dataclass(slots=True)
class JudgeVote:
    verdict: Verdict
    reason: str
    answer_path: Path
    exit_code: int | None = None  # None: it did not end by itself (stopped), or never started
    duration: float = 0.0
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    output_bytes: int = 0  # all it printed, kept or not

    def to_json(self) -> dict:
        return {
            "verdict": str(self.verdict),
            "reason": self.reason,
            "answer": self.answer_path.name,
            "exit_code": self.exit_code,
            "duration": round(self.duration, 3),
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "output_bytes": self.output_bytes,
        }


@dataclass(slots=True)
class JudgeOutcome:
    verdict: Verdict
    reason: str
    votes: list[JudgeVote]
    prompt_path: Path
    duration: float = 0.0
    cost_usd: float | None = None  # summed over the votes that reported it
    input_tokens: int | None = None
    output_tokens: int | None = None

    def to_json(self) -> dict:
        return {
            "verdict": str(self.verdict),
            "reason": self.reason,
            "prompt": self.prompt_path.name,
            "duration": round(self.duration, 3),
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "votes": [vote.to_json() for vote in self.votes],
        }


class _Tail:
    """The last ``keep`` bytes of a stream, in chunks (no copying of the
    whole on each append)."""

    def __init__(self, keep: int = ANSWER_KEEP) -> None:
        self.keep = keep
        self.chunks: deque[bytes] = deque()
        self.size = 0  # of what is held
        self.total = 0  # of everything seen

    def add(self, data: bytes) -> None:
        if not data:
            return
        self.chunks.append(data)
        self.size += len(data)
        self.total += len(data)
        while self.size - len(self.chunks[0]) >= self.keep:
            self.size -= len(self.chunks.popleft())

    def value(self) -> bytes:
        data = b"".join(self.chunks)
        return data[-self.keep :] if len(data) > self.keep else data

    def text(self) -> str:
        text = self.value().decode("utf-8", errors="replace")
        if self.total > len(self.value()):
            cut = self.total - len(self.value())
            text = f"[… {cut:,} bytes of earlier output not kept …]\n" + text
        return text


def _message_text(event: dict) -> tuple[list[str], str | None]:
    """The judge's own words in one JSON event: (message texts, a final
    result text). Claude Code: assistant text blocks and the result's
    ``result``; Codex: agent messages."""
    texts: list[str] = []
    kind = event.get("type")
    if kind == "assistant":
        content = (event.get("message") or {}).get("content") if isinstance(event.get("message"), dict) else None
        if isinstance(content, str):
            texts.append(content)
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
        return texts, None
    if kind == "result" and isinstance(event.get("result"), str):
        return texts, event["result"]
    item = event.get("item")
    if kind == "item.completed" and isinstance(item, dict) and item.get("type") == "agent_message":
        if isinstance(item.get("text"), str):
            texts.append(item["text"])
    msg = event.get("msg")
    if isinstance(msg, dict) and msg.get("type") == "agent_message" and isinstance(msg.get("message"), str):
        texts.append(msg["message"])
    return texts, None


class _Reader:
    """Reads the judge's output pipe to its end on a thread of its own:
    keeps the raw tail, the tail of the judge's own words (JSON formats),
    and the figures the format's parser finds in the whole stream."""

    def __init__(self, pipe, output_format: str) -> None:
        self.pipe = pipe
        self.json = output_format != "text"
        self.parser = parser_for(output_format) if self.json else None
        self.raw = _Tail()
        self.words = _Tail()
        self.final: str | None = None
        self.totals: dict = {}
        self.failure: str | None = None
        self.partial = b""
        self.thread = threading.Thread(target=self._run, name="judge-output", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        fd = self.pipe.fileno()
        try:
            while True:
                data = os.read(fd, READ_CHUNK)
                if not data:
                    break
                self.raw.add(data)
                if self.json:
                    self._lines(data)
            if self.json and self.partial:
                self._line(self.partial)
                self.partial = b""
        except OSError:
            pass  # the pipe went away: what came so far is the answer
        finally:
            if self.parser is not None:
                self._record(self.parser.finish())

    def _lines(self, data: bytes) -> None:
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        if len(self.partial) > LINE_LIMIT:
            lines.append(self.partial)
            self.partial = b""
        for line in lines:
            self._line(line)

    def _line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        assert self.parser is not None
        self._record(self.parser.feed(line))
        if not line.startswith("{"):
            return
        try:
            event = json.loads(line)
        except ValueError:
            return
        if isinstance(event, dict):
            texts, final = _message_text(event)
            for text in texts:
                self.words.add(text.encode("utf-8", errors="replace") + b"\n")
            if final is not None:
                self.final = final[-ANSWER_KEEP:]

    def _record(self, items) -> None:
        for item in items:
            if item.data and item.kind in ("result", "error"):
                self.totals.update(item.data)
            if item.outcome == "failed":
                self.failure = item.text
            elif item.outcome == "succeeded":
                self.failure = None

    def answer(self) -> str:
        """What the judge said, as text."""
        if not self.json:
            return self.raw.text()
        if self.words.total:
            return self.words.text()
        return self.final or ""


def _environment(profile: AgentProfile, out_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    for key in AGENT_VARIABLES:
        env.pop(key, None)
    env.update(profile.env)
    env["FACTORY_RUN"] = str(out_dir)
    return env


def _number(value: object) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _ask(
    *, profile: AgentProfile, argv: list[str], cwd: Path, out_dir: Path, timeout: float, number: int
) -> JudgeVote:
    """One vote: start the judge, wait for it (or stop it), read its verdict."""
    answer_path = out_dir / f"answer-{number}.txt"
    started = time.monotonic()

    def vote(verdict: Verdict, reason: str, **more) -> JudgeVote:
        return JudgeVote(verdict, reason, answer_path, duration=time.monotonic() - started, **more)

    if not cwd.is_dir():
        write_private(answer_path, "")
        return vote(Verdict.ERROR, f"the judge could not start: its folder {cwd} does not exist")
    try:
        process = subprocess.Popen(
            argv, cwd=cwd, env=_environment(profile, out_dir), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
    except FileNotFoundError:
        write_private(answer_path, "")
        return vote(Verdict.ERROR, f"the judge could not start: {argv[0]} not found")
    except OSError as error:
        write_private(answer_path, "")
        return vote(Verdict.ERROR, f"the judge could not start: {argv[0]}: {error.strerror or error}")
    assert process.stdout is not None
    reader = _Reader(process.stdout, profile.output)
    run = AgentRun(out_dir, process.pid, time.time(), timeout, process)
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        # Stops the judge (on a timeout, or an exception here) and whatever
        # it left running, which would otherwise hold the pipe open.
        run.stop(GRACE_SECONDS)
    reader.thread.join(DRAIN_SECONDS)
    process.stdout.close()
    exit_code = None if timed_out else process.returncode

    answer = reader.answer()
    write_private(answer_path, answer)
    if reader.json:
        write_private(out_dir / f"answer-{number}.raw", reader.raw.text())
    totals = reader.totals
    figures = {
        "exit_code": exit_code,
        "cost_usd": _number(totals.get("cost_usd")),
        "input_tokens": _number(totals.get("input_tokens")),
        "output_tokens": _number(totals.get("output_tokens")),
        "output_bytes": reader.raw.total,
    }
    if timed_out:
        return vote(Verdict.ERROR, f"the judge did not answer within {timeout:g} s", **figures)
    verdict, reason = parse_verdict(answer)
    if exit_code != 0:
        why = f"the judge exited {exit_code}" if exit_code and exit_code > 0 else f"the judge was killed by signal {-(exit_code or 0)}"
        said = f" (its verdict, {verdict}, does not count)" if verdict is not Verdict.ERROR else f": {_last_line(answer)}"
        return vote(Verdict.ERROR, (why + said)[:300], **figures)
    if reader.failure is not None:
        return vote(Verdict.ERROR, f"the judge reported a failure: {reader.failure}"[:300], **figures)
    return vote(verdict, reason, **figures)


def _last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.strip():
            return " ".join(line.split())[:200]
    return "no output"


def _sum(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return sum(known) if known else None


def _overall_reason(verdict: Verdict, votes: list[JudgeVote]) -> str:
    if len(votes) == 1:
        return votes[0].reason
    counts = Counter(str(vote.verdict) for vote in votes)
    tally = ", ".join(f"{name} {counts[name]}" for name in ("PASS", "FAIL", "ERROR") if counts[name])
    agreeing = [vote for vote in votes if vote.verdict is verdict]
    if verdict is not Verdict.ERROR or len(agreeing) == len(votes):
        first = agreeing[0].reason
        return f"{first} ({tally})" if first else f"{len(agreeing)} of {len(votes)} votes ({tally})"
    return f"no majority of {len(votes)} votes ({tally})"


def run_judge(
    *, profile: AgentProfile, prompt: str, cwd: Path, out_dir: Path, timeout: float, votes: int = 1,
    task_id: str = "",
) -> JudgeOutcome:
    """Ask the judge ``votes`` times (one after the other, each within
    ``timeout`` seconds) and take the majority (``qa_verdict.majority``).
    Blocks: call it off the event loop."""
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    prompt_path = out_dir / "prompt.md"
    write_private(prompt_path, prompt)
    argv = profile.render_argv(prompt=prompt, prompt_file=prompt_path, task_id=task_id, worktree=cwd)
    asked: list[JudgeVote] = []
    for number in range(1, max(1, votes) + 1):
        vote = _ask(profile=profile, argv=argv, cwd=cwd, out_dir=out_dir, timeout=timeout, number=number)
        asked.append(vote)
        if vote.exit_code is None and vote.reason.startswith("the judge could not start"):
            break  # it will not start the next time either
    verdict = majority([vote.verdict for vote in asked]) if len(asked) == max(1, votes) else Verdict.ERROR
    outcome = JudgeOutcome(
        verdict=verdict,
        reason=_overall_reason(verdict, asked),
        votes=asked,
        prompt_path=prompt_path,
        duration=time.monotonic() - started,
        cost_usd=_sum([vote.cost_usd for vote in asked]),
        input_tokens=_int(_sum([vote.input_tokens for vote in asked])),
        output_tokens=_int(_sum([vote.output_tokens for vote in asked])),
    )
    write_json(out_dir / "judge.json", outcome.to_json())
    return outcome


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)
