"""Can a Q-network compare where an action takes the gripper with where the objects are? A supervised probe.

The greedy policy approaches an object only if Q(s, a) ranks moves by where they take the gripper
relative to the objects. This probe trains a GraspQNet (image tower, action/state embedding, head:
the whole critic) with supervision for exactly that: for a state of rlcyclegan/Grasp-v0 (pose state)
and a random move a, the label is the distance from the gripper's next x/y position to the nearest
object (capped at 10 cm). It then reports, on held-out states:

- ``mae_near_cm``: the error of the predicted distance where the true one is below 4 cm;
- ``argmin_regret_cm``: over 64 random moves per state, how much farther from an object the move the
  network ranks best ends than the best of the 64 (what CEM's argmax would lose);
- the same for predicting the training mean (``baseline_*``).

    python scripts/diagnostics/action_probe.py --qnet '{"coords": true, "norm": "batch"}' --steps 4000
    python scripts/diagnostics/action_probe.py --qnet '{"coords": true, "norm": "batch", "fourier": 4}'

States are rendered once and cached (``--cache``), so variants compare on the same data.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import rlcyclegan  # noqa: F401
from rlcyclegan.envs import grasp as g
from rlcyclegan.nets.qnet import GraspQNet, QNetConfig

CAP = 0.10  # metres: distances are capped here (farther than this, the exact value does not matter)


def render_states(episodes: int, steps: int, env_kwargs: dict, seed: int = 0) -> dict[str, np.ndarray]:
    env = gym.make("rlcyclegan/Grasp-v0", **{"state": "pose", **env_kwargs})
    u = env.unwrapped
    rng = np.random.default_rng(seed)
    images, states, tcps, objects = [], [], [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        for _ in range(steps):
            pos = u.object_positions[:, :2]
            padded = np.full((g.MAX_OBJECTS, 2), np.nan, np.float32)
            padded[: len(pos)] = pos
            images.append(obs["image"])
            states.append(obs["state"])
            tcps.append(u.tcp[:2].copy())
            objects.append(padded)
            a = rng.uniform(-1, 1, 6)
            a[4:] = -1
            a[2] = rng.uniform(-1, 0.3)
            obs, *_ = env.step(a.astype(np.float32))
    return {"images": np.array(images), "states": np.array(states, np.float32), "tcp": np.array(tcps, np.float32),
            "objects": np.array(objects, np.float32)}


def distances(tcp: torch.Tensor, objects: torch.Tensor, moves: torch.Tensor) -> torch.Tensor:
    """Distance (m, capped) from tcp + move * MAX_XY_STEP to the nearest object: tcp (B, 2), objects (B, K, 2), moves (B, N, 2)."""
    p = tcp[:, None] + moves * g.MAX_XY_STEP  # (B, N, 2)
    d = torch.linalg.norm(p[:, :, None] - objects[:, None], dim=-1)  # (B, N, K)
    return torch.nan_to_num(d, nan=1.0).amin(-1).clamp(max=CAP)


def random_actions(b: int, n: int, gen: torch.Generator) -> torch.Tensor:
    a = torch.rand(b, n, 6, generator=gen) * 2 - 1
    a[..., 4:] = -1.0  # moves only: close and terminate off
    return a


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=6000)
    ap.add_argument("--steps", type=int, default=4000, help="gradient steps")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--actions", type=int, default=8, help="random moves per state in a training batch")
    ap.add_argument("--qnet", default="{}", help="QNetConfig overrides as JSON")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--env-kwargs", default="{}")
    ap.add_argument("--cache", default="", help="npz file holding the rendered states (made if missing)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=1000)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    env_kwargs = json.loads(args.env_kwargs)

    t0 = time.time()
    if args.cache and Path(args.cache).exists():
        data = dict(np.load(args.cache))
    else:
        data = render_states(args.episodes, 6, env_kwargs)
        if args.cache:
            np.savez(args.cache, **data)
    print(f"{len(data['images'])} states ({time.time() - t0:.0f} s)", flush=True)
    x = torch.as_tensor(data["images"])
    s = torch.as_tensor(data["states"])
    tcp, obj = torch.as_tensor(data["tcp"]), torch.as_tensor(data["objects"])
    n_train = int(0.8 * len(x))
    test = torch.arange(n_train, min(len(x), n_train + 2000))

    torch.manual_seed(0)
    q = GraspQNet(QNetConfig(**{"image_size": x.shape[1], "state_dim": s.shape[1], **json.loads(args.qnet)}))
    opt = torch.optim.Adam(q.parameters(), args.lr)
    gen = torch.Generator().manual_seed(0)
    test_moves = random_actions(len(test), 64, torch.Generator().manual_seed(1))
    test_d = distances(tcp[test], obj[test], test_moves[..., :2])
    train_mean = distances(tcp[:n_train], obj[:n_train], random_actions(n_train, 1, gen)[..., :2]).mean()
    near = test_d < 0.04
    baseline = {"mae_near_cm": float((test_d[near] - train_mean).abs().mean() * 100),
                "argmin_regret_cm": float((test_d.mean(1) - test_d.amin(1)).mean() * 100)}
    rng = np.random.default_rng(0)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        i = torch.as_tensor(rng.integers(0, n_train, args.batch))
        a = random_actions(args.batch, args.actions, gen)
        y = distances(tcp[i], obj[i], a[..., :2]) / CAP
        pred = torch.sigmoid(q(x[i], s[i], a))
        loss = ((pred - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            q.eval()
            with torch.no_grad():
                preds = []
                for j in range(0, len(test), 250):
                    k = test[j:j + 250]
                    preds.append(torch.sigmoid(q.head(q.encode(x[k]), s[k], test_moves[j:j + 250])) * CAP)
                p = torch.cat(preds)
            q.train()
            best = p.argmin(1)
            regret = test_d.gather(1, best[:, None])[:, 0] - test_d.amin(1)
            print(json.dumps({"step": step, "seconds": round(time.time() - t0), "loss": round(float(loss.detach()), 5),
                              "mae_near_cm": round(float((p[near] - test_d[near]).abs().mean() * 100), 2),
                              "argmin_regret_cm": round(float(regret.mean() * 100), 2),
                              "argmin_within_1cm": round(float((regret < 0.01).float().mean()), 3),
                              "baseline": {k: round(v, 2) for k, v in baseline.items()}}), flush=True)


if __name__ == "__main__":
    main()
