"""Playing episodes in lockstep: recording info["privileged"] when the env provides it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rlcyclegan.rl.actor import EpisodeBuilder, run_episodes

ENV_KWARGS = {"domain": "sim", "objects": "train", "image_size": 16, "num_objects": 2}


def _random_moves(obs: dict) -> np.ndarray:
    """Random moves with the close and terminate gates off, so episodes run to ``max_steps``."""
    n = len(obs["image"])
    actions = np.random.default_rng(n).uniform(-1, 1, (n, 6)).astype(np.float32)
    actions[:, 4:] = -1.0
    return actions


class _NoPrivileged(gym.Wrapper):
    """An env that gives no info["privileged"] (as before it existed)."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, {k: v for k, v in info.items() if k != "privileged"}

    def step(self, action):
        obs, reward, term, trunc, info = self.env.step(action)
        return obs, reward, term, trunc, {k: v for k, v in info.items() if k != "privileged"}


@pytest.fixture(scope="module")
def envs():
    import rlcyclegan.envs  # noqa: F401  (registers the env ids)

    made = [gym.make("rlcyclegan/Grasp-v0", **ENV_KWARGS) for _ in range(2)]
    yield made
    for env in made:
        env.close()


def _obs() -> dict:
    return {"image": np.zeros((4, 4, 3), np.uint8), "state": np.zeros(2, np.float32)}


def test_run_episodes_records_privileged_of_every_observation(envs):
    episodes = run_episodes(envs, _random_moves, seeds=[3, 4, 5], max_steps=3)

    for ep, seed in zip(episodes, (3, 4, 5), strict=True):
        assert ep.privileged.shape == (ep.length + 1, 22) and ep.privileged.dtype == np.float32
        assert np.isfinite(ep.privileged[:, :6]).all() and np.isposinf(ep.privileged[:, 6:]).all()
        np.testing.assert_array_equal(ep.privileged[0], envs[0].reset(seed=seed)[1]["privileged"])
        ep.validate()


def test_run_episodes_without_privileged_info_leaves_it_none(envs):
    episodes = run_episodes([_NoPrivileged(e) for e in envs], _random_moves, seeds=[0, 1], max_steps=2)

    assert [ep.privileged for ep in episodes] == [None, None]


def test_episode_builder_raises_when_a_step_lacks_privileged():
    b = EpisodeBuilder()
    b.observe(_obs(), {"privileged": np.ones(3, np.float32)})

    with pytest.raises(RuntimeError, match=r"env.step \(step 0\) info has no 'privileged' key"):
        b.observe(_obs(), {"success": False})


def test_episode_builder_without_info_builds_an_episode_without_privileged():
    b = EpisodeBuilder()
    b.observe(_obs())
    b.actions.append(np.zeros(6, np.float32))
    b.rewards.append(0.0)
    b.terminated.append(True)
    b.truncated.append(False)
    b.observe(_obs())

    ep = b.build(success=False, index=0, seed=0, shape_ids=[])

    assert ep.privileged is None and ep.length == 1
