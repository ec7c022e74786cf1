"""Synthetic episodes for the store and dataset tests (no environment needed)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from rlcyclegan.data.store import Episode


def synthetic_episode(
    index: int, length: int, image_size: int = 8, seed: int | None = None, privileged: int | None = None
) -> Episode:
    """A random episode of ``length`` steps whose content is a function of ``index``; with
    ``privileged=P`` it has (T+1, P) privileged states whose last column is NaN (padding)."""
    rng = np.random.default_rng(1000 + index)
    terminated = np.zeros(length, dtype=np.bool_)
    truncated = np.zeros(length, dtype=np.bool_)
    if length:
        (terminated if index % 2 == 0 else truncated)[-1] = True
    ep = Episode(
        images=rng.integers(0, 256, size=(length + 1, image_size, image_size, 3), dtype=np.uint8),
        states=rng.normal(size=(length + 1, 2)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(length, 6)).astype(np.float32),
        rewards=rng.normal(size=length).astype(np.float32),
        terminated=terminated,
        truncated=truncated,
        success=index % 3 == 0,
        index=index,
        seed=index + 7 if seed is None else seed,
        shape_ids=list(range(index % 4)),
    )
    if privileged is not None:
        ep.privileged = rng.normal(size=(length + 1, privileged)).astype(np.float32)
        ep.privileged[:, -1] = np.nan
    return ep


@pytest.fixture
def make_episode() -> Callable[..., Episode]:
    return synthetic_episode


@pytest.fixture
def shard_meta() -> dict[str, object]:
    """Keyword arguments write_shard requires."""
    return {
        "env_id": "rlcyclegan/Grasp-v0",
        "domain": "sim",
        "objects": "train",
        "policy": "scripted",
        "env_kwargs": {"domain": "sim", "image_size": 8},
    }
