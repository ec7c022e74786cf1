"""Replay for QT-Opt: the ring buffer, episodes as transitions, and mixed sampling."""

from __future__ import annotations

import numpy as np
import pytest

from rlcyclegan.data.store import Episode
from rlcyclegan.rl.replay import FIELDS, FractionReplay, IndexedReplay, ReplayBuffer, sample_mixed

IMG = (4, 4, 3)


def transitions(values, img=IMG, state_dim: int = 2, action_dim: int = 3) -> dict[str, np.ndarray]:
    """One transition per value; every field of transition i is filled with value i."""
    v = np.asarray(values, np.float32)
    n = len(v)
    return {
        "image": np.broadcast_to(v.astype(np.uint8)[:, None, None, None], (n, *img)).copy(),
        "next_image": np.broadcast_to((v + 1).astype(np.uint8)[:, None, None, None], (n, *img)).copy(),
        "state": np.repeat(v[:, None], state_dim, 1),
        "next_state": np.repeat(v[:, None] + 1, state_dim, 1),
        "action": np.repeat(v[:, None], action_dim, 1),
        "reward": v.copy(),
        "done": v.astype(int) % 2 == 0,
    }


def buffer(capacity: int, values=()) -> ReplayBuffer:
    buf = ReplayBuffer(capacity, IMG, 2, 3)
    if len(values):
        buf.add_transitions(**transitions(values))
    return buf


def episode(length: int, index: int = 0, terminal: bool = True) -> Episode:
    rng = np.random.default_rng(index)
    terminated = np.zeros(length, np.bool_)
    terminated[-1] = terminal
    return Episode(
        images=rng.integers(0, 256, (length + 1, *IMG), dtype=np.uint8),
        states=rng.normal(size=(length + 1, 2)).astype(np.float32),
        actions=rng.uniform(-1, 1, (length, 3)).astype(np.float32),
        rewards=np.arange(length, dtype=np.float32),
        terminated=terminated,
        truncated=~terminated & (np.arange(length) == length - 1),
        success=terminal,
        index=index,
    )


def test_buffer_grows_until_capacity():
    buf = buffer(5, [0, 1, 2])

    assert len(buf) == 3 and buf.position == 3
    assert sorted(buf.reward[: len(buf)].tolist()) == [0, 1, 2]


def test_ring_buffer_wraps_and_keeps_the_newest_transitions():
    buf = buffer(5)
    for start in range(0, 8, 2):  # 8 transitions in batches of 2
        buf.add_transitions(**transitions([start, start + 1]))

    assert len(buf) == 5 and buf.position == 3 and buf.added == 8
    assert sorted(buf.reward.tolist()) == [3, 4, 5, 6, 7]
    np.testing.assert_array_equal(buf.reward, [5, 6, 7, 3, 4])  # oldest overwritten first


def test_every_field_of_a_wrapped_row_belongs_to_the_same_transition():
    buf = buffer(4, range(7))

    for row in range(4):
        v = buf.reward[row]
        assert (buf.image[row] == v).all() and (buf.next_image[row] == v + 1).all()
        assert (buf.state[row] == v).all() and (buf.next_state[row] == v + 1).all()
        assert (buf.action[row] == v).all() and buf.done[row] == (int(v) % 2 == 0)


def test_batch_larger_than_capacity_keeps_its_last_rows():
    buf = buffer(3, range(10))

    assert len(buf) == 3 and buf.added == 10
    assert sorted(buf.reward.tolist()) == [7, 8, 9]


def test_add_episode_pairs_each_image_with_the_next_one():
    ep = episode(4, terminal=True)
    buf = ReplayBuffer(10, IMG, 2, 3)

    buf.add_episode(ep)

    assert len(buf) == 4
    for t in range(4):
        np.testing.assert_array_equal(buf.image[t], ep.images[t])
        np.testing.assert_array_equal(buf.next_image[t], ep.images[t + 1])
        np.testing.assert_array_equal(buf.state[t], ep.states[t])
        np.testing.assert_array_equal(buf.next_state[t], ep.states[t + 1])
        np.testing.assert_array_equal(buf.action[t], ep.actions[t])
    np.testing.assert_array_equal(buf.reward[:4], [0, 1, 2, 3])


@pytest.mark.parametrize("terminal", [True, False])
def test_done_is_terminated_and_not_truncated(terminal):
    buf = ReplayBuffer(10, IMG, 2, 3)

    buf.add_episode(episode(3, terminal=terminal))

    np.testing.assert_array_equal(buf.done[:3], [False, False, terminal])


