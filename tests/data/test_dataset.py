"""EpisodeDataset views (episodes, transitions, images) and loading image folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rlcyclegan.data.dataset import EpisodeDataset, load_image_folder, wilson_interval
from rlcyclegan.data.schema import shard_name
from rlcyclegan.data.store import Episode, write_shard


def _hand_made_episode(index: int, length: int, offset: float, terminal: bool) -> Episode:
    """Observation t has state [offset + t, 0] and every pixel equal to 10 * index + t."""
    images = np.stack([np.full((4, 4, 3), 10 * index + t, dtype=np.uint8) for t in range(length + 1)])
    terminated = np.zeros(length, dtype=np.bool_)
    truncated = np.zeros(length, dtype=np.bool_)
    (terminated if terminal else truncated)[-1] = True
    return Episode(
        images=images,
        states=np.stack([[offset + t, 0.0] for t in range(length + 1)]).astype(np.float32),
        actions=np.arange(length * 6, dtype=np.float32).reshape(length, 6) + offset,
        rewards=np.array([0.0] * (length - 1) + [1.0 if terminal else 0.0], dtype=np.float32),
        terminated=terminated,
        truncated=truncated,
        success=terminal,
        index=index,
        seed=100 + index,
        shape_ids=[index, index + 1],
    )


@pytest.fixture
def two_shard_dir(tmp_path, shard_meta):
    """Episodes 0 (3 steps, terminal) and 1 (2 steps, truncated) in one shard, 2 (1 step) in another."""
    write_shard(
        tmp_path / shard_name(0),
        [_hand_made_episode(0, 3, 0.0, True), _hand_made_episode(1, 2, 100.0, False)],
        **shard_meta,
    )
    write_shard(tmp_path / shard_name(2), [_hand_made_episode(2, 1, 200.0, True)], **shard_meta)
    return tmp_path


def test_dataset_counts_episodes_steps_and_success(two_shard_dir):
    ds = EpisodeDataset(two_shard_dir)

    assert (len(ds), ds.num_episodes, ds.num_steps, ds.num_observations) == (3, 3, 6, 9)
    assert ds.success_rate == pytest.approx(2 / 3)
    assert ds.image_shape == (4, 4, 3)
    assert ds.domains == ["sim"] and ds.env_ids == ["rlcyclegan/Grasp-v0"]


def test_dataset_episode_access_returns_the_written_episode(two_shard_dir):
    ds = EpisodeDataset(two_shard_dir)

    ep = ds[2]
    expected = _hand_made_episode(2, 1, 200.0, True)
    np.testing.assert_array_equal(ep.images, expected.images)
    np.testing.assert_array_equal(ep.states, expected.states)
    np.testing.assert_array_equal(ep.actions, expected.actions)
    assert (ep.index, ep.seed, ep.success, ep.shape_ids) == (2, 102, True, [2, 3])
    assert [e.index for e in ds] == [0, 1, 2]


def test_transitions_align_state_and_next_state_within_episodes(two_shard_dir):
    ds = EpisodeDataset(two_shard_dir)

    t = ds.transitions()

    # episode 0: obs rows 0..3, episode 1: rows 4..6, episode 2: rows 7..8; no s' crosses an episode
    np.testing.assert_array_equal(t["obs_index"], [0, 1, 2, 4, 5, 7])
    np.testing.assert_array_equal(t["next_obs_index"], [1, 2, 3, 5, 6, 8])
    np.testing.assert_array_equal(t["state"][:, 0], [0, 1, 2, 100, 101, 200])
    np.testing.assert_array_equal(t["next_state"][:, 0], [1, 2, 3, 101, 102, 201])
    np.testing.assert_array_equal(t["episode"], [0, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(t["step"], [0, 1, 2, 0, 1, 0])
    np.testing.assert_array_equal(t["action"][:, 0], [0, 6, 12, 100, 106, 200])


def test_transitions_done_marks_terminal_steps_but_not_time_limits(two_shard_dir):
    t = EpisodeDataset(two_shard_dir).transitions()

    np.testing.assert_array_equal(t["done"], [False, False, True, False, False, True])
    np.testing.assert_array_equal(t["truncated"], [False, False, False, False, True, False])
    np.testing.assert_array_equal(t["last"], [False, False, True, False, True, True])
    np.testing.assert_array_equal(t["reward"], [0, 0, 1, 0, 0, 1])


def test_materialize_gathers_images_of_s_and_next_s(two_shard_dir):
    ds = EpisodeDataset(two_shard_dir)

    batch = ds.materialize(ds.transitions(), rows=[2, 3])

    assert batch["image"].shape == (2, 4, 4, 3) and batch["image"].dtype == np.uint8
    np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], [2, 10])  # episode 0 t=2, episode 1 t=0
    np.testing.assert_array_equal(batch["next_image"][:, 0, 0, 0], [3, 11])
    np.testing.assert_array_equal(batch["obs_index"], [2, 4])


def test_images_returns_every_observation_as_uint8(two_shard_dir):
    images = EpisodeDataset(two_shard_dir).images()

    assert images.shape == (9, 4, 4, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[:, 0, 0, 0], [0, 1, 2, 3, 10, 11, 12, 20, 21])


def test_dataset_without_images_has_counts_but_refuses_images(two_shard_dir):
    ds = EpisodeDataset(two_shard_dir, load_images=False)

    assert ds.num_steps == 6
    with pytest.raises(ValueError, match="load_images=False"):
        ds.images()


def test_summary_reports_wilson_interval_and_provenance(two_shard_dir):
    summary = EpisodeDataset(two_shard_dir, load_images=False).summary()

    assert summary["episodes"] == 3 and summary["successes"] == 2
    assert summary["success_ci95"] == pytest.approx(list(wilson_interval(2, 3)))
    assert summary["shard_files"] == [shard_name(0), shard_name(2)]
    json.dumps(summary)  # JSON-serialisable


def test_dataset_reads_manifest_when_present(two_shard_dir):
    (two_shard_dir / "dataset.json").write_text(json.dumps({"seed": 5}))

    assert EpisodeDataset(two_shard_dir).manifest == {"seed": 5}


def test_dataset_missing_directory_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        EpisodeDataset(tmp_path / "nope")


def test_dataset_without_shards_raises_value_error(tmp_path):
    (tmp_path / (shard_name(0) + ".tmp")).write_bytes(b"")

    with pytest.raises(ValueError, match="no episode shards"):
        EpisodeDataset(tmp_path)


def test_dataset_rejects_duplicate_episode_indices_across_shards(tmp_path, shard_meta):
    write_shard(tmp_path / shard_name(0), [_hand_made_episode(0, 2, 0.0, True)], **shard_meta)
    write_shard(tmp_path / shard_name(5), [_hand_made_episode(0, 2, 0.0, True)], **shard_meta)

    with pytest.raises(ValueError, match="episode index 0 appears in both"):
        EpisodeDataset(tmp_path)


def test_dataset_rejects_shards_with_different_image_sizes(tmp_path, shard_meta, make_episode):
    write_shard(tmp_path / shard_name(0), [make_episode(0, 2, image_size=8)], **shard_meta)
    write_shard(tmp_path / shard_name(1), [make_episode(1, 2, image_size=16)], **shard_meta)

    with pytest.raises(ValueError, match=r"image shape \(H, W, 3\) is \(16, 16, 3\)"):
        EpisodeDataset(tmp_path)


def test_wilson_interval_matches_known_values():
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0


# ------------------------------------------------------------------------------- image folders
def _save(path, size, colour=(10, 20, 30), mode="RGB"):
    Image.new(mode, size, colour if mode == "RGB" else colour[0]).save(path)


def test_load_image_folder_reads_png_and_jpeg_in_name_order(tmp_path):
    _save(tmp_path / "b.png", (6, 4), (1, 2, 3))
    _save(tmp_path / "a.PNG", (6, 4), (4, 5, 6))
    _save(tmp_path / "c.jpg", (6, 4), (200, 200, 200))
    (tmp_path / "readme.txt").write_text("not an image")

    images = load_image_folder(tmp_path)

    assert images.shape == (3, 4, 6, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[0, 0, 0], [4, 5, 6])
    np.testing.assert_array_equal(images[1, 0, 0], [1, 2, 3])


def test_load_image_folder_converts_grayscale_to_rgb(tmp_path):
    _save(tmp_path / "g.png", (5, 5), (77, 0, 0), mode="L")

    images = load_image_folder(tmp_path)

    np.testing.assert_array_equal(images[0, 0, 0], [77, 77, 77])


def test_load_image_folder_mixed_sizes_raises_naming_the_files(tmp_path):
    _save(tmp_path / "a.png", (8, 8))
    _save(tmp_path / "b.png", (16, 8))

    with pytest.raises(ValueError, match=r"a.png is 8x8 but b.png is 16x8"):
        load_image_folder(tmp_path)


def test_load_image_folder_resize_accepts_mixed_sizes(tmp_path):
    _save(tmp_path / "a.png", (8, 8))
    _save(tmp_path / "b.png", (16, 8))

    assert load_image_folder(tmp_path, resize=4).shape == (2, 4, 4, 3)


def test_load_image_folder_without_images_raises_value_error(tmp_path):
    (tmp_path / "notes.txt").write_text("x")

    with pytest.raises(ValueError, match="no images found"):
        load_image_folder(tmp_path)


def test_load_image_folder_missing_directory_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        load_image_folder(tmp_path / "missing")


def test_load_image_folder_undecodable_file_raises_naming_it(tmp_path):
    _save(tmp_path / "a.png", (8, 8))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")

    with pytest.raises(ValueError, match="broken.jpg: cannot read image"):
        load_image_folder(tmp_path)


# --------------------------------------------------------------------------------------------- obs/privileged
def _with_privileged(ep: Episode) -> Episode:
    """Observation t gets privileged [state[t, 0], index, NaN]: the first entry identifies the row."""
    n = ep.length + 1
    ep.privileged = np.stack([ep.states[:, 0], np.full(n, ep.index), np.full(n, np.nan)], axis=1).astype(np.float32)
    return ep


@pytest.fixture
def privileged_dir(tmp_path, shard_meta):
    """As ``two_shard_dir``, with privileged states in both shards."""
    eps = [_with_privileged(_hand_made_episode(i, n, 100.0 * i, i != 1)) for i, n in ((0, 3), (1, 2), (2, 1))]
    write_shard(tmp_path / shard_name(0), eps[:2], **shard_meta)
    write_shard(tmp_path / shard_name(2), eps[2:], **shard_meta)
    return tmp_path


def test_transitions_privileged_is_the_vector_of_s(privileged_dir):
    ds = EpisodeDataset(privileged_dir)

    t = ds.transitions()

    assert t["privileged"].shape == (6, 3) and t["privileged"].dtype == np.float32
    np.testing.assert_array_equal(t["privileged"][:, 0], t["state"][:, 0])  # s, not s'
    np.testing.assert_array_equal(t["privileged"], ds.privileged()[t["obs_index"]])
    np.testing.assert_array_equal(t["privileged"][:, 1], [0, 0, 0, 1, 1, 2])


def test_dataset_privileged_has_a_row_per_observation(privileged_dir):
    ds = EpisodeDataset(privileged_dir, load_images=False)

    assert ds.has_privileged
    assert ds.privileged().shape == (ds.num_observations, 3)
    np.testing.assert_array_equal(ds.privileged()[:, 0], ds.obs_states[:, 0])
    assert ds.summary()["privileged_size"] == 3


def test_dataset_episode_access_carries_privileged(privileged_dir):
    ep = EpisodeDataset(privileged_dir)[1]

    expected = _with_privileged(_hand_made_episode(1, 2, 100.0, False)).privileged
    np.testing.assert_array_equal(ep.privileged, expected)


def test_dataset_without_privileged_has_none_and_no_transition_key(two_shard_dir):
    ds = EpisodeDataset(two_shard_dir)

    assert not ds.has_privileged and ds.privileged() is None
    assert "privileged" not in ds.transitions()
    assert ds[0].privileged is None and ds.summary()["privileged_size"] is None


def test_dataset_drops_privileged_when_only_some_shards_have_it(tmp_path, shard_meta):
    write_shard(tmp_path / shard_name(0), [_with_privileged(_hand_made_episode(0, 3, 0.0, True))], **shard_meta)
    write_shard(tmp_path / shard_name(1), [_hand_made_episode(1, 2, 100.0, False)], **shard_meta)

    ds = EpisodeDataset(tmp_path)

    assert not ds.has_privileged and ds.privileged() is None
    assert "privileged" not in ds.transitions() and ds[0].privileged is None


def test_dataset_sorts_privileged_with_interleaved_episode_blocks(tmp_path, shard_meta):
    eps = [_with_privileged(_hand_made_episode(i, 2, 100.0 * i, True)) for i in range(3)]
    write_shard(tmp_path / shard_name(0), [eps[0], eps[2]], **shard_meta)
    write_shard(tmp_path / shard_name(1), [eps[1]], **shard_meta)

    ds = EpisodeDataset(tmp_path)

    assert ds.episode_index.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(ds.privileged()[:, 0], ds.obs_states[:, 0])
    np.testing.assert_array_equal(ds.privileged()[:, 1], [0, 0, 0, 1, 1, 1, 2, 2, 2])


def test_dataset_rejects_shards_with_different_privileged_sizes(tmp_path, shard_meta, make_episode):
    write_shard(tmp_path / shard_name(0), [make_episode(0, 2, privileged=4)], **shard_meta)
    write_shard(tmp_path / shard_name(1), [make_episode(1, 2, privileged=6)], **shard_meta)

    with pytest.raises(ValueError, match=r"shard-0000001.h5: privileged size is \(6,\) but .* has \(4,\)"):
        EpisodeDataset(tmp_path)
