"""`rlcyclegan demo` (what `make demo` runs): collect a small dataset in the `sim` and `real`
domains with the scripted policy, summarise both, and draw the same states in every domain.

Later versions grow this into the full sim-to-real job (train, transfer, evaluate).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import tyro


@dataclass
class Demo:
    """The main job on CPU: small paired datasets and the domain grid, in one run folder."""

    out: Path | None = None
    """Run folder (default: runs/demo-YYYYmmdd-HHMMSS)."""
    env: str = "rlcyclegan/Grasp-v0"
    """Environment id."""
    episodes: int = 60
    """Scripted episodes to collect in each domain."""
    workers: int = 2
    """Collection worker processes."""
    image_size: int = 64
    """Observation image size."""
    seed: int = 0
    """Base seed (episode i uses seed + i in both domains)."""


def main(argv: list[str]) -> int:
    cfg = tyro.cli(Demo, args=argv, prog="rlcyclegan demo")
    from rlcyclegan.data import EpisodeDataset, collect, episode_grid
    from rlcyclegan.envs.render import paired_domain_grid

    run = cfg.out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}, indent=2))
    start = time.time()
    summaries = {}
    for domain in ("sim", "real"):
        print(f"[demo] collecting {cfg.episodes} scripted episodes in the '{domain}' domain")
        summaries[domain] = collect(
            cfg.env,
            {"domain": domain, "image_size": cfg.image_size},
            "scripted",
            cfg.episodes,
            run / "data" / domain,
            workers=cfg.workers,
            seed=cfg.seed,
        )
    print("[demo] rendering the same states in every domain")
    grid = paired_domain_grid(run / "domains.png", cfg.env, ("sim", "randomized", "real"), states=6, image_size=128, seed=cfg.seed)
    for domain in ("sim", "real"):
        episode_grid(EpisodeDataset(run / "data" / domain), 6, run / f"episodes_{domain}.png")
    report = {
        "run": str(run),
        "seconds": round(time.time() - start, 1),
        "datasets": {d: {k: v for k, v in s.items()} for d, s in summaries.items()},
        "images": [str(grid), str(run / "episodes_sim.png"), str(run / "episodes_real.png")],
    }
    (run / "summary.json").write_text(json.dumps(report, indent=2, default=str))
    print()
    for d, s in summaries.items():
        print(f"  {d:5s}: {s.get('episodes')} episodes, {s.get('steps')} steps, scripted success {s.get('success_rate', float('nan')):.2f}")
    print(f"  paired sim / randomized / real grid: {grid}")
    print(f"  episode filmstrips: {run / 'episodes_sim.png'}, {run / 'episodes_real.png'}")
    print(f"  run folder: {run}  ({report['seconds']} s)")
    return 0
