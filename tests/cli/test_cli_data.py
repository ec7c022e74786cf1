"""`rlcyclegan collect`, `rlcyclegan data info` and `rlcyclegan data grid` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from rlcyclegan.cli import main

COLLECT_ARGS = ["--episodes", "3", "--shard-size", "2", "--image-size", "32", "--num-objects", "3", "--seed", "4"]


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "episodes"
    assert main(["collect", "--out", str(out), "--policy", "scripted", "--no-progress", *COLLECT_ARGS]) == 0
    return out


def test_collect_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "episodes"

    code = main(["collect", "--out", str(out), "--policy", "random", "--json", "--no-progress", *COLLECT_ARGS])

    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["episodes"] == 3 and summary["new_episodes"] == 3 and summary["shards"] == 2
    assert 0.0 <= summary["success_rate"] <= 1.0 and summary["steps"] >= 3


def test_data_info_json_reports_counts_and_interval(collected, capsys):
    assert main(["data", "info", str(collected), "--json"]) == 0

    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 3 and info["shards"] == 2
    assert info["env_ids"] == ["rlcyclegan/Grasp-v0"] and info["domains"] == ["sim"]
    assert info["policies"] == ["scripted"] and info["image_shape"] == [32, 32, 3]
    lo, hi = info["success_ci95"]
    assert 0.0 <= lo <= info["success_rate"] <= hi <= 1.0
    assert info["steps"] >= info["episodes"]


def test_data_info_table_names_the_interval(collected, capsys):
    assert main(["data", "info", str(collected)]) == 0

    text = capsys.readouterr().out
    assert "95% Wilson interval" in text and "32x32x3" in text and "rlcyclegan/Grasp-v0" in text


def test_data_grid_writes_a_png_with_one_row_per_episode(collected, tmp_path, capsys):
    out = tmp_path / "grid.png"

    assert main(["data", "grid", str(collected), "--out", str(out), "--episodes", "2", "--scale", "1"]) == 0

    assert "wrote" in capsys.readouterr().out
    with Image.open(out) as img:
        width, height = img.size
        assert img.mode == "RGB"
    assert 2 * 32 < height < 3 * 32 + 60  # two rows of 32-pixel frames plus labels
    assert width > 32 * 2


def test_data_info_on_missing_directory_fails_with_its_name(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "nowhere")]) == 1

    assert "nowhere" in capsys.readouterr().err


def test_collect_with_different_settings_fails_naming_the_field(collected, capsys):
    args = ["collect", "--out", str(collected), "--policy", "random", "--no-progress", *COLLECT_ARGS]

    assert main(args) == 1

    assert "policy: directory has 'scripted', requested 'random'" in capsys.readouterr().err


def test_collect_env_kwargs_reach_the_env(tmp_path):
    from rlcyclegan.data.dataset import EpisodeDataset

    out = tmp_path / "pose"
    assert main(["collect", "--out", str(out), "--env-kwargs", '{"state": "pose"}', "--no-progress", *COLLECT_ARGS]) == 0
    assert EpisodeDataset(out).transitions()["state"].shape[1] == 5


def test_collect_rejects_env_kwargs_that_are_not_json(tmp_path, capsys):
    code = main(["collect", "--out", str(tmp_path / "x"), "--env-kwargs", "{state: pose}", "--no-progress", *COLLECT_ARGS])
    assert code == 2 and "--env-kwargs" in capsys.readouterr().err
