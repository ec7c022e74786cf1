"""Fixtures of the experiment tests: each experiment run once per session on the `tiny` preset."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock


def session_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@pytest.fixture(scope="session")
def tiny_experiment(tmp_path_factory) -> Callable[[str], Path]:
    """``tiny_experiment(name)``: the folder of `rlcyclegan experiment NAME --preset tiny` (1 seed, default budgets),
    run once per session and shared by pytest-xdist workers (a file lock; one runs it, the others wait)."""
    root = session_root(tmp_path_factory)

    def get(name: str) -> Path:
        from rlcyclegan.experiments.runner import run_experiment

        out = root / f"experiment-{name}"
        with FileLock(str(out) + ".lock"):
            if not (out / ".built").exists():
                shutil.rmtree(out, ignore_errors=True)
                run_experiment(name, "tiny", 1, out, device="cpu", threads=1, progress=False)
                (out / ".built").touch()
        return out

    return get
