"""The environment benchmark's JSON (tiny settings: this checks structure, not speed)."""

from __future__ import annotations

from rlcyclegan.benchmarks.env import bench_env


def test_bench_env_reports_speed_scripted_and_clean_planner_success():
    out = bench_env(episodes=2, sizes=(32,), success_episodes=2)

    assert out["sizes"]["32"]["episodes_per_second"] > 0
    assert set(out["scripted_success"]) == {"train", "test"}
    clean = out["clean_planner_success_test"]
    assert clean["episodes"] == 2 and 0.0 <= clean["success_rate"] <= 1.0
    assert clean["wilson95"][0] <= clean["success_rate"] <= clean["wilson95"][1]
