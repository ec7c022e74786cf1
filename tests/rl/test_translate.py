"""A generator in front of the Q-policy: loading it, translating images, wrapped envs, translated replay."""

from __future__ import annotations

import warnings

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlcyclegan  # noqa: F401
from rlcyclegan.data.collect import run_episode
from rlcyclegan.data.store import write_episodes
from rlcyclegan.nets.generators import from_gan_output, make_generator, to_gan_input
from rlcyclegan.rl.checkpoint import CheckpointError, save_checkpoint
from rlcyclegan.rl.translate import ImageTranslator, TranslatedObservations, load_generator

SIZE = 32


def tiny_generator():
    torch.manual_seed(0)
    return make_generator("unet_small", channels=4, depth=3).eval()


@pytest.fixture
def generator_ckpt(tmp_path) -> Path:
    g = tiny_generator()
    return save_checkpoint(tmp_path / "gen.pt", {"kind": "rlcyclegan", "generator": {"direction": "sim2real", "config": g.cfg.to_dict(), "weights": g.state_dict()}})


def test_translator_matches_the_generator_on_uint8_images(generator_ckpt):
    images = np.random.default_rng(0).integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8)
    out = ImageTranslator.load(generator_ckpt)(images)
    with torch.no_grad():
        expected = from_gan_output(tiny_generator()(to_gan_input(torch.as_tensor(images)))).numpy()
    assert out.dtype == np.uint8 and out.shape == images.shape
    np.testing.assert_array_equal(out, expected)


def test_translator_accepts_a_single_image(generator_ckpt):
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    assert ImageTranslator.load(generator_ckpt)(image).shape == (SIZE, SIZE, 3)


def test_translator_takes_read_only_images_without_a_warning(generator_ckpt):
    images = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    images.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ImageTranslator.load(generator_ckpt)(images)
    np.testing.assert_array_equal(out, ImageTranslator.load(generator_ckpt)(images.copy()))


def test_translator_rejects_float_images(generator_ckpt):
    with pytest.raises(ValueError, match="uint8"):
        ImageTranslator.load(generator_ckpt)(np.zeros((2, SIZE, SIZE, 3), np.float32))


def test_wrapped_env_observes_translated_images(generator_ckpt):
    translator = ImageTranslator.load(generator_ckpt)
    raw = gym.make("rlcyclegan/Grasp-v0", image_size=SIZE)
    wrapped = TranslatedObservations(gym.make("rlcyclegan/Grasp-v0", image_size=SIZE), translator)
    obs_raw, _ = raw.reset(seed=3)
    obs_wrapped, _ = wrapped.reset(seed=3)
    np.testing.assert_array_equal(obs_wrapped["image"], translator(obs_raw["image"]))
    np.testing.assert_array_equal(obs_wrapped["state"], obs_raw["state"])


def test_real2real_translates_through_f_then_g(tmp_path):
    g = tiny_generator()
    torch.manual_seed(1)
    f = make_generator("unet_small", channels=4, depth=3).eval()
    path = save_checkpoint(tmp_path / "both.pt", {"kind": "rlcyclegan",
                                                  "generator": {"direction": "sim2real", "config": g.cfg.to_dict(), "weights": g.state_dict()},
                                                  "generator_real2sim": {"direction": "real2sim", "config": f.cfg.to_dict(), "weights": f.state_dict()}})
    x = to_gan_input(torch.as_tensor(np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)))
    with torch.no_grad():
        np.testing.assert_allclose(load_generator(path, "real2real")(x).numpy(), g(f(x)).numpy(), atol=1e-6)
        assert not torch.allclose(g(f(x)), g(x), atol=1e-3)


def test_real2real_needs_both_generators(generator_ckpt):
    with pytest.raises(CheckpointError, match="without a real2sim generator"):
        load_generator(generator_ckpt, "real2real")


def test_checkpoint_without_generator_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "q.pt", {"kind": "qtopt"})
    with pytest.raises(CheckpointError, match="without a sim2real generator"):
        load_generator(path)


def test_qtopt_translate_with_fills_the_replay_with_translated_images(tmp_path, generator_ckpt):
    from rlcyclegan.data.dataset import EpisodeDataset
    from rlcyclegan.train.qtopt import eval_domain, load_offline, preset_config

    env = gym.make("rlcyclegan/Grasp-v0", image_size=SIZE)
    write_episodes(tmp_path / "sim", [run_episode(env, "scripted", i, i) for i in range(2)], env_id="rlcyclegan/Grasp-v0",
                   domain="sim", objects="train", policy="scripted", env_kwargs={"image_size": SIZE})
    cfg = preset_config("tiny", data=(tmp_path / "sim",), translate_with=generator_ckpt, image_size=SIZE)
    buf, episodes = load_offline(cfg, tmp_path, (SIZE, SIZE, 3), 2, 6, progress=False)

    ds = EpisodeDataset(tmp_path / "sim")
    expected = ImageTranslator.load(generator_ckpt)(ds.images())[ds.transitions()["obs_index"]]
    assert episodes == 2
    np.testing.assert_array_equal(buf.images[buf.obs_index], expected)
    assert eval_domain(cfg) == "real" and eval_domain(preset_config("tiny")) == "sim"


def write_grasp_episodes(folder: Path, domain: str, seeds: range) -> None:
    env = gym.make("rlcyclegan/Grasp-v0", image_size=SIZE, domain=domain)
    write_episodes(folder, [run_episode(env, "scripted", i, i) for i in seeds], shard_size=1, env_id="rlcyclegan/Grasp-v0",
                   domain=domain, objects="train", policy="scripted", env_kwargs={"image_size": SIZE, "domain": domain})


def test_qtopt_translate_with_replays_real_episodes_untranslated(tmp_path, generator_ckpt):
    from rlcyclegan.data.dataset import EpisodeDataset
    from rlcyclegan.train.qtopt import load_offline, preset_config

    write_grasp_episodes(tmp_path / "sim", "sim", range(2))
    write_grasp_episodes(tmp_path / "real", "real", range(2, 3))
    cfg = preset_config("tiny", domain="real", data=(tmp_path / "sim", tmp_path / "real"), translate_with=generator_ckpt, image_size=SIZE)
    buf, episodes = load_offline(cfg, tmp_path, (SIZE, SIZE, 3), 2, 6, progress=False)

    sim, real = EpisodeDataset(tmp_path / "sim"), EpisodeDataset(tmp_path / "real")
    expected = np.concatenate([ImageTranslator.load(generator_ckpt)(sim.images()), real.images()])
    assert episodes == 3
    np.testing.assert_array_equal(buf.images, expected)


def test_qtopt_translate_with_refuses_a_folder_mixing_real_and_sim(tmp_path, generator_ckpt):
    from rlcyclegan.train.qtopt import load_offline, preset_config

    write_grasp_episodes(tmp_path / "mixed", "sim", range(1))
    write_grasp_episodes(tmp_path / "mixed", "real", range(1, 2))
    cfg = preset_config("tiny", data=(tmp_path / "mixed",), translate_with=generator_ckpt, image_size=SIZE)
    with pytest.raises(ValueError, match=r"mixed.*domains \['real', 'sim'\]"):
        load_offline(cfg, tmp_path, (SIZE, SIZE, 3), 2, 6, progress=False)
