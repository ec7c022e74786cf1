"""QT-Opt's TD learning, one short function per equation.

    target = r + gamma * (1 - done) * V(s'),   V(s') = min(Q_targ1(s', a*), Q_targ2(s', a*)),
    a* = CEM argmax of Q_targ1(s', .)

Q_targ1 is a Polyak average of the online network and Q_targ2 a lagged copy refreshed every N
steps (clipped double-Q). The loss is the log loss (cross-entropy) of sigmoid(Q) against the
target, or the squared error as an option.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlcyclegan.rl.cem import cem_argmax


def clipped_double_q(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    """V(s') of clipped double-Q: the elementwise minimum of the two target networks' values."""
    return torch.minimum(q1, q2)


def td_targets(reward: torch.Tensor, done: torch.Tensor, next_value: torch.Tensor, gamma: float = 0.9) -> torch.Tensor:
    """r + gamma * V(s') for non-terminal s', r where s' is terminal (``done``)."""
    return reward + gamma * (1.0 - done.float()) * next_value


def td_loss(logits: torch.Tensor, targets: torch.Tensor, kind: str = "log") -> torch.Tensor:
    """Mean TD loss of Q = sigmoid(logits) against targets in [0, 1]: ``"log"`` (cross-entropy) or ``"mse"``."""
    if kind == "log":
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float())
    if kind == "mse":
        return F.mse_loss(torch.sigmoid(logits.float()), targets.float())
    raise ValueError(f"td_loss: kind must be 'log' or 'mse', got {kind!r}")


@dataclass(frozen=True)
class AuxSpec:
    """What an auxiliary loss on privileged simulator state needs from the env."""

    privileged_dim: int
    """Length of the env's ``info["privileged"]`` vector."""
    outputs: int
    """Auxiliary outputs per (state, action): the Q-network's ``aux_outputs``."""
    targets: Callable[[np.ndarray, np.ndarray], np.ndarray]
    """``targets(privileged (B, P), actions (B, N, A)) -> (B, N, outputs)``, NaN where unknown."""


def aux_spec(env: Any, who: str) -> AuxSpec:
    """The auxiliary-target hook of a Gymnasium env (``privileged_dim`` and ``auxiliary_targets`` on its
    unwrapped env); ``who`` names the setting that asked for it in the error when the env has none."""
    u = env.unwrapped
    fn, dim = getattr(u, "auxiliary_targets", None), int(getattr(u, "privileged_dim", 0) or 0)
    if fn is None or dim < 1:
        raise ValueError(f"{who}: {env.spec.id if env.spec else type(u).__name__} provides no privileged state "
                         "(needs `privileged_dim`, info['privileged'] and `auxiliary_targets`); set the aux weight to 0")
    probe = np.asarray(fn(np.full((1, dim), np.nan, np.float32), np.zeros((1, 1, env.action_space.shape[0]), np.float32)))
    return AuxSpec(dim, int(probe.shape[-1]), fn)


def aux_actions(action: torch.Tensor, n: int, bounds, gates: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """The logged actions (B, A) and ``n`` uniform random moves per state (gate dimensions at their low
    bound, i.e. off): (B, 1 + n, A), the actions an auxiliary loss scores."""
    low = torch.as_tensor(bounds[0], dtype=action.dtype, device=action.device)
    high = torch.as_tensor(bounds[1], dtype=action.dtype, device=action.device)
    u = torch.rand(action.shape[0], n, action.shape[1], generator=generator, device=generator.device).to(action.device, action.dtype)
    rand = low + u * (high - low)
    if gates:
        rand[..., list(gates)] = low[list(gates)]
    return torch.cat([action[:, None], rand], dim=1)


def auxiliary_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of auxiliary outputs against targets, over the finite targets only (NaN marks
    a state without privileged data); 0 (with a graph) when there are none."""
    known = torch.isfinite(target)
    if not known.any():
        return pred.sum() * 0.0
    return F.mse_loss(pred.float()[known], target.float()[known])


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, decay: float) -> None:
    """target <- decay * target + (1 - decay) * online, parameter by parameter (buffers copied)."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.lerp_(o, 1.0 - decay)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)


@torch.no_grad()
def ema_update(average: nn.Module, online: nn.Module, decay: float) -> None:
    """average <- decay * average + (1 - decay) * online for every floating-point parameter and buffer
    (batch-norm running statistics included); integer buffers (batch counters) are copied."""
    for a, o in zip(average.state_dict().values(), online.state_dict().values()):
        if a.is_floating_point():
            a.lerp_(o, 1.0 - decay)
        else:
            a.copy_(o)


@torch.no_grad()
def lagged_update(target: nn.Module, online: nn.Module, step: int, period: int) -> bool:
    """Copy ``online`` into ``target`` when ``step`` is a multiple of ``period``; returns whether it did."""
    if period <= 0 or step % period:
        return False
    target.load_state_dict(online.state_dict())
    return True


@torch.no_grad()
def qtopt_targets(q_polyak: nn.Module, q_lagged: nn.Module, next_image: torch.Tensor, next_state: torch.Tensor,
                  reward: torch.Tensor, done: torch.Tensor, bounds, gamma: float = 0.9, cem: dict | None = None,
                  generator: torch.Generator | None = None, step_penalty: float = 0.0) -> torch.Tensor:
    """QT-Opt's TD target for a batch: a* = CEM argmax of the Polyak target at s' (image encoded once),
    V(s') = min of the Polyak and lagged targets at a* (clipped double-Q), target = r + gamma V(s')
    (r at terminal s'), minus ``step_penalty`` on non-terminal steps, clipped to [0, 1] for the sigmoid Q.

    ``q_polyak`` and ``q_lagged`` are Q-networks with ``encode(image)`` and ``head(features, state, actions)``.
    """
    feats = q_polyak.encode(next_image)
    a_star, logit1 = cem_argmax(lambda s, a: q_polyak.head(s[0], s[1], a), (feats, next_state), bounds, generator=generator, **(cem or {}))
    logit2 = q_lagged.head(q_lagged.encode(next_image), next_state, a_star)
    v_next = clipped_double_q(torch.sigmoid(logit1.float()), torch.sigmoid(logit2.float()))
    reward = reward - step_penalty * (~done.bool()).float()
    return td_targets(reward, done, v_next, gamma).clamp(0.0, 1.0)
