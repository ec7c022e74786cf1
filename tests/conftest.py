import os

os.environ.setdefault("MUJOCO_GL", "egl")


import signal  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def sigterm_on_call(monkeypatch):
    """``sigterm_on_call(module, "name", n)``: the n-th call (1-based) of ``module.name`` first sends SIGTERM to
    this process, as a scheduler stopping the job would; undone with the test's monkeypatch."""

    def install(module, name: str, n: int) -> None:
        real, calls = getattr(module, name), []

        def wrapper(*args, **kwargs):
            calls.append(1)
            if len(calls) == n:
                os.kill(os.getpid(), signal.SIGTERM)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    return install
