"""`rlcyclegan translate` and `rlcyclegan eval-translation` end to end, on the tiny 32 px Grasp-v0 run of
tests/experiments/test_translation.py (built once per session and shared)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from test_translation import IMAGE_SIZE, build_tiny_grasp_run, session_root  # noqa: E402

from rlcyclegan.cli import main  # noqa: E402


@pytest.fixture(scope="session")
def grasp_run(tmp_path_factory) -> Path:
    return build_tiny_grasp_run(session_root(tmp_path_factory))


def write_images(folder: Path, names: list[str], size: int = IMAGE_SIZE, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / name)


def test_translate_image_folder_writes_one_png_per_image_with_the_same_names_and_size(grasp_run, tmp_path, capsys):
    write_images(tmp_path / "in", ["a.png", "b.png", "c.jpg"])

    code = main(["translate", "--checkpoint", str(grasp_run), "--input", str(tmp_path / "in"), "--direction", "sim2real",
                 "--out", str(tmp_path / "out"), "--batch-size", "2", "--device", "cpu"])

    assert code == 0
    assert "translated 3 images" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.png"]
    for p in (tmp_path / "out").iterdir():
        with Image.open(p) as img:
            assert img.size == (IMAGE_SIZE, IMAGE_SIZE) and img.mode == "RGB"


def test_translate_array_file_real2sim_writes_numbered_pngs(grasp_run, tmp_path, capsys):
    images = np.random.default_rng(1).integers(0, 256, (3, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    np.savez(tmp_path / "real.npz", images=images)

    code = main(["translate", "--checkpoint", str(grasp_run), "--input", str(tmp_path / "real.npz"), "--direction", "real2sim",
                 "--out", str(tmp_path / "out"), "--device", "cpu", "--json"])

    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 3 and result["direction"] == "real2sim"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["000000.png", "000001.png", "000002.png"]


def test_translate_refuses_a_wrong_size_image_naming_it_unless_resize(grasp_run, tmp_path, capsys):
    write_images(tmp_path / "in", ["ok.png"])
    write_images(tmp_path / "in", ["big.png"], size=48)
    args = ["translate", "--checkpoint", str(grasp_run), "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--device", "cpu"]

    assert main(args) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "in" / "big.png") in err and "48x48" in err and f"{IMAGE_SIZE}x{IMAGE_SIZE}" in err
    assert not (tmp_path / "out").exists()

    assert main(args + ["--resize"]) == 0
    with Image.open(tmp_path / "out" / "big.png") as img:
        assert img.size == (IMAGE_SIZE, IMAGE_SIZE)


def test_translate_refuses_a_missing_checkpoint_naming_it(tmp_path, capsys):
    write_images(tmp_path / "in", ["a.png"])
    missing = tmp_path / "nothing.pt"

    assert main(["translate", "--checkpoint", str(missing), "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 1
    assert str(missing) in capsys.readouterr().err


def test_translate_refuses_a_checkpoint_of_another_kind(tmp_path, capsys):
    from rlcyclegan.rl.checkpoint import save_checkpoint

    write_images(tmp_path / "in", ["a.png"])
    ckpt = save_checkpoint(tmp_path / "q.pt", {"kind": "qtopt", "policy": {}})

    assert main(["translate", "--checkpoint", str(ckpt), "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert str(ckpt) in err and "'qtopt'" in err


def test_eval_translation_json_holds_every_metric(grasp_run, capsys):
    code = main(["eval-translation", "--checkpoint", str(grasp_run), "--episodes", "1", "--classifier-steps", "10",
                 "--classifier-episodes", "1", "--device", "cpu", "--json"])

    assert code == 0
    r = json.loads(capsys.readouterr().out)
    assert {"g_vs_real", "f_vs_sim", "sim_vs_real", "q_consistency", "own_fid", "own_kid", "feature_network", "images"} <= set(r)
    assert r["feature_network"]["note"] == "own-feature FID/KID, not comparable to Inception FID"


def test_eval_q_network_sim_acts_with_the_rl_cyclegan_runs_q_sim(grasp_run, capsys):
    import torch

    from rlcyclegan.rl.checkpoint import load_checkpoint
    from rlcyclegan.rl.policy import Policy

    ckpt = load_checkpoint(grasp_run)
    q_sim, q_real = Policy.load(grasp_run, entry="policy_sim").qnet, Policy.load(grasp_run).qnet
    capsys.readouterr()
    code = main(["eval", "--checkpoint", str(grasp_run), "--q-network", "sim", "--episodes", "2", "--envs", "2", "--json", "--no-progress"])

    assert code == 0 and json.loads(capsys.readouterr().out)["q_network"] == "sim"
    assert all(torch.equal(v, ckpt["policy_sim"]["qnet"][k]) for k, v in q_sim.state_dict().items())
    assert any(not torch.equal(v, q_real.state_dict()[k]) for k, v in q_sim.state_dict().items())


def test_eval_translate_with_passes_every_observation_through_g(grasp_run, capsys, monkeypatch):
    from rlcyclegan.rl import translate

    seen: list[tuple] = []
    real_call = translate.ImageTranslator.__call__
    monkeypatch.setattr(translate.ImageTranslator, "__call__", lambda self, images: seen.append(np.shape(images)) or real_call(self, images))
    capsys.readouterr()
    code = main(["eval", "--checkpoint", str(grasp_run), "--translate-with", str(grasp_run), "--domain", "sim", "--episodes", "2",
                 "--envs", "2", "--json", "--no-progress"])

    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["translate_with"] == str(grasp_run) and result["domain"] == "sim"
    assert len(seen) >= 2 and all(s == (IMAGE_SIZE, IMAGE_SIZE, 3) for s in seen)


def test_eval_translate_direction_real2sim_passes_every_observation_through_f(grasp_run, capsys, monkeypatch):
    from rlcyclegan.rl import translate

    directions: list[str] = []
    real_load = translate.load_generator
    monkeypatch.setattr(translate, "load_generator", lambda path, direction="sim2real", device="cpu": directions.append(direction) or real_load(path, direction, device))
    capsys.readouterr()
    code = main(["eval", "--checkpoint", str(grasp_run), "--q-network", "sim", "--translate-with", str(grasp_run),
                 "--translate-direction", "real2sim", "--domain", "real", "--episodes", "2", "--envs", "2", "--json", "--no-progress"])

    result = json.loads(capsys.readouterr().out)
    assert code == 0 and directions == ["real2sim"] and result["translate_direction"] == "real2sim"


def test_eval_q_network_both_acts_on_the_mean_logit_of_q_real_on_y_and_q_sim_on_f_of_y(grasp_run, capsys):
    import torch

    from rlcyclegan.rl.policy import Policy
    from rlcyclegan.rl.translate import ImageTranslator, TwoDomainQ

    q_real, q_sim = Policy.load(grasp_run).qnet, Policy.load(grasp_run, entry="policy_sim").qnet
    f = ImageTranslator.load(grasp_run, direction="real2sim")
    both = TwoDomainQ(q_real, q_sim, f).eval()
    rng = np.random.default_rng(0)
    y = torch.as_tensor(rng.integers(0, 256, (3, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8))
    state = torch.zeros(3, q_real.cfg.state_dim)
    action = torch.as_tensor(rng.uniform(-1, 1, (3, 5, q_real.cfg.action_dim)), dtype=torch.float32)
    with torch.no_grad():
        expected = 0.5 * (q_real(y, state, action) + q_sim(torch.as_tensor(f(y.numpy())), state, action))
        torch.testing.assert_close(both(y, state, action), expected)
    capsys.readouterr()
    code = main(["eval", "--checkpoint", str(grasp_run), "--q-network", "both", "--domain", "real", "--episodes", "2", "--envs", "2",
                 "--json", "--no-progress"])
    assert code == 0 and json.loads(capsys.readouterr().out)["q_network"] == "both"
