"""QT-Opt's TD equations: targets, clipped double-Q, losses and target-network updates."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rlcyclegan.nets.qnet import GraspQNet, QNetConfig
from rlcyclegan.rl.cem import cem_argmax
from rlcyclegan.rl.qtopt import clipped_double_q, ema_update, lagged_update, polyak_update, td_loss, td_targets


def test_td_targets_bootstrap_only_from_non_terminal_next_states():
    reward = torch.tensor([1.0, 0.0, 0.0, 1.0])
    done = torch.tensor([True, False, True, False])
    next_value = torch.tensor([0.8, 0.5, 0.9, 0.2])

    target = td_targets(reward, done, next_value, gamma=0.9)

    torch.testing.assert_close(target, torch.tensor([1.0, 0.45, 0.0, 1.18]))


def test_td_targets_use_the_given_discount():
    target = td_targets(torch.zeros(1), torch.zeros(1, dtype=torch.bool), torch.ones(1), gamma=0.5)

    torch.testing.assert_close(target, torch.tensor([0.5]))


def test_clipped_double_q_takes_the_elementwise_minimum():
    q1 = torch.tensor([0.2, 0.9, 0.5, 0.7])
    q2 = torch.tensor([0.3, 0.1, 0.5, 0.6])

    torch.testing.assert_close(clipped_double_q(q1, q2), torch.tensor([0.2, 0.1, 0.5, 0.6]))


def test_next_value_from_two_q_networks_is_the_minimum_of_both_at_the_cem_action():
    """The target computation of the trainer: a* by CEM on the first network, V = min of both at a*."""
    cfg = QNetConfig(image_size=16, merge_size=4, state_dim=0, action_dim=2, channels=4, head_channels=4, hidden=8)
    torch.manual_seed(0)
    net1, net2 = GraspQNet(cfg).eval(), GraspQNet(cfg).eval()
    with torch.no_grad():  # put the two networks' values in overlapping ranges
        net2.mlp[-1].bias.fill_(net1(*_probe_batch()).mean() - net2(*_probe_batch()).mean() + net2.mlp[-1].bias.item())
    image, state, _ = _probe_batch()
    low, high = -torch.ones(2), torch.ones(2)

    with torch.no_grad():
        feats = net1.encode(image)
        a_star, logit1 = cem_argmax(lambda s, a: net1.head(s[0], s[1], a), (feats, state), (low, high),
                                    generator=torch.Generator().manual_seed(0))
        q1 = torch.sigmoid(net1(image, state, a_star))
        q2 = torch.sigmoid(net2(image, state, a_star))
        v = clipped_double_q(torch.sigmoid(logit1), q2)

    torch.testing.assert_close(torch.sigmoid(logit1), q1)
    assert (q1 < q2).any() and (q2 < q1).any()  # each network is the smaller one somewhere
    torch.testing.assert_close(v, torch.minimum(q1, q2))


def _probe_batch():
    g = torch.Generator().manual_seed(5)
    image = torch.randint(0, 256, (32, 16, 16, 3), generator=g, dtype=torch.uint8)
    return image, torch.zeros(32, 0), torch.rand(32, 2, generator=g) * 2 - 1


def test_log_loss_is_binary_cross_entropy_of_sigmoid_q():
    logits = torch.tensor([0.0, 2.0, -1.0])
    targets = torch.tensor([1.0, 0.3, 0.0])
    expected = 0.0
    for x, y in zip(logits.tolist(), targets.tolist()):
        q = 1 / (1 + math.exp(-x))
        expected -= y * math.log(q) + (1 - y) * math.log(1 - q)

    assert td_loss(logits, targets, "log").item() == pytest.approx(expected / 3, rel=1e-6)


def test_mse_loss_is_squared_error_of_sigmoid_q():
    logits = torch.tensor([0.0, 2.0, -1.0])
    targets = torch.tensor([1.0, 0.3, 0.0])
    expected = sum((1 / (1 + math.exp(-x)) - y) ** 2 for x, y in zip(logits.tolist(), targets.tolist())) / 3

    assert td_loss(logits, targets, "mse").item() == pytest.approx(expected, rel=1e-6)


def test_log_loss_is_the_default_and_is_minimal_at_the_target():
    targets = torch.tensor([0.25])
    at_target = td_loss(torch.logit(targets), targets)
    off = td_loss(torch.logit(targets) + 0.5, targets)

    assert at_target < off


def test_unknown_loss_kind_raises():
    with pytest.raises(ValueError, match="'huber'"):
        td_loss(torch.zeros(2), torch.zeros(2), "huber")


def _linear(seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(3, 2)


def test_polyak_update_moves_target_towards_online_by_one_minus_decay():
    target, online = _linear(0), _linear(1)
    before = {k: v.clone() for k, v in target.state_dict().items()}

    polyak_update(target, online, decay=0.75)

    for name, value in target.state_dict().items():
        expected = 0.75 * before[name] + 0.25 * online.state_dict()[name]
        torch.testing.assert_close(value, expected)


def test_polyak_update_with_decay_zero_copies_online():
    target, online = _linear(0), _linear(1)

    polyak_update(target, online, decay=0.0)

    for name, value in target.state_dict().items():
        assert torch.equal(value, online.state_dict()[name])


def test_polyak_update_leaves_online_unchanged():
    target, online = _linear(0), _linear(1)
    before = {k: v.clone() for k, v in online.state_dict().items()}

    polyak_update(target, online, decay=0.5)

    for name, value in online.state_dict().items():
        assert torch.equal(value, before[name])


def test_polyak_update_copies_buffers():
    torch.manual_seed(0)
    target, online = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    online.train()(torch.randn(8, 2) * 3 + 1)  # moves the running statistics

    polyak_update(target, online, decay=0.9)

    assert torch.equal(target.running_mean, online.running_mean)
    assert torch.equal(target.running_var, online.running_var)


def test_ema_update_averages_batch_norm_statistics_and_copies_the_batch_counter():
    torch.manual_seed(0)
    average, online = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    online.train()(torch.randn(8, 2) * 3 + 1)
    before = {k: v.clone() for k, v in average.state_dict().items()}

    ema_update(average, online, decay=0.9)

    for name in ("weight", "bias", "running_mean", "running_var"):
        torch.testing.assert_close(average.state_dict()[name], 0.9 * before[name] + 0.1 * online.state_dict()[name])
    assert torch.equal(average.num_batches_tracked, online.num_batches_tracked)


def test_lagged_update_copies_only_on_multiples_of_the_period():
    target, online = _linear(0), _linear(1)

    refreshed = [lagged_update(target, online, step, period=3) for step in (1, 2)]
    unchanged = torch.equal(target.weight, _linear(0).weight)
    copied = lagged_update(target, online, 3, period=3)

    assert refreshed == [False, False] and unchanged
    assert copied is True and torch.equal(target.weight, online.weight) and torch.equal(target.bias, online.bias)


def test_lagged_target_stays_fixed_between_refreshes_while_online_trains():
    target, online = _linear(0), _linear(1)
    opt = torch.optim.SGD(online.parameters(), lr=0.1)
    snapshots = {}
    for step in range(1, 9):
        opt.zero_grad()
        online(torch.ones(1, 3)).sum().backward()
        opt.step()
        lagged_update(target, online, step, period=4)
        snapshots[step] = target.weight.clone()

    assert torch.equal(snapshots[4], snapshots[5]) and torch.equal(snapshots[5], snapshots[7])
    assert not torch.equal(snapshots[7], snapshots[8])
    assert torch.equal(snapshots[8], online.weight) and not torch.equal(snapshots[7], online.weight)


def test_lagged_update_with_non_positive_period_never_copies():
    target, online = _linear(0), _linear(1)

    assert lagged_update(target, online, 0, period=0) is False
    assert not torch.equal(target.weight, online.weight)


def test_lagged_copy_is_independent_of_later_online_changes():
    target, online = _linear(0), _linear(1)
    lagged_update(target, online, 2, period=2)

    with torch.no_grad():
        online.weight.add_(1.0)

    assert not torch.equal(target.weight, online.weight)


def test_qtopt_targets_are_the_reward_at_terminal_states_and_bootstrap_elsewhere():
    from rlcyclegan.nets.qnet import GraspQNet, QNetConfig
    from rlcyclegan.rl.qtopt import qtopt_targets

    torch.manual_seed(0)
    net = GraspQNet(QNetConfig(image_size=16, merge_size=4, channels=4, head_channels=4, hidden=8, state_dim=2, action_dim=3))
    images = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8)
    reward = torch.tensor([1.0, 0.0, 0.0, 1.0])
    done = torch.tensor([True, True, False, False])
    bounds = (torch.full((3,), -1.0), torch.full((3,), 1.0))
    target = qtopt_targets(net, net, images, torch.zeros(4, 2), reward, done, bounds, gamma=0.9,
                           cem=dict(iterations=1, samples=8, elites=2), generator=torch.Generator().manual_seed(0))
    assert target[:2].tolist() == [1.0, 0.0]
    assert 0.0 < target[2] <= 0.9 and target[3] == 1.0  # r + gamma V clipped to 1


def test_auxiliary_loss_is_mse_over_known_targets_only():
    from rlcyclegan.rl.qtopt import auxiliary_loss

    pred = torch.tensor([[0.5], [0.2], [0.9]], requires_grad=True)
    target = torch.tensor([[0.0], [float("nan")], [1.0]])

    loss = auxiliary_loss(pred, target)
    loss.backward()

    assert math.isclose(loss.item(), (0.25 + 0.01) / 2, rel_tol=1e-6)
    assert pred.grad[1, 0] == 0.0


def test_auxiliary_loss_without_known_targets_is_zero():
    from rlcyclegan.rl.qtopt import auxiliary_loss

    pred = torch.ones(2, 1, requires_grad=True)

    assert auxiliary_loss(pred, torch.full((2, 1), float("nan"))).item() == 0.0
