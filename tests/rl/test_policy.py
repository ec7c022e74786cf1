"""The CEM policy over a Q-network: action shapes and bounds, loading checkpoints and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlcyclegan.nets.qnet import GraspQNet, QNetConfig
from rlcyclegan.rl.checkpoint import CheckpointError, save_checkpoint
from rlcyclegan.rl.policy import Policy

CFG = QNetConfig(image_size=16, merge_size=4, state_dim=2, action_dim=3, channels=4, head_channels=4, hidden=8)
LOW = np.array([-1.0, 0.0, -0.5], np.float32)
HIGH = np.array([1.0, 2.0, 0.5], np.float32)
CEM = {"cem_iterations": 2, "cem_samples": 16, "cem_elites": 4}


def qnet(seed: int = 0) -> GraspQNet:
    torch.manual_seed(seed)
    return GraspQNet(CFG)


def obs(batch: int | None = None, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    lead = () if batch is None else (batch,)
    return {
        "image": rng.integers(0, 256, (*lead, 16, 16, 3), dtype=np.uint8),
        "state": rng.normal(size=(*lead, 2)).astype(np.float32),
    }


def payload(net: GraspQNet) -> dict:
    return {
        "kind": "qtopt",
        "policy": {"qnet_config": net.cfg.to_dict(), "qnet": net.state_dict(), "action_low": LOW, "action_high": HIGH,
                   "cem": CEM, "env": {"id": "rlcyclegan/Grasp-v0", "kwargs": {}}},
        "step": 3,
    }


@pytest.fixture
def saved(tmp_path):
    return save_checkpoint(tmp_path / "checkpoints" / "latest.pt", payload(qnet()))


def test_single_observation_gives_one_action_inside_the_bounds():
    action = Policy(qnet(), LOW, HIGH, **CEM).act(obs())

    assert action.shape == (3,) and action.dtype == np.float32
    assert np.all(action >= LOW) and np.all(action <= HIGH)


def test_batched_observations_give_one_action_each_inside_the_bounds():
    actions = Policy(qnet(), LOW, HIGH, **CEM).act(obs(batch=5))

    assert actions.shape == (5, 3) and actions.dtype == np.float32
    assert np.all(actions >= LOW) and np.all(actions <= HIGH)


def test_exploration_keeps_actions_inside_the_bounds():
    actions = Policy(qnet(), LOW, HIGH, **CEM).act(obs(batch=64), epsilon=0.5, noise=3.0)

    assert np.all(actions >= LOW) and np.all(actions <= HIGH)
    assert (actions == LOW).any() and (actions == HIGH).any()  # the noise pushed some out: clipped, not dropped


def test_greedy_action_scores_at_least_as_high_as_random_actions():
    policy = Policy(qnet(), LOW, HIGH, cem_iterations=3, cem_samples=64, cem_elites=6)
    o = obs(batch=4)
    rng = np.random.default_rng(0)

    greedy = policy.q_values(o, policy.act(o))
    random = policy.q_values(o, rng.uniform(LOW, HIGH, (4, 32, 3)).astype(np.float32))

    assert greedy.shape == (4,) and random.shape == (4, 32)
    assert np.all(greedy >= random.max(axis=1) - 1e-3)


def test_image_only_observation_works_for_a_stateless_network():
    net = GraspQNet(QNetConfig(**{**CFG.to_dict(), "state_dim": 0}))

    action = Policy(net, LOW, HIGH, **CEM).act(obs()["image"])

    assert action.shape == (3,)


def test_observation_with_wrong_state_size_raises():
    o = obs()
    o["state"] = np.zeros(5, np.float32)

    with pytest.raises(ValueError, match="state"):
        Policy(qnet(), LOW, HIGH, **CEM).act(o)


def test_loaded_policy_acts_like_the_saved_network(saved):
    original = Policy(qnet(), LOW, HIGH, seed=4, **CEM)

    loaded = Policy.load(saved, seed=4)

    np.testing.assert_array_equal(loaded.act(obs(batch=3)), original.act(obs(batch=3)))
    np.testing.assert_array_equal(loaded.low, LOW)
    np.testing.assert_array_equal(loaded.high, HIGH)
    assert loaded.cem == {"iterations": 2, "samples": 16, "elites": 4}


def test_policy_loads_from_a_run_folder(saved):
    run = saved.parent.parent

    policy = Policy.load(run)

    assert policy.qnet.cfg == CFG


def test_corrupted_checkpoint_raises_naming_the_file(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(np.random.default_rng(0).bytes(2048))

    with pytest.raises(CheckpointError, match="not a readable checkpoint") as err:
        Policy.load(path)

    assert str(path) in str(err.value)


def test_truncated_checkpoint_raises_naming_the_file(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])

    with pytest.raises(CheckpointError) as err:
        Policy.load(saved)

    assert str(saved) in str(err.value)


def test_torch_file_that_is_not_a_checkpoint_raises(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(qnet().state_dict(), path)

    with pytest.raises(CheckpointError, match="not an rlcyclegan checkpoint") as err:
        Policy.load(path)

    assert str(path) in str(err.value)


def test_checkpoint_without_a_policy_raises(tmp_path):
    path = save_checkpoint(tmp_path / "gan.pt", {"kind": "cyclegan", "step": 1})

    with pytest.raises(CheckpointError, match="holds no policy"):
        Policy.load(path)


def test_weights_that_do_not_match_their_config_raise(tmp_path):
    bad = payload(qnet())
    bad["policy"]["qnet_config"] = {**CFG.to_dict(), "hidden": 16}
    path = save_checkpoint(tmp_path / "bad.pt", bad)

    with pytest.raises(CheckpointError, match="do not match their config"):
        Policy.load(path)


def test_missing_checkpoint_file_raises(tmp_path):
    path = tmp_path / "nope.pt"

    with pytest.raises(CheckpointError, match="no such checkpoint") as err:
        Policy.load(path)

    assert str(path) in str(err.value)


def test_folder_without_checkpoint_raises(tmp_path):
    with pytest.raises(CheckpointError, match="latest.pt"):
        Policy.load(tmp_path)


def test_policy_load_takes_a_cem_override_and_keeps_the_rest(saved):
    policy = Policy.load(saved, cem={"iterations": 3, "samples": 32})

    assert policy.cem == {"iterations": 3, "samples": 32, "elites": Policy.load(saved).cem["elites"]}


def test_policy_load_rejects_an_unknown_cem_setting_naming_it(saved):
    with pytest.raises(ValueError, match="cem: unknown setting"):
        Policy.load(saved, cem={"population": 10})
