"""`rlcyclegan bench ...`: speed benchmarks printed as one JSON object."""

from __future__ import annotations

import json
from dataclasses import dataclass

import tyro


@dataclass
class EnvBench:
    """Single-process environment throughput with the scripted policy."""

    env: str = "rlcyclegan/Grasp-v0"
    """Environment id."""
    episodes: int = 200
    """Timed episodes per image size (after a 5-episode warm-up)."""
    sizes: tuple[int, ...] = (64, 128)
    """Square image sizes to measure."""
    domain: str = "sim"
    """Visual domain of the env."""
    seed: int = 0
    """Base seed of the episodes."""
    success_episodes: int = 300
    """Episodes per object split (train, test) for the scripted success rate (0 to skip)."""
    render: bool = True
    """Also measure rendering frames per second in every domain at 64x64."""
    json: bool = False
    """Print JSON only (no human-readable lines)."""


def env(argv: list[str]) -> int:
    cfg = tyro.cli(EnvBench, args=argv, prog="rlcyclegan bench env")
    from rlcyclegan.benchmarks.env import bench_env, render_fps

    result = bench_env(cfg.env, cfg.sizes, cfg.episodes, cfg.domain, cfg.seed, cfg.success_episodes)
    if cfg.render:
        result["render_fps_64"] = render_fps(cfg.env, 64)
    if not cfg.json:
        for size, r in result["sizes"].items():
            print(f"# {size}x{size}: {r['episodes_per_second']:.1f} episodes/s, {r['steps_per_second']:.0f} steps/s, "
                  f"scripted success {r['scripted_success_rate']:.2f}")
        for split, r in result.get("scripted_success", {}).items():
            print(f"# scripted success on {split} objects: {r['success_rate']:.3f} "
                  f"(95% CI {r['wilson95'][0]:.3f}-{r['wilson95'][1]:.3f}, {r['episodes']} episodes)")
    print(json.dumps(result, indent=2))
    return 0
