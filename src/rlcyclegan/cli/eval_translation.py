"""`rlcyclegan eval-translation`: PSNR/SSIM against paired renders, Q-consistency and own-feature FID/KID."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass
class EvalTranslationConfig:
    """Play scripted episodes of a checkpoint's grasp env, render every state in sim and real (paired, with object
    masks) and score the translation: PSNR/SSIM of G(x) vs the real render and F(y) vs the sim render (whole image
    and object pixels), |Q_sim(x, a) - Q_real(G(x), a)| on the logged actions, and FID/KID on the features of a
    network trained here (own-feature FID/KID, not comparable to Inception FID)."""

    checkpoint: Path
    """Checkpoint file, or a run folder (its checkpoints/latest.pt), from `rlcyclegan train rlcyclegan`."""
    episodes: int = 20
    """Scripted evaluation episodes (every step is one paired image)."""
    objects: str = "test"
    """Object set: test (unseen shapes), train or all."""
    seed: int = 3_000_000_000
    """Episode i is reset with seed + i; the domain classifier's episodes use seed + 10_000_000 + i."""
    features: Literal["domain_classifier", "q_sim"] = "domain_classifier"
    """FID/KID features: a sim-vs-real domain classifier trained here (same for every checkpoint of an env), or the
    checkpoint's own Q_sim image tower, global-average-pooled (checkpoints with Q-networks)."""
    classifier_steps: int = 300
    """Training steps of the domain classifier."""
    classifier_episodes: int = 20
    """Scripted episodes whose paired renders train the domain classifier."""
    segmenter_steps: int = 1000
    """Training steps of the object segmenter (trained on the classifier's episodes' real / sim renders and object
    masks) that scores content preservation; 0 = off."""
    batch_size: int = 64
    """Images per network call."""
    device: str = "auto"
    """auto (CUDA if available), cpu or cuda."""
    json: bool = False
    """Print the result as JSON (otherwise a table)."""


def main(argv: list[str]) -> int:
    import tyro

    cfg = tyro.cli(EvalTranslationConfig, args=argv, prog="rlcyclegan eval-translation")
    from rlcyclegan.experiments.translation import evaluate_translation, format_table
    from rlcyclegan.rl.checkpoint import CheckpointError

    try:
        result = evaluate_translation(cfg.checkpoint, cfg.episodes, cfg.objects, cfg.seed, cfg.device, features=cfg.features,
                                      classifier_steps=cfg.classifier_steps, classifier_episodes=cfg.classifier_episodes,
                                      batch_size=cfg.batch_size, segmenter_steps=cfg.segmenter_steps)
    except (CheckpointError, ValueError) as e:
        print(f"rlcyclegan eval-translation: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if cfg.json else format_table(result))
    return 0
