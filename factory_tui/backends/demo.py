"""A throwaway demo base: a small git repository with a factory base whose
plan holds tasks in every state, with dependencies and a believable history,
and a second base beside it, the peer factory ``warehouse``, with the mail
the two have exchanged so far (a note answered, a request that became a
task, was done and answered itself).

``factory demo``, the screenshots and the snapshot tests all start from here.
With a fixed ``start`` time everything (ids, times, text) is the same on every
machine.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.demo_mail import REQUEST, request_id, request_task_body
from factory_tui.backends.log import ExecutionLog, NewTask
from factory_tui.model import Action, State

DEMO_AUTHOR = ("Demo Operator", "operator@demo.invalid")
PEER_NAME = "warehouse"
# The history's task made from the peer's request (backends/demo_mail.py).
REQUESTED_TASK = "T-14"

_FILES = {
    "README.md": "# shopfront\n\nA small web shop API, built by a software factory.\n",
    "shopfront/__init__.py": '"""The shopfront API."""\n',
    "shopfront/server.py": (
        '"""HTTP routes."""\n\n\ndef health():\n    return {"ok": True}\n'
    ),
    "tests/test_server.py": (
        "from shopfront.server import health\n\n\n"
        "def test_health():\n    assert health() == {\"ok\": True}\n"
    ),
}

_BODIES = {
    "login": (
        "Add `POST /login` taking an email and a password.\n\n"
        "- Passwords are checked with **argon2**.\n"
        "- A good login returns a session cookie; a bad one returns 401 and "
        "says nothing about which half was wrong.\n"
        "- Log every failed attempt.\n"
    ),
    "reset": "Send a one-time link by email; links expire after 30 minutes.",
    "ratelimit": "Token bucket per client IP: 60 requests a minute, 429 above.",
    "audit": "Every admin action writes who, what and when to the audit table.",
}


class _DemoClock:
    """Advances a few minutes per event so the history reads like a morning."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def tick(self, minutes: float) -> None:
        self.now += minutes * 60


def _git_env(when: float) -> dict[str, str]:
    stamp = f"@{int(when)} +0000"
    name, email = DEMO_AUTHOR
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_DATE": stamp,
    }


def peer_root(root: Path) -> Path:
    """Where the demo's peer factory lives: beside the demo, named after it
    so that two demos kept in one folder never share a peer."""
    return root.parent / f"{root.name}-{PEER_NAME}"


def _empty_folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if any(path.iterdir()):
        from factory_tui.errors import FactoryError

        raise FactoryError(f"{path} is not empty; the demo needs an empty folder")


def build_demo(path: Path, *, start: float | None = None, name: str = "shopfront") -> FactoryBase:
    """Create the demo repository and base in ``path`` and its peer
    factory in ``peer_root(path)`` (both must be empty or absent). ``start``
    fixes the time of the first event."""
    import git

    path = Path(path).absolute()
    peer_path = peer_root(path)
    _empty_folder(path)
    _empty_folder(peer_path)
    if start is None:
        start = time.time() - 3 * 3600
    repo = git.Repo.init(path, initial_branch="main")
    for rel, text in _FILES.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    with repo.git.custom_environment(**_git_env(start)):
        repo.git.add(A=True)
        repo.git.commit(m="Start the shopfront API", no_verify=True)
    base, _ = FactoryBase.init(path, name=name)
    peer = _build_peer(peer_path, start)
    _add_peer(base, PEER_NAME, peer.root)
    _add_peer(peer, name, base.root)
    # Its QA: a scenario of each kind, and the test they start from.
    from factory_tui.backends.demo_qa import write_demo_qa

    write_demo_qa(path)
    from factory_tui.backends.demo_documents import write_demo_documents

    write_demo_documents(path)
    with repo.git.custom_environment(**_git_env(start + 60)):
        repo.git.add(A=True)
        repo.git.commit(m="Add the factory base, its QA and its living documents", no_verify=True)
    clock = _DemoClock(start + 120)
    with ExecutionLog.open(base.log_path, clock=clock) as log:
        _write_history(log, clock, request=(request_id(start), request_task_body(start, PEER_NAME)))
    merged = _write_work(base, start, clock)
    from factory_tui.backends.demo_mail import write_demo_mail

    write_demo_mail(base, peer, start=start, clock=clock, merged=merged)
    return base


