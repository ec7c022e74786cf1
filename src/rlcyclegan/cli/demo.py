"""`rlcyclegan demo` (what `make demo` runs): the sim-to-real job, small enough for a CPU.

1. draw the same states in the sim, randomized and real domains (``domains.png``);
2. through the experiment runner (`rlcyclegan experiment zero-shot --preset demo --only rl-cyclegan`):
   collect small sim and real datasets, train a Sim-only QT-Opt policy, train RL-CycleGAN from it
   (Q_real is the transferred policy), and evaluate both in the `real` domain on unseen objects;
3. write the report (``report.md``, ``summary.json``, the translation grid, plots) into the run folder.

About 30 minutes on 2 CPU cores. ``--out`` an existing demo folder resumes it: finished stages are
skipped, an interrupted training continues from its last checkpoint.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import tyro

METHODS = ("sim-only", "rl-cyclegan")


@dataclass
class Demo:
    """The main job on CPU: small datasets, a Sim-only policy, RL-CycleGAN, both evaluated in `real`, and a report."""

    out: Path | None = None
    """Run folder (default: runs/demo-YYYYmmdd-HHMMSS); an existing one is resumed."""
    preset: str = "demo"
    """Experiment recipe (rlcyclegan.experiments.specs.RECIPES): demo, or tiny for a one-minute smoke run."""
    episodes: int | None = None
    """Evaluation episodes per policy (default: the preset's, 100 for demo)."""
    workers: int = 2
    """Data collection processes."""
    progress: bool = True
    """Show progress bars."""


def domain_grid(run: Path) -> Path:
    from rlcyclegan.envs.render import paired_domain_grid

    path = run / "domains.png"
    if not path.exists():
        print("[demo] rendering the same states in every domain")
        paired_domain_grid(path, "rlcyclegan/Grasp-v0", ("sim", "randomized", "real"), states=6, image_size=128, seed=0)
    return path


def filmstrips(run: Path) -> list[Path]:
    """First episodes of the sim and real scripted datasets, as image strips."""
    from rlcyclegan.data import EpisodeDataset, episode_grid

    paths = []
    for domain in ("sim", "real"):
        path = run / f"episodes_{domain}.png"
        pools = sorted((run / "data").glob(f"grasp-{domain}-scripted-*[0-9]"))
        if pools and not path.exists():
            episode_grid(EpisodeDataset(pools[0]), 6, path)
        if path.exists():
            paths.append(path)
    return paths


def summarize(run: Path, seconds: float, images: list[Path]) -> dict:
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines() if line.strip()]
    data = json.loads((run / "data" / "collection.json").read_text()) if (run / "data" / "collection.json").exists() else {}
    return {
        "run": str(run),
        "seconds_this_invocation": round(seconds, 1),
        "policies": {r["method"]: {"label": r["label"], "success": r["success"], "success_low": r["success_low"],
                                   "success_high": r["success_high"], "episodes": r["eval_episodes"],
                                   "domain": r["eval_domain"], "objects": r["eval_objects"],
                                   "train_minutes": round(r["train_seconds"] / 60, 2), "eval_minutes": round(r["eval_seconds"] / 60, 2),
                                   "run": str(run / r["run"])} for r in records},
        "data": data,
        "report": str(run / "report.md"),
        "images": [str(p) for p in images],
    }


def main(argv: list[str]) -> int:
    cfg = tyro.cli(Demo, args=argv, prog="rlcyclegan demo")
    from rlcyclegan.experiments.report import write_report
    from rlcyclegan.experiments.runner import ExperimentError, run_experiment
    from rlcyclegan.train.common import write_json_atomic

    run = cfg.out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    run.mkdir(parents=True, exist_ok=True)
    start = time.time()
    print(f"[demo] run folder {run} (rerun with --out {run} to resume)")
    grid = domain_grid(run)
    print("[demo] Sim-only QT-Opt, then RL-CycleGAN from it; both evaluated in the real domain on unseen objects")
    try:
        outcome = run_experiment("zero-shot", cfg.preset, 1, run, cfg.episodes, METHODS, workers=cfg.workers, progress=cfg.progress)
    except ExperimentError as e:
        print(f"rlcyclegan demo: {e}", file=sys.stderr)
        return 2
    if outcome["failed"]:
        print(f"rlcyclegan demo: {', '.join(outcome['failed'])} failed; see the messages above", file=sys.stderr)
        return 1
    strips = filmstrips(run)
    print("[demo] writing the report")
    report = write_report([run], run)
    images = [grid, *strips, *sorted(run.glob("zero-shot-*.png"))]
    summary = summarize(run, time.time() - start, images)
    write_json_atomic(run / "summary.json", summary)
    print()
    for p in summary["policies"].values():
        print(f"  {p['label']:12s}: success in real {p['success']:.2f} (95% CI {p['success_low']:.2f}-{p['success_high']:.2f}, "
              f"{p['episodes']} unseen-object episodes), trained {p['train_minutes']:.1f} min")
    for name, d in summary["data"].items():
        print(f"  data {name}: {d['episodes']} episodes, scripted/random success {d['success_rate']:.2f}, {d['seconds']:.0f} s")
    print(f"  report: {report}  (summary.json beside it)")
    print(f"  translations: {run / f'zero-shot-{cfg.preset}-translations.png'}")
    print(f"  paired sim / randomized / real grid: {grid}")
    print(f"  run folder: {run}  ({summary['seconds_this_invocation']:.0f} s)")
    return 0
