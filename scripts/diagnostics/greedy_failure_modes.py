"""How a greedy grasp policy ends its episodes: closes (and how far from the nearest object), terminates,
or runs out of steps. Uses the env's privileged object positions, so it works on rlcyclegan grasp envs only.

    python scripts/diagnostics/greedy_failure_modes.py RUN_OR_CKPT [--episodes 100] [--domain sim]
        [--objects test] [--env-kwargs '{"state": "pose"}'] [--show 0]

Prints the share of each ending, and for the grasps the success rate by distance from the gripper to the
nearest object's centre at the moment it closed. ``--show N`` prints the last steps of the first N episodes
(height, distance to the nearest object, action).

It also compares the Q-value of each greedy action with what the episode then returned
(gamma^(steps left - 1) x final reward, gamma = 0.9): a Q-function that overestimates its moves keeps
the gripper moving instead of closing.
"""

from __future__ import annotations

import argparse
import collections
import json

import gymnasium as gym
import numpy as np
import torch

import rlcyclegan.envs  # noqa: F401  (registers the envs)
from rlcyclegan.rl.policy import Policy

EVAL_SEED = 10_000
BANDS = ((0.0, 0.01), (0.01, 0.02), (0.02, 0.04), (0.04, 1.0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--env", default="rlcyclegan/Grasp-v0")
    p.add_argument("--domain", default="sim")
    p.add_argument("--objects", default="test")
    p.add_argument("--env-kwargs", default="{}", help="extra env arguments as JSON (must match training, e.g. the state mode)")
    p.add_argument("--show", type=int, default=0)
    p.add_argument("--gamma", type=float, default=0.9)
    args = p.parse_args()
    torch.set_num_threads(1)
    policy = Policy.load(args.checkpoint)
    env = gym.make(args.env, domain=args.domain, objects=args.objects, **json.loads(args.env_kwargs))
    u = env.unwrapped
    endings = []
    q_rows = []  # (step index, kind of action, predicted Q, Monte-Carlo return)
    for ep in range(args.episodes):
        obs, _ = env.reset(seed=EVAL_SEED + ep)
        done, rows, reward, dist, action = False, [], 0.0, float("nan"), None
        ep_q = []
        while not done:
            action = policy.act(obs)
            ep_q.append((len(ep_q), "close" if action[4] > 0 else "terminate" if action[5] > 0 else "move",
                         float(policy.q_values(obs, action[None])[0])))
            dist = float(np.linalg.norm(u.object_positions[:, :2] - u.tcp[:2], axis=1).min())
            rows.append(f"h {obs['state'][1]:.2f} d {dist:.2f} a [{', '.join(f'{v:+.1f}' for v in action)}]")
            obs, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        n = len(ep_q)
        q_rows += [(t, k, q, args.gamma ** (n - 1 - t) * float(reward)) for t, k, q in ep_q]
        kind = "grasp" if action[4] > 0 else "terminate" if action[5] > 0 else "out of steps"
        endings.append((kind, float(reward), dist))
        if ep < args.show:
            print(f"episode {ep}: {kind}, reward {reward}\n    " + "\n    ".join(rows[-6:]))
    counts = collections.Counter(k for k, _, _ in endings)
    print(f"{args.episodes} episodes: " + ", ".join(f"{k} {100 * n / args.episodes:.0f}%" for k, n in counts.most_common()))
    print(f"success {100 * np.mean([r for _, r, _ in endings]):.1f}%")
    grasps = [(r, d) for k, r, d in endings if k == "grasp"]
    for lo, hi in BANDS:
        band = [r for r, d in grasps if lo <= d < hi]
        rate = f"{100 * np.mean(band):.0f}%" if band else "-"
        print(f"  grasps {100 * lo:.0f}-{100 * hi:.0f} cm from the nearest object: {len(band)}, success {rate}")
    print("greedy Q vs Monte-Carlo return (mean over steps):")
    for name, sel in [("close", lambda t, k: k == "close"), ("move, steps 0-4", lambda t, k: k == "move" and t < 5),
                      ("move, steps 5-9", lambda t, k: k == "move" and 5 <= t < 10), ("move, steps 10+", lambda t, k: k == "move" and t >= 10)]:
        rows_sel = [(q, g) for t, k, q, g in q_rows if sel(t, k)]
        if rows_sel:
            q, g = np.array(rows_sel).T
            print(f"  {name:16s} n {len(q):5d}  Q {q.mean():.3f}  return {g.mean():.3f}")


if __name__ == "__main__":
    main()
