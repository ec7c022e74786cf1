"""Fixtures of the training tests: bandit data, and expensive runs built once per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from bandit_env import BANDIT_ID, random_bandit_episodes
from filelock import FileLock

from rlcyclegan.data.store import write_episodes


@pytest.fixture(scope="session")
def bandit_data(tmp_path_factory) -> Path:
    """200 random-action bandit episodes in an episode folder (about half of them succeed)."""
    out = tmp_path_factory.mktemp("bandit") / "data"
    write_episodes(out, random_bandit_episodes(200), env_id=BANDIT_ID, domain="sim", objects="train", policy="random")
    return out


@pytest.fixture(scope="session")
def build_once(tmp_path_factory) -> Callable[[str, Callable[[Path], None]], Path]:
    """``build_once(key, build)``: a folder filled by ``build(folder)`` once per test session, shared
    by the pytest-xdist workers (one builds it, the others wait for it) so expensive runs are not repeated."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent

    def get(key: str, build: Callable[[Path], None]) -> Path:
        path = root / key
        with FileLock(str(root / f"{key}.lock")):
            if not (path / ".built").exists():
                shutil.rmtree(path, ignore_errors=True)
                path.mkdir(parents=True)
                build(path)
                (path / ".built").touch()
        return path

    return get
