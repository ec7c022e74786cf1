"""Evaluating a saved policy in an env: success rate and Wilson interval."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from rlcyclegan.data.dataset import wilson_interval
from rlcyclegan.rl.actor import run_episodes
from rlcyclegan.rl.checkpoint import load_checkpoint, resolve_checkpoint
from rlcyclegan.rl.policy import Policy


def evaluate_checkpoint(
    checkpoint: str | Path,
    env_id: str | None = None,
    domain: str = "sim",
    objects: str = "test",
    episodes: int = 500,
    seed: int = 3_000_000_000,
    envs: int = 25,
    env_kwargs: dict[str, Any] | None = None,
    device: str = "auto",
    progress: bool = False,
    cem: dict[str, int] | None = None,
    q_network: str = "real",
    translate_with: str | Path | None = None,
    translate_direction: str = "sim2real",
) -> dict[str, Any]:
    """Greedy success of the checkpoint's policy over ``episodes`` episodes (seeds ``seed + i``).

    ``cem`` overrides the policy's CEM settings (``iterations``, ``samples``, ``elites``; 0 or missing keeps
    the checkpoint's). ``q_network="sim"`` evaluates an RL-CycleGAN checkpoint's Q_sim instead of its policy
    Q_real (for a QT-Opt checkpoint, "real" is its one Q-network); ``"both"`` acts on the mean logit of
    Q_real(y, a) and Q_sim(F(y), a) (:class:`rlcyclegan.rl.translate.TwoDomainQ`). ``translate_with`` (a checkpoint or run with
    a sim-to-real generator) passes every observation image through its G first: e.g. a policy trained on
    G(sim) evaluated on G(sim) in the `sim` domain, to tell how much of its gap in `real` is left between
    G(x) and real images. ``translate_direction="real2sim"`` uses the checkpoint's F instead: e.g. an
    RL-CycleGAN run's Q_sim acting on F(real) (``q_network="sim"``, ``domain="real"``), the other way to
    deploy a sim policy through the translator.
    """
    import gymnasium as gym
    import torch
    from tqdm.auto import tqdm

    import rlcyclegan.envs  # noqa: F401

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if q_network not in ("real", "sim", "both"):
        raise ValueError(f"q_network must be real, sim or both, got {q_network!r}")
    entry = "policy_sim" if q_network == "sim" else "policy"
    path = resolve_checkpoint(checkpoint)
    dev = "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    ckpt = load_checkpoint(path, map_location=dev)
    policy = Policy.load(path, device=dev, seed=0, cem=cem, entry=entry)
    if q_network == "both":  # Q_real(y) and Q_sim(F(y)) together (an RL-CycleGAN checkpoint's two networks and its F)
        from rlcyclegan.rl.translate import ImageTranslator, TwoDomainQ

        q_sim = Policy.load(path, device=dev, seed=0, cem=cem, entry="policy_sim").qnet
        policy.qnet = TwoDomainQ(policy.qnet, q_sim, ImageTranslator.load(path, direction="real2sim", device=dev)).eval()
    trained = ckpt[entry].get("env", {})
    env_id = env_id or trained.get("id")
    if not env_id:
        raise ValueError(f"{path}: the checkpoint does not name its env; pass --env")
    kwargs = dict(trained.get("kwargs", {})) if env_id == trained.get("id") else {}
    if env_id.startswith("rlcyclegan/"):
        kwargs.update(domain=domain, objects=objects)
    kwargs.update(env_kwargs or {})
    env_list = [gym.make(env_id, **kwargs) for _ in range(min(envs, episodes))]
    if translate_with is not None:
        from rlcyclegan.rl.translate import ImageTranslator, TranslatedObservations

        translator = ImageTranslator.load(translate_with, direction=translate_direction, device=dev)
        env_list = [TranslatedObservations(e, translator) for e in env_list]
    space = env_list[0].observation_space
    img_shape = (space["image"] if isinstance(space, gym.spaces.Dict) else space).shape
    if img_shape[0] != policy.qnet.cfg.image_size:
        raise ValueError(f"{path}: the policy takes {policy.qnet.cfg.image_size}px images, {env_id} renders {img_shape[0]}px (set image_size)")
    t0 = time.monotonic()
    bar = tqdm(total=episodes, desc=f"eval {domain}/{objects}", unit="ep", disable=not progress, dynamic_ncols=True)
    results = []
    chunk = max(len(env_list) * 4, 1)
    try:
        for start in range(0, episodes, chunk):
            seeds = [seed + i for i in range(start, min(episodes, start + chunk))]
            eps = run_episodes(env_list, policy.act, seeds, first_index=start)
            results += eps
            bar.update(len(eps))
            bar.set_postfix(success=f"{np.mean([e.success for e in results]):.3f}", refresh=False)
    finally:
        bar.close()
        for e in env_list:
            e.close()
    succ = int(sum(e.success for e in results))
    lo, hi = wilson_interval(succ, episodes)
    return {
        "checkpoint": str(path),
        "env": env_id,
        "domain": domain,
        "objects": objects,
        "episodes": episodes,
        "successes": succ,
        "success": succ / episodes,
        "success_low": lo,
        "success_high": hi,
        "mean_length": float(np.mean([e.length for e in results])),
        "step": ckpt.get("step"),
        "seed": seed,
        "cem": dict(policy.cem),
        "q_network": q_network,
        "translate_with": None if translate_with is None else str(translate_with),
        "translate_direction": None if translate_with is None else translate_direction,
        "seconds": time.monotonic() - t0,
    }
