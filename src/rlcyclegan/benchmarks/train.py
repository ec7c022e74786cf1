"""Training speed of RL-CycleGAN against a plain CycleGAN with the same generators and discriminators.

Both methods are built with :func:`rlcyclegan.train.rlcyclegan.build_nets` from one preset (so G, F,
D_X and D_Y are identical) and stepped with the real :func:`train_step` on synthetic uint8 batches of
the grasp env's shapes (no env, no data on disk). RL-CycleGAN adds Q_sim and Q_real: their forward
passes inside the RL-scene loss, the TD targets (CEM over the target networks, also on translated
next images) and the Q update. The goal is an RL-CycleGAN step at most 1.3 times a CycleGAN step.

Steps are timed after a warm-up, alternating the two methods step by step so that load changes on
the machine hit both alike; the RL-scene loss is on (steps counted from the end of the warm-up
period ``rl_scene_warmup``), as in most of a run.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

METHODS = ("cyclegan", "rlcyclegan")
GOAL_RATIO = 1.3


def synthetic_batch(n: int, image_size: int, state_dim: int, action_dim: int, real_transitions: bool,
                    rng: np.random.Generator, device: torch.device) -> dict:
    """A random batch shaped like :func:`sample_batch`'s: sim transitions and real transitions (or images only)."""

    def side() -> dict:
        images = lambda: torch.as_tensor(rng.integers(0, 256, (n, image_size, image_size, 3), dtype=np.uint8), device=device)  # noqa: E731
        return {"image": images(), "next_image": images(),
                "state": torch.as_tensor(rng.random((n, state_dim), dtype=np.float32), device=device),
                "next_state": torch.as_tensor(rng.random((n, state_dim), dtype=np.float32), device=device),
                "action": torch.as_tensor(rng.uniform(-1, 1, (n, action_dim)).astype(np.float32), device=device),
                "reward": torch.as_tensor((rng.random(n) < 0.3).astype(np.float32), device=device),
                "done": torch.as_tensor(rng.random(n) < 0.2, device=device)}

    sim, real = side(), side()
    return {"sim": sim, "real": real if real_transitions else {"image": real["image"]}}


def _count(*modules) -> int:
    return int(sum(p.numel() for m in modules if m is not None for p in m.parameters()))


def bench_train(image_size: int = 64, batch_size: int = 0, steps: int = 5, warmup: int = 2, preset: str = "cpu",
                device: str = "cpu", threads: int = 0, state_dim: int = 2, action_dim: int = 6,
                real_transitions: bool = True, seed: int = 0, amp: str = "auto") -> dict:
    """Steps/s and images/s of a CycleGAN and an RL-CycleGAN training step, and their step-time ratio.

    ``batch_size`` 0 takes the preset's. Step times are medians over ``steps`` timed steps after ``warmup``
    untimed ones. images/s counts sim images (each step also takes as many real ones).
    """
    from rlcyclegan.train.common import machine_info, pick_device, use_bf16
    from rlcyclegan.train.rlcyclegan import build_nets, preset_config, train_step

    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be >= 1 and warmup >= 0 (got {steps}, {warmup})")
    if threads > 0:
        torch.set_num_threads(threads)
    dev = pick_device(device)
    base = preset_config(preset)
    bs = batch_size if batch_size > 0 else base.batch_size
    bounds = (-np.ones(action_dim, np.float32), np.ones(action_dim, np.float32))
    rng = np.random.default_rng(seed)
    batches = [synthetic_batch(bs, image_size, state_dim, action_dim, real_transitions, rng, dev) for _ in range(2)]
    runs = {}
    for method in METHODS:
        cfg = replace(base, method=method, batch_size=bs, seed=seed, device=str(dev), amp=amp)
        nets = build_nets(cfg, image_size, state_dim, action_dim, dev, bounds if method == "rlcyclegan" else None)
        runs[method] = {"cfg": cfg, "nets": nets, "gen": torch.Generator(dev).manual_seed(seed + 1), "step": cfg.rl_scene_warmup,
                        "times": []}

    def one_step(r: dict, i: int) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t = time.perf_counter()
        train_step(r["nets"], batches[i % 2], r["cfg"], r["step"], r["gen"], dev)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        r["step"] += 1
        return time.perf_counter() - t

    for i in range(warmup):
        for method in METHODS:
            one_step(runs[method], i)
    for i in range(steps):
        for method in METHODS:
            runs[method]["times"].append(one_step(runs[method], i))

    result: dict = {"preset": preset, "image_size": image_size, "batch_size": bs, "steps": steps, "warmup": warmup,
                    "real_transitions": real_transitions, "amp": amp, "bf16": use_bf16(dev, amp), "generator": base.generator, "discriminator": base.discriminator,
                    "qnet": base.qnet, "machine": machine_info(dev), "methods": {}}
    for method, r in runs.items():
        n = r["nets"]
        ms = float(np.median(r["times"]) * 1000)
        result["methods"][method] = {
            "step_ms": ms, "step_ms_mean": float(np.mean(r["times"]) * 1000), "steps_per_second": 1000.0 / ms,
            "images_per_second": 1000.0 * bs / ms,
            "parameters": {"generators": _count(n.G, n.F), "discriminators": _count(n.D_X, n.D_Y), "q_networks": _count(n.q_sim, n.q_real)},
        }
    ratio = result["methods"]["rlcyclegan"]["step_ms"] / result["methods"]["cyclegan"]["step_ms"]
    result.update(ratio_rlcyclegan_to_cyclegan=ratio, goal_ratio=GOAL_RATIO, meets_goal=bool(ratio <= GOAL_RATIO))
    return result
