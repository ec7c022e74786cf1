"""Does a trained Q-network look at the image when it predicts a grasp's outcome?

    python scripts/diagnostics/grasp_outcome_auc.py RUN_DIR [--data DIR] [--max 2000]

Takes the grasp attempts (close action) made near the bin floor in an episode folder (default: the
run's ``offline/`` data), scores them with the run's Q-network and prints the ROC AUC of Q against
the grasp's reward, twice: with each attempt's own image, and with the images shuffled among the
attempts (state and action kept). If the two are close, Q predicts grasps from the robot state
(height, pose) and ignores what is between the jaws: the failure we saw in early cpu runs, where
the greedy policy closed the gripper at the floor far from any object with Q ~ 0.7.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from rlcyclegan.data.dataset import EpisodeDataset
from rlcyclegan.rl.policy import Policy


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random success scores above a random failure (ties count half)."""
    pos, neg = scores[labels > 0.5], scores[labels <= 0.5]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", type=Path, default=None, help="episode folder (default RUN/offline)")
    ap.add_argument("--max", type=int, default=2000, help="grasp attempts to score")
    ap.add_argument("--floor", type=float, default=0.02, help="attempts with gripper height below this (m)")
    args = ap.parse_args()

    policy = Policy.load(args.run)
    ds = EpisodeDataset(args.data or args.run / "offline")
    tr, images = ds.transitions(), ds.images()
    idx = np.flatnonzero((tr["action"][:, 4] > 0) & (tr["state"][:, 1] < args.floor))[: args.max]
    if len(idx) == 0:
        raise SystemExit("no grasp attempts near the floor in the data")
    labels = tr["reward"][idx]
    perm = np.random.default_rng(0).permutation(len(idx))

    def scores(image_rows: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for k in range(0, len(idx), 256):
                rows, img_rows = idx[k : k + 256], image_rows[k : k + 256]
                logits = policy.qnet(
                    torch.as_tensor(images[tr["obs_index"][img_rows]]).to(policy.device),
                    torch.as_tensor(tr["state"][rows]).to(policy.device),
                    torch.as_tensor(tr["action"][rows]).to(policy.device),
                )
                out.append(torch.sigmoid(logits).float().cpu().numpy())
        return np.concatenate(out)

    own, shuffled = scores(idx), scores(idx[perm])
    print(f"grasp attempts near the floor: {len(idx)}, success rate {labels.mean():.3f}, mean Q {own.mean():.3f}")
    print(f"ROC AUC of Q, own images:      {roc_auc(own, labels):.3f}")
    print(f"ROC AUC of Q, shuffled images: {roc_auc(shuffled, labels):.3f}   (close to the above: the image is ignored)")


if __name__ == "__main__":
    main()
