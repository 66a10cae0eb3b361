"""Shared fixtures: real git repositories and real bases in temporary
folders, a fixed time zone, and a git identity for the commits tests make."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.demo import build_demo
from factory_tui.backends.log import ExecutionLog

# The engine's fixtures (agent, record, tidy) serve every test module.
pytest_plugins = ["tests.engine_helpers"]

# 2026-09-21 13:46:40 UTC: the demo's fixed start, so pictures never change.
DEMO_START = 1_790_000_000.0


@pytest.fixture(autouse=True, scope="session")
def _stable_environment() -> None:
    os.environ["TZ"] = "UTC"
    time.tzset()
    for key, value in {
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
    }.items():
        os.environ.setdefault(key, value)
    # An agent running this suite must not lend it its identity.
    for name in ("FACTORY_TASK", "FACTORY_BASE", "FACTORY_RUN", "FACTORY_TOKEN"):
        os.environ.pop(name, None)


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "README.md").write_text("# a project\n")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", "start"], check=True)
    return repo


@pytest.fixture
def base(git_repo: Path) -> FactoryBase:
    created, _ = FactoryBase.init(git_repo)
    return created


@pytest.fixture
def log(base: FactoryBase):
    with ExecutionLog.open(base.log_path) as opened:
        yield opened


@pytest.fixture
def demo_base(tmp_path: Path) -> FactoryBase:
    return build_demo(tmp_path / "shopfront", start=DEMO_START)
