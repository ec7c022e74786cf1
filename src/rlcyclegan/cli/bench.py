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


@dataclass
class PolicyBench:
    """QT-Opt policy speed: CEM action latency (batch 1 and 64) and TD training steps per second."""

    qnet: str = "default"
    """Q-network size (small, default, large)."""
    image_size: int = 64
    """Image side in pixels."""
    repeats: int = 50
    """Timed repetitions at batch 1 (fewer at batch 64); the median is reported."""
    train_steps: int = 30
    """Timed training steps (median reported)."""
    batch_size: int = 64
    """Training batch size (the cpu preset's)."""
    device: str = "cpu"
    """Device to measure on."""
    threads: int = 0
    """torch threads (0 = torch's default)."""
    amp: str = "auto"
    """Training-step precision as in the training configs: auto (bf16 on CUDA and on CPUs with AMX or AVX512-BF16), bf16 or off."""
    json: bool = False
    """Print JSON only."""


def policy(argv: list[str]) -> int:
    cfg = tyro.cli(PolicyBench, args=argv, prog="rlcyclegan bench policy")
    from rlcyclegan.benchmarks.policy import bench_policy

    r = bench_policy(cfg.qnet, cfg.image_size, cfg.repeats, cfg.train_steps, cfg.batch_size, cfg.device, cfg.threads, cfg.amp)
    if not cfg.json:
        print(f"# CEM action: {r['act_batch1_ms']:.2f} ms at batch 1 (goal 5 ms), {r['act_batch64_ms']:.1f} ms at batch 64; "
              f"training {r['train_steps_per_second']:.1f} steps/s at batch {r['train_batch_size']} ({'bf16' if r['train_bf16'] else 'fp32'})")
    print(json.dumps(r, indent=2))
    return 0


@dataclass
class TrainBench:
    """Training step speed of RL-CycleGAN vs CycleGAN with identical generators and discriminators (synthetic batches)."""

    preset: str = "cpu"
    """RL-CycleGAN preset both methods are built from (tiny, demo, cpu, gpu)."""
    image_size: int = 64
    """Image side in pixels."""
    batch_size: int = 0
    """Sim transitions (and real ones) per step (0 = the preset's)."""
    steps: int = 5
    """Timed steps per method (median reported), alternating the methods."""
    warmup: int = 2
    """Untimed steps per method first."""
    real_transitions: bool = True
    """Real batches with actions and rewards (Q_real also trains on them), as with real episode data."""
    device: str = "cpu"
    """Device to measure on (cpu, cuda, auto)."""
    threads: int = 0
    """torch threads (0 = torch's default)."""
    amp: str = "auto"
    """Training-step precision as in the training configs: auto (bf16 on CUDA and on CPUs with AMX or AVX512-BF16), bf16 or off."""
    json: bool = False
    """Print JSON only."""


def train(argv: list[str]) -> int:
    cfg = tyro.cli(TrainBench, args=argv, prog="rlcyclegan bench train")
    from rlcyclegan.benchmarks.train import bench_train

    try:
        r = bench_train(cfg.image_size, cfg.batch_size, cfg.steps, cfg.warmup, cfg.preset, cfg.device, cfg.threads,
                        real_transitions=cfg.real_transitions, amp=cfg.amp)
    except ValueError as e:
        import sys

        print(f"rlcyclegan bench train: {e}", file=sys.stderr)
        return 2
    if not cfg.json:
        for method, m in r["methods"].items():
            print(f"# {method}: {m['step_ms']:.1f} ms/step, {m['steps_per_second']:.2f} steps/s, {m['images_per_second']:.1f} images/s")
        print(f"# rlcyclegan / cyclegan step time: {r['ratio_rlcyclegan_to_cyclegan']:.2f} (goal <= {r['goal_ratio']}: "
              f"{'met' if r['meets_goal'] else 'not met'}) at {r['image_size']} px, batch {r['batch_size']}, "
              f"{r['machine']['torch_threads']} threads on {r['machine']['device']}")
    print(json.dumps(r, indent=2))
    return 0