def test_add_episode_with_other_image_shape_raises_naming_it():
    buf = ReplayBuffer(10, (8, 8, 3), 2, 3)

    with pytest.raises(ValueError, match=r"\(4, 4, 3\).*\(8, 8, 3\)"):
        buf.add_episode(episode(2, index=7))


def test_add_episode_with_other_action_size_raises_naming_it():
    buf = ReplayBuffer(10, IMG, 2, 6)

    with pytest.raises(ValueError, match="action dim 3"):
        buf.add_episode(episode(2))


def test_add_transitions_missing_a_field_raises_naming_it():
    batch = transitions([1, 2])
    del batch["next_state"]

    with pytest.raises(ValueError, match="next_state"):
        buffer(5).add_transitions(**batch)


def test_sample_draws_only_stored_transitions():
    buf = buffer(10, [3, 4, 5])

    batch = buf.sample(50, np.random.default_rng(0))

    assert set(batch) == set(FIELDS)
    assert batch["image"].shape == (50, *IMG) and batch["action"].shape == (50, 3)
    assert set(batch["reward"].tolist()) == {3, 4, 5}


def test_sampling_an_empty_buffer_raises():
    with pytest.raises(ValueError, match="empty"):
        buffer(3).sample(1, np.random.default_rng(0))


@pytest.mark.parametrize("n, fraction", [(16, 0.5), (10, 0.25), (7, 0.3), (8, 1.0), (8, 0.0)])
def test_mixed_batch_takes_round_n_times_fraction_rows_from_online(n, fraction):
    offline, online = buffer(20, [0] * 5), buffer(20, [1] * 5)

    batch = sample_mixed(offline, online, n, fraction, np.random.default_rng(0))

    assert len(batch["reward"]) == n
    assert int(batch["reward"].sum()) == int(round(n * fraction))


def test_mixed_batch_is_all_offline_while_online_is_empty():
    offline, online = buffer(20, [0] * 5), buffer(20)

    batch = sample_mixed(offline, online, 12, 0.5, np.random.default_rng(0))

    assert len(batch["reward"]) == 12 and (batch["reward"] == 0).all()


def test_mixed_batch_is_all_online_without_offline_data():
    batch = sample_mixed(None, buffer(20, [1] * 5), 12, 0.5, np.random.default_rng(0))

    assert len(batch["reward"]) == 12 and (batch["reward"] == 1).all()


def test_mixed_sampling_from_two_empty_buffers_raises():
    with pytest.raises(ValueError, match="empty"):
        sample_mixed(buffer(5), buffer(5), 4, 0.5, np.random.default_rng(0))


def test_same_generator_state_gives_the_same_batch():
    offline, online = buffer(20, range(10)), buffer(20, range(10, 20))

    a = sample_mixed(offline, online, 8, 0.5, np.random.default_rng(3))
    b = sample_mixed(offline, online, 8, 0.5, np.random.default_rng(3))

    for name in FIELDS:
        np.testing.assert_array_equal(a[name], b[name])


def test_capacity_below_one_raises():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, IMG, 2, 3)


def test_done_fraction_draws_that_share_among_episode_ends():
    buf = buffer(100, range(1, 100))  # done = value is even: 49 of 99 rows
    batch = buf.sample(40, np.random.default_rng(0), done_fraction=0.5)
    assert batch["done"][:20].all()  # the stratified part comes first
    assert batch["done"].mean() > 0.5


def test_done_fraction_falls_back_to_uniform_without_episode_ends():
    buf = buffer(10, [1, 3, 5, 7])  # no done rows
    batch = buf.sample(8, np.random.default_rng(0), done_fraction=0.5)
    assert set(batch["reward"].tolist()) <= {1.0, 3.0, 5.0, 7.0}


def test_done_fraction_outside_unit_interval_raises():
    with pytest.raises(ValueError, match="done_fraction"):
        buffer(10, [1, 2]).sample(4, np.random.default_rng(0), done_fraction=1.5)


def indexed(episodes: list[Episode]) -> IndexedReplay:
    """An IndexedReplay of the episodes, built as load_offline builds one (one image array, index arrays)."""
    parts = []
    for ep in episodes:
        t = ep.length
        parts.append(IndexedReplay(ep.images, np.arange(t), np.arange(1, t + 1), ep.states[:t], ep.states[1:], ep.actions,
                                   ep.rewards, ep.terminated))
    return IndexedReplay.concatenate(parts)


def test_indexed_replay_stores_each_observation_once():
    eps = [episode(3, 0), episode(5, 1)]
    rep = indexed(eps)
    assert len(rep) == 8
    assert len(rep.images) == 4 + 6


