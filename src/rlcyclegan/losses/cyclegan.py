"""The RL-CycleGAN objective (Rao et al., CVPR 2020), one short function per equation.

Notation of the paper: x is a sim image, y a real image, G: sim -> real and F: real -> sim the two
generators, D_Y and D_X their discriminators, Q_sim and Q_real the two RL Q-networks.

    L_GAN(G, D_Y)   = E_y[log D_Y(y)] + E_x[log(1 - D_Y(G(x)))]    (or its least-squares form)
    L_cyc(G, F)     = d(F(G(x)), x) + d(G(F(y)), y)
    L_RL-scene(G,F) = d(q_x, q_x') + d(q_x, q_x'') + d(q_x', q_x'')
                    + d(q_y, q_y') + d(q_y, q_y'') + d(q_y', q_y'')
    L_RL-CycleGAN   = lambda_GAN (L_GAN(G, D_Y) + L_GAN(F, D_X)) + lambda_cycle L_cyc
                    + lambda_RL-scene L_RL-scene  (+ lambda_RL L_RL(Q), the Q-networks' TD loss)

with q_x = Q_sim(x, a), q_x' = Q_real(G(x), a), q_x'' = Q_sim(F(G(x)), a),
     q_y = Q_real(y, a), q_y' = Q_sim(F(y), a), q_y'' = Q_real(G(F(y)), a).

Every loss is a mean over the batch (and pixels), so values do not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

ADVERSARIAL_MODES = ("lsgan", "nonsaturating")
DISTANCES = ("mse", "l1")

Logits = torch.Tensor | Sequence[torch.Tensor]


def _distance(a: torch.Tensor, b: torch.Tensor, distance: str, names: tuple[str, str]) -> torch.Tensor:
    """Mean distance between two tensors of one shape: ``"mse"`` (squared error) or ``"l1"``."""
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} has shape {tuple(a.shape)} but {names[1]} has shape {tuple(b.shape)}")
    if distance == "mse":
        return F.mse_loss(a, b)
    if distance == "l1":
        return F.l1_loss(a, b)
    raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")


def adversarial_loss(logits: Logits, target_is_real: bool, mode: str = "lsgan") -> torch.Tensor:
    """GAN loss of discriminator outputs ``logits`` against the label real (1) or fake (0).

    ``"lsgan"``: mean squared error of the raw outputs to 1 or 0 (least-squares GAN, used by
    CycleGAN). ``"nonsaturating"``: binary cross-entropy with logits, i.e. -log D or -log(1 - D).
    ``logits`` may be one tensor or a list of tensors (one per scale of a multi-scale
    discriminator); the per-scale losses are averaged.
    """
    if mode not in ADVERSARIAL_MODES:
        raise ValueError(f"mode must be one of {ADVERSARIAL_MODES}, got {mode!r}")
    scales = [logits] if isinstance(logits, torch.Tensor) else list(logits)
    if not scales:
        raise ValueError("logits is an empty list; give at least one discriminator output")
    losses = []
    for out in scales:
        target = torch.full_like(out, 1.0 if target_is_real else 0.0)
        if mode == "lsgan":
            losses.append(F.mse_loss(out, target))
        else:
            losses.append(F.binary_cross_entropy_with_logits(out, target))
    return torch.stack(losses).mean()


def discriminator_loss(real_logits: Logits, fake_logits: Logits, mode: str = "lsgan") -> torch.Tensor:
    """Loss of a discriminator: 0.5 * (adv(D(real), real) + adv(D(fake), fake)).

    The 0.5 halves the discriminator's pace relative to the generator, as in CycleGAN. Pass
    ``fake_logits`` computed on detached generator outputs so the generator gets no gradient.
    """
    return 0.5 * (adversarial_loss(real_logits, True, mode) + adversarial_loss(fake_logits, False, mode))


def generator_adversarial_loss(fake_logits: Logits, mode: str = "lsgan") -> torch.Tensor:
    """L_GAN for a generator: adv(D(G(x)), real), i.e. the generator wants its output judged real."""
    return adversarial_loss(fake_logits, True, mode)


def cycle_loss(
    x: torch.Tensor,
    x_cycled: torch.Tensor,
    y: torch.Tensor | None = None,
    y_cycled: torch.Tensor | None = None,
    distance: str = "mse",
) -> torch.Tensor:
    """L_cyc = d(F(G(x)), x) + d(G(F(y)), y), with ``x_cycled`` = F(G(x)) and ``y_cycled`` = G(F(y)).

    d is the mean squared error as in the paper (``"l1"``, CycleGAN's choice, is an option).
    ``y`` and ``y_cycled`` may both be None for a one-sided (sim -> real -> sim) cycle.
    """
    loss = _distance(x_cycled, x, distance, ("x_cycled", "x"))
    if (y is None) != (y_cycled is None):
        raise ValueError("y and y_cycled must both be given or both be None")
    if y is not None:
        loss = loss + _distance(y_cycled, y, distance, ("y_cycled", "y"))
    return loss


def identity_loss(
    x: torch.Tensor,
    f_x: torch.Tensor,
    y: torch.Tensor | None = None,
    g_y: torch.Tensor | None = None,
    distance: str = "mse",
) -> torch.Tensor:
    """Optional CycleGAN identity term d(F(x), x) + d(G(y), y).

    ``f_x`` = F(x) is the real -> sim generator F applied to a *sim* image x, and ``g_y`` = G(y) the
    sim -> real generator applied to a *real* image y: each generator should leave an image that
    is already in its output domain unchanged. ``y`` and ``g_y`` may both be None.
    """
    loss = _distance(f_x, x, distance, ("f_x", "x"))
    if (y is None) != (g_y is None):
        raise ValueError("y and g_y must both be given or both be None")
    if y is not None:
        loss = loss + _distance(g_y, y, distance, ("g_y", "y"))
    return loss


RL_SCENE_TERMS = ("x_x1", "x_x2", "x1_x2", "y_y1", "y_y2", "y1_y2")
"""Names of the six RL-scene terms: ``x_x1`` is d(q_x, q_x'), ``x1_x2`` is d(q_x', q_x''), etc."""


def rl_scene_terms(
    q_x: torch.Tensor,
    q_x1: torch.Tensor,
    q_x2: torch.Tensor,
    q_y: torch.Tensor | None = None,
    q_y1: torch.Tensor | None = None,
    q_y2: torch.Tensor | None = None,
    distance: str = "mse",
) -> dict[str, torch.Tensor]:
    """The six distance terms of L_RL-scene by name (see :data:`RL_SCENE_TERMS`), for logging.

    Arguments are Q-values (sigmoid probabilities in [0, 1]) of one batch of actions a:
    q_x = Q_sim(x, a), q_x1 = q_x' = Q_real(G(x), a), q_x2 = q_x'' = Q_sim(F(G(x)), a),
    q_y = Q_real(y, a), q_y1 = q_y' = Q_sim(F(y), a), q_y2 = q_y'' = Q_real(G(F(y)), a).
    The y-triple may be all None (sim-only consistency); the result then has only the x terms.
    """
    terms = {
        "x_x1": _distance(q_x, q_x1, distance, ("q_x", "q_x1")),
        "x_x2": _distance(q_x, q_x2, distance, ("q_x", "q_x2")),
        "x1_x2": _distance(q_x1, q_x2, distance, ("q_x1", "q_x2")),
    }
    given = [q is not None for q in (q_y, q_y1, q_y2)]
    if any(given) and not all(given):
        raise ValueError("q_y, q_y1 and q_y2 must all be given or all be None")
    if all(given):
        terms["y_y1"] = _distance(q_y, q_y1, distance, ("q_y", "q_y1"))
        terms["y_y2"] = _distance(q_y, q_y2, distance, ("q_y", "q_y2"))
        terms["y1_y2"] = _distance(q_y1, q_y2, distance, ("q_y1", "q_y2"))
    return terms


def rl_scene_consistency_loss(
    q_x: torch.Tensor,
    q_x1: torch.Tensor,
    q_x2: torch.Tensor,
    q_y: torch.Tensor | None = None,
    q_y1: torch.Tensor | None = None,
    q_y2: torch.Tensor | None = None,
    distance: str = "mse",
) -> torch.Tensor:
    """L_RL-scene: the sum of the six pairwise distances of :func:`rl_scene_terms`.

    It is zero exactly when a translation (sim -> real, and its cycle back) leaves the Q-value of
    every action unchanged, so the generators keep the task-relevant parts of the scene.
    """
    return torch.stack(list(rl_scene_terms(q_x, q_x1, q_x2, q_y, q_y1, q_y2, distance).values())).sum()


@dataclass(frozen=True)
class LossWeights:
    """The lambdas of the RL-CycleGAN objective (paper defaults except the optional identity term)."""

    lambda_gan: float = 1.0
    """Weight of each generator's adversarial loss, L_GAN(G, D_Y) and L_GAN(F, D_X)."""
    lambda_cycle: float = 10.0
    """Weight of the cycle-consistency loss L_cyc."""
    lambda_rl_scene: float = 1.0
    """Weight of the RL-scene consistency loss L_RL-scene."""
    lambda_rl: float = 1.0
    """Weight of the Q-networks' own TD loss L_RL(Q); used by the trainer for the Q-networks, not
    part of :func:`total_generator_loss` (the generators get no gradient from it)."""
    lambda_identity: float = 0.0
    """Weight of the optional CycleGAN identity loss (0 = off, as in the paper)."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 0:
                raise ValueError(f"LossWeights.{name} must be >= 0, got {value}")


GENERATOR_TERMS = ("gan_g", "gan_f", "cycle", "rl_scene", "identity")
"""Keys understood by :func:`total_generator_loss`: gan_g = L_GAN(G, D_Y), gan_f = L_GAN(F, D_X),
cycle = L_cyc, rl_scene = L_RL-scene, identity = L_id."""


def total_generator_loss(terms: dict[str, torch.Tensor], weights: LossWeights = LossWeights()) -> torch.Tensor:
    """lambda_GAN (gan_g + gan_f) + lambda_cycle cycle + lambda_RL-scene rl_scene + lambda_identity identity.

    ``terms`` maps names of :data:`GENERATOR_TERMS` to scalar losses; a missing term counts 0, an
    unknown name is an error (it would otherwise be silently dropped).
    """
    unknown = sorted(set(terms) - set(GENERATOR_TERMS))
    if unknown:
        raise ValueError(f"terms has unknown names {unknown}; expected some of {GENERATOR_TERMS}")
    scale = {
        "gan_g": weights.lambda_gan,
        "gan_f": weights.lambda_gan,
        "cycle": weights.lambda_cycle,
        "rl_scene": weights.lambda_rl_scene,
        "identity": weights.lambda_identity,
    }
    total = torch.zeros(())
    for name, value in terms.items():
        total = total.to(value.device) + scale[name] * value
    return total
