"""Environment throughput: single-process episodes and steps per second with the scripted policy."""

from __future__ import annotations

import os
import platform
import time

import gymnasium as gym
from rlcyclegan.data.dataset import wilson_interval
import rlcyclegan  # noqa: F401  (registers the envs)
from rlcyclegan.envs import make_policy


def run_episodes(env, policy, episodes: int, seed: int) -> dict:
    """Run ``episodes`` episodes; return counts, success rate and wall time (resets included)."""
    steps = successes = 0
    start = time.perf_counter()
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        policy.reset()
        done = False
        info = {"success": False}
        while not done:
            obs, _, terminated, truncated, info = env.step(policy.act(obs))
            steps += 1
            done = terminated or truncated
        successes += bool(info["success"])
    seconds = time.perf_counter() - start
    return {"episodes": episodes, "steps": steps, "successes": successes, "seconds": seconds}


def bench_env(
    env_id: str = "rlcyclegan/Grasp-v0",
    sizes: tuple[int, ...] = (64, 128),
    episodes: int = 200,
    domain: str = "sim",
    seed: int = 0,
    success_episodes: int = 300,
) -> dict:
    """Episodes/s and steps/s for each image size (one process, one core), plus success rates.

    The first reset of each size (model compilation, renderer creation) is excluded: it is a
    one-off per process, reported separately as ``startup_seconds``. ``success_episodes`` more
    episodes per object split (train, unseen test) measure the scripted policy's success rate, and
    as many the clean planner's on unseen objects (``clean_planner_success_test``).
    """
    results: dict = {
        "benchmark": "env",
        "env_id": env_id,
        "domain": domain,
        "policy": "scripted",
        "episodes_per_size": episodes,
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
        "sizes": {},
    }
    for size in sizes:
        t0 = time.perf_counter()
        env = gym.make(env_id, domain=domain, image_size=size)
        env.reset(seed=seed)
        startup = time.perf_counter() - t0
        policy = make_policy("scripted", env, seed=seed)
        run_episodes(env, policy, 5, seed + 10**6)  # warm-up
        r = run_episodes(env, policy, episodes, seed)
        env.close()
        results["sizes"][str(size)] = {
            "episodes_per_second": r["episodes"] / r["seconds"],
            "steps_per_second": r["steps"] / r["seconds"],
            "mean_episode_length": r["steps"] / r["episodes"],
            "scripted_success_rate": r["successes"] / r["episodes"],
            "startup_seconds": startup,
        }
    if success_episodes > 0:
        results["scripted_success"] = {}
        for split in ("train", "test"):
            env = gym.make(env_id, domain=domain, image_size=min(sizes), objects=split)
            r = run_episodes(env, make_policy("scripted", env, seed=seed), success_episodes, seed + 10**7)
            env.close()
            lo, hi = wilson_interval(r["successes"], r["episodes"])
            results["scripted_success"][split] = {
                "episodes": r["episodes"], "success_rate": r["successes"] / r["episodes"], "wilson95": [lo, hi],
            }
        # The clean planner (privileged object poses, no noise, no deliberate misses) on unseen objects:
        # the ceiling the grasp physics leave to any policy.
        env = gym.make(env_id, domain=domain, image_size=min(sizes), objects="test")
        clean = make_policy("scripted", env, seed=seed, action_noise=0.0, aim_noise=0.0, yaw_noise=0.0, miss_prob=0.0,
                            random_target_prob=0.0, random_yaw_prob=0.0, wander_prob=0.0)
        r = run_episodes(env, clean, success_episodes, seed + 2 * 10**7)
        env.close()
        lo, hi = wilson_interval(r["successes"], r["episodes"])
        results["clean_planner_success_test"] = {
            "episodes": r["episodes"], "success_rate": r["successes"] / r["episodes"], "wilson95": [lo, hi],
        }
    s64 = results["sizes"].get("64")
    if s64 is not None:
        results["goal_episodes_per_second_64"] = 50.0
        results["meets_goal"] = bool(s64["episodes_per_second"] >= 50.0)
    return results


def render_fps(env_id: str = "rlcyclegan/Grasp-v0", size: int = 64, frames: int = 200) -> dict:
    """Frames per second of rendering the current state in each domain (camera model included)."""
    env = gym.make(env_id, image_size=size)
    env.reset(seed=0)
    out = {}
    for domain in ("sim", "randomized", "real"):
        env.unwrapped.render_domains([domain], masks=False)
        t = time.perf_counter()
        for _ in range(frames):
            env.unwrapped.render_domains([domain], masks=False)
        out[domain] = frames / (time.perf_counter() - t)
    env.close()
    return out
