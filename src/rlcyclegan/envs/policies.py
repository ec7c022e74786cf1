"""Exploration policies that seed Q-learning: a scripted grasper and a random policy.

The scripted policy reads privileged state (object poses) from the env, like the scripted
exploration policies used to bootstrap QT-Opt: pick an object (the nearest to the gripper, or a
random one), move above it while turning the jaws across its narrowest horizontal extent,
descend, and close. Noise on the aim point, the jaw angle and every action makes it succeed only
part of the time (about 30-60% with the defaults), which is what off-policy Q-learning needs:
both successes and failures. With probability ``miss_prob`` the aim point is moved 2-7 cm off the
object in a random direction, as QT-Opt's scripted exploration grasped at random places: closing
at the right height in the wrong place must fail in the data, or a Q-function can predict a
grasp's outcome from the gripper height alone and never learn to look at the image. For the same
reason, with probability ``random_yaw_prob`` the jaw angle can be random rather than planned, and with
probability ``wander_prob`` the episode can open with 1 to ``max_wander_steps`` random moves, which
covers more of the states a greedy Q-policy wanders into. Both default to 0: with 0.3 each, a cpu-preset
run learned no faster than on the default data (docs/qtopt.md), so the default data stays what every
documented run used.
"""

from __future__ import annotations

import numpy as np

from rlcyclegan.envs import grasp as g
from rlcyclegan.envs import scene as sc


class ScriptedGraspPolicy:
    """Noisy scripted grasping. ``action_noise=0``, ``aim_noise=0``, ``yaw_noise=0``, ``miss_prob=0``,
    ``random_yaw_prob=0`` and ``wander_prob=0`` is the clean planner."""

    def __init__(
        self,
        env,
        seed: int = 0,
        action_noise: float = 0.15,
        aim_noise: float = 0.015,
        yaw_noise: float = 0.4,
        random_target_prob: float = 0.5,
        miss_prob: float = 0.25,
        random_yaw_prob: float = 0.0,
        wander_prob: float = 0.0,
        max_wander_steps: int = 3,
    ):
        self.env = env.unwrapped
        self.rng = np.random.default_rng(seed)
        self.action_noise = action_noise
        self.aim_noise = aim_noise
        self.yaw_noise = yaw_noise
        self.random_target_prob = random_target_prob
        self.miss_prob = miss_prob
        self.random_yaw_prob = random_yaw_prob
        self.wander_prob = wander_prob
        self.max_wander_steps = max_wander_steps
        self.wander_left = 0
        self.target = 0
        self.offset = np.zeros(2)
        self.yaw_offset = 0.0
        self.last_z: float | None = None

    def reset(self) -> None:
        pos = self.env.object_positions
        tcp = self.env.tcp
        if self.rng.random() < self.random_target_prob:
            self.target = int(self.rng.integers(len(pos)))
        else:
            self.target = int(np.argmin(np.linalg.norm(pos[:, :2] - tcp[:2], axis=1)))
        self.offset = self.rng.normal(0, self.aim_noise, 2)
        if self.rng.random() < self.miss_prob:
            angle = self.rng.uniform(0, 2 * np.pi)
            self.offset = self.rng.uniform(0.02, 0.07) * np.array([np.cos(angle), np.sin(angle)])
        self.yaw_offset = float(self.rng.normal(0, self.yaw_noise))
        # The exploration variants draw only when they are on, so the clean planner's random stream (and
        # every episode collected before they existed) stays exactly what it was.
        if self.random_yaw_prob > 0 and self.rng.random() < self.random_yaw_prob:
            self.yaw_offset = float(self.rng.uniform(-np.pi / 2, np.pi / 2))
        self.wander_left = 0
        if self.wander_prob > 0 and self.rng.random() < self.wander_prob:
            self.wander_left = int(self.rng.integers(1, self.max_wander_steps + 1))
        self.last_z = None

    def plan(self) -> tuple[np.ndarray, float, float, float]:
        """Aim point (x, y), jaw angle, grasp height (world z of the TCP) and top of the target."""
        verts = self.env.object_vertices(self.target)
        xy = verts[:, :2]
        centre = (xy.max(0) + xy.min(0)) / 2
        d = xy - xy.mean(0)
        cxx, cyy, cxy = float(d[:, 0] @ d[:, 0]), float(d[:, 1] @ d[:, 1]), float(d[:, 0] @ d[:, 1])
        major = 0.5 * np.arctan2(2 * cxy, cxx - cyy)  # principal axis of the footprint
        yaw = _wrap_half_pi(major + np.pi / 2)  # close the jaws across it (narrowest direction)
        top = float(verts[:, 2].max())
        grasp_z = max(sc.BIN_FLOOR_Z + 0.004, top - 0.045)
        return centre, yaw, grasp_z, top

    def act(self, obs=None) -> np.ndarray:
        if self.wander_left > 0:
            self.wander_left -= 1
            a = np.concatenate([self.rng.uniform(-1, 1, 4), [-1.0, -1.0]])
            return a.astype(np.float32)
        centre, yaw, grasp_z, top = self.plan()
        tcp = self.env.tcp
        aim = centre + self.offset
        d_xy = aim - tcp[:2]
        far = np.linalg.norm(d_xy) > 0.012
        z_goal = max(grasp_z, top + 0.03) if far else grasp_z
        # Jaw angles are equivalent modulo pi and the wrist turns within [-pi/2, pi/2]: aim at the
        # representative of the planned angle inside that range and turn there directly.
        d_yaw = _wrap_half_pi(yaw + self.yaw_offset) - tcp[3]
        a = np.array(
            [d_xy[0] / g.MAX_XY_STEP, d_xy[1] / g.MAX_XY_STEP, (z_goal - tcp[2]) / g.MAX_Z_STEP, d_yaw / g.MAX_YAW_STEP, -1.0, -1.0]
        )
        a[:4] = np.clip(a[:4], -1, 1) + self.rng.normal(0, self.action_noise, 4)
        stalled = self.last_z is not None and self.last_z - tcp[2] < 0.004
        if not far and abs(d_yaw) < 0.25 and (tcp[2] - grasp_z < 0.005 or stalled):
            a[4] = 1.0
        self.last_z = tcp[2] if not far else None
        return np.clip(a, -1, 1).astype(np.float32)


