"""`rlcyclegan experiment`: every experiment end to end on the tiny preset, results records, resumption, errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from rlcyclegan.cli import main
from rlcyclegan.data import EpisodeDataset
from rlcyclegan.experiments import runner
from rlcyclegan.experiments.runner import ExperimentError, config_hash, plan_experiment, run_experiment, run_status, stale
from rlcyclegan.experiments.specs import EXPERIMENTS, METHODS, RECIPES
from rlcyclegan.rl.checkpoint import load_checkpoint
from rlcyclegan.train import rlcyclegan as rc

NAMES = tuple(EXPERIMENTS)


def read_results(out: Path, acting_both: bool = False) -> list[dict]:
    """The records of results.jsonl; without ``acting_both``, only those of each run's policy Q_real (no acting=both)."""
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return records if acting_both else [r for r in records if r.get("acting") != "both"]


# ------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("name", NAMES)
def test_experiment_writes_one_record_per_run_and_evaluation(tiny_experiment, name):
    out = tiny_experiment(name)
    plan = plan_experiment(name, "tiny", 1, out)
    records = read_results(out, acting_both=True)
    evals = 2 if name == "multibin" else 1

    assert len(records) == sum(evals * (2 if runner.acts_both(plan, run) else 1) for run in plan.runs)
    assert {r["method"] for r in records} == set(EXPERIMENTS[name].methods)
    assert sorted(p.parent.name for p in (out / "runs").glob("*/result.json")) == sorted(r.run_id for r in plan.runs)
    from_runs = [rec for run in plan.runs for rec in json.loads((run.folder / "result.json").read_text())["records"]]
    assert sorted(json.dumps(r, sort_keys=True) for r in from_runs) == sorted(json.dumps(r, sort_keys=True) for r in records)
    for r in records:
        assert r["experiment"] == name and r["preset"] == "tiny" and r["seed"] == 0
        assert 0.0 <= r["success_low"] <= r["success"] <= r["success_high"] <= 1.0
        assert r["eval_episodes"] == RECIPES["tiny"].eval_episodes and r["success"] == r["successes"] / r["eval_episodes"]
        assert r["eval_domain"] == "real" and r["eval_objects"] == "test"
        assert r["eval_cem"] == dict(zip(("iterations", "samples", "elites"), RECIPES["tiny"].eval_cem))
        assert len(r["config_hash"]) == 16 and r["wall_seconds"] >= r["train_seconds"] > 0
        assert (out / r["policy"] / "checkpoints" / "latest.pt").is_file()
        assert r["config_hash"] == config_hash(next(run for run in plan.runs if run.run_id == Path(r["run"]).name).stages, out)


def test_zero_shot_methods_train_the_paper_way(tiny_experiment):
    out = tiny_experiment("zero-shot")
    records = {r["method"]: r for r in read_results(out)}
    config = lambda method, stage: json.loads((out / "runs" / f"{method}-s0" / stage / "config.json").read_text())  # noqa: E731

    assert config("sim-only", "qtopt")["domain"] == "sim" and config("randomized-sim", "qtopt")["domain"] == "randomized"
    assert config("oracle", "qtopt")["domain"] == "real" and records["oracle"]["onpolicy_domain"] == "real"
    assert config("gan", "translator")["method"] == "gan" and config("cyclegan", "translator")["method"] == "cyclegan"
    assert config("gan", "qtopt")["translate_with"].endswith("runs/gan-s0/translator")
    assert config("rl-cyclegan", "rlcyclegan")["init_q"].endswith("runs/sim-only-s0/qtopt")
    assert config("rl-cyclegan", "rlcyclegan")["real_data"][0].endswith(".npz")  # images only: no real transitions
    assert load_checkpoint(out / records["rl-cyclegan"]["policy"])["kind"] == "rlcyclegan"  # the policy is Q_real
    assert records["sim-only"]["real_episodes"] == 0 and records["gan"]["real_episodes"] == RECIPES["tiny"].gan_real_episodes
    assert records["oracle"]["real_episodes"] == 12 + records["oracle"]["onpolicy_episodes"]
    assert [r["generator"] is not None for r in read_results(out)] == [False, False, True, True, True, False]
    # every method's data comes from the one shared collection
    assert sorted(p.name for p in (out / "data").iterdir() if p.is_dir()) == [
        "grasp-randomized-random-4", "grasp-randomized-scripted-8", "grasp-real-random-4", "grasp-real-scripted-8",
        "grasp-sim-random-4", "grasp-sim-scripted-8"]


def test_real_data_runs_each_budget_with_that_many_real_episodes(tiny_experiment):
    out = tiny_experiment("real-data")
    records = read_results(out)
    budgeted = [r for r in records if r["budget"] is not None]

    assert sorted({r["budget"] for r in budgeted}) == [6, 12]  # 50% and 100% of the Oracle's 8 + 4 real episodes
    for r in budgeted:
        cfg = json.loads((out / r["run"] / r["stages"][0] / "config.json").read_text())
        real = [Path(p) for p in cfg.get("data", cfg.get("real_data", [])) if "-real-" in Path(p).name]
        assert sum(EpisodeDataset(p).num_episodes for p in real) == r["budget"] == r["real_episodes"]
    real_only = json.loads((out / "runs" / "real-only-s0-6" / "qtopt" / "config.json").read_text())
    assert real_only["online"] is False and real_only["domain"] == "real"


