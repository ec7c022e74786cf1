"""`rlcyclegan collect`: play grasp episodes with a policy and store them as HDF5 shards."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro


@dataclass
class CollectConfig:
    """Collect grasp episodes into a directory of HDF5 shards (resumable: rerun to continue or extend)."""

    out: Path
    """Output directory; shards and dataset.json are written here."""
    env: str = "rlcyclegan/Grasp-v0"
    """Gymnasium environment id."""
    domain: Literal["sim", "randomized", "real"] = "sim"
    """Visual domain of the rendered images."""
    objects: Literal["train", "test"] = "train"
    """Object set to place in the bin."""
    policy: Literal["scripted", "scripted-explore", "random"] = "scripted"
    """Policy that chooses the actions."""
    episodes: int = 100
    """Total number of episodes the directory should hold (episodes already there are kept)."""
    workers: int = 1
    """Parallel collection processes (1 = run in this process)."""
    seed: int = 0
    """Base seed: episode i is reset with seed + i."""
    image_size: int = 64
    """Height and width of the camera images in pixels."""
    num_objects: int = 5
    """Objects placed in the bin at each reset."""
    env_kwargs: str = "{}"
    """Extra env constructor arguments as JSON, merged over the fields above (e.g. '{"state": "pose"}')."""
    shard_size: int = 50
    """Episodes per shard file."""
    progress: bool = True
    """Show a progress bar."""
    json: bool = False
    """Print the summary as JSON."""


def main(argv: list[str]) -> int:
    cfg = tyro.cli(CollectConfig, args=argv, prog="rlcyclegan collect")
    from rlcyclegan.data.collect import CollectError, WorkerError, collect

    env_kwargs = {
        "domain": cfg.domain,
        "objects": cfg.objects,
        "image_size": cfg.image_size,
        "num_objects": cfg.num_objects,
    }
    try:
        extra = json.loads(cfg.env_kwargs or "{}")
    except json.JSONDecodeError as exc:
        print(f"rlcyclegan collect: error: --env-kwargs is not valid JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(extra, dict):
        print(f"rlcyclegan collect: error: --env-kwargs must be a JSON object, got {cfg.env_kwargs!r}", file=sys.stderr)
        return 2
    env_kwargs.update(extra)
    try:
        summary = collect(
            cfg.env,
            env_kwargs,
            cfg.policy,
            episodes=cfg.episodes,
            out_dir=cfg.out,
            workers=cfg.workers,
            seed=cfg.seed,
            shard_size=cfg.shard_size,
            progress=cfg.progress,
        )
    except (CollectError, WorkerError) as exc:
        print(f"rlcyclegan collect: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"rlcyclegan collect: interrupted; complete shards in {cfg.out} are kept, rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    if cfg.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['out_dir']}: {summary['episodes']} episodes, {summary['steps']} steps, "
            f"success rate {summary['success_rate']:.3f} in {summary['shards']} shards\n"
            f"this run: {summary['new_episodes']} new episodes ({summary['new_steps']} steps, "
            f"{summary['shards_written']} shard(s) written) in {summary['seconds']:.1f} s "
            f"({summary['episodes_per_second']:.1f} episodes/s)"
        )
    return 0
