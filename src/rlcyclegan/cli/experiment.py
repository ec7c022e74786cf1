"""`rlcyclegan experiment NAME`: one of the paper's experiments, every method and seed, resumable."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro


@dataclass
class ExperimentArgs:
    """Run an experiment of the paper (zero-shot, real-data, finetune, multibin): collect its data once, train
    every method for every seed (interrupted runs resume, finished ones are skipped), evaluate each policy in
    the real domain on unseen objects, and write OUT/results.jsonl (render it with `rlcyclegan report`)."""

    name: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="NAME")]
    """Experiment: zero-shot, real-data, finetune or multibin."""
    preset: str = "cpu"
    """Recipe preset (rlcyclegan.experiments.specs.RECIPES): tiny, demo, cpu or gpu."""
    seeds: int = 1
    """Seeds 0..K-1 of every method."""
    out: Path | None = None
    """Experiment folder (default: runs/experiments/NAME-PRESET); rerunning into it resumes."""
    episodes: int | None = None
    """Evaluation episodes per run (default: the preset's, 500 at cpu)."""
    only: tuple[str, ...] = ()
    """Run only these methods (and those they need), e.g. --only sim-only rl-cyclegan."""
    budgets: tuple[int, ...] = ()
    """Override the preset's budget list (real episodes for real-data, on-policy episodes for finetune)."""
    set: tuple[str, ...] = ()
    """Variant of the selected methods: KIND.FIELD=VALUE overrides of their training configs (KIND: qtopt or
    rlcyclegan), e.g. --only rl-cyclegan --set rlcyclegan.lambda_rl_scene=10, or of the recipe fields that shape
    their stages (KIND recipe: finetune_sim, finetune_real_episodes, gan_real_episodes), e.g. --only
    rl-cyclegan-ft --set recipe.finetune_sim=true. The runs go to folders tagged with the overrides
    (rl-cyclegan-s0+lambda_rl_scene=10), beside the recipe's own, and the report lists them apart."""
    device: str = "auto"
    """auto (CUDA if available), cpu or cuda."""
    threads: int = 0
    """torch CPU threads of training (0 = torch's default)."""
    max_minutes: float | None = None
    """Wall-time cap (minutes, over all sessions) of each stage this call trains or resumes, in place of the
    recipe's: lets a slower machine finish a stage's steps, or a stage that stopped at its cap train on (move its
    done.json away first). A stage that reaches its steps counts as the recipe's whatever cap it ran under."""
    workers: int = 0
    """Processes collecting the shared data (0 = the preset's)."""
    progress: bool = True
    """Show progress bars."""


def main(argv: list[str]) -> int:
    args = tyro.cli(ExperimentArgs, args=argv, prog="rlcyclegan experiment")
    from rlcyclegan.experiments.runner import ExperimentError, run_experiment

    out = args.out or Path("runs") / "experiments" / f"{args.name}-{args.preset}"
    try:
        summary = run_experiment(args.name, args.preset, args.seeds, out, args.episodes, args.only, args.budgets, device=args.device,
                                 threads=args.threads, workers=args.workers or None, progress=args.progress, overrides=args.set,
                                 max_minutes=args.max_minutes)
    except ExperimentError as e:
        print(f"rlcyclegan experiment: {e}", file=sys.stderr)
        return 2
    if summary["failed"]:
        print(f"rlcyclegan experiment: {len(summary['failed'])} run(s) failed or blocked: {', '.join(summary['failed'])}", file=sys.stderr)
        return 1
    return 0