def test_finetune_collects_the_on_policy_budget_in_real_from_the_source_policy(tiny_experiment):
    out = tiny_experiment("finetune")
    records = {r["method"]: r for r in read_results(out)}

    for method in ("rl-cyclegan-ft", "rl-cyclegan-joint-ft", "sim-only-ft", "scratch-ft"):
        assert records[method]["onpolicy_episodes"] == records[method]["budget"] == 4
        assert records[method]["onpolicy_domain"] == "real"
    cfg = json.loads((out / "runs" / "rl-cyclegan-ft-s0-4" / "qtopt" / "config.json").read_text())
    assert cfg["init_from"].endswith("runs/rl-cyclegan-s0/rlcyclegan") and cfg["domain"] == "real"
    assert json.loads((out / "runs" / "scratch-ft-s0-4" / "qtopt" / "config.json").read_text())["init_from"] is None


def test_joint_finetune_continues_the_rl_cyclegan_run_with_real_on_policy_episodes_as_real_transitions(tiny_experiment):
    out = tiny_experiment("finetune")
    cfg = json.loads((out / "runs" / "rl-cyclegan-joint-ft-s0-4" / "rlcyclegan" / "config.json").read_text())

    assert cfg["init_from"].endswith("runs/rl-cyclegan-s0/rlcyclegan")
    assert cfg["online_real"] and cfg["collect_domain"] == "real" and cfg["online_start"] == 0
    real = [Path(p) for p in cfg["real_data"]]  # the real off-policy episodes (scripted and random pools), with transitions
    assert real and all(p.name.split("-")[1] == "real" and rc.is_episode_source(p) for p in real)


def test_multibin_trains_in_the_multi_bin_env_and_evaluates_single_and_multi_bin(tiny_experiment):
    out = tiny_experiment("multibin")
    records = read_results(out)

    assert {(r["method"], r["eval"]) for r in records} == {(m, e) for m in ("sim-only", "cyclegan", "rl-cyclegan")
                                                            for e in ("single-bin", "multi-bin")}
    assert {r["eval_env"] for r in records if r["eval"] == "single-bin"} == {"rlcyclegan/Grasp-v0"}
    assert {r["train_env"] for r in records} == {"rlcyclegan/MultiBinGrasp-v0"}


def test_runs_with_a_generator_carry_its_translation_metrics_on_paired_renders(tiny_experiment):
    records = {r["method"]: r for r in read_results(tiny_experiment("zero-shot"))}

    assert sorted(m for m, r in records.items() if "translation" in r) == ["cyclegan", "gan", "rl-cyclegan"]
    for method in ("gan", "cyclegan", "rl-cyclegan"):
        t = records[method]["translation"]
        assert t["episodes"] == RECIPES["tiny"].translation_episodes and t["objects"] == "test" and t["images"] >= 2
        assert t["g_vs_real"]["psnr_object"] is not None and 0 < t["g_vs_real"]["psnr"] < 100
        assert t["sim_vs_real"]["psnr"] == records["gan"]["translation"]["sim_vs_real"]["psnr"]  # the same paired renders
    assert records["gan"]["translation"]["f_vs_sim"] is None and records["cyclegan"]["translation"]["f_vs_sim"] is not None
    assert records["cyclegan"]["translation"]["q_consistency"] is None  # no Q-networks in a CycleGAN translator
    assert records["rl-cyclegan"]["translation"]["q_consistency"]["pairs"] == records["rl-cyclegan"]["translation"]["images"]


def test_rerun_adds_translation_metrics_to_runs_finished_without_them(tiny_experiment, tmp_path, monkeypatch):
    out = committed_copy(tiny_experiment("zero-shot"), tmp_path / "zs")
    path = out / "runs" / "cyclegan-s0" / "result.json"
    full = json.loads(path.read_text())
    path.write_text(json.dumps({**full, "records": [{k: v for k, v in r.items() if k != "translation"} for r in full["records"]]}))
    monkeypatch.setitem(runner.TRAINERS, "qtopt", lambda cfg, resume=None: pytest.fail("trained again"))
    monkeypatch.setitem(runner.TRAINERS, "rlcyclegan", lambda cfg, resume=None: pytest.fail("trained again"))

    summary = run_experiment("zero-shot", "tiny", 1, out, device="cpu", threads=1, progress=False)

    assert len(summary["skipped"]) == 6
    timeless = lambda t: rounded({k: v for k, v in t.items() if k != "seconds"})  # noqa: E731
    again = json.loads(path.read_text())["records"][0]["translation"]
    # scored from the committed final.pt: the same figures (up to float noise of another process's thread count)
    assert timeless(again) == timeless(full["records"][0]["translation"])
    assert {r["method"]: r for r in read_results(out)}["cyclegan"]["translation"] == again


def test_rerun_with_only_one_method_updates_the_translation_metrics_of_every_finished_run(tiny_experiment, tmp_path, monkeypatch):
    out = committed_copy(tiny_experiment("zero-shot"), tmp_path / "zs")
    path = out / "runs" / "rl-cyclegan-s0" / "result.json"
    full = json.loads(path.read_text())
    old = [{**r, "translation": {k: v for k, v in r["translation"].items() if k != "object_segmentation"}} if "translation" in r else r
           for r in full["records"]]  # an acting=both record carries no translation metrics
    path.write_text(json.dumps({**full, "records": old}))
    monkeypatch.setitem(runner.TRAINERS, "qtopt", lambda cfg, resume=None: pytest.fail("trained again"))
    monkeypatch.setitem(runner.TRAINERS, "rlcyclegan", lambda cfg, resume=None: pytest.fail("trained again"))

    run_experiment("zero-shot", "tiny", 1, out, only=("sim-only",), device="cpu", threads=1, progress=False)

    again = json.loads(path.read_text())["records"][0]["translation"]
    assert again["object_segmentation"] == full["records"][0]["translation"]["object_segmentation"]
    assert {r["method"]: r for r in read_results(out)}["rl-cyclegan"]["translation"] == again