@pytest.mark.parametrize("done_fraction", [0.0, 0.25])
def test_indexed_replay_samples_what_a_ring_buffer_of_the_same_episodes_samples(done_fraction):
    eps = [episode(3, 0), episode(5, 1, terminal=False), episode(2, 2)]
    ring = ReplayBuffer(100, IMG, 2, 3)
    ring.add_episodes(eps)
    a = ring.sample(32, np.random.default_rng(7), done_fraction)
    b = indexed(eps).sample(32, np.random.default_rng(7), done_fraction)
    for name in FIELDS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_indexed_replay_with_index_outside_the_images_raises():
    ep = episode(3)
    with pytest.raises(ValueError, match="observation indices"):
        IndexedReplay(ep.images, np.arange(3), np.arange(1, 4) + 1, ep.states[:3], ep.states[1:], ep.actions, ep.rewards, ep.terminated)


def test_indexed_replay_with_fields_of_other_lengths_raises_naming_them():
    ep = episode(3)
    with pytest.raises(ValueError, match="reward"):
        IndexedReplay(ep.images, np.arange(3), np.arange(1, 4), ep.states[:3], ep.states[1:], ep.actions, ep.rewards[:2], ep.terminated)


def test_privileged_vectors_of_s_are_sampled_with_their_transition():
    ep = episode(5)
    ep.privileged = np.arange(6, dtype=np.float32)[:, None].repeat(4, 1)
    buf = ReplayBuffer(10, IMG, 2, 3, privileged_dim=4)
    buf.add_episode(ep)

    b = buf.sample(20, np.random.default_rng(0))

    np.testing.assert_array_equal(b["privileged"][:, 0], b["reward"])  # reward i belongs to the step from obs i


def test_episodes_without_privileged_data_get_nan_rows():
    buf = ReplayBuffer(10, IMG, 2, 3, privileged_dim=4)
    buf.add_episode(episode(3))

    assert np.isnan(buf.sample(5, np.random.default_rng(0))["privileged"]).all()


def test_mixed_batch_fills_privileged_rows_of_a_buffer_without_them_with_nan():
    n = 6
    tr = transitions(range(n))
    off = IndexedReplay(tr["image"], np.arange(n), np.arange(n), tr["state"], tr["next_state"], tr["action"], tr["reward"],
                        tr["done"], privileged=np.zeros((n, 4), np.float32))
    on = buffer(10, range(3))

    b = sample_mixed(off, on, 8, 0.5, np.random.default_rng(0))

    assert b["privileged"].shape == (8, 4)
    assert (b["privileged"][:4] == 0).all() and np.isnan(b["privileged"][4:]).all()


def test_indexed_subset_keeps_only_the_selected_transitions_and_shares_the_images():
    rep = indexed([episode(3, 0), episode(5, 1)])
    keep = np.zeros(len(rep), np.bool_)
    keep[3:] = True
    sub = rep.subset(keep)
    assert len(sub) == 5 and sub.images is rep.images
    np.testing.assert_array_equal(sub.action, rep.action[3:])
    np.testing.assert_array_equal(sub.images[sub.obs_index], rep.images[rep.obs_index[3:]])


@pytest.mark.parametrize("fraction", [0.25, 0.5])
def test_fraction_replay_draws_that_share_of_each_batch_from_the_extra_replay(fraction):
    main, extra = buffer(100, [1] * 90), buffer(10, [200] * 5)  # the extra replay: 5 of 95 transitions
    batch = FractionReplay(main, extra, fraction).sample(64, np.random.default_rng(0))
    assert int((batch["reward"] == 200).sum()) == round(64 * fraction)
    assert len(FractionReplay(main, extra, fraction)) == 95


def test_fraction_replay_is_the_off_policy_part_of_a_mixed_batch():
    off = FractionReplay(buffer(100, [1] * 50), buffer(10, [200] * 5), 0.5)
    batch = sample_mixed(off, buffer(10, [7] * 5), 32, 0.5, np.random.default_rng(0))
    assert [int((batch["reward"] == v).sum()) for v in (1, 200, 7)] == [8, 8, 16]


def test_fraction_replay_refuses_an_empty_part_or_a_fraction_outside_the_open_unit_interval():
    with pytest.raises(ValueError, match="both replays"):
        FractionReplay(buffer(10, [1]), buffer(10), 0.5)
    with pytest.raises(ValueError, match="fraction"):
        FractionReplay(buffer(10, [1]), buffer(10, [2]), 1.0)
