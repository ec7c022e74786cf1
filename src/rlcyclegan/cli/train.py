"""`rlcyclegan train qtopt` and `rlcyclegan train rlcyclegan`: presets, tyro configs and exact resumption."""

from __future__ import annotations

import sys
from pathlib import Path


RESUMABLE_CHANGES = ("steps", "max_minutes", "progress")
"""Config fields a resumed run may change (they do not alter what a training step computes)."""


def _split_preset(argv: list[str]) -> tuple[str, Path | None, list[str]]:
    """Take ``--preset NAME`` and ``--resume DIR`` out of argv (the preset sets tyro's defaults)."""
    preset, resume, rest = "cpu", None, []
    i = 0
    while i < len(argv):
        a = argv[i]
        for flag in ("--preset", "--resume"):
            if a == flag or a.startswith(flag + "="):
                if "=" in a:
                    value = a.split("=", 1)[1]
                else:
                    if i + 1 >= len(argv):
                        raise SystemExit(f"rlcyclegan train qtopt: {flag} needs a value")
                    value = argv[i + 1]
                    i += 1
                if flag == "--preset":
                    preset = value
                else:
                    resume = Path(value)
                break
        else:
            rest.append(a)
        i += 1
    return preset, resume, rest


def _train(argv: list[str], command: str, config_cls, presets: dict, preset_config, train_fn, resumable: tuple[str, ...],
           path_fields: dict[str, str], description: str) -> int:
    """Shared driver of the `train` subcommands: presets, tyro parsing, --resume with the saved config."""
    import dataclasses
    import json

    import tyro

    from rlcyclegan.rl.checkpoint import CheckpointError
    from rlcyclegan.train.common import RunInUse, TrainingDiverged, claim_run, write_json_atomic

    preset, resume, rest = _split_preset(argv)
    if preset not in presets:
        print(f"rlcyclegan {command}: unknown --preset {preset!r}; expected one of {', '.join(presets)}", file=sys.stderr)
        return 2
    if resume is not None:
        cfg_path = resume / "config.json"
        if not cfg_path.is_file():
            print(f"rlcyclegan {command}: {cfg_path} not found (is {resume} a run folder?)", file=sys.stderr)
            return 2
        saved = json.loads(cfg_path.read_text())
        for key, kind in path_fields.items():  # JSON holds strings; the dataclass holds paths
            if key in saved and saved[key] is not None:
                saved[key] = tuple(Path(p) for p in saved[key]) if kind == "many" else Path(saved[key])
        for f in dataclasses.fields(config_cls):  # JSON lists back into tuple fields (e.g. aux_domains)
            if isinstance(saved.get(f.name), list) and isinstance(f.default, tuple):
                saved[f.name] = tuple(saved[f.name])
        base = config_cls(**saved)
        cfg = tyro.cli(config_cls, default=base, args=rest, prog=f"rlcyclegan {command}", description=description)
        changed = {k for k in saved if k not in resumable and getattr(cfg, k) != getattr(base, k)}
        if changed:
            print(f"rlcyclegan {command}: --resume keeps the run's config; only {', '.join(resumable)} may change "
                  f"(got {sorted(changed)})", file=sys.stderr)
            return 2
        if any(getattr(cfg, k) != getattr(base, k) for k in resumable):
            try:
                claim_run(resume)  # before touching its config; the trainer's own claim is then a no-op
            except RunInUse as e:
                print(f"rlcyclegan {command}: {e}", file=sys.stderr)
                return 1
            write_json_atomic(cfg_path, cfg)
    else:
        cfg = tyro.cli(config_cls, default=preset_config(preset), args=rest, prog=f"rlcyclegan {command}", description=description)
    try:
        train_fn(cfg, resume=resume)
    except (CheckpointError, RunInUse, TrainingDiverged, ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"rlcyclegan {command}: {e}", file=sys.stderr)
        return 1
    return 0


def qtopt(argv: list[str]) -> int:
    from rlcyclegan.train.qtopt import PRESETS, QTOptConfig, preset_config, train_qtopt

    description = (
        "Train a QT-Opt Q-network policy from images. --preset tiny|cpu|gpu sets the defaults below "
        "(cpu is the default); --resume RUN_DIR continues a run exactly from its last checkpoint "
        "(its saved config is used; --steps and --max-minutes may be raised to train longer)."
    )
    return _train(argv, "train qtopt", QTOptConfig, PRESETS, preset_config, train_qtopt, RESUMABLE_CHANGES,
                  {"data": "many", "out": "one", "translate_with": "one", "init_from": "one"}, description)


def rlcyclegan(argv: list[str]) -> int:
    from rlcyclegan.train import rlcyclegan as rc

    description = (
        "Train RL-CycleGAN (--method rlcyclegan), or the CycleGAN / GAN baselines, jointly with Q_sim and Q_real "
        "from sim episodes (--sim-data) and real episodes or images (--real-data). --preset tiny|demo|cpu|gpu sets "
        "the defaults; --resume RUN_DIR continues exactly. After training, Q_real is the policy: "
        "`rlcyclegan eval --checkpoint RUN --domain real`."
    )
    return _train(argv, "train rlcyclegan", rc.RLCycleGANConfig, rc.PRESETS, rc.preset_config, rc.train_rlcyclegan,
                  rc.RESUMABLE_CHANGES, {"sim_data": "many", "real_data": "many", "out": "one", "init_q": "one"}, description)