# ------------------------------------------------------------------------------------ resumption
def test_rerun_skips_finished_runs_without_training(tiny_experiment, monkeypatch):
    out = tiny_experiment("zero-shot")
    before = (out / "results.jsonl").read_bytes()
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/result.json")}

    def refuse(cfg, resume=None):
        raise AssertionError(f"trained {cfg.name} again")

    monkeypatch.setitem(runner.TRAINERS, "qtopt", refuse)
    monkeypatch.setitem(runner.TRAINERS, "rlcyclegan", refuse)
    summary = run_experiment("zero-shot", "tiny", 1, out, device="cpu", progress=False)

    assert summary["trained"] == summary["resumed"] == summary["failed"] == []
    assert len(summary["skipped"]) == 6
    assert (out / "results.jsonl").read_bytes() == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def rounded(value, digits: int = 5):
    """``value`` with every float rounded to ``digits`` significant digits (nested dicts and lists)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


def committed_copy(folder: Path, dest: Path) -> Path:
    """What a fresh clone holds of ``folder`` once it is committed: the files its .gitignore does not leave out."""
    import subprocess

    repo = dest.parent / (dest.name + "-repo")
    shutil.copytree(folder, repo / "exp", ignore=shutil.ignore_patterns(".built"))
    git = lambda *a, cwd=repo: subprocess.run(["git", *a], cwd=cwd, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "experiment")
    git("clone", "-q", str(repo), str(dest.parent / (dest.name + "-clone")), cwd=dest.parent)
    shutil.move(str(dest.parent / (dest.name + "-clone") / "exp"), dest)
    return dest


def test_a_committed_experiment_keeps_no_data_or_checkpoints_but_a_final_export_per_stage(tiny_experiment, tmp_path):
    out = committed_copy(tiny_experiment("zero-shot"), tmp_path / "zs")

    assert not (out / "data").exists() and not list(out.rglob("checkpoints")) and not list(out.rglob("tb"))
    for done in (out / "runs").glob("*/*/done.json"):
        assert load_checkpoint(done.parent / "final.pt")["kind"] in ("qtopt", "rlcyclegan")
    assert sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) < sum(
        p.stat().st_size for p in tiny_experiment("zero-shot").rglob("*") if p.is_file()) / 2


def test_rerun_of_a_committed_experiment_skips_its_finished_runs(tiny_experiment, tmp_path, monkeypatch):
    out = committed_copy(tiny_experiment("zero-shot"), tmp_path / "zs")
    before = (out / "results.jsonl").read_bytes()

    def refuse(cfg, resume=None):
        raise AssertionError(f"trained {cfg.name} again")

    monkeypatch.setitem(runner.TRAINERS, "qtopt", refuse)
    monkeypatch.setitem(runner.TRAINERS, "rlcyclegan", refuse)
    summary = run_experiment("zero-shot", "tiny", 1, out, device="cpu", progress=False)

    assert len(summary["skipped"]) == 6 and summary["failed"] == []
    assert (out / "results.jsonl").read_bytes() == before


def test_a_run_that_starts_from_a_committed_finished_stage_trains_from_its_final_export(tiny_experiment, tmp_path):
    out = committed_copy(tiny_experiment("zero-shot"), tmp_path / "zs")
    shutil.rmtree(out / "runs" / "rl-cyclegan-s0")

    summary = run_experiment("zero-shot", "tiny", 1, out, only=("rl-cyclegan",), device="cpu", threads=1, progress=False)

    assert summary["trained"] == ["rl-cyclegan-s0"] and summary["skipped"] == ["sim-only-s0"]
    assert (out / "runs" / "rl-cyclegan-s0" / "result.json").exists()


def test_finished_run_whose_done_json_was_moved_away_is_trained_further_and_evaluated_again(tiny_experiment, tmp_path):
    out = tmp_path / "zs"
    shutil.copytree(tiny_experiment("zero-shot") / "data", out / "data")  # the shared data, already collected
    run_experiment("zero-shot", "tiny", 1, out, only=("sim-only",), device="cpu", threads=1, progress=False)
    stage = out / "runs" / "sim-only-s0" / "qtopt"
    (stage / "done.json").rename(tmp_path / "done.json")  # what short_of_steps tells a user to do
    plan = plan_experiment("zero-shot", "tiny", 1, out, only=("sim-only",))
    assert run_status(plan.runs[0]) == "interrupted"

    summary = run_experiment("zero-shot", "tiny", 1, out, only=("sim-only",), device="cpu", threads=1, progress=False)

    assert summary["resumed"] == ["sim-only-s0"] and (stage / "done.json").exists(), summary


def test_max_minutes_replaces_the_recipes_cap_and_keeps_the_recipes_config_hash(tiny_experiment, tmp_path, monkeypatch):
    out = tmp_path / "zs"
    shutil.copytree(tiny_experiment("zero-shot") / "data", out / "data")  # the shared data, already collected
    real_train = runner.TRAINERS["qtopt"]
    caps = []

    def recording(cfg, resume=None):
        caps.append(cfg.max_minutes)
        return real_train(cfg, resume)

    monkeypatch.setitem(runner.TRAINERS, "qtopt", recording)
    run_experiment("zero-shot", "tiny", 1, out, only=("sim-only",), device="cpu", threads=1, progress=False, max_minutes=321.0)

    plan = plan_experiment("zero-shot", "tiny", 1, out, only=("sim-only",))
    recipe_stage = plan.runs[0].stages[0]
    done = json.loads((out / "runs" / "sim-only-s0" / "qtopt" / "done.json").read_text())
    assert caps == [321.0] and recipe_stage.config.max_minutes != 321.0
    assert done["max_minutes"] == 321.0 and done["config_hash"] == config_hash([recipe_stage], out)
    assert not stale(plan, plan.runs[0])


def test_cli_refuses_a_max_minutes_that_is_not_positive(capsys, tmp_path):
    code = main(["experiment", "zero-shot", "--preset", "tiny", "--out", str(tmp_path / "zs"), "--max-minutes", "0"])

    assert code == 2 and "--max-minutes must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "zs").exists()


def test_interrupted_run_resumes_from_its_last_checkpoint(tiny_experiment, tmp_path, monkeypatch):
    out = tmp_path / "zs"
    shutil.copytree(tiny_experiment("zero-shot") / "data", out / "data")  # the shared data, already collected
    real_train = runner.TRAINERS["qtopt"]
    calls = []

    def killed_halfway(cfg, resume=None):
        from dataclasses import replace

        real_train(replace(cfg, steps=6), resume)  # leaves a checkpoint at step 6 of 12
        raise KeyboardInterrupt

    def counting(cfg, resume=None):
        calls.append(resume)
        return real_train(cfg, resume)

    monkeypatch.setitem(runner.TRAINERS, "qtopt", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        run_experiment("zero-shot", "tiny", 1, out, only=("sim-only",), device="cpu", threads=1, progress=False)
    plan = plan_experiment("zero-shot", "tiny", 1, out, only=("sim-only",))
    assert run_status(plan.runs[0]) == "interrupted" and not (out / "results.jsonl").exists()

    monkeypatch.setitem(runner.TRAINERS, "qtopt", counting)
    summary = run_experiment("zero-shot", "tiny", 1, out, only=("sim-only",), device="cpu", threads=1, progress=False)

    assert summary["resumed"] == ["sim-only-s0"] and calls == [out / "runs" / "sim-only-s0" / "qtopt"]
    assert load_checkpoint(out / "runs" / "sim-only-s0" / "qtopt")["step"] == 12
    assert [r["method"] for r in read_results(out)] == ["sim-only"]


def test_sigterm_stops_the_experiment_with_the_training_step_checkpointed(tiny_experiment, tmp_path, sigterm_on_call, capsys):
    import signal

    import rlcyclegan.train.qtopt as qtopt_module

    out = tmp_path / "zs"
    shutil.copytree(tiny_experiment("zero-shot") / "data", out / "data")  # the shared data, already collected
    sigterm_on_call(qtopt_module, "td_update", 5)
    code = main(["experiment", "zero-shot", "--preset", "tiny", "--out", str(out), "--only", "sim-only", "--device", "cpu",
                 "--threads", "1", "--no-progress"])

    stage = out / "runs" / "sim-only-s0" / "qtopt"
    assert code == 128 + signal.SIGTERM and f"--resume {stage}" in capsys.readouterr().err
    assert load_checkpoint(stage)["step"] == 5
    assert run_status(plan_experiment("zero-shot", "tiny", 1, out, only=("sim-only",)).runs[0]) == "interrupted"


def test_interrupted_run_whose_recipe_changed_is_refused_naming_the_field(tiny_experiment, tmp_path):
    out = tmp_path / "zs"
    plan = plan_experiment("zero-shot", "tiny", 1, out, only=("sim-only",))
    folder = plan.runs[0].folder / "qtopt"
    shutil.copytree(tiny_experiment("zero-shot") / "runs" / "sim-only-s0" / "qtopt" / "checkpoints", folder / "checkpoints")
    saved = {**runner.to_jsonable(plan.runs[0].stages[0].config), "lr": 0.123}
    (folder / "config.json").write_text(json.dumps(saved))

    with pytest.raises(ExperimentError, match="lr"):
        runner.train_stage(plan.runs[0].stages[0], folder, out)


# ------------------------------------------------------------------------------------ planning and errors
def test_only_adds_the_methods_a_selected_one_needs():
    plan = plan_experiment("finetune", "tiny", 2, Path("x"), only=("rl-cyclegan-ft",))

    assert plan.added == ["sim-only", "rl-cyclegan"]
    assert [r.run_id for r in plan.runs] == ["sim-only-s0", "rl-cyclegan-s0", "rl-cyclegan-ft-s0-4",
                                             "sim-only-s1", "rl-cyclegan-s1", "rl-cyclegan-ft-s1-4"]


def test_config_hash_depends_on_the_config_not_on_where_the_experiment_lives():
    a = plan_experiment("zero-shot", "tiny", 1, Path("one/place")).runs
    b = plan_experiment("zero-shot", "tiny", 1, Path("/another/place")).runs
    c = plan_experiment("zero-shot", "tiny", 2, Path("x")).runs

    assert [config_hash(r.stages, Path("one/place")) for r in a] == [config_hash(r.stages, Path("/another/place")) for r in b]
    assert len({config_hash(r.stages, Path("x")) for r in c}) == len(c)  # methods and seeds differ


def test_every_method_of_every_experiment_has_a_recipe():
    assert {m for e in EXPERIMENTS.values() for m in e.methods} <= set(METHODS)
    for preset in RECIPES:
        for name in NAMES:
            assert plan_experiment(name, preset, 1, Path("x")).runs


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="zero-shoot"), "unknown experiment 'zero-shoot'; expected one of: zero-shot, real-data, finetune, multibin"),
    (dict(name="zero-shot", preset="huge"), "unknown preset 'huge'"),
    (dict(name="zero-shot", only=("rl-cyclegan-ft",)), "rl-cyclegan-ft not in experiment 'zero-shot'"),
    (dict(name="zero-shot", seeds=0), "--seeds must be >= 1"),
])
def test_bad_arguments_are_clear_errors(kwargs, message, tmp_path):
    with pytest.raises(ExperimentError, match=message.replace("(", r"\(")):
        run_experiment(**{"preset": "tiny", "out": tmp_path / "o", **kwargs})
    assert not (tmp_path / "o").exists()


def test_another_experiment_in_the_same_folder_is_refused(tiny_experiment):
    with pytest.raises(ExperimentError, match="holds the 'zero-shot' experiment"):
        run_experiment("real-data", "tiny", 1, tiny_experiment("zero-shot"), progress=False)


def test_cli_reports_a_bad_experiment_name(capsys, tmp_path):
    assert main(["experiment", "zero-shoot", "--preset", "tiny", "--out", str(tmp_path / "o")]) == 2
    assert "unknown experiment 'zero-shoot'" in capsys.readouterr().err


def test_subset_holds_the_first_episodes_of_its_pool(tiny_experiment, tmp_path):
    pool = tiny_experiment("zero-shot") / "data" / "grasp-sim-scripted-8"
    runner.make_subset(pool, tmp_path / "first5", 5)

    ds = EpisodeDataset(tmp_path / "first5")
    assert list(ds.episode_index) == [0, 1, 2, 3, 4]
    assert (ds[4].images == EpisodeDataset(pool)[4].images).all()


def test_fields_added_later_at_their_default_leave_the_config_hash_unchanged():
    run = plan_experiment("zero-shot", "tiny", 1, Path("x"), only=("sim-only",)).runs[0]
    defaults = {f.name: f.default for f in dataclasses.fields(run.stages[0].config) if f.name in runner.ADDED_FIELDS}
    stage = dataclasses.replace(run.stages[0], config=dataclasses.replace(run.stages[0].config, **defaults))
    before = config_hash([stage], Path("x"))
    hashed = runner.normalized_config(stage.config, Path("x"))

    assert not set(runner.ADDED_FIELDS) & set(hashed)
    changed = dataclasses.replace(stage.config, aux_weight=0.5)
    assert config_hash([dataclasses.replace(stage, config=changed)], Path("x")) != before


def test_rlcyclegan_fields_added_later_leave_its_hash_unchanged_but_qtopts_same_named_fields_count():
    runs = {r.method: r for r in plan_experiment("zero-shot", "tiny", 1, Path("x"), only=("rl-cyclegan",)).runs}
    rl_hashed = runner.normalized_config(runs["rl-cyclegan"].stages[0].config, Path("x"))
    qt_hashed = runner.normalized_config(runs["sim-only"].stages[0].config, Path("x"))

    assert not set(runner.ADDED_RLCYCLEGAN_FIELDS) & set(rl_hashed)
    assert {"online", "online_start", "collect_every", "epsilon"} <= set(qt_hashed)  # QT-Opt always had them
    online = dataclasses.replace(runs["rl-cyclegan"].stages[0].config, online=True)
    assert runner.normalized_config(online, Path("x"))["online"] is True


def test_interrupted_run_saved_before_a_field_existed_resumes(tmp_path):
    out = tmp_path / "zs"
    plan = plan_experiment("zero-shot", "tiny", 1, out, only=("sim-only",))
    defaults = {f.name: f.default for f in dataclasses.fields(plan.runs[0].stages[0].config) if f.name in runner.ADDED_FIELDS}
    stage = dataclasses.replace(plan.runs[0].stages[0], config=dataclasses.replace(plan.runs[0].stages[0].config, **defaults))
    folder = plan.runs[0].folder / "qtopt"
    folder.mkdir(parents=True)
    saved = {k: v for k, v in runner.to_jsonable(stage.config).items() if k not in runner.ADDED_FIELDS}
    (folder / "config.json").write_text(json.dumps(saved))

    runner.check_resumable(stage, folder)  # no error


def _finished_as(tmp_path, saved_of) -> tuple:
    """The plan of a tiny zero-shot rl-cyclegan run made to look finished under an older recipe: its result.json
    records another config hash and each stage's config.json is ``saved_of(stage config as JSON)``."""
    plan = plan_experiment("zero-shot", "tiny", 1, tmp_path / "zs", only=("rl-cyclegan",))
    run = next(r for r in plan.runs if r.method == "rl-cyclegan")
    for stage in run.stages:
        (run.folder / stage.name).mkdir(parents=True)
        (run.folder / stage.name / "config.json").write_text(json.dumps(saved_of(runner.to_jsonable(stage.config))))
    (run.folder / "result.json").write_text(json.dumps({"config_hash": "0" * 16}))
    return plan, run


