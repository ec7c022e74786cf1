"""`rlcyclegan report`: tables for every experiment and method, plots, translation grids, determinism, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlcyclegan.cli import main
from rlcyclegan.experiments.report import (ReportError, Row, Source, curve_plot, finetune_targets, multibin_targets, real_data_targets, stage_command,
                                          write_report, zero_shot_targets)
from rlcyclegan.experiments.specs import EXPERIMENTS, METHODS

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def all_experiments(tiny_experiment) -> list[Path]:
    return [tiny_experiment(name) for name in EXPERIMENTS]


@pytest.fixture(scope="module")
def report(all_experiments, tmp_path_factory) -> Path:
    return write_report(all_experiments, tmp_path_factory.mktemp("report"))


def sections(markdown: str) -> dict[str, str]:
    parts = markdown.split("\n## ")[1:]
    return {p.split("(`")[1].split("`")[0]: p for p in parts if "(`" in p.split("\n")[0]}


def test_report_has_a_table_with_every_method_of_every_experiment(report):
    found = sections(report.read_text())

    assert list(found) == list(EXPERIMENTS)
    for name, text in found.items():
        rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| method")]
        for method in EXPERIMENTS[name].methods:
            assert any(row.startswith(f"| {METHODS[method].label} |") for row in rows), (name, method)
        assert (report.parent / f"{name}-tiny.png").read_bytes()[:8] == PNG


def test_report_sets_the_papers_numbers_beside_the_results(report):
    zero_shot = sections(report.read_text())["zero-shot"]

    for label, paper in (("Sim-only", 21), ("Randomized Sim", 37), ("GAN", 29), ("CycleGAN", 61), ("RL-CycleGAN", 70)):
        row = next(line for line in zero_shot.splitlines() if line.startswith(f"| {label} |"))
        assert f"| {paper}% |" in row
    real_data = sections(report.read_text())["real-data"]
    assert "| RL-CycleGAN + Real | 12 |" in real_data and "| 94% |" in real_data  # 100% of the Oracle's real data


def test_report_says_which_cem_the_policies_acted_with(report):
    from rlcyclegan.experiments.specs import RECIPES

    i, n, e = RECIPES["tiny"].eval_cem
    for name, text in sections(report.read_text()).items():
        assert f"the policies act with CEM {i}x{n} ({e} elites)." in text, name


def test_report_json_matches_the_results(report, all_experiments):
    rows = json.loads((report.parent / "report.json").read_text())["rows"]
    records = [json.loads(line) for out in all_experiments for line in (out / "results.jsonl").read_text().splitlines()]

    key = lambda r: (r["experiment"], r["method"] + (f"+{r['variant']}" if r.get("variant") else ""), r["budget"], r["eval"])  # noqa: E731
    assert len(rows) == len({key(r) for r in records})
    for row in rows:
        same = [r for r in records if key(r) == (row["experiment"], row["method"], row["budget"], row["eval"])]
        assert row["success"] == pytest.approx(sum(r["success"] for r in same) / len(same))
        assert row["pooled_low"] <= row["success"] <= row["pooled_high"]


def test_translation_grids_show_methods_with_a_generator(report):
    text = report.read_text()

    assert "![translations](zero-shot-tiny-translations.png)" in text
    assert (report.parent / "zero-shot-tiny-translations.png").read_bytes()[:8] == PNG
    assert (report.parent / "multibin-tiny-translations.png").exists()


def test_report_tabulates_each_generators_translation_metrics(report, all_experiments):
    zero_shot = sections(report.read_text())["zero-shot"]
    lines = zero_shot.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("| generator | PSNR dB, object pixels |"))
    body = [line.split(" | ") for line in lines[head + 2:] if line.startswith("| ")]
    table = {cells[0][2:]: cells[1:] for cells in body[:next((i for i, c in enumerate(body) if c[0] == "| method"), len(body))]}
    records = {r["method"]: r for r in map(json.loads, (all_experiments[0] / "results.jsonl").read_text().splitlines()) if not r.get("acting")}

    assert sorted(table) == sorted(["GAN", "CycleGAN", "RL-CycleGAN", "no translation (sim render x)",
                                    "the real render y itself (segmenter ceiling)"])
    for method, label in (("gan", "GAN"), ("cyclegan", "CycleGAN"), ("rl-cyclegan", "RL-CycleGAN")):
        assert table[label][0] == f"{records[method]['translation']['g_vs_real']['psnr_object']:.2f}"
        iou = records[method]["translation"]["object_segmentation"]["g_vs_real"]["iou"]
        assert table[label][2].split(" [")[0] == ("—" if iou is None else f"{iou:.3f}")
    assert all(len(cells) == 8 for cells in table.values())  # every row fills every column
    assert table["no translation (sim render x)"][0] == f"{records['gan']['translation']['sim_vs_real']['psnr_object']:.2f}"


def test_report_lists_the_commands_and_stage_configs(report):
    text = report.read_text()

    assert "rlcyclegan experiment zero-shot --preset tiny --seeds 1 --out" in text
    assert "`rlcyclegan train rlcyclegan --preset tiny --method gan" in text
    assert "--init-q" in text and "--translate-with" in text and "--init-from" in text


def test_rerunning_the_report_gives_the_same_files_byte_for_byte(all_experiments, report, tmp_path):
    again = write_report(all_experiments, tmp_path / "again")

    for path in sorted(report.parent.iterdir()):
        assert (again.parent / path.name).read_bytes() == path.read_bytes(), path.name


def test_stage_command_lists_the_fields_that_differ_from_the_preset():
    cmd = stage_command("qtopt", {"steps": 5, "qnet": "small", "data": ["a", "b"], "online": False, "out": "o", "name": "n"}, "tiny")

    assert cmd == "rlcyclegan train qtopt --preset tiny --data a b --no-online --steps 5 --out o --name n"


def test_missing_results_are_a_clear_error(tmp_path, capsys):
    with pytest.raises(ReportError, match="no results.jsonl"):
        write_report([tmp_path / "nowhere"], tmp_path / "r")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "results.jsonl").write_text("")
    with pytest.raises(ReportError, match="no records yet"):
        write_report([tmp_path / "empty"], tmp_path / "r")

    assert main(["report", "--results", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    assert "no results.jsonl" in capsys.readouterr().err


def test_a_set_variant_is_a_row_of_its_own_without_the_papers_number(tiny_experiment, tmp_path):
    import shutil

    out = tmp_path / "zs"
    shutil.copytree(tiny_experiment("zero-shot"), out)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    base = next(r for r in records if r["method"] == "rl-cyclegan")
    records.append({**base, "variant": "lambda_rl_scene=10", "label": "RL-CycleGAN [lambda_rl_scene=10]", "success": 0.0, "successes": 0})
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    text = write_report([out], tmp_path / "report").read_text()

    plain = next(line for line in text.splitlines() if line.startswith("| RL-CycleGAN |"))
    variant = next(line for line in text.splitlines() if line.startswith("| RL-CycleGAN [lambda_rl_scene=10] |"))
    assert "| 70% |" in plain and "| 70% |" not in variant and "| 0.0% |" in variant


def test_report_names_the_machine_that_trained_each_run(report):
    from rlcyclegan.train.common import describe_machine, machine_info
    import torch

    text = report.read_text()
    assert "Machines that trained the runs" in text
    assert describe_machine(machine_info(torch.device("cpu"))).split(",")[0] in text


# ------------------------------------------------------------------------------------ targets
def fake_row(method: str, successes: list[int], experiment: str = "zero-shot", budget: int | None = None,
             share: float | None = None, episodes: int = 500, eval_name: str = "real", real_episodes: int | None = None) -> Row:
    src = Source("x", Path("x"), [], {})
    records = [{"seed": i, "success": k / episodes, "successes": k, "eval_episodes": episodes, "train_env": "rlcyclegan/Grasp-v0",
                "budget_share": share, "real_episodes": real_episodes if real_episodes is not None else budget} for i, k in enumerate(successes)]
    label = METHODS[method.split("+")[0]].label
    return Row(experiment, "cpu", method, label, budget, "real" if budget else None, eval_name, records, src)


def verdicts(rows: list[Row]) -> dict[str, str]:
    return {t: v for t, v, _ in zero_shot_targets(rows, rows)}


def test_zero_shot_targets_are_met_when_the_papers_ordering_holds_with_two_seeds():
    rows = [fake_row("sim-only", [0, 5]), fake_row("randomized-sim", [150, 160]), fake_row("gan", [200, 210]),
            fake_row("cyclegan", [300, 310]), fake_row("rl-cyclegan", [400, 410]), fake_row("oracle", [450, 460])]

    assert set(verdicts(rows).values()) == {"met"}


def test_a_gap_inside_the_intervals_is_named_and_a_reversed_one_is_missed():
    rows = [fake_row("sim-only", [0, 0]), fake_row("gan", [330, 330]), fake_row("cyclegan", [320, 325]),
            fake_row("rl-cyclegan", [330, 335]), fake_row("oracle", [450, 450])]
    v = verdicts(rows)

    assert v["RL-CycleGAN above CycleGAN"] == "met, inside the intervals"
    assert v["CycleGAN above GAN"] == "missed, inside the intervals"
    assert v["CycleGAN above Randomized Sim"] == "not run yet"
    assert v["RL-CycleGAN >= 0.8 of the Oracle"] == "missed"  # 0.74


def test_one_seed_misses_the_seed_target_and_variants_do_not_count():
    rows = [fake_row("sim-only", [0, 0]), fake_row("cyclegan", [300]), fake_row("rl-cyclegan", [100, 100]),
            fake_row("rl-cyclegan+online=true", [400, 400])]
    targets = {t: (v, f) for t, v, f in zero_shot_targets(rows, rows)}

    assert targets[">= 2 seeds per method"] == ("missed", "fewer: CycleGAN (1)")
    assert targets["RL-CycleGAN above CycleGAN"][0] == "missed"


def test_real_data_target_compares_small_budgets_with_the_oracle():
    oracle = fake_row("oracle", [400], real_episodes=14_900)
    small, large = fake_row("rl-cyclegan-real", [390], "real-data", 550, 0.05), fake_row("rl-cyclegan-real", [420], "real-data", 11000, 1.0)
    (_, verdict, figures), = real_data_targets([small, large], [small, large, oracle])
    (_, low_verdict, _), = real_data_targets([fake_row("rl-cyclegan-real", [300], "real-data", 550, 0.05)], [oracle])

    assert verdict == "met" and "550 episodes (3.7% of the Oracle's 14,900): 78.0%" in figures and "11,000" not in figures
    assert low_verdict == "missed"
    assert real_data_targets([large], [large, oracle])[0][1] == "not run yet"
    assert real_data_targets([small], [small])[0][1] == "not run yet"  # no Oracle to compare with


def test_real_data_target_counts_every_real_episode_the_oracle_used_not_its_pool_alone():
    oracle = fake_row("oracle", [400], real_episodes=14_900)  # an 11,000-episode pool and 3,900 collected on-policy
    at_limit = fake_row("rl-cyclegan-real", [390], "real-data", 1490, 1490 / 11_000)  # 13.5% of the pool, 10% of all
    above = fake_row("rl-cyclegan-real", [395], "real-data", 1600, 1600 / 11_000)

    (_, verdict, figures), = real_data_targets([at_limit, above], [at_limit, above, oracle])

    assert verdict == "met" and "1,490 episodes (10.0% of the Oracle's 14,900)" in figures and "1,600" not in figures


def test_report_has_a_targets_table_for_zero_shot(report):
    zero_shot = sections(report.read_text())["zero-shot"]
    assert "| target | result | figures |" in zero_shot and "| RL-CycleGAN above CycleGAN |" in zero_shot


def test_real_data_and_finetune_compare_methods_at_each_shared_budget():
    rows = [fake_row("rl-cyclegan-real", [390], "real-data", 550, 0.05), fake_row("real-only", [100], "real-data", 550, 0.05),
            fake_row("real-only", [300], "real-data", 11000, 1.0), fake_row("sim-real", [395], "real-data", 550, 0.05)]
    got = {t: v for t, v, _ in real_data_targets(rows, rows)}
    ft = [fake_row("rl-cyclegan-ft", [420], "finetune", 250), fake_row("scratch-ft", [50], "finetune", 250),
          fake_row("scratch-ft", [60], "finetune", 1000)]

    assert got["RL-CycleGAN + Real above Real-only at 550 real episodes"] == "met"
    assert got["RL-CycleGAN + Real above Sim+Real at 550 real episodes"] == "missed, inside the intervals"
    assert not any("11,000" in t for t in got)  # no RL-CycleGAN + Real run at that budget
    assert [(t, v) for t, v, _ in finetune_targets(ft, ft)][0] == (
        "RL-CycleGAN + fine-tuning above Scratch (real data only) at 250 on-policy episodes", "met")
    assert len(finetune_targets(ft, ft)) == 2  # and the comparison with the (missing) zero-shot start


def test_finetune_target_asks_each_budget_to_improve_on_the_zero_shot_start():
    ft = [fake_row("rl-cyclegan", [330], "finetune"), fake_row("rl-cyclegan-ft", [300], "finetune", 250),
          fake_row("rl-cyclegan-ft", [420], "finetune", 1000)]
    got = {t: v for t, v, _ in finetune_targets(ft, ft)}
    without_start = {t: (v, f) for t, v, f in finetune_targets(ft[1:], ft[1:])}

    assert got["RL-CycleGAN + fine-tuning at 250 on-policy episodes above its start (RL-CycleGAN, zero-shot)"] == "missed, inside the intervals"
    assert got["RL-CycleGAN + fine-tuning at 1,000 on-policy episodes above its start (RL-CycleGAN, zero-shot)"] == "met"
    assert without_start["RL-CycleGAN + fine-tuning at 250 on-policy episodes above its start (RL-CycleGAN, zero-shot)"] == (
        "not run yet", "no results for RL-CycleGAN")


def test_multibin_target_asks_single_and_multi_bin_success_inside_each_others_intervals():
    rows = [fake_row("cyclegan", [300], "multibin", eval_name="single-bin"), fake_row("cyclegan", [290], "multibin", eval_name="multi-bin"),
            fake_row("sim-only", [300], "multibin", eval_name="single-bin"), fake_row("sim-only", [100], "multibin", eval_name="multi-bin")]

    assert [(t, v) for t, v, _ in multibin_targets(rows, rows)] == [
        ("CycleGAN: single-bin and multi-bin similar", "met"), ("Sim-only: single-bin and multi-bin similar", "missed")]


def test_report_lists_the_recipes_runs_its_results_lack():
    from dataclasses import asdict

    from rlcyclegan.experiments.report import missing_runs
    from rlcyclegan.experiments.specs import RECIPES

    src = Source("x", Path("x"), [], {"recipe": json.loads(json.dumps(asdict(RECIPES["cpu"])))})
    row = fake_row("rl-cyclegan-real", [300], "real-data", 550, 0.05)
    row.source = src
    lines = "\n".join(missing_runs([row]))

    assert "- Real-only: 110 real episodes: seeds 0, 1; 550 real episodes: seeds 0, 1;" in lines
    assert "- RL-CycleGAN + Real: 110 real episodes: seeds 0, 1; 550 real episodes: seed 1;" in lines
    assert missing_runs([fake_row("rl-cyclegan-real", [300], "real-data", 550, 0.05)]) == []  # no recipe recorded


def test_real_data_plot_draws_the_oracle_and_the_target_line(tmp_path):
    oracle = fake_row("oracle", [400], real_episodes=14_900)
    runs = [fake_row("real-only", [10], "real-data", 550, 0.05), fake_row("rl-cyclegan-real", [320], "real-data", 550, 0.05)]

    labels = curve_plot(runs, tmp_path / "with.png", "t", "real", oracle, 0.95)
    bare = curve_plot(runs, tmp_path / "without.png", "t", "real")

    assert "Oracle (80.0%, trained in real)" in labels and "target: 0.95 of the Oracle" in labels
    assert not any("Oracle" in label for label in bare)
    assert (tmp_path / "with.png").read_bytes()[:8] == PNG


def test_acting_both_is_a_variant_row_beside_the_recipes_without_a_translation_row_or_grid_column(report):
    zero_shot = sections(report.read_text())["zero-shot"]
    rows = [line for line in zero_shot.splitlines() if line.startswith("| RL-CycleGAN [acting=both] |")]

    assert len(rows) == 1 and "| — |" in rows[0]  # the results table only: no paper number, no translation-metrics line
    assert "**RL-CycleGAN [acting=both]**: the same runs as the line without acting=both" in report.read_text()
    assert "--q-network both" in report.read_text()
