"""`rlcyclegan demo` (what `make demo` runs) on the tiny recipe: the whole job, its report, and resuming it."""

from __future__ import annotations

import json

from rlcyclegan.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def test_demo_trains_sim_only_and_rl_cyclegan_reports_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"

    assert main(["demo", "--preset", "tiny", "--out", str(out), "--no-progress", "--workers", "1"]) == 0

    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["policies"]) == {"sim-only", "rl-cyclegan"}
    for p in summary["policies"].values():
        assert p["domain"] == "real" and p["objects"] == "test" and p["episodes"] == 4
        assert 0 <= p["success_low"] <= p["success"] <= p["success_high"] <= 1 and p["train_minutes"] > 0
    for name in ("domains.png", "episodes_sim.png", "episodes_real.png", "zero-shot-tiny-translations.png", "zero-shot-tiny.png"):
        assert (out / name).read_bytes()[:8] == PNG, name
    assert "| Sim-only |" in (out / "report.md").read_text() and "| RL-CycleGAN |" in (out / "report.md").read_text()
    assert f"report: {out / 'report.md'}" in printed

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/checkpoints/latest.pt")}
    assert main(["demo", "--preset", "tiny", "--out", str(out), "--no-progress"]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps and len(stamps) == 2  # nothing trained again
