import gymnasium as gym
import numpy as np
import pytest

import rlcyclegan  # noqa: F401
from rlcyclegan.benchmarks.env import run_episodes
from rlcyclegan.envs import make_policy


def test_random_policy_actions_lie_in_the_action_space():
    env = gym.make("rlcyclegan/Grasp-v0", image_size=32)
    policy = make_policy("random", env, seed=0)
    for _ in range(50):
        assert env.action_space.contains(policy.act(None))


def test_policies_are_deterministic_for_a_seed():
    env = gym.make("rlcyclegan/Grasp-v0", image_size=32)
    a = run_episodes(env, make_policy("scripted", env, seed=3), 4, seed=0)
    b = run_episodes(env, make_policy("scripted", env, seed=3), 4, seed=0)
    assert (a["steps"], a["successes"]) == (b["steps"], b["successes"])


def test_unknown_policy_raises():
    env = gym.make("rlcyclegan/Grasp-v0", image_size=32)
    with pytest.raises(ValueError, match="unknown policy 'greedy'"):
        make_policy("greedy", env)


@pytest.mark.slow
@pytest.mark.parametrize("objects", ["train", "test"])
def test_scripted_policy_success_is_in_the_bootstrap_band(objects):
    """QT-Opt needs both successes and failures to bootstrap from: aim for 30-60%."""
    env = gym.make("rlcyclegan/Grasp-v0", objects=objects)
    r = run_episodes(env, make_policy("scripted", env, seed=0), 300, seed=123)
    assert 0.3 <= r["successes"] / r["episodes"] <= 0.6


@pytest.mark.slow
def test_random_policy_rarely_succeeds():
    env = gym.make("rlcyclegan/Grasp-v0")
    r = run_episodes(env, make_policy("random", env, seed=0), 200, seed=0)
    assert r["successes"] / r["episodes"] < 0.15


def test_scripted_explore_turns_the_jaws_at_random_and_wanders_in_some_episodes():
    env = gym.make("rlcyclegan/Grasp-v0", image_size=32)
    policy = make_policy("scripted-explore", env, seed=0)
    assert (policy.random_yaw_prob, policy.wander_prob) == (0.3, 0.3)
    wandered = 0
    for ep in range(20):
        env.reset(seed=ep)
        policy.reset()
        wandered += policy.wander_left > 0
    assert 0 < wandered < 20


def test_default_scripted_policy_neither_wanders_nor_turns_the_jaws_at_random():
    env = gym.make("rlcyclegan/Grasp-v0", image_size=32)
    policy = make_policy("scripted", env, seed=0)
    assert (policy.random_yaw_prob, policy.wander_prob) == (0.0, 0.0)
