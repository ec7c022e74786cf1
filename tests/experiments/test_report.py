"""`rlcyclegan report`: tables for every experiment and method, plots, translation grids, determinism, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlcyclegan.cli import main
from rlcyclegan.experiments.report import ReportError, stage_command, write_report
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

    assert len(rows) == len({(r["experiment"], r["method"], r["budget"], r["eval"]) for r in records})
    for row in rows:
        same = [r for r in records if (r["experiment"], r["method"], r["budget"], r["eval"]) == (row["experiment"], row["method"], row["budget"], row["eval"])]
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
    records = {r["method"]: r for r in map(json.loads, (all_experiments[0] / "results.jsonl").read_text().splitlines())}

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
