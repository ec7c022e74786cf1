"""`rlcyclegan env grid`: the same states drawn in several visual domains, side by side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro


@dataclass
class EnvGrid:
    """Render paired images: each row is one state, each column a domain (plus the object mask)."""

    out: Path = Path("domains.png")
    """Output PNG file."""
    env: str = "rlcyclegan/Grasp-v0"
    """Environment id."""
    domains: tuple[str, ...] = ("sim", "randomized", "real")
    """Domains to draw, one column each."""
    states: int = 6
    """Number of states (rows): a reset and a few scripted steps each."""
    image_size: int = 128
    """Image side in pixels."""
    objects: str = "train"
    """Object split: train, test or all."""
    seed: int = 0
    """Seed of the first state."""
    scale: int = 2
    """Integer upscaling of each image in the PNG."""


def grid(argv: list[str]) -> int:
    cfg = tyro.cli(EnvGrid, args=argv, prog="rlcyclegan env grid")
    from rlcyclegan.envs.render import paired_domain_grid

    path = paired_domain_grid(cfg.out, cfg.env, cfg.domains, cfg.states, cfg.image_size, cfg.objects, cfg.seed, cfg.scale)
    print(f"wrote {path}")
    return 0