def _build_peer(path: Path, start: float) -> FactoryBase:
    """The peer factory: a repository of its own with a base named
    ``warehouse`` and an empty plan (its operator is the demo's mail)."""
    import git

    repo = git.Repo.init(path, initial_branch="main")
    (path / "README.md").write_text(f"# {PEER_NAME}\n\nStock and shipping, run by another factory.\n",
                                    encoding="utf-8")
    with repo.git.custom_environment(**_git_env(start)):
        repo.git.add(A=True)
        repo.git.commit(m="Start the warehouse service", no_verify=True)
    peer, _ = FactoryBase.init(path, name=PEER_NAME)
    return peer


def _add_peer(base: FactoryBase, name: str, root: Path) -> None:
    """Name ``root`` as the path peer ``name`` in the base's factory.toml,
    under the ``[peers]`` table ``factory init`` wrote."""
    relative = Path(os.path.relpath(root, base.root)).as_posix()
    text = base.config_path.read_text(encoding="utf-8")
    entry = f'[peers]\n{name} = {{ path = "{relative}" }}\n'
    assert "[peers]\n" in text, "factory init writes a [peers] table"
    base.config_path.write_text(text.replace("[peers]\n", entry, 1), encoding="utf-8")


# What the history's agents "wrote": files on real branches, so that the
# Worktrees pane, the run screen's diff and approving (a real merge) work
# from the first minute of the demo.
_WORK = {
    "T-1": ("shopfront/app.py", '"""The application object."""\n\n\ndef create_app():\n    return {"routes": []}\n'),
    "T-2": ("shopfront/schema.sql", "CREATE TABLE users (\n    id INTEGER PRIMARY KEY,\n    email TEXT NOT NULL UNIQUE,\n    password_hash TEXT NOT NULL\n);\nCREATE INDEX users_email ON users(email);\n"),
    "T-14": ("shopfront/health.py", '"""GET /health."""\n\n\ndef health():\n    return {"ok": True, "version": "0.1.0"}\n'),
    "T-3": ("shopfront/login.py", '"""POST /login."""\n\nfrom argon2 import PasswordHasher\n\nhasher = PasswordHasher()\n\n\ndef login(db, email, password):\n    row = db.execute("SELECT id, password_hash FROM users WHERE email = ?", (email,)).fetchone()\n    if row is None:\n        return 401, {"error": "wrong email or password"}\n    try:\n        hasher.verify(row[1], password)\n    except Exception:\n        return 401, {"error": "wrong email or password"}\n    return 200, {"session": new_session(db, row[0])}\n'),
    "T-8": ("tests/test_session.py", '"""Session expiry."""\n\n\ndef test_session_expiry(clock):\n    clock.advance(3600)\n    assert not session_is_valid(clock)\n'),
    "T-5": ("shopfront/ratelimit.py", '"""A token bucket per client."""\n\nRATE = 60  # requests a minute\n'),
}
_TRANSCRIPT = {
    "T-3": [
        "· session started (model claude-sonnet)",
        "⏺ I'll read the schema and the existing routes first.",
        "⚙ Read: shopfront/schema.sql",
        "⚙ Read: shopfront/app.py",
        "⏺ Logins look users up by email; the index from T-2 covers that.",
        "⚙ Write: shopfront/login.py",
        "⚙ Bash: python -m pytest -q",
        "⏺ All tests pass. Committing.",
        "⚙ Bash: git commit -am 'T-3: Write the login endpoint'",
        "✓ finished: success · 9 turns · 14m02s · $0.4812 · 182.3k (151.0k cached) in / 6.1k out tokens",
    ],
    "T-8": [
        "· session started (model claude-sonnet)",
        "⏺ The test depends on wall-clock time; I'll inject a clock.",
        "⚙ Edit: tests/test_session.py",
        "⚙ Bash: python -m pytest -q -k session --count 20",
        "↳ tool error: 4 failed, 16 passed",
        "✗ finished: error_during_execution · 12 turns · $0.6120 · test_session_expiry still fails 1 run in 5",
    ],
}