def _wrap_half_pi(x: float) -> float:
    """Jaw angles are equivalent modulo pi: wrap a difference into [-pi/2, pi/2)."""
    return (x + np.pi / 2) % np.pi - np.pi / 2


class RandomPolicy:
    """Uniform random motion; closes the gripper with probability ``close_prob`` and terminates with
    probability ``terminate_prob`` each step (the failures that teach a Q-function what not to do)."""

    def __init__(self, env, seed: int = 0, close_prob: float = 0.1, terminate_prob: float = 0.02):
        self.action_space = env.action_space
        self.rng = np.random.default_rng(seed)
        self.close_prob = close_prob
        self.terminate_prob = terminate_prob

    def reset(self) -> None:
        pass

    def act(self, obs=None) -> np.ndarray:
        a = self.rng.uniform(-1, 1, 6)
        a[4] = 1.0 if self.rng.random() < self.close_prob else -1.0
        a[5] = 1.0 if self.rng.random() < self.terminate_prob else -1.0
        return a.astype(np.float32)


def _scripted_explore(env, seed: int = 0, **kwargs) -> ScriptedGraspPolicy:
    """The scripted grasper with random jaw angles and opening random moves in 30% of episodes each."""
    return ScriptedGraspPolicy(env, seed=seed, **{"random_yaw_prob": 0.3, "wander_prob": 0.3, **kwargs})


POLICIES = {"scripted": ScriptedGraspPolicy, "scripted-explore": _scripted_explore, "random": RandomPolicy}


def make_policy(name: str, env, seed: int = 0, **kwargs):
    """``"scripted"``, ``"scripted-explore"`` or ``"random"``; ``kwargs`` go to the policy's constructor."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; expected one of {sorted(POLICIES)}")
    return POLICIES[name](env, seed=seed, **kwargs)
