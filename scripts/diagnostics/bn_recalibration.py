"""Does a policy lose success in `real` because its batch-norm statistics were gathered on other images?

    python scripts/diagnostics/bn_recalibration.py RUN_OR_CKPT [--episodes 500] [--out /tmp/recalibrated.pt]

Re-estimates the batch-norm running statistics of the checkpoint's policy (an RL-CycleGAN run's Q_real) on the
real frames of the run's own real data (its config's ``real_data``, so no real data beyond the run's budget),
as a cumulative average over 200 batches of 48 frames, writes the checkpoint with those statistics, and evaluates
it in `real` on unseen objects with the cpu recipe's acting CEM (3x256, 12 elites). Compare with the run's
recorded success: a large gain would mean Q_real's statistics (gathered on mixed G(x) / real batches in training)
do not fit real images.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from rlcyclegan.nets.qnet import GraspQNet, QNetConfig
from rlcyclegan.rl.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from rlcyclegan.rl.evaluate import evaluate_checkpoint
from rlcyclegan.train.rlcyclegan import read_images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--episodes", type=int, default=500)
    ap.add_argument("--out", default="/tmp/bn-recalibrated.pt")
    args = ap.parse_args()
    ckpt = load_checkpoint(resolve_checkpoint(args.checkpoint))
    entry = ckpt["policy"]
    q = GraspQNet(QNetConfig(**entry["qnet_config"]))
    q.load_state_dict(entry["qnet"])
    size = q.cfg.image_size
    frames = np.concatenate([read_images(Path(p), (size, size, 3)) for p in ckpt["config"]["real_data"]])
    for m in q.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    rng = np.random.default_rng(0)
    q.train()
    with torch.no_grad():
        for _ in range(200):
            q.encode(torch.as_tensor(frames[rng.integers(0, len(frames), 48)]))
    entry["qnet"] = q.eval().state_dict()
    save_checkpoint(args.out, ckpt)
    res = evaluate_checkpoint(args.out, domain="real", objects="test", episodes=args.episodes,
                              cem={"iterations": 3, "samples": 256, "elites": 12})
    print(json.dumps({"checkpoint": args.checkpoint, "real_frames": int(len(frames)), "success": res["success"],
                      "success_low": res["success_low"], "success_high": res["success_high"], "episodes": res["episodes"]}))


if __name__ == "__main__":
    main()