def _write_work(base: FactoryBase, start: float, clock: _DemoClock) -> dict[str, str]:
    """The history's work on real branches; returns the commit each merged
    task landed at."""
    from factory_tui.backends.log import ExecutionLog
    from factory_tui.backends.worktrees import Worktrees

    worktrees = Worktrees.for_config(base.root, base.config())
    merged: dict[str, str] = {}
    with _git_dates(start + 600), ExecutionLog.open(base.log_path) as log:
        for task_id, (rel, text) in _WORK.items():
            # Made as the engine makes a branch: recorded, so the plan owns it.
            prepared = worktrees.prepare_for(task_id, owned=False)
            # Not owned: the branch is made new, so its start is known.
            assert prepared.start is not None
            log.record_branch_start(task_id, prepared.start)
            path = prepared.path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            worktrees.commit_all(task_id, f"{task_id}: {rel}")
            if task_id in ("T-1", "T-2", "T-14"):
                merged[task_id] = worktrees.merge(task_id, f"Merge {task_id}")
                worktrees.remove(task_id, delete_branch=True)
    with ExecutionLog.open(base.log_path, clock=clock) as log:
        _write_qa_history(base, log, worktrees)
    for task_id, lines in _TRANSCRIPT.items():
        run_dir = base.runs_dir / task_id / "1"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "transcript.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return merged


def _write_qa_history(base: FactoryBase, log: ExecutionLog, worktrees) -> None:
    """The history's tasks in review went through the QA gate as a real
    engine's would have: each scenario's result on the task's commit, so
    that they can be approved (an approve needs required QA passed on the
    branch's head)."""
    from factory_tui.qa_model import Gate, QaResult, Scenario, Verdict
    from factory_tui.qa_scenarios import load_scenarios

    scenarios = [s for s in load_scenarios(base.qa_dir, root=base.root, profiles=("demo", "demo-judge"))
                 if isinstance(s, Scenario)]
    base_commit = worktrees.base_head()
    for task in log.list_tasks():
        head = worktrees.branch_head(task.id) if task.state is State.REVIEW else None
        if head is None:
            continue
        results = [
            QaResult(scenario=s.name, version=s.version, kind=s.kind, gate=s.gate, verdict=Verdict.PASS,
                     reason="", commit=head, base_commit=base_commit,
                     duration=4.2 if s.gate is Gate.REQUIRED else 11.0,
                     cost_usd=None if s.gate is Gate.REQUIRED else 0.012)
            for s in scenarios
        ]
        log.record_qa_on_demand(results, actor="engine:demo", task_id=task.id, attempt=task.attempts)


class _git_dates:
    """Fixed author and committer dates for the commits made inside."""

    def __init__(self, when: float) -> None:
        self.env = _git_env(when)
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for key, value in self.env.items():
            if "DATE" in key:
                self.saved[key] = os.environ.get(key)
                os.environ[key] = value

    def __exit__(self, *exc: object) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# The runs whose transcripts the demo writes (_TRANSCRIPT) record what
# those transcripts end with.
_RUN_FIGURES = {
    "T-3": {"cost_usd": 0.4812, "input_tokens": 182_300, "cached_input_tokens": 151_000,
            "output_tokens": 6_100, "turns": 9},
    "T-8": {"cost_usd": 0.612, "input_tokens": 201_000, "cached_input_tokens": 160_000,
            "output_tokens": 7_400, "turns": 12},
}


def _run_figures(task_id: str, attempt: int, minutes: float) -> dict:
    """What a run's end records of its cost, shaped as the engine writes it,
    so the history's runs count in the header's and ``factory status``'s totals.
    The figures grow with the run's length, as a real agent's do."""
    turns = max(3, round(minutes))
    tokens_in = 12_000 * turns
    tokens_out = 450 * turns
    figures = {
        "cost_usd": round(tokens_in * 3e-6 / 4 + tokens_out * 15e-6, 4),
        "input_tokens": tokens_in,
        "cached_input_tokens": tokens_in * 3 // 4,
        "output_tokens": tokens_out,
        "turns": turns,
    }
    return {"run": f".factory/runs/{task_id}/{attempt}", **_RUN_FIGURES.get(task_id, figures)}


