"""Acting and learning on translated images: a trained generator in front of a Q-policy.

The paper's GAN and CycleGAN baselines train the policy on sim data whose images went through the
sim-to-real generator G, then run that policy on the real robot as is. `rlcyclegan train qtopt
--translate-with RUN` does exactly that with these pieces:

- :func:`load_generator` reads G (or F) from an RL-CycleGAN / CycleGAN / GAN checkpoint;
- :class:`ImageTranslator` maps uint8 (N, H, W, 3) images through it, in batches, without grad;
- :class:`TranslatedObservations` wraps an env so every observed image is translated (on-policy
  collection in sim then stores and acts on G(x), like the stored off-policy data).
"""

from __future__ import annotations

import os
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlcyclegan.nets.generators import GeneratorConfig, from_gan_output, make_generator, to_gan_input
from rlcyclegan.rl.checkpoint import CheckpointError, load_checkpoint

DIRECTIONS = ("sim2real", "real2sim", "real2real")


def load_generator(ckpt_or_run: str | os.PathLike[str], direction: Literal["sim2real", "real2sim", "real2real"] = "sim2real",
                   device: str | torch.device = "cpu") -> nn.Module:
    """G (sim -> real), F (real -> sim) or G∘F (real -> real, ``"real2real"``: a real image projected onto the
    real images G makes, the cycle y -> G(F(y))) of a checkpoint file or run folder, in eval mode.

    It maps float (B, 3, H, W) images in [-1, 1] to the same (see ``to_gan_input`` / ``from_gan_output``).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if direction == "real2real":
        return nn.Sequential(load_generator(ckpt_or_run, "real2sim", device), load_generator(ckpt_or_run, "sim2real", device)).eval()
    ckpt = load_checkpoint(ckpt_or_run, map_location=device)
    entry = ckpt.get("generator" if direction == "sim2real" else "generator_real2sim")
    if entry is None:
        raise CheckpointError(f"{ckpt_or_run}: a {ckpt.get('kind')!r} checkpoint without a {direction} generator")
    try:
        gen = make_generator(GeneratorConfig(**entry["config"]))
        gen.load_state_dict(entry["weights"])
    except (TypeError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{ckpt_or_run}: generator weights do not match their config ({e})") from e
    return gen.to(device).eval()


class ImageTranslator:
    """uint8 (N, H, W, 3) or (H, W, 3) numpy images -> the generator's uint8 images of the same shape."""

    def __init__(self, generator: nn.Module, device: str | torch.device = "cpu", batch_size: int = 256):
        self.generator = generator.eval()
        self.device = torch.device(device)
        self.batch_size = batch_size

    @classmethod
    def load(cls, ckpt_or_run: str | os.PathLike[str], direction: str = "sim2real", device: str | torch.device = "cpu") -> "ImageTranslator":
        return cls(load_generator(ckpt_or_run, direction, device), device)  # type: ignore[arg-type]

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        single = images.ndim == 3
        batch = images[None] if single else images
        if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
            raise ValueError(f"ImageTranslator: expected uint8 (N, H, W, 3) images, got {images.dtype} {images.shape}")
        if not batch.flags.writeable:  # read-only views (env buffers, h5py reads): torch warns on sharing them
            batch = batch.copy()
        out = np.empty_like(batch)
        for i in range(0, len(batch), self.batch_size):
            x = to_gan_input(torch.as_tensor(batch[i : i + self.batch_size]).to(self.device))
            out[i : i + self.batch_size] = from_gan_output(self.generator(x)).cpu().numpy()
        return out[0] if single else out


class TranslatedObservations(gym.ObservationWrapper):
    """Translate the image of every observation (a dict with ``"image"`` or a bare image)."""

    def __init__(self, env: gym.Env, translator: ImageTranslator):
        super().__init__(env)
        self.translator = translator

    def observation(self, observation: Any) -> Any:
        if isinstance(observation, dict):
            return {**observation, "image": self.translator(observation["image"])}
        return self.translator(observation)


class TwoDomainQ(nn.Module):
    """An RL-CycleGAN run's two Q-networks acting together on target-domain images: the mean of the logits of
    Q_real(y, a) and Q_sim(F(y), a). The RL-scene loss trains the generators so that both read the same scene the
    same way, so the two are an ensemble over the real-image and the translated-image views of one state.

    It has :class:`GraspQNet`'s ``encode`` / ``head`` split (``encode`` runs F once per state), so a
    :class:`rlcyclegan.rl.policy.Policy` over it acts with CEM as over one Q-network.
    """

    def __init__(self, q_real: nn.Module, q_sim: nn.Module, real2sim: ImageTranslator):
        super().__init__()
        if (q_real.cfg.image_size, q_real.cfg.state_dim, q_real.cfg.action_dim) != (q_sim.cfg.image_size, q_sim.cfg.state_dim, q_sim.cfg.action_dim):
            raise ValueError("TwoDomainQ: Q_real and Q_sim take different image sizes, states or actions")
        self.q_real, self.q_sim, self.real2sim = q_real, q_sim, real2sim
        self.cfg = q_real.cfg

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (B, H, W, 3) images -> (Q_real's features of y, Q_sim's features of F(y))."""
        if image.dtype != torch.uint8 or image.ndim != 4:
            raise ValueError(f"TwoDomainQ: expected uint8 (B, H, W, 3) images, got {image.dtype} {tuple(image.shape)}")
        fy = torch.as_tensor(self.real2sim(image.cpu().numpy()), device=image.device)
        return self.q_real.encode(image), self.q_sim.encode(fy)

    def head(self, features: tuple[torch.Tensor, torch.Tensor], state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.q_real.head(features[0], state, action).float() + self.q_sim.head(features[1], state, action).float())

    def forward(self, image: torch.Tensor, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(image), state, action)
