"""`rlcyclegan data info` and `rlcyclegan data grid`: inspect an episode directory."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro


@dataclass
class InfoConfig:
    """Counts, success rate (with a 95% Wilson interval) and provenance of an episode directory."""

    path: tyro.conf.Positional[Path]
    """Directory of shard-*.h5 files."""
    json: bool = False
    """Print machine-readable JSON instead of a table."""


@dataclass
class GridConfig:
    """Write a PNG grid with one row per episode showing its frames."""

    path: tyro.conf.Positional[Path]
    """Directory of shard-*.h5 files."""
    out: Path
    """PNG file to write."""
    episodes: int = 8
    """Number of episodes (rows), taken from the start of the dataset."""
    max_frames: int | None = None
    """Show at most this many frames per episode (default: all)."""
    scale: int = 2
    """Enlarge every frame by this integer factor."""


DATA_ERRORS = (FileNotFoundError, NotADirectoryError, ValueError)
"""What reading a bad or missing episode directory raises; reported as one line, not a traceback."""


def info(argv: list[str]) -> int:
    cfg = tyro.cli(InfoConfig, args=argv, prog="rlcyclegan data info")
    from rlcyclegan.data.dataset import EpisodeDataset

    try:
        summary = EpisodeDataset(cfg.path, load_images=False).summary()
    except DATA_ERRORS as exc:
        print(f"rlcyclegan data info: error: {exc}", file=sys.stderr)
        return 1
    if cfg.json:
        print(json.dumps(summary, indent=2))
        return 0
    lo, hi = summary["success_ci95"]
    h, w, c = summary["image_shape"]
    rows = [
        ("path", summary["path"]),
        ("env id", ", ".join(summary["env_ids"])),
        ("domains", ", ".join(summary["domains"])),
        ("objects", ", ".join(summary["objects"])),
        ("policies", ", ".join(summary["policies"])),
        ("episodes", str(summary["episodes"])),
        ("steps", f"{summary['steps']} (mean episode length {summary['mean_length']:.1f})"),
        (
            "success",
            f"{summary['success_rate']:.3f} ({summary['successes']}/{summary['episodes']}; "
            f"95% Wilson interval {lo:.3f}-{hi:.3f})",
        ),
        ("images", f"{h}x{w}x{c}"),
        ("shards", f"{summary['shards']} ({summary['shard_files'][0]} .. {summary['shard_files'][-1]})"),
        ("format", f"version {summary['format_version']}"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    return 0


def grid(argv: list[str]) -> int:
    cfg = tyro.cli(GridConfig, args=argv, prog="rlcyclegan data grid")
    from rlcyclegan.data.dataset import EpisodeDataset
    from rlcyclegan.data.grid import episode_grid

    try:
        dataset = EpisodeDataset(cfg.path)
        out = episode_grid(dataset, cfg.episodes, cfg.out, max_frames=cfg.max_frames, scale=cfg.scale)
    except DATA_ERRORS as exc:
        print(f"rlcyclegan data grid: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({min(cfg.episodes, len(dataset))} episodes)")
    return 0
