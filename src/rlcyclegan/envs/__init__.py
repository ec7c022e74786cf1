"""Grasping environments, visual domains, shapes and exploration policies.

Importing this module registers ``rlcyclegan/Grasp-v0`` and ``rlcyclegan/MultiBinGrasp-v0``.
"""

from __future__ import annotations

import gymnasium as gym

from rlcyclegan.envs.domains import DOMAINS, RealStyle
from rlcyclegan.envs.grasp import EnvConfig, GraspEnv
from rlcyclegan.envs.policies import RandomPolicy, ScriptedGraspPolicy, make_policy

ENV_IDS = ("rlcyclegan/Grasp-v0", "rlcyclegan/MultiBinGrasp-v0")


def _register() -> None:
    if ENV_IDS[0] not in gym.registry:
        gym.register(id=ENV_IDS[0], entry_point="rlcyclegan.envs.grasp:GraspEnv", max_episode_steps=None)
    if ENV_IDS[1] not in gym.registry:
        gym.register(
            id=ENV_IDS[1],
            entry_point="rlcyclegan.envs.grasp:GraspEnv",
            kwargs={"num_bins": 3, "base_bin": "random", "distractors_per_bin": 2, "base_jitter": 0.03},
        )


_register()

__all__ = [
    "DOMAINS",
    "ENV_IDS",
    "EnvConfig",
    "GraspEnv",
    "RandomPolicy",
    "RealStyle",
    "ScriptedGraspPolicy",
    "make_policy",
]
