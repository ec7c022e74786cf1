"""RL-CycleGAN's loss equations on small hand-made tensors with hand-computed values."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from rlcyclegan.losses import (
    LossWeights,
    adversarial_loss,
    cycle_loss,
    discriminator_loss,
    generator_adversarial_loss,
    identity_loss,
    rl_scene_consistency_loss,
    rl_scene_terms,
    total_generator_loss,
)


def _close(value: torch.Tensor, expected: float) -> None:
    torch.testing.assert_close(value, torch.tensor(expected))


# adversarial losses


def test_lsgan_loss_is_the_mean_squared_error_to_one_for_real():
    # ((0.5 - 1)^2 + (-1 - 1)^2) / 2 = (0.25 + 4) / 2
    _close(adversarial_loss(torch.tensor([0.5, -1.0]), True, "lsgan"), 2.125)


def test_lsgan_loss_is_the_mean_squared_error_to_zero_for_fake():
    # (0.5^2 + (-1)^2) / 2 = (0.25 + 1) / 2
    _close(adversarial_loss(torch.tensor([0.5, -1.0]), False, "lsgan"), 0.625)


def test_nonsaturating_loss_is_minus_log_sigmoid_for_real():
    # -log sigmoid(0) = log 2, -log sigmoid(log 3) = -log(3/4) = log(4/3); mean = log(8/3) / 2
    _close(adversarial_loss(torch.tensor([0.0, math.log(3.0)]), True, "nonsaturating"), math.log(8 / 3) / 2)


def test_nonsaturating_loss_is_minus_log_one_minus_sigmoid_for_fake():
    # -log(1 - 1/2) = log 2, -log(1 - 3/4) = log 4; mean = (log 2 + 2 log 2) / 2
    _close(adversarial_loss(torch.tensor([0.0, math.log(3.0)]), False, "nonsaturating"), 1.5 * math.log(2.0))


def test_lsgan_and_nonsaturating_losses_differ_on_the_same_logits():
    logits = torch.tensor([0.0, 2.0])
    # lsgan: ((0 - 1)^2 + (2 - 1)^2) / 2 = 1; nonsaturating: (log 2 + log(1 + e^-2)) / 2
    _close(adversarial_loss(logits, True, "lsgan"), 1.0)
    _close(adversarial_loss(logits, True, "nonsaturating"), (math.log(2.0) + math.log1p(math.exp(-2.0))) / 2)


def test_multi_scale_logits_average_the_per_scale_losses():
    scales = [torch.tensor([0.5, -1.0]), torch.tensor([[1.0]])]
    # scale 1: 2.125 (as above), scale 2: (1 - 1)^2 = 0; average = 1.0625, not the pooled 4.25 / 3
    _close(adversarial_loss(scales, True, "lsgan"), 1.0625)


def test_a_single_scale_list_equals_the_plain_tensor():
    logits = torch.tensor([0.3, -0.7, 1.2])
    torch.testing.assert_close(adversarial_loss([logits], False), adversarial_loss(logits, False))


def test_unknown_adversarial_mode_is_an_error():
    with pytest.raises(ValueError, match="mode"):
        adversarial_loss(torch.zeros(2), True, "wasserstein")


def test_discriminator_loss_is_half_the_real_plus_fake_losses():
    # real: ((1 - 1)^2 + (0.5 - 1)^2) / 2 = 0.125; fake: (0.2^2 + 0.4^2) / 2 = 0.1; 0.5 * (0.125 + 0.1)
    _close(discriminator_loss(torch.tensor([1.0, 0.5]), torch.tensor([0.2, 0.4]), "lsgan"), 0.1125)


def test_generator_adversarial_loss_labels_its_fakes_real():
    # ((0.2 - 1)^2 + (0.4 - 1)^2) / 2 = (0.64 + 0.36) / 2
    _close(generator_adversarial_loss(torch.tensor([0.2, 0.4]), "lsgan"), 0.5)


# cycle and identity losses

X = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
X_CYCLED = torch.tensor([[0.0, 1.0], [2.0, 5.0]])
Y = torch.tensor([1.0, 1.0])
Y_CYCLED = torch.tensor([0.0, 3.0])


def test_cycle_loss_sums_the_mean_squared_errors_of_both_cycles():
    # x: (0 + 0 + 0 + 2^2) / 4 = 1; y: (1^2 + 2^2) / 2 = 2.5
    _close(cycle_loss(X, X_CYCLED, Y, Y_CYCLED), 3.5)


def test_cycle_loss_with_l1_distance_sums_mean_absolute_errors():
    # x: 2 / 4 = 0.5; y: (1 + 2) / 2 = 1.5
    _close(cycle_loss(X, X_CYCLED, Y, Y_CYCLED, distance="l1"), 2.0)


def test_one_sided_cycle_loss_has_only_the_sim_term():
    _close(cycle_loss(X, X_CYCLED), 1.0)


def test_cycle_loss_needs_y_and_its_cycle_together():
    with pytest.raises(ValueError, match="y_cycled"):
        cycle_loss(X, X_CYCLED, Y, None)


def test_cycle_loss_names_mismatched_shapes():
    with pytest.raises(ValueError, match=r"x_cycled has shape \(4,\)"):
        cycle_loss(X, torch.zeros(4))


def test_unknown_distance_is_an_error():
    with pytest.raises(ValueError, match="distance"):
        cycle_loss(X, X_CYCLED, distance="huber")


def test_identity_loss_sums_both_generators_changes_to_in_domain_images():
    x, f_x = torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.1])  # (0 + 0.4^2) / 2 = 0.08
    y, g_y = torch.tensor([0.0, 0.2]), torch.tensor([0.3, 0.2])  # (0.3^2 + 0) / 2 = 0.045
    _close(identity_loss(x, f_x, y, g_y), 0.125)


# RL-scene consistency

Q_X, Q_X1, Q_X2 = torch.tensor([0.2, 0.6]), torch.tensor([0.4, 0.6]), torch.tensor([0.2, 0.2])
Q_Y, Q_Y1, Q_Y2 = torch.tensor([0.9, 0.1]), torch.tensor([0.6, 0.1]), torch.tensor([0.9, 0.5])


def test_rl_scene_terms_are_the_six_pairwise_mean_squared_errors():
    terms = rl_scene_terms(Q_X, Q_X1, Q_X2, Q_Y, Q_Y1, Q_Y2)

    expected = {
        "x_x1": (0.2**2 + 0.0) / 2,  # q_x vs q_x'
        "x_x2": (0.0 + 0.4**2) / 2,  # q_x vs q_x''
        "x1_x2": (0.2**2 + 0.4**2) / 2,  # q_x' vs q_x''
        "y_y1": (0.3**2 + 0.0) / 2,  # q_y vs q_y'
        "y_y2": (0.0 + 0.4**2) / 2,  # q_y vs q_y''
        "y1_y2": (0.3**2 + 0.4**2) / 2,  # q_y' vs q_y''
    }
    assert terms.keys() == expected.keys()
    for name, value in expected.items():
        _close(terms[name], value)


def test_rl_scene_consistency_loss_is_the_sum_of_the_six_terms():
    # 0.02 + 0.08 + 0.1 + 0.045 + 0.08 + 0.125
    _close(rl_scene_consistency_loss(Q_X, Q_X1, Q_X2, Q_Y, Q_Y1, Q_Y2), 0.45)


def test_sim_only_rl_scene_loss_has_the_three_x_terms():
    assert set(rl_scene_terms(Q_X, Q_X1, Q_X2)) == {"x_x1", "x_x2", "x1_x2"}
    _close(rl_scene_consistency_loss(Q_X, Q_X1, Q_X2), 0.2)  # 0.02 + 0.08 + 0.1


def test_rl_scene_loss_is_zero_when_all_six_q_values_are_equal():
    q = torch.tensor([0.3, 0.7, 0.5])
    _close(rl_scene_consistency_loss(q, q.clone(), q.clone(), q.clone(), q.clone(), q.clone()), 0.0)


def test_rl_scene_loss_gradient_reaches_each_of_the_six_q_values():
    qs = [q.clone().requires_grad_() for q in (Q_X, Q_X1, Q_X2, Q_Y, Q_Y1, Q_Y2)]

    rl_scene_consistency_loss(*qs).backward()

    for q in qs:
        assert q.grad is not None and q.grad.abs().sum() > 0


def test_rl_scene_loss_needs_the_whole_y_triple():
    with pytest.raises(ValueError, match="q_y"):
        rl_scene_consistency_loss(Q_X, Q_X1, Q_X2, Q_Y, None, None)


def test_rl_scene_loss_names_mismatched_shapes():
    with pytest.raises(ValueError, match=r"q_x2 has shape \(3,\)"):
        rl_scene_consistency_loss(Q_X, Q_X1, torch.zeros(3))


# weighting

TERMS = {
    "gan_g": torch.tensor(0.5),
    "gan_f": torch.tensor(0.25),
    "cycle": torch.tensor(0.1),
    "rl_scene": torch.tensor(0.2),
    "identity": torch.tensor(0.3),
}


def test_loss_weights_default_to_the_papers_lambdas():
    w = LossWeights()
    lambdas = (w.lambda_gan, w.lambda_cycle, w.lambda_rl_scene, w.lambda_rl, w.lambda_identity)
    assert lambdas == (1.0, 10.0, 1.0, 1.0, 0.0)


def test_loss_weights_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        LossWeights().lambda_gan = 2.0  # type: ignore[misc]


def test_negative_loss_weight_is_an_error():
    with pytest.raises(ValueError, match="lambda_cycle"):
        LossWeights(lambda_cycle=-1.0)


def test_total_generator_loss_with_default_weights():
    # 1 * (0.5 + 0.25) + 10 * 0.1 + 1 * 0.2 + 0 * 0.3
    _close(total_generator_loss(TERMS, LossWeights()), 1.95)


def test_total_generator_loss_applies_each_lambda_to_its_term():
    w = LossWeights(lambda_gan=2.0, lambda_cycle=5.0, lambda_rl_scene=0.5, lambda_identity=1.0)
    # 2 * (0.5 + 0.25) + 5 * 0.1 + 0.5 * 0.2 + 1 * 0.3
    _close(total_generator_loss(TERMS, w), 2.4)


def test_total_generator_loss_counts_missing_terms_as_zero():
    _close(total_generator_loss({"cycle": torch.tensor(0.1)}), 1.0)  # 10 * 0.1


def test_total_generator_loss_rejects_unknown_term_names():
    with pytest.raises(ValueError, match="cycel"):
        total_generator_loss({"cycel": torch.tensor(0.1)})
