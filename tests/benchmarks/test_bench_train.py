"""`rlcyclegan bench train`: RL-CycleGAN vs CycleGAN step speed, as JSON (tiny sizes; no timing goals tested)."""

from __future__ import annotations

import json

from rlcyclegan.cli import main


def test_bench_train_json_reports_both_methods_and_a_positive_ratio(capsys):
    code = main(["bench", "train", "--json", "--preset", "tiny", "--image-size", "32", "--batch-size", "2", "--steps", "2",
                 "--warmup", "1", "--threads", "1"])

    assert code == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r["methods"]) == {"cyclegan", "rlcyclegan"}
    for m in r["methods"].values():
        assert m["step_ms"] > 0 and m["steps_per_second"] > 0
        assert abs(m["images_per_second"] - 2 * m["steps_per_second"]) < 1e-6 * m["images_per_second"]
    cyc, rl = r["methods"]["cyclegan"]["parameters"], r["methods"]["rlcyclegan"]["parameters"]
    assert cyc["generators"] == rl["generators"] and cyc["discriminators"] == rl["discriminators"]  # identical G/F/D
    assert cyc["q_networks"] == 0 < rl["q_networks"]
    assert r["ratio_rlcyclegan_to_cyclegan"] > 0 and isinstance(r["meets_goal"], bool)
    assert r["machine"]["torch_threads"] == 1 and r["machine"]["device"] == "cpu" and r["machine"]["cpu_count"] >= 1


def test_bench_train_rejects_zero_steps(capsys):
    assert main(["bench", "train", "--preset", "tiny", "--image-size", "32", "--steps", "0"]) == 2
    assert "steps" in capsys.readouterr().err
