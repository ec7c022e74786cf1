"""Collection with the real grasping environment: determinism, parallel workers, resume, failures.

Kept small (32x32 images, a handful of episodes, shard size 2) because every episode renders
and simulates, and every spawned worker pays the process start and scene build.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from rlcyclegan.data.collect import WorkerError, collect, run_episode
from rlcyclegan.data.dataset import EpisodeDataset
from rlcyclegan.data.schema import FORMAT_VERSION, MANIFEST_NAME, shard_name
from rlcyclegan.data.store import list_shards, read_shard, write_shard

# rlcyclegan.data re-exports the function `collect`, which hides the submodule of the same name.
collect_module = importlib.import_module("rlcyclegan.data.collect")

ENV_ID = "rlcyclegan/Grasp-v0"
ENV_KWARGS = {"domain": "sim", "objects": "train", "image_size": 32, "num_objects": 3}
SETTINGS = {"env_id": ENV_ID, "env_kwargs": ENV_KWARGS, "policy": "scripted", "seed": 11, "shard_size": 2}
ARRAYS = (
    "obs_images", "obs_states", "actions", "rewards", "terminated", "truncated",
    "episode_index", "episode_seed", "lengths", "success", "returns", "shape_ids", "obs_privileged",
)  # fmt: skip


def _collect(out: Path, episodes: int, **overrides) -> dict:
    args = {**SETTINGS, "workers": 1, "progress": False, **overrides}
    return collect(args.pop("env_id"), args.pop("env_kwargs"), args.pop("policy"), episodes, out, **args)


def _assert_same_data(a: Path, b: Path) -> None:
    da, db = EpisodeDataset(a), EpisodeDataset(b)
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(da, name), getattr(db, name), err_msg=name)


def _mtimes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in list_shards(directory)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """Six episodes in three shards, collected in this process (read-only for the tests)."""
    out = tmp_path_factory.mktemp("reference")
    _collect(out, 6)
    return out


@pytest.fixture
def copy_of_reference(reference, tmp_path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    return out


def test_collect_writes_shards_of_consecutive_episodes(reference):
    shards = list_shards(reference)

    assert [p.name for p in shards] == [shard_name(0), shard_name(2), shard_name(4)]
    assert [read_shard(p, load_images=False).episode_indices.tolist() for p in shards] == [[0, 1], [2, 3], [4, 5]]
    assert not list(reference.glob("*.tmp"))


def test_collect_records_env_seeds_and_episode_structure(reference):
    ds = EpisodeDataset(reference)

    np.testing.assert_array_equal(ds.episode_seed, 11 + np.arange(6))
    assert ds.image_shape == (32, 32, 3)
    assert ds.num_observations == ds.num_steps + ds.num_episodes
    last = ds.step_start + ds.lengths - 1
    assert (ds.terminated[last] | ds.truncated[last]).all()  # every episode ends on its last step
    assert int((ds.shape_ids >= 0).sum(axis=1).max()) == 3


def test_collect_writes_manifest_and_shard_attributes(reference):
    manifest = json.loads((reference / MANIFEST_NAME).read_text())
    attrs = read_shard(list_shards(reference)[0], load_images=False).attrs

    assert {k: manifest[k] for k in SETTINGS} == SETTINGS
    assert manifest["format_version"] == FORMAT_VERSION and manifest["episodes"] == 6
    assert attrs["env_id"] == ENV_ID and attrs["policy"] == "scripted"
    assert attrs["domain"] == "sim" and attrs["objects"] == "train"
    assert attrs["env_kwargs"] == ENV_KWARGS
    assert attrs["env_config"]["image_size"] == 32 and attrs["seed"] == 11


def test_collect_stores_privileged_with_inf_padding_and_the_gripper_position(tmp_path):
    out = tmp_path / "pose"
    _collect(out, 2, env_kwargs={**ENV_KWARGS, "state": "pose"})

    ds = EpisodeDataset(out, load_images=False)

    priv = ds.privileged()
    assert ds.has_privileged and priv.shape == (ds.num_observations, 22) and priv.dtype == np.float32
    assert np.isfinite(priv[:, : 2 + 2 * 3]).all()  # gripper and the 3 objects
    assert np.isposinf(priv[:, 2 + 2 * 3 :]).all()  # padding up to 10 objects
    np.testing.assert_allclose(priv[:, :2], ds.obs_states[:, 2:4], atol=1e-6)


def test_resume_drops_privileged_when_the_partial_shard_lacks_it(copy_of_reference):
    path = copy_of_reference / shard_name(4)
    old = read_shard(path)
    kept = next(old.episodes())  # episode 4 only, as a shard from before envs gave info["privileged"]
    kept.privileged = None
    meta = {k: old.attrs[k] for k in ("env_id", "domain", "objects", "policy", "env_kwargs")}
    write_shard(path, [kept], **meta, extra_attrs={"shard_size": 2, "first_episode": 4})

    summary = _collect(copy_of_reference, 6)

    assert summary["new_episodes"] == 1
    assert "obs/privileged" not in read_shard(path, load_images=False).arrays
    assert not EpisodeDataset(copy_of_reference, load_images=False).has_privileged


class _DropPrivileged(gym.Wrapper):
    """Removes info["privileged"] from reset (``at="reset"``, and so from every step) or from steps only."""

    def __init__(self, env: gym.Env, at: str):
        super().__init__(env)
        self.at = at

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, ({k: v for k, v in info.items() if k != "privileged"} if self.at == "reset" else info)

    def step(self, action):
        obs, reward, term, trunc, info = self.env.step(action)
        return obs, reward, term, trunc, {k: v for k, v in info.items() if k != "privileged"}


@pytest.fixture(scope="module")
def small_env():
    import rlcyclegan.envs  # noqa: F401  (registers the env ids)

    env = gym.make(ENV_ID, **{**ENV_KWARGS, "image_size": 16})
    yield env
    env.close()


def test_run_episode_without_privileged_info_leaves_it_none(small_env):
    ep = run_episode(_DropPrivileged(small_env, "reset"), "random", 0, 0)

    assert ep.privileged is None


def test_run_episode_raises_when_a_step_lacks_privileged(small_env):
    with pytest.raises(RuntimeError, match=r"env.step \(step 0 of episode 5\) info has no 'privileged' key"):
        run_episode(_DropPrivileged(small_env, "step"), "random", 0, 5)


def test_two_workers_write_the_same_data_as_one(reference, tmp_path):
    summary = _collect(tmp_path / "parallel", 6, workers=2)

    assert summary["new_episodes"] == 6 and summary["shards_written"] == 3
    _assert_same_data(reference, tmp_path / "parallel")


def test_rerun_of_a_complete_directory_collects_nothing(copy_of_reference):
    before = _mtimes(copy_of_reference)

    summary = _collect(copy_of_reference, 6)

    assert summary["new_episodes"] == 0 and summary["shards_written"] == 0
    assert summary["episodes"] == 6
    assert _mtimes(copy_of_reference) == before


def test_resume_collects_only_missing_shards(reference, copy_of_reference):
    (copy_of_reference / shard_name(2)).unlink()
    before = _mtimes(copy_of_reference)

    summary = _collect(copy_of_reference, 6)

    assert summary["new_episodes"] == 2 and summary["shards_written"] == 1
    assert {k: v for k, v in _mtimes(copy_of_reference).items() if k in before} == before
    _assert_same_data(reference, copy_of_reference)


def test_rerun_with_more_episodes_extends_the_partial_last_shard(reference, tmp_path):
    out = tmp_path / "grow"
    _collect(out, 3)
    assert read_shard(out / shard_name(2), load_images=False).episode_indices.tolist() == [2]

    summary = _collect(out, 6)

    assert summary["new_episodes"] == 3  # episodes 3, 4, 5; episode 2 is kept, not re-collected
    assert summary["episodes"] == 6
    assert json.loads((out / MANIFEST_NAME).read_text())["episodes"] == 6
    _assert_same_data(reference, out)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"seed": 12}, "seed"),
        ({"policy": "random"}, "policy"),
        ({"shard_size": 3}, "shard_size"),
        ({"env_id": "rlcyclegan/MultiBinGrasp-v0"}, "env_id"),
        ({"env_kwargs": {**ENV_KWARGS, "domain": "real"}}, "env_kwargs.domain"),
    ],
)
def test_manifest_mismatch_raises_naming_the_field(copy_of_reference, override, field):
    with pytest.raises(ValueError, match=rf"{field}: directory has"):
        _collect(copy_of_reference, 8, **override)
    assert len(list_shards(copy_of_reference)) == 3


def test_shards_without_manifest_are_refused(copy_of_reference):
    (copy_of_reference / MANIFEST_NAME).unlink()

    with pytest.raises(ValueError, match="no dataset.json"):
        _collect(copy_of_reference, 6)


def test_failure_midway_keeps_complete_shards_and_rerun_completes(reference, tmp_path, monkeypatch):
    out = tmp_path / "crash"
    real_run_episode = collect_module.run_episode

    def crash_on_episode_3(env, policy, env_seed, index):
        if index == 3:
            raise RuntimeError("simulated crash")
        return real_run_episode(env, policy, env_seed, index)

    monkeypatch.setattr(collect_module, "run_episode", crash_on_episode_3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _collect(out, 6)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, shard_name(0)]  # no partial shard 2

    monkeypatch.setattr(collect_module, "run_episode", real_run_episode)
    summary = _collect(out, 6)

    assert summary["new_episodes"] == 4
    _assert_same_data(reference, out)


def test_worker_exception_is_raised_with_its_traceback(tmp_path):
    with pytest.raises(WorkerError, match="collection worker . failed during environment setup") as info:
        _collect(tmp_path / "bad", 4, workers=2, env_kwargs={**ENV_KWARGS, "image_size": 3})

    assert "worker traceback" in str(info.value) and "image_size" in str(info.value)
    assert list_shards(tmp_path / "bad") == []


def test_sigkill_midway_leaves_only_complete_shards_and_rerun_completes(tmp_path):
    out = tmp_path / "killed"
    episodes, settings = 24, {**SETTINGS, "policy": "random"}
    script = (
        "import sys, json\n"
        "from rlcyclegan.data.collect import collect\n"
        "s = json.loads(sys.argv[1])\n"
        "collect(s['env_id'], s['env_kwargs'], s['policy'], int(sys.argv[2]), sys.argv[3],\n"
        "        seed=s['seed'], shard_size=s['shard_size'], progress=False)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(settings), str(episodes), str(out)],
        env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
    )
    try:
        deadline = time.monotonic() + 90
        while not (out.is_dir() and list_shards(out)):
            assert proc.poll() is None, f"collection subprocess exited early with code {proc.returncode}"
            assert time.monotonic() < deadline, "no shard appeared within 90 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    survivors = list_shards(out)
    assert 1 <= len(survivors) < episodes // 2, "the kill should land mid-collection"
    for path in survivors:
        assert read_shard(path).num_episodes == 2  # every published shard is complete

    summary = collect(
        ENV_ID, ENV_KWARGS, "random", episodes, out, seed=settings["seed"], shard_size=2, progress=False
    )

    assert summary["new_episodes"] == episodes - 2 * len(survivors)
    np.testing.assert_array_equal(EpisodeDataset(out, load_images=False).episode_index, np.arange(episodes))
    assert not list(out.glob("*.tmp"))


def test_ctrl_c_with_workers_stops_them_and_leaves_only_complete_shards(tmp_path):
    out = tmp_path / "interrupted"
    args = ["collect", "--out", str(out), "--episodes", "40", "--shard-size", "2", "--workers", "2",
            "--image-size", "32", "--num-objects", "3", "--policy", "random", "--seed", "11", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from rlcyclegan.cli import main; sys.exit(main(sys.argv[1:]))", *args],
        start_new_session=True,  # its own process group, so the signal reaches it and its workers like a Ctrl-C
        # as from a terminal: a test suite launched in the background (`cmd &`) inherits SIGINT ignored, and
        # Python then never installs its KeyboardInterrupt handler, so the collection would run to the end
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not (out.is_dir() and list_shards(out)):
            assert proc.poll() is None, f"collection exited early with code {proc.returncode}: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no shard appeared within 90 s"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    assert code == 130 and "interrupted" in proc.stderr.read()
    survivors = list_shards(out)
    assert 1 <= len(survivors) < 20
    assert all(read_shard(p, load_images=False).num_episodes == 2 for p in survivors)
    assert not list(out.glob("*.tmp"))
