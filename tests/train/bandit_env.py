"""A tiny image bandit env for training tests (registered as ``test/ImageBandit-v0`` on import)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rlcyclegan.data.store import Episode

BANDIT_ID = "test/ImageBandit-v0"


class ImageBanditEnv(gym.Env):
    """One-step episodes: a bright patch on the left or right half of a noisy image; reward 1 when
    the sign of ``action[0]`` points at the patch's side (right = positive), else 0."""

    metadata = {"render_modes": []}

    def __init__(self, image_size: int = 32):
        self.size = image_size
        self.observation_space = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.side = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.side = int(self.np_random.integers(2))
        return self._image(), {}

    def _image(self) -> np.ndarray:
        img = self.np_random.integers(0, 40, (self.size, self.size, 3), dtype=np.uint8)
        h = self.size // 2
        img[h // 2 : h // 2 + h, self.side * h + 2 : self.side * h + h - 2] = 255
        return img

    def step(self, action):
        reward = float((float(action[0]) > 0) == (self.side == 1))
        return self._image(), reward, True, False, {"success": reward > 0}


if BANDIT_ID not in gym.registry:
    gym.register(BANDIT_ID, entry_point=ImageBanditEnv)


def random_bandit_episodes(n: int, seed: int = 0) -> list[Episode]:
    """``n`` episodes of the bandit played with uniform random actions (off-policy data)."""
    env = gym.make(BANDIT_ID)
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n):
        obs, _ = env.reset(seed=seed + i)
        action = rng.uniform(-1, 1, 1).astype(np.float32)
        next_obs, reward, terminated, truncated, info = env.step(action)
        episodes.append(Episode(
            images=np.stack([obs, next_obs]), states=np.zeros((2, 0), np.float32), actions=action[None],
            rewards=np.array([reward], np.float32), terminated=np.array([terminated]), truncated=np.array([truncated]),
            success=bool(info["success"]), index=i, seed=seed + i,
        ))
    env.close()
    return episodes