def test_finished_run_saved_before_a_field_existed_is_not_stale(tmp_path):
    plan, run = _finished_as(tmp_path, lambda cfg: {k: v for k, v in cfg.items() if k not in ("online_real", "init_from")})

    assert not runner.stale(plan, run)


def test_finished_run_trained_with_another_value_is_stale(tmp_path):
    plan, run = _finished_as(tmp_path, lambda cfg: {**cfg, "lr_q": cfg["lr_q"] * 2})

    assert runner.stale(plan, run)


def test_finished_run_without_its_saved_config_is_stale(tmp_path):
    plan, run = _finished_as(tmp_path, lambda cfg: cfg)
    for stage in run.stages:
        (run.folder / stage.name / "config.json").unlink()

    assert runner.stale(plan, run)


def _saved_under(stage, old_out: Path, new_out: Path) -> dict:
    """The stage's config as it was saved when the experiment lived at ``old_out`` (now at ``new_out``)."""
    def move(v):
        if isinstance(v, str) and v.startswith(str(new_out) + "/"):
            return str(old_out) + v[len(str(new_out)):]
        return [move(x) for x in v] if isinstance(v, list) else v
    return {k: move(v) for k, v in runner.to_jsonable(stage.config).items()}


def test_interrupted_stage_of_a_moved_experiment_folder_resumes(tmp_path):
    out = tmp_path / "moved" / "zs"
    stage = plan_experiment("zero-shot", "tiny", 1, out, only=("sim-only",)).runs[0].stages[0]
    folder = Path(stage.config.out) / "qtopt"
    folder.mkdir(parents=True)
    saved = _saved_under(stage, tmp_path / "before" / "zs", out)
    assert saved["data"] != runner.to_jsonable(stage.config)["data"]  # the paths really differ
    (folder / "config.json").write_text(json.dumps(saved))

    runner.check_resumable(stage, folder)  # no error


