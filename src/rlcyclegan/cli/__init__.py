"""The `rlcyclegan` command line: one entry point, subcommands dispatched to small modules.

Each subcommand module exposes ``main(argv: list[str]) -> int | None`` and parses its own
arguments (tyro dataclass configs), so `rlcyclegan COMMAND --help` shows each field's docstring.
"""

from __future__ import annotations

import importlib
import sys

# command words -> (module, one-line help). Two-word commands ("data info") are nested groups.
COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("rlcyclegan.cli.collect", "collect grasp episodes into HDF5 shards"),
    "data info": ("rlcyclegan.cli.data:info", "counts and success rate of an episode directory"),
    "data grid": ("rlcyclegan.cli.data:grid", "write an image grid of an episode directory"),
    "env grid": ("rlcyclegan.cli.env:grid", "render the same states in several visual domains"),
    "bench env": ("rlcyclegan.cli.bench:env", "environment speed benchmark (JSON)"),
    "train qtopt": ("rlcyclegan.cli.train:qtopt", "train a QT-Opt policy (presets tiny/cpu/gpu; --resume RUN)"),
    "train rlcyclegan": ("rlcyclegan.cli.train:rlcyclegan", "train RL-CycleGAN / CycleGAN / GAN jointly with Q_sim, Q_real"),
    "eval": ("rlcyclegan.cli.evaluate", "success rate of a policy checkpoint with a 95% interval"),
    "bench policy": ("rlcyclegan.cli.bench:policy", "QT-Opt action latency and training speed (JSON)"),
    "translate": ("rlcyclegan.cli.translate", "translate images with a run's G (sim2real) or F (real2sim) into PNGs"),
    "eval-translation": ("rlcyclegan.cli.eval_translation", "PSNR/SSIM vs paired renders, Q-consistency, own-feature FID/KID (JSON)"),
    "bench train": ("rlcyclegan.cli.bench:train", "RL-CycleGAN vs CycleGAN training step speed (JSON)"),
    "experiment": ("rlcyclegan.cli.experiment", "run a paper experiment (zero-shot, real-data, finetune, multibin): every method and seed, resumable"),
    "report": ("rlcyclegan.cli.report", "markdown report of experiment results: tables vs the paper, plots, translation grids"),
    "demo": ("rlcyclegan.cli.demo", "the main job: what `make demo` runs"),
}


def _usage() -> str:
    width = max(len(k) for k in COMMANDS)
    lines = ["usage: rlcyclegan COMMAND [ARGS...]   (rlcyclegan COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def _resolve(argv: list[str]) -> tuple[str, list[str]] | None:
    if len(argv) >= 2 and f"{argv[0]} {argv[1]}" in COMMANDS:
        return f"{argv[0]} {argv[1]}", argv[2:]
    if argv and argv[0] in COMMANDS:
        return argv[0], argv[1:]
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from rlcyclegan import __version__

        print(__version__)
        return 0
    resolved = _resolve(argv)
    if resolved is None:
        group = [k for k in COMMANDS if k.split()[0] == argv[0]]
        if group:
            print(f"rlcyclegan {argv[0]}: expected one of: {', '.join(k.split()[1] for k in group)}", file=sys.stderr)
        else:
            print(f"rlcyclegan: unknown command {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    name, rest = resolved
    target = COMMANDS[name][0]
    module_name, _, func_name = target.partition(":")
    func = getattr(importlib.import_module(module_name), func_name or "main")
    try:
        code = func(rest)
    except KeyboardInterrupt as e:
        if getattr(e, "signum", None) is None:
            raise
        print(f"rlcyclegan {name}: {e}", file=sys.stderr)  # train.common.TrainingInterrupted: the step was checkpointed
        return 128 + e.signum
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
