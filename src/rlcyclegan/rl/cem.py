"""The cross-entropy method (CEM) as QT-Opt uses it to maximise Q over continuous actions."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch


def _bounds(action_space: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) float tensors from a gymnasium Box, a (low, high) pair, or anything with .low/.high."""
    if hasattr(action_space, "low") and hasattr(action_space, "high"):
        low, high = action_space.low, action_space.high
    else:
        low, high = action_space
    low = torch.as_tensor(np.asarray(low, dtype=np.float32), device=device).flatten()
    high = torch.as_tensor(np.asarray(high, dtype=np.float32), device=device).flatten()
    if low.shape != high.shape or not torch.all(torch.isfinite(low)) or not torch.all(torch.isfinite(high)) or torch.any(low > high):
        raise ValueError(f"cem_argmax: action_space bounds must be finite with low <= high, got low={low.tolist()} high={high.tolist()}")
    return low, high


def _batch_size(state_batch: Any) -> int:
    if isinstance(state_batch, torch.Tensor):
        return int(state_batch.shape[0])
    if isinstance(state_batch, dict):
        return _batch_size(next(iter(state_batch.values())))
    if isinstance(state_batch, (tuple, list)):
        return _batch_size(state_batch[0])
    raise TypeError(f"cem_argmax: cannot infer the batch size of a {type(state_batch).__name__}")


@torch.no_grad()
def cem_argmax(
    q_fn: Callable[[Any, torch.Tensor], torch.Tensor],
    state_batch: Any,
    action_space: Any,
    iterations: int = 2,
    samples: int = 64,
    elites: int = 6,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate ``argmax_a q_fn(s, a)`` for every state of a batch.

    ``q_fn(state_batch, actions)`` scores ``actions`` of shape (B, N, A) and returns (B, N); with an
    encoded state (see :meth:`GraspQNet.encode`) the image tower runs once per state, not per action.
    Starting from a Gaussian centred in the Box with std = half its width, each iteration samples
    ``samples`` actions per state (clamped to the bounds), keeps the ``elites`` best and refits the
    mean and std to them. Returns ``(actions (B, A), values (B,))``: the best action evaluated over
    all iterations and its score, always inside the bounds.
    """
    if iterations < 1 or samples < 1 or not 1 <= elites <= samples:
        raise ValueError(f"cem_argmax: need iterations >= 1 and 1 <= elites <= samples, got {iterations}, {samples}, {elites}")
    if device is None:
        device = next((t.device for t in _tensors(state_batch)), torch.device("cpu"))
    low, high = _bounds(action_space, torch.device(device))
    b, a = _batch_size(state_batch), low.numel()
    mean = ((low + high) / 2).expand(b, a).clone()
    std = ((high - low) / 2).expand(b, a).clone()
    best_action = mean.clone()
    best_value = torch.full((b,), -float("inf"), device=device)
    rows = torch.arange(b, device=device)
    for _ in range(iterations):
        noise = torch.randn((b, samples, a), generator=generator, device=device)
        actions = torch.maximum(torch.minimum(mean[:, None] + std[:, None] * noise, high), low)
        values = q_fn(state_batch, actions).float()
        if values.shape != (b, samples):
            raise ValueError(f"cem_argmax: q_fn returned shape {tuple(values.shape)}, expected {(b, samples)}")
        top_values, top_idx = values.topk(elites, dim=1)
        elite = actions[rows[:, None], top_idx]  # (B, elites, A)
        mean, std = elite.mean(1), elite.std(1, unbiased=False) + 1e-6
        better = top_values[:, 0] > best_value
        best_value = torch.where(better, top_values[:, 0], best_value)
        best_action = torch.where(better[:, None], elite[:, 0], best_action)
    return best_action, best_value


def _tensors(x: Any):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _tensors(v)
    elif isinstance(x, (tuple, list)):
        for v in x:
            yield from _tensors(v)
