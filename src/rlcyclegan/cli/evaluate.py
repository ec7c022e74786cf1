"""`rlcyclegan eval`: success rate of a saved policy, with a 95% Wilson interval."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class EvalConfig:
    """Run a checkpoint's greedy CEM policy for N episodes and report its success rate."""

    checkpoint: Path
    """Checkpoint file, or a run folder (its checkpoints/latest.pt)."""
    env: str = ""
    """Gymnasium env id (default: the one the policy was trained on)."""
    domain: str = "sim"
    """Visual domain to evaluate in (rlcyclegan envs): sim, randomized or real."""
    objects: str = "test"
    """Object set: test (unseen shapes) or train."""
    episodes: int = 500
    """Evaluation episodes."""
    seed: int = 3_000_000_000
    """Episode i is reset with seed + i (kept apart from training and in-training evaluation seeds)."""
    envs: int = 25
    """Envs stepped in lockstep (CEM batched over them)."""
    env_kwargs: str = "{}"
    """Extra env arguments as JSON, merged over the trained env's (e.g. '{"real_style": 3}')."""
    device: str = "auto"
    """auto, cpu or cuda."""
    cem_iterations: int = 0
    """CEM iterations of the greedy policy (0: the checkpoint's, i.e. training's)."""
    cem_samples: int = 0
    """CEM samples per iteration (0: the checkpoint's)."""
    cem_elites: int = 0
    """CEM elites per iteration (0: the checkpoint's)."""
    q_network: str = "real"
    """real: the checkpoint's policy (an RL-CycleGAN run's Q_real); sim: an RL-CycleGAN run's Q_sim, e.g.
    `--q-network sim --domain sim` to see how well Q_sim still acts in sim after joint training; both: an
    RL-CycleGAN run's Q_real(y) and Q_sim(F(y)) together (mean logit), F being the run's real-to-sim generator."""
    translate_with: Path | None = None
    """A checkpoint or run with a sim-to-real generator: every observation goes through its G first (e.g.
    `--domain sim --translate-with RUN`: the policy on G(sim), the images an RL-CycleGAN Q_real or a
    CycleGAN baseline's policy trained on)."""
    translate_direction: str = "sim2real"
    """Which generator of --translate-with: sim2real (G), real2sim (F; e.g. `--q-network sim --domain real
    --translate-direction real2sim`: an RL-CycleGAN run's Q_sim acting on F(real)) or real2real (G(F(y)): a
    Q_real acting on real images mapped through the cycle onto the G(sim) images it was trained on)."""
    json: bool = False
    """Print the result as JSON."""
    progress: bool = True
    """Show a progress bar."""


def main(argv: list[str]) -> int:
    import tyro

    cfg = tyro.cli(EvalConfig, args=argv, prog="rlcyclegan eval")
    from rlcyclegan.rl.checkpoint import CheckpointError
    from rlcyclegan.rl.evaluate import evaluate_checkpoint

    try:
        result = evaluate_checkpoint(
            cfg.checkpoint, env_id=cfg.env or None, domain=cfg.domain, objects=cfg.objects, episodes=cfg.episodes,
            seed=cfg.seed, envs=cfg.envs, env_kwargs=json.loads(cfg.env_kwargs or "{}"), device=cfg.device, progress=cfg.progress,
            cem=dict(iterations=cfg.cem_iterations, samples=cfg.cem_samples, elites=cfg.cem_elites), q_network=cfg.q_network,
            translate_with=cfg.translate_with, translate_direction=cfg.translate_direction,
        )
    except (CheckpointError, ValueError) as e:
        print(f"rlcyclegan eval: {e}", file=sys.stderr)
        return 1
    if cfg.json:
        print(json.dumps(result, indent=2))
    else:
        through = {"sim2real": " through G", "real2sim": " through F", "real2real": " through G(F(.))"}.get(cfg.translate_direction, "")
        print(f"{result['checkpoint']}: success {result['success']:.3f} "
              f"(95% CI {result['success_low']:.3f}-{result['success_high']:.3f}) over {result['episodes']} "
              f"{result['objects']}-object episodes in {result['domain']}{through if cfg.translate_with else ''} ({result['seconds']:.0f} s)")
    return 0
