"""`rlcyclegan train qtopt`: QT-Opt training with presets (tiny, cpu, gpu) and exact resumption."""

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


def qtopt(argv: list[str]) -> int:
    import tyro

    from rlcyclegan.rl.checkpoint import CheckpointError
    from rlcyclegan.train.common import TrainingDiverged
    from rlcyclegan.train.qtopt import PRESETS, QTOptConfig, preset_config, train_qtopt

    preset, resume, rest = _split_preset(argv)
    if preset not in PRESETS:
        print(f"rlcyclegan train qtopt: unknown --preset {preset!r}; expected one of {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    description = (
        "Train a QT-Opt Q-network policy from images. --preset tiny|cpu|gpu sets the defaults below "
        "(cpu is the default); --resume RUN_DIR continues a run exactly from its last checkpoint "
        "(its saved config is used; --steps and --max-minutes may be raised to train longer)."
    )
    if resume is not None:
        import json

        cfg_path = resume / "config.json"
        if not cfg_path.is_file():
            print(f"rlcyclegan train qtopt: {cfg_path} not found (is {resume} a run folder?)", file=sys.stderr)
            return 2
        saved = json.loads(cfg_path.read_text())
        saved["data"] = tuple(Path(p) for p in saved.get("data", ()))
        saved["out"] = Path(saved["out"])
        base = QTOptConfig(**saved)
        cfg = tyro.cli(QTOptConfig, default=base, args=rest, prog="rlcyclegan train qtopt", description=description)
        changed = {k for k in saved if k not in RESUMABLE_CHANGES and getattr(cfg, k) != getattr(base, k)}
        if changed:
            print(f"rlcyclegan train qtopt: --resume keeps the run's config; only {', '.join(RESUMABLE_CHANGES)} may change "
                  f"(got {sorted(changed)})", file=sys.stderr)
            return 2
        if any(getattr(cfg, k) != getattr(base, k) for k in RESUMABLE_CHANGES):
            from rlcyclegan.train.common import write_json_atomic

            write_json_atomic(cfg_path, cfg)
    else:
        cfg = tyro.cli(QTOptConfig, default=preset_config(preset), args=rest, prog="rlcyclegan train qtopt", description=description)
    try:
        train_qtopt(cfg, resume=resume)
    except (CheckpointError, TrainingDiverged, ValueError, FileExistsError) as e:
        print(f"rlcyclegan train qtopt: {e}", file=sys.stderr)
        return 1
    return 0