def _write_history(log: ExecutionLog, clock: _DemoClock, *, request: tuple[str, str]) -> None:
    """``request``: the id of the peer's message that became the health
    check's task and the task's body (backends/demo_mail.py sends it)."""
    op = "console:operator"
    eng = "engine:demo"
    add = lambda title, **kw: log.add_task(NewTask(title=title, **kw), actor=op).id  # noqa: E731

    skeleton = add("Set up the project skeleton", priority=3)
    schema = add("Add the SQLite schema for users", priority=2, after=(skeleton,))
    login = add("Write the login endpoint", priority=2, body=_BODIES["login"], after=(schema,))
    reset = add("Password reset by email", body=_BODIES["reset"], after=(login,))
    ratelimit = add("Rate-limit the API", priority=1, body=_BODIES["ratelimit"])
    docs = add("Add OpenAPI docs for every route")
    ci = add("Move CI to a matrix of Python versions", state=State.HELD)
    flaky = add("Fix the flaky test_session_expiry", priority=1)
    clock.tick(3)
    dark = add("Dark mode for the admin pages", state=State.PROPOSED, source="planner")
    csv = add("Export users as CSV", state=State.PROPOSED, priority=-1, source="planner")
    py39 = add("Drop Python 3.9 support", state=State.PROPOSED)
    audit = add("Audit logging for admin actions", body=_BODIES["audit"], after=(login, ratelimit))
    guide = add("Write the deployment guide", priority=-1, after=(docs,))
    request_key, request_body = request
    health = add(REQUEST.subject, priority=1, body=request_body, source=f"mail:{request_key}")

    def run(expected: str, outcome: State, note: str, minutes: float = 9) -> None:
        claim = log.claim_next(eng, lease_seconds=600)
        assert claim is not None and claim.task.id == expected, claim
        clock.tick(minutes)
        log.finish(claim.token, outcome, note=note, data=_run_figures(claim.task.id, claim.task.attempts, minutes))
        clock.tick(1)

    clock.tick(4)
    # The engine takes ready tasks by priority, then by id.
    run(skeleton, State.REVIEW, "agent finished: 6 files changed")
    log.apply(skeleton, Action.APPROVE, actor=op)
    clock.tick(2)
    run(schema, State.REVIEW, "agent finished: 3 files changed", minutes=7)
    log.apply(schema, Action.REQUEUE, actor=op, note="Add an index on users.email; logins look it up.")
    clock.tick(3)
    run(schema, State.REVIEW, "agent finished: 2 files changed", minutes=5)
    log.apply(schema, Action.APPROVE, actor=op)
    clock.tick(2)
    run(login, State.REVIEW, "agent finished: 4 files changed", minutes=14)
    log.add_note(login, "The argon2 parameters follow OWASP's 2025 advice.", actor=f"agent:{login}")
    clock.tick(1)
    claim = log.claim_next(eng, lease_seconds=3600 * 24 * 365)
    assert claim is not None and claim.task.id == ratelimit
    clock.tick(1)
    run(flaky, State.FAILED, "agent exited 1: test_session_expiry still fails 1 run in 5", minutes=12)
    run(health, State.REVIEW, "agent finished: 2 files changed", minutes=4)
    log.apply(health, Action.APPROVE, actor=op)
    clock.tick(2)
    log.apply(py39, Action.CANCEL, actor=op, note="Still needed by two customers.")
    log.set_priority(docs, 1, actor=op)
    clock.tick(1)
    log.add_note(ratelimit, "Using a token bucket kept in process memory.", actor=f"agent:{ratelimit}")
    clock.tick(1)
    log.add_progress(claim.token, "⚙ Edit: shopfront/ratelimit.py")
    del reset, ci, dark, csv, audit, guide


def demo_root_default() -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="factory-demo-", dir=os.environ.get("TMPDIR")))