def test_interrupted_stage_of_a_moved_experiment_folder_with_another_config_is_refused(tmp_path):
    out = tmp_path / "moved" / "zs"
    stage = plan_experiment("zero-shot", "tiny", 1, out, only=("sim-only",)).runs[0].stages[0]
    folder = Path(stage.config.out) / "qtopt"
    folder.mkdir(parents=True)
    saved = {**_saved_under(stage, tmp_path / "before" / "zs", out), "lr": stage.config.lr * 2}
    (folder / "config.json").write_text(json.dumps(saved))

    with pytest.raises(runner.ExperimentError, match="lr"):
        runner.check_resumable(stage, folder)


def test_cpu_recipe_rl_cyclegan_follows_the_qtopt_recipes_aux_loss_and_policy_weights():
    runs = {r.method: r for r in plan_experiment("zero-shot", "cpu", 1, Path("x"), only=("rl-cyclegan",)).runs}
    qtopt_cfg, rl_cfg = runs["sim-only"].stages[0].config, runs["rl-cyclegan"].stages[0].config

    assert rl_cfg.aux_weight == qtopt_cfg.aux_weight > 0
    assert rl_cfg.policy_weights == qtopt_cfg.policy_weights == "polyak"


def test_cpu_recipe_rl_cyclegan_fields_reach_the_rl_cyclegan_stage_but_not_the_translators():
    runs = {r.method: r for r in plan_experiment("zero-shot", "cpu", 1, Path("x"), only=("cyclegan", "gan", "rl-cyclegan")).runs}
    rl_cfg = runs["rl-cyclegan"].stages[0].config
    translators = [runs[m].stages[0].config for m in ("gan", "cyclegan")]

    assert {k: getattr(rl_cfg, k) for k in RECIPES["cpu"].rl_cyclegan} == RECIPES["cpu"].rl_cyclegan
    assert rl_cfg.online and rl_cfg.augment_shift == 2
    assert all(not t.online and t.augment_shift == 0 and t.steps == rc.RLCycleGANConfig().steps for t in translators)


