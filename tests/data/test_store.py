"""HDF5 shard writing and reading: exact round trip, atomicity, validation errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from rlcyclegan.data import store
from rlcyclegan.data.schema import FIELDS, FORMAT_VERSION, REQUIRED_ATTRS, shard_name
from rlcyclegan.data.store import list_shards, read_shard, write_episodes, write_shard


def _assert_episodes_equal(a, b) -> None:
    for name in ("images", "states", "actions", "rewards", "terminated", "truncated"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert (a.success, a.index, a.seed, a.shape_ids) == (b.success, b.index, b.seed, b.shape_ids)


def test_round_trip_is_exact_for_every_episode_field(tmp_path, make_episode, shard_meta):
    episodes = [make_episode(i, length) for i, length in zip(range(10, 14), (3, 1, 5, 0))]
    path = write_shard(tmp_path / shard_name(10), episodes, **shard_meta)

    shard = read_shard(path)

    assert shard.num_episodes == 4 and shard.num_steps == 9
    for written, read in zip(episodes, shard.episodes(), strict=True):
        _assert_episodes_equal(written, read)


def test_round_trip_stores_every_schema_field_with_its_dtype(tmp_path, make_episode, shard_meta):
    episodes = [make_episode(0, 4), make_episode(1, 2)]
    shard = read_shard(write_shard(tmp_path / shard_name(0), episodes, **shard_meta))

    for spec in FIELDS:
        assert shard.arrays[spec.name].dtype == spec.dtype, spec.name
        assert shard.arrays[spec.name].ndim == spec.ndim, spec.name
    np.testing.assert_array_equal(shard.arrays["episode/obs_start"], [0, 5])
    np.testing.assert_array_equal(shard.arrays["episode/step_start"], [0, 4])
    np.testing.assert_array_equal(shard.arrays["episode/length"], [4, 2])
    np.testing.assert_allclose(shard.arrays["episode/return"], [ep.episode_return for ep in episodes], rtol=1e-6)
    np.testing.assert_array_equal(shard.arrays["episode/shape_ids"], [[-1], [0]])


def test_round_trip_keeps_attributes(tmp_path, make_episode, shard_meta):
    path = write_shard(
        tmp_path / shard_name(0), [make_episode(0, 2)], **shard_meta, extra_attrs={"seed": 3, "env_config": {"a": 1}}
    )

    attrs = read_shard(path).attrs

    assert set(REQUIRED_ATTRS) <= set(attrs)
    assert attrs["format_version"] == FORMAT_VERSION
    assert attrs["env_kwargs"] == shard_meta["env_kwargs"]
    assert attrs["env_config"] == {"a": 1}
    assert attrs["seed"] == 3
    assert attrs["domain"] == "sim" and attrs["policy"] == "scripted"


def test_images_are_chunked_per_image_and_compressed(tmp_path, make_episode, shard_meta):
    path = write_shard(tmp_path / shard_name(0), [make_episode(0, 3)], **shard_meta)

    with h5py.File(path, "r") as f:
        assert f["obs/image"].chunks == (1, 8, 8, 3)
        assert f["obs/image"].compression is not None


def test_read_without_images_keeps_metadata_and_image_shape(tmp_path, make_episode, shard_meta):
    path = write_shard(tmp_path / shard_name(0), [make_episode(0, 3)], **shard_meta)

    shard = read_shard(path, load_images=False)

    assert "obs/image" not in shard.arrays
    assert shard.image_shape == (8, 8, 3)
    assert shard.num_steps == 3


def test_failed_write_leaves_no_shard_and_no_tmp_file(tmp_path, make_episode, shard_meta, monkeypatch):
    real_create = h5py.Group.create_dataset

    def fail_on_reward(self, name, *args, **kwargs):
        if name == "reward":
            raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of writing
        return real_create(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", fail_on_reward)
    with pytest.raises(KeyboardInterrupt):
        write_shard(tmp_path / shard_name(0), [make_episode(0, 3)], **shard_meta)

    assert list(tmp_path.iterdir()) == []


def test_write_publishes_the_shard_only_by_rename(tmp_path, make_episode, shard_meta, monkeypatch):
    seen: list[tuple[str, bool]] = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((Path(src).name, Path(dst).exists()))
        return real_replace(src, dst)

    monkeypatch.setattr(store.os, "replace", spy)
    write_shard(tmp_path / shard_name(0), [make_episode(0, 3)], **shard_meta)

    assert seen == [(shard_name(0) + ".tmp", False)]


def test_list_shards_ignores_tmp_and_foreign_files_and_sorts_by_episode(tmp_path, make_episode, shard_meta):
    for first in (20, 0, 10):
        write_shard(tmp_path / shard_name(first), [make_episode(first, 1)], **shard_meta)
    (tmp_path / (shard_name(30) + ".tmp")).write_bytes(b"partial")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "dataset.json").write_text("{}")

    assert [p.name for p in list_shards(tmp_path)] == [shard_name(0), shard_name(10), shard_name(20)]


def test_list_shards_missing_directory_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        list_shards(tmp_path / "does-not-exist")


def test_truncated_shard_raises_value_error_naming_the_file(tmp_path, make_episode, shard_meta):
    path = write_shard(tmp_path / shard_name(0), [make_episode(0, 5, image_size=32)], **shard_meta)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(ValueError, match=shard_name(0)) as info:
        read_shard(path)
    assert "truncated or corrupted" in str(info.value)


def test_missing_shard_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=shard_name(0)):
        read_shard(tmp_path / shard_name(0))


@pytest.mark.parametrize("field", ["obs/image", "reward", "episode/length", "episode/shape_ids"])
def test_missing_field_raises_value_error_naming_field_and_file(tmp_path, make_episode, shard_meta, field):
    path = write_shard(tmp_path / shard_name(0), [make_episode(0, 3)], **shard_meta)
    with h5py.File(path, "a") as f:
        del f[field]

    with pytest.raises(ValueError, match=f"missing field '{field}'") as info:
        read_shard(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("version", [0, 2])
def test_wrong_format_version_raises_value_error(tmp_path, make_episode, shard_meta, version):
    path = write_shard(tmp_path / shard_name(0), [make_episode(0, 3)], **shard_meta)
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = version

    with pytest.raises(ValueError, match=f"format_version is {version}"):
        read_shard(path)


def test_missing_format_version_raises_value_error(tmp_path, make_episode, shard_meta):
    path = write_shard(tmp_path / shard_name(0), [make_episode(0, 3)], **shard_meta)
    with h5py.File(path, "a") as f:
        del f.attrs["format_version"]

    with pytest.raises(ValueError, match="missing 'format_version'"):
        read_shard(path)


def test_missing_required_attribute_raises_value_error_naming_it(tmp_path, make_episode, shard_meta):
    path = write_shard(tmp_path / shard_name(0), [make_episode(0, 3)], **shard_meta)
    with h5py.File(path, "a") as f:
        del f.attrs["env_id"]

    with pytest.raises(ValueError, match="missing attribute 'env_id'"):
        read_shard(path)


def test_inconsistent_field_lengths_raise_value_error_naming_fields(tmp_path, make_episode, shard_meta):
    path = write_shard(tmp_path / shard_name(0), [make_episode(0, 3)], **shard_meta)
    with h5py.File(path, "a") as f:
        del f["reward"]
        f["reward"] = np.zeros(5, dtype=np.float32)

    expected = "inconsistent lengths: field 'reward' has N_steps=5 but 'action' has N_steps=3"
    with pytest.raises(ValueError, match=expected):
        read_shard(path)


def test_episode_lengths_not_matching_arrays_raise_value_error(tmp_path, make_episode, shard_meta):
    path = write_shard(tmp_path / shard_name(0), [make_episode(0, 3), make_episode(1, 2)], **shard_meta)
    with h5py.File(path, "a") as f:
        f["episode/length"][0] = 4

    with pytest.raises(ValueError, match="sum of 'episode/length' is 6"):
        read_shard(path)


def test_wrong_dtype_raises_value_error_naming_field(tmp_path, make_episode, shard_meta):
    path = write_shard(tmp_path / shard_name(0), [make_episode(0, 3)], **shard_meta)
    with h5py.File(path, "a") as f:
        del f["action"]
        f["action"] = np.zeros((3, 6), dtype=np.float64)

    with pytest.raises(ValueError, match="field 'action' has dtype float64, expected float32"):
        read_shard(path)


def test_write_rejects_episode_with_wrong_observation_count(tmp_path, make_episode, shard_meta):
    ep = make_episode(0, 3)
    ep.images = ep.images[:-1]  # T observations instead of T+1

    with pytest.raises(ValueError, match="images has shape"):
        write_shard(tmp_path / shard_name(0), [ep], **shard_meta)
    assert not (tmp_path / shard_name(0)).exists()


def test_write_rejects_episodes_with_different_image_sizes(tmp_path, make_episode, shard_meta):
    with pytest.raises(ValueError, match="images rows have shape"):
        write_shard(tmp_path / shard_name(0), [make_episode(0, 2, 8), make_episode(1, 2, 16)], **shard_meta)


def test_write_rejects_non_json_env_kwargs(tmp_path, make_episode, shard_meta):
    meta = {**shard_meta, "env_kwargs": {"bad": object()}}

    with pytest.raises(ValueError, match="env_kwargs must be JSON-serialisable"):
        write_shard(tmp_path / shard_name(0), [make_episode(0, 2)], **meta)


def test_write_episodes_groups_episodes_into_blocks(tmp_path, make_episode, shard_meta):
    episodes = [make_episode(i, 2) for i in (4, 0, 1, 2, 3)]

    written = write_episodes(tmp_path, episodes, shard_size=2, **shard_meta)

    assert [p.name for p in written] == [shard_name(0), shard_name(2), shard_name(4)]
    assert [read_shard(p).episode_indices.tolist() for p in written] == [[0, 1], [2, 3], [4]]
    assert json.loads(json.dumps(read_shard(written[0]).attrs["shard_size"])) == 2


# --------------------------------------------------------------------------------------------- obs/privileged
def test_round_trip_keeps_privileged_states_with_nan_padding(tmp_path, make_episode, shard_meta):
    episodes = [make_episode(0, 3, privileged=5), make_episode(1, 0, privileged=5), make_episode(2, 2, privileged=5)]
    path = write_shard(tmp_path / shard_name(0), episodes, **shard_meta)

    shard = read_shard(path)

    assert shard.arrays["obs/privileged"].shape == (8, 5) and shard.arrays["obs/privileged"].dtype == np.float32
    for written, read in zip(episodes, shard.episodes(), strict=True):
        assert read.privileged.dtype == np.float32
        np.testing.assert_array_equal(read.privileged, written.privileged)  # NaNs compare equal here
        assert np.isnan(read.privileged[:, -1]).all()


def test_shard_without_privileged_reads_with_privileged_none(tmp_path, make_episode, shard_meta):
    path = write_shard(tmp_path / shard_name(0), [make_episode(0, 3), make_episode(1, 2)], **shard_meta)

    shard = read_shard(path)

    with h5py.File(path, "r") as f:
        assert "obs/privileged" not in f
    assert "obs/privileged" not in shard.arrays
    assert [ep.privileged for ep in shard.episodes()] == [None, None]


def test_write_rejects_shard_mixing_episodes_with_and_without_privileged(tmp_path, make_episode, shard_meta):
    episodes = [make_episode(0, 2, privileged=4), make_episode(1, 2), make_episode(2, 1, privileged=4)]

    with pytest.raises(ValueError, match=r"episodes \[0, 2\] have privileged states but episodes \[1\] do not"):
        write_shard(tmp_path / shard_name(0), episodes, **shard_meta)
    assert not (tmp_path / shard_name(0)).exists()


def test_write_rejects_episodes_with_different_privileged_sizes(tmp_path, make_episode, shard_meta):
    episodes = [make_episode(0, 2, privileged=4), make_episode(1, 2, privileged=6)]

    with pytest.raises(ValueError, match=r"episode 1: privileged rows have shape \(6,\) but episode 0 has \(4,\)"):
        write_shard(tmp_path / shard_name(0), episodes, **shard_meta)


def test_write_rejects_privileged_with_wrong_row_count(tmp_path, make_episode, shard_meta):
    ep = make_episode(3, 4, privileged=5)
    ep.privileged = ep.privileged[:-1]  # T rows instead of T+1

    with pytest.raises(ValueError, match=r"episode 3: privileged has shape \(4, 5\), expected 2 dims with T\+1=5 rows"):
        write_shard(tmp_path / shard_name(0), [ep], **shard_meta)


def test_write_rejects_privileged_with_wrong_dtype(tmp_path, make_episode, shard_meta):
    ep = make_episode(0, 2, privileged=5)
    ep.privileged = ep.privileged.astype(np.float64)

    with pytest.raises(ValueError, match="episode 0: privileged has dtype float64, expected float32"):
        write_shard(tmp_path / shard_name(0), [ep], **shard_meta)


def test_read_rejects_privileged_with_wrong_row_count(tmp_path, make_episode, shard_meta):
    path = write_shard(tmp_path / shard_name(0), [make_episode(0, 3, privileged=5)], **shard_meta)
    with h5py.File(path, "a") as f:
        del f["obs/privileged"]
        f["obs/privileged"] = np.zeros((3, 5), dtype=np.float32)

    expected = "inconsistent lengths: field 'obs/privileged' has N_obs=3 but 'obs/image' has N_obs=4"
    with pytest.raises(ValueError, match=expected) as info:
        read_shard(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 5), dtype=np.float64), "field 'obs/privileged' has dtype float64, expected float32"),
        (np.zeros(4, dtype=np.float32), r"field 'obs/privileged' has shape \(4,\), expected 2 dims"),
    ],
)
def test_read_rejects_privileged_with_wrong_dtype_or_rank(tmp_path, make_episode, shard_meta, array, message):
    path = write_shard(tmp_path / shard_name(0), [make_episode(0, 3, privileged=5)], **shard_meta)
    with h5py.File(path, "a") as f:
        del f["obs/privileged"]
        f["obs/privileged"] = array

    with pytest.raises(ValueError, match=message):
        read_shard(path)
