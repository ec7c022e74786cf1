"""Is a Q-network's grasp value calibrated? Mean Q of close actions against their success, in bins of Q.

    python scripts/diagnostics/grasp_calibration.py RUN_OR_CKPT --data DIR [DIR ...]
    python scripts/diagnostics/grasp_calibration.py RUN_OR_CKPT --live 300 [--policy-kwargs '{"random_yaw_prob": 1.0}']

``--data`` scores up to 2,000 close actions from episode folders (a run's own data is training data:
use a fresh `rlcyclegan collect` folder for held-out grasps). ``--live N`` plays N episodes of the
scripted policy (constructor arguments from ``--policy-kwargs``) on unseen objects and scores each
close as it happens, which reaches states no stored folder holds.
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np
import torch

import rlcyclegan.envs  # noqa: F401  (registers the envs)
from rlcyclegan.data.dataset import EpisodeDataset
from rlcyclegan.envs import make_policy
from rlcyclegan.rl.policy import Policy

BINS = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.01))


def from_folder(policy: Policy, folder: str, limit: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    ds = EpisodeDataset(folder)
    tr, imgs = ds.transitions(), ds.images()
    close = np.random.default_rng(0).permutation(np.where(tr["action"][:, 4] > 0)[0])[:limit]
    qs = []
    for i in range(0, len(close), 256):
        idx = close[i:i + 256]
        with torch.no_grad():
            logits = policy.qnet(torch.as_tensor(imgs[tr["obs_index"][idx]]), torch.as_tensor(tr["state"][idx]),
                                 torch.as_tensor(tr["action"][idx]))
        qs.append(torch.sigmoid(logits).numpy())
    return np.concatenate(qs), tr["reward"][close]


def live(policy: Policy, episodes: int, env_kwargs: dict, policy_kwargs: dict) -> tuple[np.ndarray, np.ndarray]:
    env = gym.make("rlcyclegan/Grasp-v0", objects="test", **env_kwargs)
    scripted = make_policy("scripted", env, seed=99, **policy_kwargs)
    qs, rs = [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=50_000 + ep)
        scripted.reset()
        done = False
        while not done:
            a = scripted.act(obs)
            if a[4] > 0:
                qs.append(float(policy.q_values(obs, a[None])[0]))
            obs, r, terminated, truncated, _ = env.step(a)
            done = terminated or truncated
            if a[4] > 0:
                rs.append(r)
    return np.array(qs), np.array(rs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--data", nargs="*", default=[])
    p.add_argument("--live", type=int, default=0)
    p.add_argument("--policy-kwargs", default="{}")
    p.add_argument("--env-kwargs", default='{"state": "pose"}', help="must match training")
    args = p.parse_args()
    torch.set_num_threads(1)
    policy = Policy.load(args.checkpoint)
    sets = [(d, *from_folder(policy, d)) for d in args.data]
    if args.live:
        sets.append((f"live scripted {args.policy_kwargs}", *live(policy, args.live, json.loads(args.env_kwargs), json.loads(args.policy_kwargs))))
    for name, q, r in sets:
        print(f"{name}: {len(q)} closes, mean Q {q.mean():.3f}, success {r.mean():.3f}")
        for lo, hi in BINS:
            m = (q >= lo) & (q < hi)
            if m.any():
                print(f"   Q in [{lo:.1f}, {min(hi, 1):.1f}): {m.sum():4d} closes, success {r[m].mean():.2f}")


if __name__ == "__main__":
    main()