# ------------------------------------------------------------------------------------ --set variants
def test_set_makes_a_variant_of_the_selected_method_in_its_own_folder():
    plan = plan_experiment("zero-shot", "tiny", 1, Path("x"), only=("rl-cyclegan",), overrides=("rlcyclegan.lambda_rl_scene=10",))
    sim_only, variant = plan.runs

    assert sim_only.run_id == "sim-only-s0" and sim_only.variant == ""
    assert variant.run_id == "rl-cyclegan-s0+lambda_rl_scene=10" and variant.folder == Path("x/runs/rl-cyclegan-s0+lambda_rl_scene=10")
    assert variant.stages[0].config.lambda_rl_scene == 10.0
    assert variant.stages[0].config.init_q == Path("x/runs/sim-only-s0/qtopt")  # starts from the recipe's own dependency
    assert variant.needs == ["sim-only-s0"]
    assert "--set rlcyclegan.lambda_rl_scene=10" in plan.command


def test_a_variant_differs_from_the_recipes_run_only_in_the_overridden_field():
    base = plan_experiment("zero-shot", "tiny", 1, Path("x"), only=("rl-cyclegan",)).runs[1].stages[0].config
    varied = plan_experiment("zero-shot", "tiny", 1, Path("x"), only=("rl-cyclegan",),
                             overrides=("rlcyclegan.lambda_rl_scene=10",)).runs[1].stages[0].config

    diff = {f.name for f in dataclasses.fields(base) if getattr(base, f.name) != getattr(varied, f.name)}
    assert diff == {"lambda_rl_scene", "out"}


