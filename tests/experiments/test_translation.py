"""Translation evaluation against paired sim/real renders (experiments/translation.py), on a tiny 32 px Grasp-v0 run."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

from rlcyclegan.experiments.translation import FEATURE_NOTE, evaluate_translation, read_input_images

IMAGE_SIZE = 32


def build_tiny_grasp_run(root: Path) -> Path:
    """A `tiny`-preset RL-CycleGAN run (4 steps) on a few 32 px Grasp-v0 episodes in sim and in real; built once
    under ``root`` (a file lock makes concurrent sessions and pytest-xdist workers share it). Returns the run folder."""
    folder = root / "translation-grasp-run"
    with FileLock(str(folder) + ".lock"):
        if not (folder / ".built").exists():
            import gymnasium as gym

            import rlcyclegan.envs  # noqa: F401
            from rlcyclegan.data.collect import run_episode
            from rlcyclegan.data.store import write_episodes
            from rlcyclegan.train.rlcyclegan import preset_config, train_rlcyclegan

            shutil.rmtree(folder, ignore_errors=True)
            for domain, first_seed in (("sim", 0), ("real", 1000)):
                env = gym.make("rlcyclegan/Grasp-v0", domain=domain, objects="train", image_size=IMAGE_SIZE)
                episodes = [run_episode(env, "scripted", first_seed + i, i) for i in range(3)]
                env.close()
                write_episodes(folder / domain, episodes, env_id="rlcyclegan/Grasp-v0", domain=domain, objects="train",
                               policy="scripted", env_kwargs={"image_size": IMAGE_SIZE})
            cfg = preset_config("tiny", sim_data=(folder / "sim",), real_data=(folder / "real",), env="rlcyclegan/Grasp-v0",
                                out=folder, name="run", progress=False, device="cpu", threads=1, steps=4, checkpoint_every=4)
            train_rlcyclegan(cfg)
            (folder / ".built").touch()
    return folder / "run"


def session_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@pytest.fixture(scope="session")
def tiny_grasp_run(tmp_path_factory) -> Path:
    return build_tiny_grasp_run(session_root(tmp_path_factory))


def finite(v) -> bool:
    return v is not None and math.isfinite(v)


def test_evaluate_translation_reports_every_metric_with_finite_plausible_values(tiny_grasp_run):
    r = evaluate_translation(tiny_grasp_run, episodes=2, objects="test", seed=5, device="cpu",
                             classifier_steps=20, classifier_episodes=2, batch_size=16, kid_subsets=5)

    assert r["method"] == "rlcyclegan" and r["episodes"] == 2 and r["image_size"] == [IMAGE_SIZE, IMAGE_SIZE]
    assert r["images"] >= 2 and r["env"] == "rlcyclegan/Grasp-v0" and r["env_kwargs"]["domain"] == "sim"
    for key in ("g_vs_real", "f_vs_sim", "sim_vs_real"):
        m = r[key]
        assert 0 < m["psnr"] < 60 and -1 <= m["ssim"] <= 1, (key, m)
        assert 0 < m["object_images"] <= r["images"]
        assert 0 < m["psnr_object"] < 60 and -1 <= m["ssim_object"] <= 1, (key, m)
    q = r["q_consistency"]
    assert q["pairs"] == r["images"]
    for key in ("mean_abs_diff", "max_abs_diff", "real_pair_mean_abs_diff", "real_side_mean_abs_diff", "q_sim_x_mean"):
        assert 0 <= q[key] <= 1, (key, q)
    assert set(r["own_fid"]) == set(r["own_kid"]) == {"g_vs_real", "f_vs_sim", "sim_vs_real"}
    assert all(finite(v) and v > -1e-6 for v in r["own_fid"].values())
    assert all(finite(k["mean"]) and finite(k["std"]) for k in r["own_kid"].values())
    assert r["kid_subset_size"] == max(2, r["images"] // 2)  # subsets smaller than the set: a std that is not 0
    assert r["own_kid"]["sim_vs_real"]["std"] > 0
    fn = r["feature_network"]
    assert fn["network"] == "domain_classifier" and fn["note"] == FEATURE_NOTE and fn["dim"] == 64
    assert 0 <= fn["eval_accuracy"] <= 1 and 0 <= fn["g_classified_real"] <= 1


def test_q_sim_features_are_the_checkpoints_q_tower(tiny_grasp_run):
    r = evaluate_translation(tiny_grasp_run, episodes=1, seed=7, device="cpu", features="q_sim", kid_subsets=3)

    assert r["feature_network"]["network"] == "q_sim" and r["feature_network"]["dim"] == 16  # the small preset's head_channels
    assert all(finite(v) for v in r["own_fid"].values())


def test_wrong_size_input_image_is_refused_naming_the_file_and_both_sizes(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((24, 40, 3), np.uint8)).save(tmp_path / "b.jpg")

    with pytest.raises(ValueError, match=r"b\.jpg.*40x24.*32x32"):
        read_input_images(tmp_path, (32, 32))
    images, names = read_input_images(tmp_path, (32, 32), resize=True)
    assert images.shape == (2, 32, 32, 3) and names == ["a.png", "b.png"]
