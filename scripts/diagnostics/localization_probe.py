"""Can a Q-network's image tower locate what grasping needs? A supervised probe, minutes on a CPU.

Renders states of rlcyclegan/Grasp-v0 (random motions from random resets) with privileged labels
(TCP position, offset from the TCP to the nearest object in x/y), trains the tower of a GraspQNet
plus a small MLP to regress them (and the mean x/y of all objects), and prints the test mean absolute error in cm next to the error
of predicting the training mean. A tower that cannot regress the object offset with supervision
will not learn to approach objects from a sparse grasp reward either.

    python scripts/diagnostics/localization_probe.py --episodes 1400 --steps 2000 --qnet '{"merge_size": 8}'
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch

import rlcyclegan  # noqa: F401
from rlcyclegan.nets.qnet import GraspQNet, QNetConfig


def render_dataset(episodes: int, steps: int, seed: int = 0, env_kwargs: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    env = gym.make("rlcyclegan/Grasp-v0", **(env_kwargs or {}))
    u = env.unwrapped
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        for _ in range(steps):
            tcp, pos = u.tcp, u.object_positions
            k = int(np.argmin(np.linalg.norm(pos[:, :2] - tcp[:2], axis=1)))
            images.append(obs["image"])
            labels.append(np.r_[tcp[:3], pos[k, :2] - tcp[:2], pos[:, :2].mean(0)])
            a = rng.uniform(-1, 1, 6)
            a[4:] = -1
            a[2] = rng.uniform(-1, 0.3)
            obs, *_ = env.step(a.astype(np.float32))
    return np.array(images), np.array(labels, np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=1400)
    ap.add_argument("--steps", type=int, default=2000, help="gradient steps")
    ap.add_argument("--qnet", default="{}", help="QNetConfig overrides as JSON")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--env-kwargs", default="{}", help="Grasp-v0 arguments as JSON (e.g. image_size)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    env_kwargs = json.loads(args.env_kwargs)
    images, labels = render_dataset(args.episodes, 6, env_kwargs=env_kwargs)
    x, y_m = torch.as_tensor(images), torch.as_tensor(labels)
    n_train = int(0.8 * len(x))
    mu, sd = y_m[:n_train].mean(0), y_m[:n_train].std(0)
    y = (y_m - mu) / sd  # every label standardised, so each weighs the same in the loss
    cm = sd * 100
    baseline = (y[n_train:] - y[:n_train].mean(0)).abs().mean(0) * cm
    torch.manual_seed(0)
    q = GraspQNet(QNetConfig(**{"image_size": env_kwargs.get("image_size", 64), **json.loads(args.qnet)}))
    c, m = q.cfg.head_channels, q.cfg.merge_size
    head = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(c * m * m, 64), torch.nn.ReLU(), torch.nn.Linear(64, 7))
    opt = torch.optim.Adam([*q.parameters(), *head.parameters()], args.lr)
    rng = np.random.default_rng(0)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        i = rng.integers(0, n_train, 64)
        loss = ((head(q.encode(x[i])) - y[i]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0 or step == args.steps:
            with torch.no_grad():
                err = (head(q.encode(x[n_train:])) - y[n_train:]).abs().mean(0) * cm
            print(json.dumps({"step": step, "seconds": round(time.time() - t0), "tcp_xyz_mae_cm": err[:3].tolist(),
                              "nearest_object_offset_mae_cm": err[3:5].tolist(), "objects_mean_xy_mae_cm": err[5:].tolist(),
                              "predict_mean_mae_cm": baseline.tolist()}), flush=True)


if __name__ == "__main__":
    main()
