"""Counterfactual grasp labels: what closing the gripper would have done at every state of stored episodes.

    python scripts/diagnostics/branch_grasps.py SRC OUT [--first 0] [--last 5000] [--base-seed 0]
        [--env-kwargs '{"state": "pose"}']

Replays scripted episodes collected by ``rlcyclegan collect --policy scripted --seed BASE`` (episode
i was reset with seed BASE + i and its planner seeded with ``policy_seed(BASE + i)``, so the replay
visits exactly the stored states) and, at each state, asks ``GraspEnv.branch`` what the canonical
close action would return, without changing the episode. Each answer is written to OUT as a
one-step episode (observation, close, reward, terminal) with index ``i * 16 + t``, in shards of 50
source episodes, readable by ``train qtopt --data``. docs/qtopt.md ("Counterfactual grasp labels")
reports the run trained with such data.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import rlcyclegan.envs  # noqa: F401  (registers the envs)
from rlcyclegan.data.collect import policy_seed
from rlcyclegan.data.store import Episode, write_shard
from rlcyclegan.envs import make_policy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path, help="folder of the scripted episodes (only its seeds are used)")
    p.add_argument("out", type=Path)
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--last", type=int, default=5000)
    p.add_argument("--base-seed", type=int, default=0, help="the --seed the source folder was collected with")
    p.add_argument("--env-kwargs", default='{"state": "pose"}')
    args = p.parse_args()
    env_kwargs = json.loads(args.env_kwargs)
    env = gym.make("rlcyclegan/Grasp-v0", **env_kwargs)
    u = env.unwrapped
    close = np.asarray(u.branch_actions[0], np.float32)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for s0 in range(args.first, args.last, 50):
        episodes = []
        for i in range(s0, min(s0 + 50, args.last)):
            seed = args.base_seed + i
            planner = make_policy("scripted", env, seed=policy_seed(seed))
            obs, info = env.reset(seed=seed)
            planner.reset()
            t = 0
            while True:
                nxt, reward, _, _, _ = u.branch(close)
                episodes.append(Episode(
                    images=np.stack([obs["image"], nxt["image"]]), states=np.stack([obs["state"], nxt["state"]]),
                    actions=close[None].copy(), rewards=np.array([reward], np.float32), terminated=np.array([True]),
                    truncated=np.array([False]), success=bool(reward > 0), index=i * 16 + t, seed=seed, shape_ids=info["shape_ids"]))
                obs, _, terminated, truncated, _ = env.step(np.asarray(planner.act(obs), np.float32))
                t += 1
                if terminated or truncated:
                    break
        write_shard(args.out / f"shard-{s0 * 16:07d}.h5", episodes, env_id="rlcyclegan/Grasp-v0", domain="sim", objects="train",
                    policy="scripted-branch", env_kwargs=env_kwargs)
        print(f"source episodes {s0}-{min(s0 + 50, args.last) - 1}: {len(episodes)} branches, "
              f"{np.mean([e.success for e in episodes]):.2f} succeed ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
