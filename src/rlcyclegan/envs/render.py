"""Paired renders of the same states in several domains, as an image grid (for people to look at)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
from PIL import Image, ImageDraw

from rlcyclegan.envs.policies import make_policy


def paired_states(env_id: str, domains, states: int, image_size: int, objects: str, seed: int):
    """Yield ``render_domains`` results for ``states`` states (reset, then 0-4 scripted steps)."""
    env = gym.make(env_id, image_size=image_size, objects=objects)
    policy = make_policy("scripted", env, seed=seed)
    rng = np.random.default_rng(seed)
    try:
        for i in range(states):
            obs, _ = env.reset(seed=seed + i)
            policy.reset()
            for _ in range(int(rng.integers(0, 5))):
                obs, _, term, trunc, _ = env.step(policy.act(obs))
                if term or trunc:
                    obs, _ = env.reset(seed=seed + 1000 + i)
                    policy.reset()
            yield env.unwrapped.render_domains(list(domains))
    finally:
        env.close()


def paired_domain_grid(out, env_id="rlcyclegan/Grasp-v0", domains=("sim", "randomized", "real"), states=6,
                       image_size=128, objects="train", seed=0, scale=2) -> Path:
    rows = []
    for rendered in paired_states(env_id, domains, states, image_size, objects, seed):
        tiles = [rendered[d]["image"] for d in domains]
        mask = rendered[domains[0]]["object_mask"]
        tiles.append(np.repeat((mask[..., None] * 255).astype(np.uint8), 3, axis=-1))
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0)
    img = Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    header = 16
    canvas = Image.new("RGB", (img.width, img.height + header), (255, 255, 255))
    canvas.paste(img, (0, header))
    draw = ImageDraw.Draw(canvas)
    w = image_size * scale
    for k, name in enumerate([*domains, f"object mask ({domains[0]})"]):
        draw.text((k * w + 4, 2), name, fill=(0, 0, 0))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
