"""`rlcyclegan train qtopt` and `rlcyclegan eval` end to end (tiny preset)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from filelock import FileLock

from rlcyclegan.cli import main
from rlcyclegan.rl.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One `train qtopt --preset tiny` run per test session, shared by the pytest-xdist workers."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    out = root / "cli-qtopt-tiny"
    with FileLock(str(out) + ".lock"):
        if not (out / ".built").exists():
            shutil.rmtree(out, ignore_errors=True)
            assert main(["train", "qtopt", "--preset", "tiny", "--out", str(out), "--name", "r", "--no-progress"]) == 0
            (out / ".built").touch()
    return out / "r"


def test_train_writes_config_metrics_curve_tensorboard_and_checkpoint(tiny_run):
    config = json.loads((tiny_run / "config.json").read_text())
    records = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]

    assert config["qnet"] == "small" and config["steps"] == 60 and config["image_size"] == 32
    assert [r["step"] for r in records] == [30, 60]
    assert all(0.0 <= r["success_low"] <= r["success"] <= r["success_high"] <= 1.0 for r in records)
    assert (tiny_run / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(p.name.startswith("events.out.tfevents") for p in (tiny_run / "tb").iterdir())
    assert load_checkpoint(tiny_run / "checkpoints" / "latest.pt", kind="qtopt")["step"] == 60


def test_train_keeps_only_the_newest_numbered_checkpoints(tiny_run):
    numbered = sorted(p.name for p in (tiny_run / "checkpoints").glob("step_*.pt"))

    assert numbered == ["step_00000040.pt", "step_00000060.pt"]  # keep_checkpoints=2


def test_eval_prints_json_with_success_and_its_interval(tiny_run, capsys):
    capsys.readouterr()

    code = main(["eval", "--checkpoint", str(tiny_run), "--episodes", "6", "--envs", "3", "--json", "--no-progress"])

    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["episodes"] == 6 and result["env"] == "rlcyclegan/Grasp-v0" and result["step"] == 60
    assert 0.0 <= result["success"] <= 1.0
    assert result["success_low"] <= result["success"] <= result["success_high"]
    assert result["success"] == result["successes"] / 6
    assert result["checkpoint"] == str(tiny_run / "checkpoints" / "latest.pt")


def test_eval_reports_the_checkpoints_cem_settings_and_takes_overrides(tiny_run, capsys):
    args = ["eval", "--checkpoint", str(tiny_run), "--episodes", "3", "--envs", "3", "--json", "--no-progress"]
    capsys.readouterr()

    assert main(args) == 0
    trained = json.loads(capsys.readouterr().out)["cem"]
    assert main(args + ["--cem-iterations", "3", "--cem-samples", "128"]) == 0
    override = json.loads(capsys.readouterr().out)["cem"]

    assert set(trained) == {"iterations", "samples", "elites"}
    assert override == {**trained, "iterations": 3, "samples": 128}


def test_eval_with_more_cem_elites_than_samples_fails_naming_cem(tiny_run, capsys):
    code = main(["eval", "--checkpoint", str(tiny_run), "--episodes", "2", "--no-progress", "--cem-samples", "4", "--cem-elites", "6"])

    assert code == 1
    assert "cem" in capsys.readouterr().err


def test_eval_on_corrupt_checkpoint_fails_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "latest.pt"
    bad.write_bytes(b"not a checkpoint at all" * 10)

    code = main(["eval", "--checkpoint", str(bad), "--episodes", "2", "--no-progress"])

    assert code != 0
    assert str(bad) in capsys.readouterr().err


def test_eval_on_missing_checkpoint_fails_naming_it(tmp_path, capsys):
    missing = tmp_path / "nothing.pt"

    assert main(["eval", "--checkpoint", str(missing), "--no-progress"]) == 1
    assert str(missing) in capsys.readouterr().err


def test_train_with_unknown_preset_exits_2(tmp_path, capsys):
    code = main(["train", "qtopt", "--preset", "huge", "--out", str(tmp_path), "--no-progress"])

    assert code == 2
    assert "unknown --preset 'huge'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_train_resume_of_a_folder_without_config_exits_2(tmp_path, capsys):
    code = main(["train", "qtopt", "--resume", str(tmp_path)])

    assert code == 2
    assert "config.json" in capsys.readouterr().err


def test_eval_q_network_sim_of_a_qtopt_checkpoint_fails_naming_q_sim(tiny_run, capsys):
    assert main(["eval", "--checkpoint", str(tiny_run), "--q-network", "sim", "--episodes", "2", "--no-progress"]) == 1
    assert "no Q_sim" in capsys.readouterr().err
