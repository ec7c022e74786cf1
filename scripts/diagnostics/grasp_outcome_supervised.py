"""How fast can a Q-network tower learn to judge a grasp from the image, with plain supervision?

    python scripts/diagnostics/grasp_outcome_supervised.py --data DIR [DIR ...] [--train 100000]
        [--steps 2500] [--shift 2] [--norm batch] [--coords] [--threads 1]

Takes every grasp attempt (close action) made near the bin floor in the episode folders, holds out
``--test`` of them, and trains a fresh Q-network (the `default` preset at the data's image size) to
predict the attempt's reward with binary cross-entropy on ``--train`` of the others. Prints the
held-out ROC AUC every 500 steps. This is the easiest part of what QT-Opt must learn (the target is
the reward itself, no bootstrapping), so it bounds how fast the TD learner can start to look at
what is between the jaws, and how that depends on the amount of data, resolution and architecture.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from rlcyclegan.data.dataset import EpisodeDataset
from rlcyclegan.nets.qnet import QNET_PRESETS, GraspQNet, QNetConfig


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels > 0.5], scores[labels <= 0.5]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def shift_images(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Shift uint8 (B, H, W, 3) images by up to ``pad`` pixels (edges replicated)."""
    if pad == 0:
        return images
    b, h, w, _ = images.shape
    padded = torch.nn.functional.pad(images.permute(0, 3, 1, 2).float(), (pad,) * 4, mode="replicate")
    off = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator)
    out = torch.stack([padded[i, :, off[i, 0] : off[i, 0] + h, off[i, 1] : off[i, 1] + w] for i in range(b)])
    return out.permute(0, 2, 3, 1).to(torch.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, nargs="+", required=True)
    ap.add_argument("--train", type=int, default=100_000, help="training attempts (at most all but the held-out ones)")
    ap.add_argument("--test", type=int, default=300, help="held-out attempts")
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--shift", type=int, default=2, help="random image shift in pixels (0 = off)")
    ap.add_argument("--norm", default="batch", choices=["none", "batch", "group"])
    ap.add_argument("--coords", action="store_true")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--floor", type=float, default=0.02, help="attempts with gripper height below this (m)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    images, states, actions, rewards = [], [], [], []
    for d in args.data:
        ds = EpisodeDataset(d)
        tr, imgs = ds.transitions(), ds.images()
        idx = np.flatnonzero((tr["action"][:, 4] > 0) & (tr["state"][:, 1] < args.floor))
        images.append(imgs[tr["obs_index"][idx]])
        states.append(tr["state"][idx])
        actions.append(tr["action"][idx])
        rewards.append(tr["reward"][idx])
    x, s, a, r = (np.concatenate(v) for v in (images, states, actions, rewards))
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(r))
    test, train = perm[: args.test], perm[args.test :][: args.train]
    print(f"grasp attempts: {len(r)} (success {r.mean():.3f}); training on {len(train)}, testing on {len(test)}; "
          f"images {x.shape[1]}x{x.shape[2]}", flush=True)

    cfg = QNetConfig(**{**QNET_PRESETS["default"], "image_size": x.shape[1], "state_dim": s.shape[1],
                        "action_dim": a.shape[1], "coords": args.coords, "norm": args.norm})
    net = GraspQNet(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        j = rng.choice(train, args.batch_size)
        logits = net(shift_images(torch.as_tensor(x[j]), args.shift, gen), torch.as_tensor(s[j]), torch.as_tensor(a[j]))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.as_tensor(r[j]).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0 or step == args.steps:
            net.eval()
            with torch.no_grad():
                scores = torch.cat([net(torch.as_tensor(x[k]), torch.as_tensor(s[k]), torch.as_tensor(a[k]))
                                    for k in np.array_split(test, max(1, len(test) // 256))]).numpy()
            net.train()
            print(f"step {step}: held-out ROC AUC {roc_auc(scores, r[test]):.3f}  ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