@pytest.mark.parametrize("item, message", [
    ("lambda_rl_scene=10", "expected KIND.FIELD=VALUE"),
    ("gan.lambda_rl_scene=10", "unknown kind 'gan'"),
    ("recipe.eval_episodes=10", "the recipe field 'eval_episodes' is not one --set varies"),
    ("recipe.gan_real_episodes=-1", "gan_real_episodes must be >= 0"),
    ("recipe.finetune_sim=1", "finetune_sim takes a bool"),
    ("rlcyclegan.lambda_scene=10", "RLCycleGANConfig has no field 'lambda_scene'"),
    ("rlcyclegan.lambda_rl_scene=high", "lambda_rl_scene takes a float"),
    ("rlcyclegan.steps=1.5", "steps takes an int"),
    ("rlcyclegan.out=/elsewhere", "'out' is fixed by the experiment's recipe"),
    ("rlcyclegan.lambda_rl_scene=-1", "lambda_rl_scene must be >= 0"),
    ("rlcyclegan.augment_color=2", "augment_color must be in \\[0, 1\\]"),
])
def test_bad_set_items_are_clear_errors(item, message):
    with pytest.raises(ExperimentError, match=message):
        plan_experiment("zero-shot", "tiny", 1, Path("x"), only=("rl-cyclegan",), overrides=(item,))


def test_set_recipe_field_makes_a_finetune_variant_that_replays_g_of_sim():
    base = plan_experiment("finetune", "tiny", 1, Path("x"), only=("rl-cyclegan-ft",)).runs[-1]
    variant = plan_experiment("finetune", "tiny", 1, Path("x"), only=("rl-cyclegan-ft",), overrides=("recipe.finetune_sim=true",)).runs[-1]
    cfg, own = variant.stages[0].config, base.stages[0].config

    assert variant.run_id == base.run_id + "+finetune_sim=true"
    assert cfg.translate_with == Path("x/runs/rl-cyclegan-s0/rlcyclegan") and own.translate_with is None
    assert [p.name for p in cfg.data] == [p.name for p in plan_experiment("finetune", "tiny", 1, Path("x")).runs[0].stages[0].config.data] + [p.name for p in own.data]
    assert cfg.init_from == own.init_from == Path("x/runs/rl-cyclegan-s0/rlcyclegan")


def test_finetune_sim_replays_sim_as_it_is_for_a_start_without_generator():
    cfg = plan_experiment("finetune", "tiny", 1, Path("x"), only=("sim-only-ft",), overrides=("recipe.finetune_sim=true",)).runs[-1].stages[0].config
    assert cfg.translate_with is None and any("sim" in p.name for p in cfg.data) and any("real" in p.name for p in cfg.data)


def test_set_recipe_field_on_methods_it_leaves_unchanged_is_refused():
    with pytest.raises(ExperimentError, match="methods scratch-ft have no such stage"):
        plan_experiment("finetune", "tiny", 1, Path("x"), only=("scratch-ft",), overrides=("recipe.finetune_sim=true",))


def test_set_on_methods_without_that_stage_kind_is_refused():
    with pytest.raises(ExperimentError, match="methods oracle, randomized-sim, sim-only have no such stage"):
        plan_experiment("zero-shot", "tiny", 1, Path("x"), overrides=("rlcyclegan.lambda_rl_scene=10",))


def test_a_variant_run_lands_beside_the_recipes_runs_with_its_own_records(tiny_experiment, tmp_path):
    out = tmp_path / "zs"
    shutil.copytree(tiny_experiment("zero-shot"), out)

    summary = run_experiment("zero-shot", "tiny", 1, out, only=("rl-cyclegan",), overrides=("rlcyclegan.lambda_rl_scene=10",),
                             device="cpu", threads=1, progress=False)

    assert summary["trained"] == ["rl-cyclegan-s0+lambda_rl_scene=10"] and summary["skipped"] == ["sim-only-s0"]
    records = read_results(out)
    variant = [r for r in records if r.get("variant")]
    assert [(r["method"], r["variant"], r["label"]) for r in variant] == [("rl-cyclegan", "lambda_rl_scene=10", "RL-CycleGAN [lambda_rl_scene=10]")]
    assert json.loads((out / "runs" / "rl-cyclegan-s0+lambda_rl_scene=10" / "rlcyclegan" / "config.json").read_text())["lambda_rl_scene"] == 10.0
    assert len(records) == 7 and [r["method"] for r in records].index("rl-cyclegan") + 1 == records.index(variant[0])


def test_records_carry_the_machine_that_trained_each_stage(tiny_experiment):
    for r in read_results(tiny_experiment("zero-shot")):
        assert set(r["machines"]) == set(r["stages"])
        assert all(m["device"] == "cpu" and m["cpu_count"] >= 1 and "torch" in m for m in r["machines"].values())


def test_records_carry_the_precision_each_stage_trained_in(tiny_experiment):
    from rlcyclegan.train.common import precision_name

    expected = precision_name(torch.device("cpu"), "auto")  # what amp="auto" resolves to on this machine
    for r in read_results(tiny_experiment("zero-shot")):
        assert {m["precision"] for m in r["machines"].values()} == {expected}


