"""CEM maximisation over a Box: finds known optima, respects the bounds, is reproducible."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlcyclegan.rl.cem import cem_argmax


def concave_q(centres: torch.Tensor, seen: list | None = None):
    """q(s, a) = -||a - c_s||^2 for state s with optimum c_s; records the evaluated actions."""

    def q_fn(state, actions):  # actions (B, N, A) -> (B, N)
        if seen is not None:
            seen.append(actions.clone())
        return -((actions - centres[state][:, None, :]) ** 2).sum(-1)

    return q_fn


CENTRES = torch.tensor([[0.5, -0.3], [-0.7, 0.2], [0.1, 0.8], [-0.2, -0.6]])
STATES = torch.arange(len(CENTRES))  # state i indexes CENTRES[i]
BOX = (np.full(2, -1.0), np.full(2, 1.0))


def test_finds_each_states_maximum_of_a_concave_function():
    actions, values = cem_argmax(concave_q(CENTRES), STATES, BOX, iterations=4, samples=64, elites=6,
                                 generator=torch.Generator().manual_seed(0))

    assert actions.shape == (4, 2) and values.shape == (4,)
    assert (actions - CENTRES).abs().max() < 0.15


def test_defaults_land_near_the_maximum():
    actions, _ = cem_argmax(concave_q(CENTRES), STATES, BOX, generator=torch.Generator().manual_seed(1))

    assert (actions - CENTRES).abs().max() < 0.3


def test_more_iterations_get_closer_to_the_maximum():
    def error(iterations: int) -> float:
        errs = []
        for seed in range(5):
            a, _ = cem_argmax(concave_q(CENTRES), STATES, BOX, iterations=iterations, samples=32, elites=4,
                              generator=torch.Generator().manual_seed(seed))
            errs.append((a - CENTRES).norm(dim=1).mean().item())
        return float(np.mean(errs))

    assert error(5) < 0.5 * error(1)


def test_optimum_outside_the_box_gives_actions_on_the_bound():
    outside = torch.tensor([[3.0, 0.0], [-5.0, 4.0]])

    actions, _ = cem_argmax(concave_q(outside), torch.arange(2), BOX, iterations=3, generator=torch.Generator().manual_seed(0))

    assert ((actions >= -1) & (actions <= 1)).all()
    assert actions[0, 0] > 0.95 and abs(actions[0, 1]) < 0.15
    assert actions[1, 0] < -0.95 and actions[1, 1] > 0.9


def test_every_evaluated_action_is_inside_an_asymmetric_box():
    low, high = np.array([0.0, -2.0]), np.array([1.0, 5.0])
    seen: list[torch.Tensor] = []
    far = torch.tensor([[-4.0, 9.0], [3.0, -7.0], [0.5, 1.5]])

    actions, _ = cem_argmax(concave_q(far, seen), torch.arange(3), (low, high), iterations=3, samples=32, elites=4,
                            generator=torch.Generator().manual_seed(0))

    evaluated = torch.cat(seen, dim=1)
    assert len(seen) == 3 and evaluated.shape == (3, 96, 2)
    lo, hi = torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32)
    assert ((evaluated >= lo) & (evaluated <= hi)).all()
    assert (evaluated == lo).any() and (evaluated == hi).any()  # clamping, not rejection, keeps them inside
    assert ((actions >= lo) & (actions <= hi)).all()


def test_returned_values_are_q_at_the_returned_actions():
    q_fn = concave_q(CENTRES)

    actions, values = cem_argmax(q_fn, STATES, BOX, generator=torch.Generator().manual_seed(3))

    torch.testing.assert_close(values, q_fn(STATES, actions[:, None])[:, 0])


def test_returned_value_is_the_best_of_all_evaluated_actions():
    seen: list[torch.Tensor] = []
    q_fn = concave_q(CENTRES, seen)

    _, values = cem_argmax(q_fn, STATES, BOX, iterations=3, samples=16, elites=4, generator=torch.Generator().manual_seed(4))

    all_values = torch.cat([concave_q(CENTRES)(STATES, a) for a in seen], dim=1)
    torch.testing.assert_close(values, all_values.max(dim=1).values)


def test_same_generator_seed_gives_identical_results():
    runs = [cem_argmax(concave_q(CENTRES), STATES, BOX, generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    other = cem_argmax(concave_q(CENTRES), STATES, BOX, generator=torch.Generator().manual_seed(8))

    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][0], other[0])


@pytest.mark.parametrize("iterations, samples, elites", [(2, 4, 5), (2, 8, 0), (0, 8, 2)])
def test_invalid_cem_settings_raise(iterations, samples, elites):
    with pytest.raises(ValueError, match="elites"):
        cem_argmax(concave_q(CENTRES), STATES, BOX, iterations=iterations, samples=samples, elites=elites)


def test_bounds_with_low_above_high_raise():
    with pytest.raises(ValueError, match="low <= high"):
        cem_argmax(concave_q(CENTRES), STATES, (np.ones(2), -np.ones(2)))


def test_gymnasium_box_is_accepted_as_the_action_space():
    box = gym.spaces.Box(low=np.array([-1.0, 0.0], np.float32), high=np.array([0.0, 1.0], np.float32))
    target = torch.tensor([[-0.5, 0.5]])

    actions, _ = cem_argmax(concave_q(target), torch.arange(1), box, iterations=4, generator=torch.Generator().manual_seed(0))

    assert (actions - target).abs().max() < 0.15


def test_dict_state_batch_gives_batch_size():
    state = {"features": torch.zeros(3, 5), "idx": torch.tensor([0, 1, 2])}

    actions, values = cem_argmax(lambda s, a: concave_q(CENTRES)(s["idx"], a), state, BOX, generator=torch.Generator().manual_seed(0))

    assert actions.shape == (3, 2) and values.shape == (3,)


def test_q_fn_with_wrong_output_shape_raises():
    with pytest.raises(ValueError, match="q_fn returned shape"):
        cem_argmax(lambda s, a: a.sum(-1).flatten(), STATES, BOX)
