"""The QT-Opt policy: argmax_a Q(s, a) by CEM, usable from Python on any image-observation env.

    policy = Policy.load("runs/qtopt-sim/checkpoints/latest.pt")
    action = policy.act(obs)            # obs = {"image": (H, W, 3) uint8, "state": (S,)}

Observations are a dict with ``"image"`` (and optionally ``"state"``), or the image array itself;
batched observations (leading batch axis) give batched actions.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from rlcyclegan.nets.qnet import GraspQNet, QNetConfig
from rlcyclegan.rl.cem import cem_argmax
from rlcyclegan.rl.checkpoint import CheckpointError, load_checkpoint


def split_obs(obs: Any, state_dim: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(images (B, H, W, 3) uint8, states (B, S) float32, batched?) from an observation."""
    if isinstance(obs, dict):
        if "image" not in obs:
            raise ValueError(f"observation dict has no 'image' key (keys: {sorted(obs)})")
        image = np.asarray(obs["image"])
        state = np.asarray(obs["state"], np.float32) if "state" in obs else None
    else:
        image, state = np.asarray(obs), None
    if image.ndim not in (3, 4) or image.shape[-1] != 3:
        raise ValueError(f"observation image has shape {image.shape}, expected (H, W, 3) or (B, H, W, 3)")
    batched = image.ndim == 4
    if not batched:
        image = image[None]
        state = None if state is None else state[None]
    if state is None:
        state = np.zeros((len(image), 0), np.float32)
    if state.shape != (len(image), state_dim):
        raise ValueError(f"observation state has shape {state.shape[1:] if batched else state.shape[1:]}, the Q-network expects ({state_dim},)")
    return image.astype(np.uint8, copy=False), state, batched


class Policy:
    """Greedy (optionally exploring) CEM policy over a :class:`GraspQNet`."""

    def __init__(
        self,
        qnet: GraspQNet,
        action_low: np.ndarray,
        action_high: np.ndarray,
        cem_iterations: int = 2,
        cem_samples: int = 64,
        cem_elites: int = 6,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ):
        self.device = torch.device(device)
        self.qnet = qnet.to(self.device).eval()
        self.low = np.asarray(action_low, np.float32)
        self.high = np.asarray(action_high, np.float32)
        self.cem = dict(iterations=cem_iterations, samples=cem_samples, elites=cem_elites)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.rng = np.random.default_rng(seed)

    @classmethod
    def load(cls, checkpoint: str | os.PathLike[str], device: str | torch.device = "cpu", seed: int = 0,
             cem: dict[str, int] | None = None, entry: str = "policy") -> "Policy":
        """The policy of a QT-Opt (or RL-CycleGAN Q_real) checkpoint file or run folder.

        It acts with the checkpoint's CEM (training's) unless ``cem`` overrides some of ``iterations``,
        ``samples`` and ``elites`` (0 keeps the checkpoint's): e.g. ``{"iterations": 3, "samples": 256,
        "elites": 12}``, the cpu recipe's acting CEM. ``entry="policy_sim"`` loads an RL-CycleGAN
        checkpoint's Q_sim instead (a diagnostic: how well Q_sim still acts in sim).
        """
        ckpt = load_checkpoint(checkpoint, map_location=device)
        if not isinstance(ckpt.get(entry), dict):
            what = "no Q_sim (policy_sim; only RL-CycleGAN checkpoints have one)" if entry == "policy_sim" else f"no {entry}"
            raise CheckpointError(f"{checkpoint}: checkpoint of kind {ckpt.get('kind')!r} holds {what}")
        p = ckpt[entry]
        try:
            qnet = GraspQNet(QNetConfig(**p["qnet_config"]))
            qnet.load_state_dict(p["qnet"])
        except (TypeError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"{checkpoint}: policy weights do not match their config ({e})") from e
        policy = cls(qnet, p["action_low"], p["action_high"], device=device, seed=seed, **p.get("cem", {}))
        unknown = set(cem or {}) - set(policy.cem)
        if unknown:
            raise ValueError(f"cem: unknown setting(s) {sorted(unknown)}; expected {sorted(policy.cem)}")
        policy.cem.update({k: int(v) for k, v in (cem or {}).items() if v})
        c = policy.cem
        if c["iterations"] < 1 or not 1 <= c["elites"] <= c["samples"]:
            raise ValueError(f"cem: need iterations >= 1 and 1 <= elites <= samples, got {c}")
        return policy

    @property
    def state_dim(self) -> int:
        return self.qnet.cfg.state_dim

    @torch.no_grad()
    def q_values(self, obs: Any, actions: np.ndarray) -> np.ndarray:
        """Q(s, a) in [0, 1] for actions (A,), (B, A) or (B, N, A)."""
        image, state, _ = split_obs(obs, self.state_dim)
        a = torch.as_tensor(np.asarray(actions, np.float32), device=self.device)
        if a.ndim == 1:
            a = a[None]
        f = self.qnet.encode(torch.as_tensor(image, device=self.device))
        return torch.sigmoid(self.qnet.head(f, torch.as_tensor(state, device=self.device), a)).cpu().numpy()

    @torch.no_grad()
    def act(self, obs: Any, epsilon: float = 0.0, noise: float = 0.0) -> np.ndarray:
        """argmax_a Q(obs, a) by CEM; with probability ``epsilon`` a uniform random action, and Gaussian
        ``noise`` (std, in units of the half range) added to the rest. Returns (A,) or (B, A) float32."""
        image, state, batched = split_obs(obs, self.state_dim)
        img = torch.as_tensor(image, device=self.device)
        st = torch.as_tensor(state, device=self.device)
        with _autocast(self.device):
            feats = self.qnet.encode(img)
            actions, _ = cem_argmax(
                lambda s, a: self.qnet.head(s[0], s[1], a), (feats, st), (self.low, self.high), generator=self.generator, **self.cem
            )
        out = actions.float().cpu().numpy()
        if noise > 0:
            out = out + self.rng.normal(0, noise, out.shape) * (self.high - self.low) / 2
        if epsilon > 0:
            rand = self.rng.random(len(out)) < epsilon
            out[rand] = self.rng.uniform(self.low, self.high, (int(rand.sum()), len(self.low)))
        out = np.clip(out, self.low, self.high).astype(np.float32)
        return out if batched else out[0]


def _autocast(device: torch.device):
    """bf16 autocast on CUDA, nothing on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
