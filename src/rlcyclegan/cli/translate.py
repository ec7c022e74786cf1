"""`rlcyclegan translate`: run a trained run's G (sim -> real) or F (real -> sim) over images, writing PNGs."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass
class TranslateConfig:
    """Translate images with the generator of an RL-CycleGAN / CycleGAN / GAN checkpoint and write them as PNGs."""

    checkpoint: Path
    """Checkpoint file, or a run folder (its checkpoints/latest.pt), from `rlcyclegan train rlcyclegan`."""
    input: Path
    """A folder of PNG/JPEG images (output names kept, as .png), an image file, an episode folder or shard (its
    observation images), or an .npz / .h5 holding an (N, H, W, 3) uint8 "images" array (outputs 000000.png, ...)."""
    out: Path
    """Output folder (created)."""
    direction: Literal["sim2real", "real2sim"] = "sim2real"
    """sim2real: G; real2sim: F (not in a gan run)."""
    batch_size: int = 32
    """Images per generator call."""
    resize: bool = False
    """Resize images of another size to the generator's training size (bicubic) instead of refusing them."""
    device: str = "auto"
    """auto (CUDA if available), cpu or cuda."""
    json: bool = False
    """Print the result as JSON."""


def main(argv: list[str]) -> int:
    import tyro

    cfg = tyro.cli(TranslateConfig, args=argv, prog="rlcyclegan translate")
    from rlcyclegan.experiments.translation import translate
    from rlcyclegan.rl.checkpoint import CheckpointError

    try:
        result = translate(cfg.checkpoint, cfg.input, cfg.direction, cfg.out, cfg.batch_size, cfg.device, cfg.resize)
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        print(f"rlcyclegan translate: {e}", file=sys.stderr)
        return 1
    if cfg.json:
        print(json.dumps(result, indent=2))
    else:
        h, w = result["image_size"]
        print(f"translated {result['count']} images ({cfg.direction}, {w}x{h}) -> {result['out']}")
    return 0
