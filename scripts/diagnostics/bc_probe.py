"""Can the Q-network's image tower drive the gripper at all? Behaviour cloning of the clean planner.

    python scripts/diagnostics/bc_probe.py [--episodes 2000] [--steps 4000] [--noise 0.3]
        [--qnet '{"coords": true, "norm": "batch"}'] [--eval 200] [--threads 1]

QT-Opt has to learn two things at once: where the objects are relative to the jaws (perception) and
what that is worth (values bootstrapped through CEM maxima). This probe removes the second. It
collects episodes of the clean scripted planner (no aim, yaw or miss noise; it reads the simulator's
object poses) with Gaussian noise added to the executed moves, so that states off the planner's path
are seen too, and labels every visited state with the clean planner's action there. The Q-network's
tower (same config as `train qtopt`'s) plus a small MLP head is trained to output that action from
the image and robot state (MSE on the moves, log loss on close), then run greedily in closed loop on
unseen objects. Its success rate, next to the clean planner's own, says how much of the gap to the
planner a perfect value function on top of this tower could close at this data size.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import rlcyclegan.envs  # noqa: F401  (registers the envs)
from rlcyclegan.envs import make_policy
from rlcyclegan.nets.qnet import GraspQNet, QNetConfig
from rlcyclegan.data.dataset import wilson_interval

CLEAN = dict(action_noise=0.0, aim_noise=0.0, yaw_noise=0.0, miss_prob=0.0, random_target_prob=0.0)


def collect(env, episodes: int, noise: float, seed: int) -> dict[str, np.ndarray]:
    """Clean-planner labels at the states of noisy executions of it."""
    rng = np.random.default_rng(seed)
    images, states, labels, successes = [], [], [], []
    for ep in range(episodes):
        planner = make_policy("scripted", env, seed=seed + ep, **CLEAN)
        obs, _ = env.reset(seed=seed + ep)
        planner.reset()
        for _ in range(env.unwrapped.cfg.max_steps):
            label = planner.act(obs)
            images.append(obs["image"])
            states.append(obs["state"])
            labels.append(label)
            executed = label.copy()
            executed[:4] = np.clip(label[:4] + rng.normal(0, noise, 4), -1, 1)
            obs, reward, terminated, truncated, _ = env.step(executed)
            if terminated or truncated:
                break
        successes.append(reward > 0)
    return {"image": np.stack(images), "state": np.stack(states).astype(np.float32), "label": np.stack(labels),
            "success": np.array(successes)}


class BCNet(nn.Module):
    """The Q-network's image tower, then an MLP on the flattened map and the state: 4 moves + close logit."""

    def __init__(self, cfg: QNetConfig):
        super().__init__()
        self.tower = GraspQNet(cfg)
        side = cfg.merge_size
        self.mlp = nn.Sequential(nn.Flatten(), nn.LazyLinear(256), nn.ReLU(), nn.Linear(256, 5))
        self.state_fc = nn.Linear(cfg.state_dim, cfg.head_channels * side * side)

    def forward(self, image: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        f = self.tower.encode(image)
        f = torch.relu(f + self.state_fc(state).reshape(f.shape))
        return self.mlp(f)


class SpatialSoftmax(nn.Module):
    """Expected image position (x, y) of each channel's softmax over the map: (B, K, H, W) -> (B, 2K)."""

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        b, k, h, w = f.shape
        p = torch.softmax(f.reshape(b, k, h * w), dim=-1).reshape(b, k, h, w)
        ys = torch.linspace(-1, 1, h, device=f.device, dtype=f.dtype)
        xs = torch.linspace(-1, 1, w, device=f.device, dtype=f.dtype)
        return torch.cat([(p.sum(-1) * ys).sum(-1), (p.sum(-2) * xs).sum(-1)], dim=1)


class KeypointBCNet(nn.Module):
    """Convs that keep half resolution (32 x 32 at 64 px), a spatial softmax over ``keypoints`` channels,
    then an MLP on the keypoint coordinates and the state (Levine et al. 2016's visuomotor layout)."""

    def __init__(self, state_dim: int, channels: int = 32, keypoints: int = 32):
        super().__init__()
        c = channels
        self.tower = nn.Sequential(
            nn.Conv2d(5, c, 5, stride=2, padding=2), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, keypoints, 1),
        )
        self.keypoints = SpatialSoftmax()
        self.mlp = nn.Sequential(nn.Linear(2 * keypoints + state_dim, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 5))

    def forward(self, image: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).float().div(255.0).sub(0.5)
        b, _, h, w = x.shape
        ys = torch.linspace(-0.5, 0.5, h)[:, None].expand(h, w)
        xs = torch.linspace(-0.5, 0.5, w)[None, :].expand(h, w)
        x = torch.cat([x, torch.stack([ys, xs]).expand(b, 2, h, w)], dim=1)
        return self.mlp(torch.cat([self.keypoints(self.tower(x)), state], dim=1))


