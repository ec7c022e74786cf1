"""Which part of the `real` look costs a policy its success? Evaluate it with one part switched off at a time.

    python scripts/diagnostics/real_look_ablation.py CKPT [CKPT ...] [--episodes 300] [--parts as-is,camera,...]

Each part is a piece of ``envs.domains.real_look`` (the pseudo-real camera and scene) replaced by its neutral
value for the evaluation only: ``camera`` the whole image-formation model (white balance, tone curve, vignetting,
blur, noise, JPEG); ``noise`` only shot/read noise and JPEG (``sensor``: shot/read noise alone, ``jpeg``: JPEG alone); ``blur`` only the lens blur; ``shadows`` the key
light's cast shadows. Every policy acts with the cpu recipe's evaluation CEM (3x256, 12 elites) on unseen objects,
the same episode seeds for every part. A policy trained on G(sim) that gains much when a part is removed leans on
something G renders unlike the real camera; an Oracle (trained on real) shows what the part does to a policy that
has seen it. Prints one JSON line per (checkpoint, part).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import rlcyclegan.envs.domains as dom
from rlcyclegan.envs.camera import CameraModel
from rlcyclegan.rl.evaluate import evaluate_checkpoint

PARTS = ("as-is", "camera", "noise", "sensor", "jpeg", "blur", "shadows")


def ablate(look: dom.Look, part: str) -> dom.Look:
    """The real look with ``part`` neutral."""
    if part == "camera":
        look.camera_model = CameraModel()
    elif part == "noise":
        look.camera_model = replace(look.camera_model, shot_noise=0.0, read_noise=0.0, jpeg_quality=0)
    elif part == "sensor":
        look.camera_model = replace(look.camera_model, shot_noise=0.0, read_noise=0.0)
    elif part == "jpeg":
        look.camera_model = replace(look.camera_model, jpeg_quality=0)
    elif part == "blur":
        look.camera_model = replace(look.camera_model, blur_sigma=0.0)
    elif part == "shadows":
        look.shadows = False
        look.light_castshadow[:] = 0
    elif part != "as-is":
        raise ValueError(f"unknown part {part!r}; expected one of {PARTS}")
    return look


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--parts", default=",".join(PARTS))
    args = ap.parse_args()
    original = dom.real_look
    for part in args.parts.split(","):
        dom.real_look = lambda *a, _p=part, **k: ablate(original(*a, **k), _p)  # envs are made in this process
        for ckpt in args.checkpoints:
            res = evaluate_checkpoint(ckpt, domain="real", objects="test", episodes=args.episodes,
                                      cem={"iterations": 3, "samples": 256, "elites": 12})
            print(json.dumps({"checkpoint": ckpt, "part": part, "success": res["success"], "success_low": res["success_low"],
                              "success_high": res["success_high"], "episodes": res["episodes"]}), flush=True)
    dom.real_look = original


if __name__ == "__main__":
    main()
