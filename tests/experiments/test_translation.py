"""Translation evaluation against paired sim/real renders (experiments/translation.py), on a tiny 32 px Grasp-v0 run."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

from rlcyclegan.experiments.translation import (FEATURE_NOTE, evaluate_translation, mask_scores, read_input_images, segment_objects,
                                                train_object_segmenter)

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
                             classifier_steps=20, classifier_episodes=2, batch_size=16, kid_subsets=5, segmenter_steps=10)

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
    seg = r["object_segmentation"]
    assert set(seg) >= {"g_vs_real", "real", "sim_vs_real", "f_vs_sim", "sim"} and seg["train_steps"] == 10
    for key in ("g_vs_real", "real", "sim_vs_real", "f_vs_sim", "sim"):
        assert all(v is None or 0 <= v <= 1 for v in seg[key].values()), (key, seg[key])
        assert {"iou_low", "iou_high"} <= set(seg[key])


def test_q_sim_features_are_the_checkpoints_q_tower(tiny_grasp_run):
    r = evaluate_translation(tiny_grasp_run, episodes=1, seed=7, device="cpu", features="q_sim", kid_subsets=3, segmenter_steps=0)

    assert r["feature_network"]["network"] == "q_sim" and r["feature_network"]["dim"] == 16  # the small preset's head_channels
    assert all(finite(v) for v in r["own_fid"].values())
    assert r["object_segmentation"] is None  # segmenter_steps=0: not scored


def test_mask_scores_equal_hand_computed_iou_precision_recall():
    pred = np.array([[[1, 1, 0, 0]], [[0, 0, 0, 1]]], bool)
    true = np.array([[[1, 0, 0, 0]], [[0, 0, 1, 1]]], bool)

    s = mask_scores(pred, true)  # pooled: 2 shared pixels, 3 predicted, 3 true, 4 in the union

    assert s == {"iou": 0.5, "precision": 2 / 3, "recall": 2 / 3}
    assert mask_scores(np.zeros((1, 2, 2), bool), np.zeros((1, 2, 2), bool)) == {"iou": None, "precision": None, "recall": None}


def test_iou_interval_brackets_the_pooled_iou_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    true = rng.random((400, 8, 8)) < 0.2
    pred = true ^ (rng.random((400, 8, 8)) < 0.1)

    wide = mask_scores(pred[:40], true[:40], resamples=500)
    narrow = mask_scores(pred, true, resamples=500)

    assert wide["iou_low"] <= wide["iou"] <= wide["iou_high"]
    assert narrow["iou_low"] <= narrow["iou"] <= narrow["iou_high"]
    assert narrow["iou_high"] - narrow["iou_low"] < wide["iou_high"] - wide["iou_low"]


def squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy grey 32 px images with one 4-8 px square of a random colour each, and the squares' masks."""
    rng = np.random.default_rng(seed)
    images = rng.integers(90, 140, (n, 32, 32, 3)).astype(np.uint8)
    masks = np.zeros((n, 32, 32), bool)
    for i in range(n):
        k = int(rng.integers(4, 9))
        r, c = rng.integers(0, 32 - k, 2)
        images[i, r:r + k, c:c + k] = rng.choice([rng.integers(0, 60, 3), rng.integers(190, 256, 3)])
        masks[i, r:r + k, c:c + k] = True
    return images, masks


def test_object_segmenter_learns_to_find_objects_on_held_out_images():
    train_images, train_masks = squares(64, 0)
    test_images, test_masks = squares(32, 1)

    trained = train_object_segmenter(train_images, train_masks, steps=150, seed=0)
    untrained = train_object_segmenter(train_images, train_masks, steps=0, seed=0)

    iou = mask_scores(segment_objects(trained, test_images, 16, "cpu"), test_masks)["iou"]
    assert iou > 0.8
    assert (mask_scores(segment_objects(untrained, test_images, 16, "cpu"), test_masks)["iou"] or 0) < 0.5


def test_wrong_size_input_image_is_refused_naming_the_file_and_both_sizes(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((24, 40, 3), np.uint8)).save(tmp_path / "b.jpg")

    with pytest.raises(ValueError, match=r"b\.jpg.*40x24.*32x32"):
        read_input_images(tmp_path, (32, 32))
    images, names = read_input_images(tmp_path, (32, 32), resize=True)
    assert images.shape == (2, 32, 32, 3) and names == ["a.png", "b.png"]