def act(net: nn.Module, obs_batch: list[dict]) -> np.ndarray:
    with torch.no_grad():
        out = net(torch.as_tensor(np.stack([o["image"] for o in obs_batch])), torch.as_tensor(np.stack([o["state"] for o in obs_batch])))
    a = np.full((len(obs_batch), 6), -1.0, np.float32)
    a[:, :4] = torch.tanh(out[:, :4]).numpy()
    a[:, 4] = np.where(out[:, 4].numpy() > 0, 1.0, -1.0)
    return a


def evaluate(net: nn.Module, env, episodes: int, seed: int) -> float:
    net.eval()
    wins = closes = 0
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        for _ in range(env.unwrapped.cfg.max_steps):
            a = act(net, [obs])[0]
            obs, reward, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                break
        wins += reward > 0
        closes += a[4] > 0
    net.train()
    return wins / episodes, closes / episodes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=2000)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--noise", type=float, default=0.3)
    p.add_argument("--qnet", default='{"coords": true, "norm": "batch"}')
    p.add_argument("--head", choices=("qnet", "keypoints"), default="qnet",
                   help="qnet: the Q-network's tower + MLP; keypoints: full-resolution convs + spatial softmax")
    p.add_argument("--eval", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    env = gym.make("rlcyclegan/Grasp-v0", state="pose", image_size=args.image_size)
    test_env = gym.make("rlcyclegan/Grasp-v0", state="pose", image_size=args.image_size, objects="test")
    t0 = time.time()
    data = collect(env, args.episodes, args.noise, seed=0)
    n = len(data["label"])
    print(f"collected {args.episodes} episodes, {n} labelled states ({time.time() - t0:.0f} s); executed-noise "
          f"episodes succeeded {data['success'].mean():.2f}", flush=True)
    cfg = QNetConfig(image_size=args.image_size, state_dim=data["state"].shape[1], action_dim=6, **json.loads(args.qnet))
    net = BCNet(cfg) if args.head == "qnet" else KeypointBCNet(data["state"].shape[1])
    images, states = torch.as_tensor(data["image"]), torch.as_tensor(data["state"])
    moves, close = torch.as_tensor(data["label"][:, :4]), torch.as_tensor((data["label"][:, 4] > 0).astype(np.float32))
    net(images[:2], states[:2])  # materialise the lazy layer
    pos_weight = (1 - close.mean()) / close.mean().clamp(min=1e-6)  # closes are rare: balance them
    opt = torch.optim.Adam(net.parameters(), lr=5e-4)
    rng = np.random.default_rng(0)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        idx = torch.as_tensor(rng.integers(0, n, args.batch))
        out = net(images[idx], states[idx])
        loss = nn.functional.mse_loss(torch.tanh(out[:, :4]), moves[idx]) + nn.functional.binary_cross_entropy_with_logits(out[:, 4], close[idx], pos_weight=pos_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            s, closed = evaluate(net, test_env, args.eval, seed=10**6)
            lo, hi = wilson_interval(round(s * args.eval), args.eval)
            print(json.dumps({"step": step, "loss": round(loss.item(), 4), "success": s, "closed": closed, "low": round(lo, 3), "high": round(hi, 3),
                              "minutes": round((time.time() - t0) / 60, 1)}), flush=True)
    planner_wins = 0
    for ep in range(args.eval):
        planner = make_policy("scripted", test_env, seed=ep, **CLEAN)
        obs, _ = test_env.reset(seed=10**6 + ep)
        planner.reset()
        for _ in range(test_env.unwrapped.cfg.max_steps):
            obs, reward, terminated, truncated, _ = test_env.step(planner.act(obs))
            if terminated or truncated:
                break
        planner_wins += reward > 0
    print(json.dumps({"clean_planner_success": planner_wins / args.eval}))


if __name__ == "__main__":
    main()