def test_a_stage_stopped_by_its_time_limit_is_reported_short_of_its_steps(capsys, tmp_path):
    from rlcyclegan.experiments.specs import Stage
    from rlcyclegan.train import qtopt as qt

    stage = Stage("qtopt", "qtopt", qt.preset_config("tiny", steps=100, max_minutes=5.0))
    assert runner.short_of_steps(stage, tmp_path, 50)
    assert "stopped at step 50 of 100 (max_minutes=5 reached)" in capsys.readouterr().err
    assert not runner.short_of_steps(stage, tmp_path, 100)


# ------------------------------------------------------------------------------------ acting with both Q-networks
def test_rl_cyclegan_runs_are_also_evaluated_acting_with_q_real_and_q_sim_of_f(tiny_experiment):
    out = tiny_experiment("real-data")
    plan = plan_experiment("real-data", "tiny", 1, out)
    records = read_results(out, acting_both=True)
    both = [r for r in records if r.get("acting") == "both"]

    assert sorted(r["run"] for r in both) == sorted(f"runs/{run.run_id}" for run in plan.runs if run.method == "rl-cyclegan-real")
    assert not any(runner.acts_both(plan, run) for run in plan.runs if run.method != "rl-cyclegan-real")
    for r in both:
        mine = next(q for q in records if q["run"] == r["run"] and q.get("acting") is None and q["eval"] == r["eval"])
        assert r["variant"] == "acting=both" and r["label"] == "RL-CycleGAN + Real [acting=both]"
        assert "translation" not in r and "translation" in mine  # the same generator: its metrics stay on the Q_real record
        assert {k: v for k, v in r.items() if k not in ACTING_FIELDS} == {k: v for k, v in mine.items() if k not in ACTING_FIELDS}


ACTING_FIELDS = {"acting", "variant", "label", "translation", "success", "success_low", "success_high", "successes", "eval_seconds",
                 "wall_seconds"}
"""What an acting=both record may differ in from its run's Q_real record."""


def test_rerun_adds_the_acting_both_records_to_runs_finished_without_them(tiny_experiment, tmp_path, monkeypatch):
    out = committed_copy(tiny_experiment("real-data"), tmp_path / "rd")
    for path in (out / "runs").glob("*/result.json"):
        full = json.loads(path.read_text())
        path.write_text(json.dumps({**full, "records": [r for r in full["records"] if r.get("acting") != "both"]}))
    before = read_results(tiny_experiment("real-data"), acting_both=True)
    monkeypatch.setitem(runner.TRAINERS, "qtopt", lambda cfg, resume=None: pytest.fail("trained again"))
    monkeypatch.setitem(runner.TRAINERS, "rlcyclegan", lambda cfg, resume=None: pytest.fail("trained again"))

    run_experiment("real-data", "tiny", 1, out, device="cpu", threads=1, progress=False)

    timeless = lambda r: {k: v for k, v in r.items() if k not in ("eval_seconds", "wall_seconds", "translation")}  # noqa: E731
    assert [timeless(r) for r in read_results(out, acting_both=True)] == [timeless(r) for r in before]  # same seeds: same figures


# ------------------------------------------------------------------------------------ a stage on another method's run
def test_camera_noise_method_trains_q_real_of_the_rl_cyclegan_real_run_of_the_same_budget_on():
    plan = plan_experiment("real-data", "tiny", 1, Path("x"), only=("rl-cyclegan-real-camera",))
    by_id = {run.run_id: run for run in plan.runs}
    camera = [run for run in plan.runs if run.method == "rl-cyclegan-real-camera"]

    assert [run.budget for run in camera] == [6, 12]
    for run in camera:
        cfg, start = run.stages[0].config, by_id[f"rl-cyclegan-real-s0-{run.budget}"]
        assert run.needs == [start.run_id]
        assert cfg.init_from == cfg.translate_with == start.folder / "rlcyclegan"
        assert cfg.data == start.stages[0].config.sim_data + start.stages[0].config.real_data  # its start's episodes, no more
        assert cfg.augment_noise > 0 and cfg.augment_blur > 0 and cfg.domain == "sim" and cfg.eval_domain == "real"
        assert run.real_offline == run.budget


def test_a_method_starting_from_a_varied_method_selected_with_it_starts_from_the_variant():
    plan = plan_experiment("real-data", "tiny", 1, Path("x"), only=("rl-cyclegan-real", "rl-cyclegan-real-camera"), budgets=(6,),
                           overrides=("rlcyclegan.augment_noise=0.05",))
    by_id = {run.run_id: run for run in plan.runs}
    camera = next(run for run in plan.runs if run.method == "rl-cyclegan-real-camera")
    start = by_id["rl-cyclegan-real-s0-6+augment_noise=0.05"]

    assert camera.run_id == "rl-cyclegan-real-camera-s0-6+augment_noise=0.05" and camera.needs == [start.run_id]
    assert camera.stages[0].config.init_from == start.folder / "rlcyclegan" and start.stages[0].config.augment_noise == 0.05


def test_dependencies_without_budgets_keep_pointing_at_the_run_of_the_seed():
    plan = plan_experiment("real-data", "tiny", 1, Path("x"), only=("rl-cyclegan-real",))

    assert {tuple(run.needs) for run in plan.runs if run.method == "rl-cyclegan-real"} == {("sim-only-s0",)}
