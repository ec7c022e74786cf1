"""QT-Opt training end to end: it learns, resumes exactly after a kill, and fails safely."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from bandit_env import BANDIT_ID, random_bandit_episodes

import rlcyclegan.train.qtopt as qtopt_module
from rlcyclegan.cli import main
from rlcyclegan.data.store import write_episodes
from rlcyclegan.rl.checkpoint import CheckpointError, load_checkpoint
from rlcyclegan.rl.evaluate import evaluate_checkpoint
from rlcyclegan.rl.policy import Policy
from rlcyclegan.train.common import TrainingDiverged, TrainingInterrupted
from rlcyclegan.train.qtopt import preset_config, scheduled_lr, train_qtopt


def bandit_config(data: Path, out: Path, name: str, **overrides):
    """Tiny QT-Opt on the image bandit: off-policy random data plus on-policy rounds in the second half."""
    settings = dict(
        env=BANDIT_ID, data=(data,), offline_episodes=0, online=True, online_start=75, collect_every=25,
        collect_episodes=8, epsilon=0.3, steps=150, batch_size=32, lr=1e-3, eval_every=0, eval_episodes=10,
        eval_envs=5, envs_per_worker=4, checkpoint_every=50, out=out, name=name, progress=False, device="cpu", threads=1,
    )
    return preset_config("tiny", **{**settings, **overrides})


@pytest.fixture(scope="module")
def bandit_run(build_once) -> Path:
    def build(folder: Path) -> None:
        write_episodes(folder / "data", random_bandit_episodes(200), env_id=BANDIT_ID, domain="sim", objects="train",
                       policy="random")
        train_qtopt(bandit_config(folder / "data", folder, "run"))

    return build_once("qtopt-bandit", build) / "run"


# ------------------------------------------------------------------------------------ learning
def test_q_learning_solves_an_image_bandit(bandit_run):
    result = evaluate_checkpoint(bandit_run, episodes=50, envs=25, device="cpu")

    assert result["env"] == BANDIT_ID and result["episodes"] == 50
    assert result["success"] >= 0.9  # a random policy gets 0.5


def test_untrained_q_network_is_no_better_than_chance_on_the_bandit(bandit_data, tmp_path):
    run = train_qtopt(bandit_config(bandit_data, tmp_path, "r", steps=1, online=False, eval_episodes=2, eval_envs=2))

    assert evaluate_checkpoint(run, episodes=50, envs=25, device="cpu")["success"] < 0.8


def test_bandit_run_folder_holds_config_metrics_checkpoints_and_on_policy_data(bandit_run):
    records = [json.loads(line) for line in (bandit_run / "metrics.jsonl").read_text().splitlines()]
    ckpt = load_checkpoint(bandit_run, kind="qtopt")

    assert json.loads((bandit_run / "config.json").read_text())["env"] == BANDIT_ID
    assert [r["step"] for r in records] == [150]
    assert records[0]["episodes"] == 200 + 3 * 8  # offline + three on-policy rounds (steps 75, 100, 125)
    assert ckpt["step"] == 150 and ckpt["rounds"] == 3 and ckpt["online_episodes"] == 24
    assert sorted(p.name for p in (bandit_run / "online").iterdir()) == [
        "shard-0000000.h5", "shard-0000008.h5", "shard-0000016.h5"]
    assert (bandit_run / "curve.png").stat().st_size > 0


def test_trained_policy_loads_with_the_env_and_bounds_it_was_trained_on(bandit_run):
    ckpt = load_checkpoint(bandit_run)
    policy = Policy.load(bandit_run)

    assert ckpt["policy"]["env"] == {"id": BANDIT_ID, "kwargs": {}}
    assert policy.qnet.cfg.state_dim == 0 and policy.qnet.cfg.action_dim == 1 and policy.qnet.cfg.image_size == 32
    assert policy.low.tolist() == [-1.0] and policy.high.tolist() == [1.0]


# ------------------------------------------------------------------------------------ resumption
GRASP_ARGS = [
    "--preset", "tiny", "--steps", "60", "--checkpoint-every", "10", "--keep-checkpoints", "10",
    "--online-start", "10", "--collect-every", "10", "--collect-episodes", "2", "--envs-per-worker", "2",
    "--offline-episodes", "6", "--env-kwargs", '{"max_steps": 5}', "--eval-every", "5", "--eval-episodes", "2",
    "--eval-envs", "2", "--eval-objects", "train", "--device", "cpu", "--threads", "1", "--no-progress",
]
CLI = "import sys; from rlcyclegan.cli import main; sys.exit(main(sys.argv[1:]))"


def _steps(folder: Path) -> tuple[int, int]:
    """(newest numbered checkpoint step, newest metrics record step) of a run folder, -1 when none."""
    ckpt = max((int(p.stem.split("_")[1]) for p in (folder / "checkpoints").glob("step_*.pt")), default=-1)
    lines = (folder / "metrics.jsonl").read_text().splitlines() if (folder / "metrics.jsonl").exists() else []
    return ckpt, max((json.loads(line)["step"] for line in lines if line.endswith("}")), default=-1)


def _kill_between_evaluation_and_checkpoint(folder: Path, min_step: int) -> dict:
    """Train in a subprocess and SIGKILL it once it has a checkpoint at ``min_step`` or later and has
    logged an evaluation after its newest checkpoint; returns the checkpoint and metrics steps at death."""
    log = folder.parent / f"{folder.name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", CLI, "train", "qtopt", *GRASP_ARGS, "--out", str(folder.parent),
                                 "--name", folder.name], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    try:
        while True:
            ckpt, logged = _steps(folder)
            if ckpt >= min_step and logged > ckpt:
                proc.send_signal(signal.SIGKILL)
                break
            if proc.poll() is not None:
                raise AssertionError(f"training ended (rc {proc.returncode}) before it could be killed:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("no checkpoint in time")
            time.sleep(0.01)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return {"checkpoint": load_checkpoint(folder)["step"], "logged": _steps(folder)[1]}


@pytest.fixture(scope="module")
def resume_runs(build_once) -> dict:
    """An uninterrupted 60-step Grasp run, and the same run killed after step 20 and resumed."""

    def build(folder: Path) -> None:
        assert main(["train", "qtopt", *GRASP_ARGS, "--out", str(folder), "--name", "full"]) == 0
        killed = _kill_between_evaluation_and_checkpoint(folder / "resumed", min_step=20)
        (folder / "killed.json").write_text(json.dumps(killed))
        assert main(["train", "qtopt", "--resume", str(folder / "resumed")]) == 0

    folder = build_once("qtopt-resume", build)
    return {"full": folder / "full", "resumed": folder / "resumed", "killed": json.loads((folder / "killed.json").read_text())}


def _assert_state_equal(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_state_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_state_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_killed_and_resumed_run_ends_with_exactly_the_uninterrupted_weights(resume_runs):
    full = load_checkpoint(resume_runs["full"])
    resumed = load_checkpoint(resume_runs["resumed"])

    assert 20 <= resume_runs["killed"]["checkpoint"] < 60
    assert full["step"] == resumed["step"] == 60
    assert full["rounds"] == resumed["rounds"] == 5 and full["online_episodes"] == resumed["online_episodes"] == 10
    for key in ("q_polyak", "q_lagged", "optimizer"):
        _assert_state_equal(full[key], resumed[key], key)
    _assert_state_equal(full["policy"]["qnet"], resumed["policy"]["qnet"], "qnet")
    assert full["optimizer"]["state"], "the optimizer has moments to compare"


def test_weights_changed_during_the_run(resume_runs):
    """Guards the equality test above against a run that never trained."""
    ckpts = sorted((resume_runs["full"] / "checkpoints").glob("step_*.pt"))
    first, last = load_checkpoint(ckpts[0]), load_checkpoint(ckpts[-1])

    assert first["step"] == 10 and last["step"] == 60
    assert any(not torch.equal(first["policy"]["qnet"][k], last["policy"]["qnet"][k]) for k in first["policy"]["qnet"])


def test_resumed_run_writes_each_evaluation_once(resume_runs):
    def records(run: Path) -> list[dict]:
        return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]

    full, resumed = records(resume_runs["full"]), records(resume_runs["resumed"])
    killed = resume_runs["killed"]

    assert killed["logged"] > killed["checkpoint"]  # the killed run had logged past its checkpoint
    assert [r["step"] for r in resumed] == list(range(5, 61, 5))
    assert len(full) == len(resumed)
    for a, b in zip(full, resumed):
        assert (a["step"], a["success"], a["episodes"], a["mean_length"]) == (b["step"], b["success"], b["episodes"], b["mean_length"])


def test_resumed_run_recollects_the_same_on_policy_episodes(resume_runs):
    full = sorted(p.name for p in (resume_runs["full"] / "online").iterdir())
    resumed = sorted(p.name for p in (resume_runs["resumed"] / "online").iterdir())

    assert full == resumed and len(full) == 5


def _copy_run(run: Path, dest: Path) -> Path:
    return Path(shutil.copytree(run, dest / run.name))


def test_resuming_with_another_q_network_raises_naming_the_differing_field(bandit_run, tmp_path, capsys):
    run = _copy_run(bandit_run, tmp_path)
    config = json.loads((run / "config.json").read_text())
    assert config["qnet"] == "small"
    (run / "config.json").write_text(json.dumps({**config, "qnet": "default"}))

    code = main(["train", "qtopt", "--resume", str(run)])

    err = capsys.readouterr().err
    assert code == 1
    assert "differs from the config" in err and "'channels': (16, 32)" in err


def test_resuming_with_another_q_network_from_python_raises_checkpoint_error(bandit_run, tmp_path):
    run = _copy_run(bandit_run, tmp_path)
    cfg = bandit_config(Path(json.loads((run / "config.json").read_text())["data"][0]), tmp_path, "run", qnet="default")

    with pytest.raises(CheckpointError, match="hidden"):
        train_qtopt(cfg, resume=run)


def test_resume_refuses_changed_settings_other_than_steps_and_time(bandit_run, tmp_path, capsys):
    run = _copy_run(bandit_run, tmp_path)

    code = main(["train", "qtopt", "--resume", str(run), "--lr", "0.1"])

    err = capsys.readouterr().err
    assert code == 2 and "only steps, max_minutes, progress may change" in err and "lr" in err


def test_resume_with_more_steps_trains_on_from_the_last_checkpoint(bandit_run, tmp_path):
    run = _copy_run(bandit_run, tmp_path)

    assert main(["train", "qtopt", "--resume", str(run), "--steps", "160"]) == 0

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert load_checkpoint(run)["step"] == 160
    assert json.loads((run / "config.json").read_text())["steps"] == 160
    assert [r["step"] for r in records] == [150, 160]


def test_starting_a_new_run_in_a_folder_with_a_run_raises(bandit_run):
    cfg = bandit_config(Path("unused"), bandit_run.parent, bandit_run.name)

    with pytest.raises(FileExistsError, match="--resume"):
        train_qtopt(cfg)


def test_resuming_a_folder_without_checkpoint_raises(tmp_path, bandit_data):
    (tmp_path / "empty").mkdir()

    with pytest.raises(CheckpointError, match="latest.pt"):
        train_qtopt(bandit_config(bandit_data, tmp_path, "empty"), resume=tmp_path / "empty")


# ------------------------------------------------------------------------------------ divergence
def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(bandit_data, tmp_path, monkeypatch):
    calls = []
    real_td_loss = qtopt_module.td_loss

    def td_loss_going_nan(logits, targets, kind="log"):
        calls.append(1)
        loss = real_td_loss(logits, targets, kind)
        return loss * float("nan") if len(calls) > 7 else loss  # the 8th step (step index 7) diverges

    monkeypatch.setattr(qtopt_module, "td_loss", td_loss_going_nan)
    cfg = bandit_config(bandit_data, tmp_path, "r", steps=20, checkpoint_every=5, online=False, eval_episodes=2, eval_envs=2)

    with pytest.raises(TrainingDiverged, match="at step 7") as err:
        train_qtopt(cfg)

    latest = tmp_path / "r" / "checkpoints" / "latest.pt"
    assert str(latest) in str(err.value)
    assert load_checkpoint(latest, kind="qtopt")["step"] == 5
    assert sorted(p.name for p in latest.parent.glob("step_*.pt")) == ["step_00000005.pt"]
    Policy.load(latest)  # the kept checkpoint is usable


# ------------------------------------------------------------------------------------ config
def test_preset_config_takes_overrides_of_any_field_including_name():
    cfg = preset_config("tiny", name="my-run", steps=7)

    assert cfg.name == "my-run" and cfg.steps == 7 and cfg.qnet == "small"


def test_unknown_preset_raises():
    with pytest.raises(ValueError, match="'huge'"):
        preset_config("huge")


@pytest.mark.parametrize("field, value", [("steps", 0), ("online_fraction", 1.5), ("polyak", 1.0), ("qnet", "xl"), ("amp", "fp16"), ("augment_color", 1.5), ("augment_noise", -0.1), ("real_fraction", 1.0), ("qnet_input_blur", -1.0), ("augment_jpeg", 96)])
def test_invalid_config_is_rejected_before_training(field, value, tmp_path):
    cfg = replace(preset_config("tiny", out=tmp_path, name="r"), **{field: value})

    with pytest.raises(ValueError, match=field):
        train_qtopt(cfg)

    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------ init_from (fine-tuning)
def test_init_from_starts_the_q_network_and_its_targets_from_another_run(bandit_run, bandit_data, tmp_path):
    run = train_qtopt(bandit_config(bandit_data, tmp_path, "ft", steps=2, lr=0.0, online=False, eval_episodes=2, eval_envs=2,
                                    init_from=bandit_run))

    source, tuned = load_checkpoint(bandit_run), load_checkpoint(run)
    _assert_state_equal(tuned["policy"]["qnet"], source["policy"]["qnet"], "qnet")  # lr 0: the weights stay the source's
    _assert_state_equal(tuned["q_lagged"], source["policy"]["qnet"], "q_lagged")
    assert json.loads((run / "config.json").read_text())["init_from"] == str(bandit_run)


def test_init_from_a_q_network_of_another_architecture_raises_naming_the_field(bandit_run, bandit_data, tmp_path):
    with pytest.raises(CheckpointError, match=r"init_from .*'coords': \(False, True\)"):
        train_qtopt(bandit_config(bandit_data, tmp_path, "ft", qnet_coords=True, init_from=bandit_run))


def test_init_from_a_q_network_without_input_blur_takes_its_weights_and_acts_blurred(bandit_run, bandit_data, tmp_path):
    run = train_qtopt(bandit_config(bandit_data, tmp_path, "ft", steps=2, lr=0.0, online=False, eval_episodes=2, eval_envs=2,
                                    qnet_input_blur=1.0, init_from=bandit_run))

    source, tuned = load_checkpoint(bandit_run), load_checkpoint(run)
    _assert_state_equal(tuned["policy"]["qnet"], source["policy"]["qnet"], "qnet")
    assert tuned["policy"]["qnet_config"]["input_blur"] == 1.0  # the policy blurs what it sees when it acts
    assert source["policy"]["qnet_config"].get("input_blur", 0.0) == 0.0


# ------------------------------------------------------------------------------------ auxiliary loss
def _aux_error(qnet, batch, aux) -> float:
    from rlcyclegan.rl.qtopt import auxiliary_loss
    from rlcyclegan.rl.qtopt import aux_actions

    actions = aux_actions(torch.as_tensor(batch["action"]), 8, (-torch.ones(6), torch.ones(6)), qnet.cfg.action_gates,
                          torch.Generator().manual_seed(0))
    target = torch.as_tensor(aux.targets(batch["privileged"], actions.numpy()))
    with torch.no_grad():
        qnet.eval()
        _, pred = qnet.head(qnet.encode(torch.as_tensor(batch["image"])), torch.as_tensor(batch["state"]), actions, with_aux=True)
    return float(auxiliary_loss(pred, target))


def test_aux_loss_on_privileged_state_trains_the_aux_outputs_of_the_critic(tmp_path):
    import numpy as np

    from rlcyclegan.train.qtopt import load_offline, make_qnet, probe_aux, probe_env

    cfg = preset_config("tiny", env_kwargs='{"state": "pose"}', aux_weight=1.0, steps=80, eval_every=0, online=False,
                        out=tmp_path, name="aux", progress=False, device="cpu", threads=1)
    run = train_qtopt(cfg)

    image_shape, state_dim, low, high, gates = probe_env(cfg)
    aux = probe_aux(cfg)
    offline, _ = load_offline(replace(cfg, data=(run / "offline", run / "offline-random")), run, image_shape, state_dim, len(low),
                              False, aux.privileged_dim)
    batch = offline.sample(128, np.random.default_rng(1))
    assert np.isfinite(batch["privileged"][:, :4]).all()
    untrained = make_qnet(cfg, image_shape, state_dim, len(low), gates, aux.outputs)
    trained = Policy.load(run).qnet

    assert trained.cfg.aux_outputs == 1
    assert _aux_error(trained.cpu(), batch, aux) < 0.5 * _aux_error(untrained, batch, aux)


def test_aux_weight_on_an_env_without_privileged_state_raises_naming_it(bandit_data, tmp_path):
    with pytest.raises(ValueError, match="privileged state"):
        train_qtopt(bandit_config(bandit_data, tmp_path, "aux", aux_weight=1.0))


@pytest.mark.parametrize("aux_domains, used", [(("sim", "randomized"), False), (("sim", "real"), True)])
def test_aux_loss_uses_privileged_state_only_from_data_of_the_aux_domains(tmp_path, aux_domains, used):
    import numpy as np

    from rlcyclegan.data.collect import collect
    from rlcyclegan.train.qtopt import load_offline, probe_aux, probe_env

    cfg = preset_config("tiny", env_kwargs='{"state": "pose"}', domain="real", aux_weight=1.0, aux_domains=aux_domains)
    collect(cfg.env, {"domain": "real", "image_size": 32, "state": "pose"}, "scripted", 3, tmp_path / "real", workers=1, progress=False)
    image_shape, state_dim, low, *_ = probe_env(cfg)

    buf, _ = load_offline(replace(cfg, data=(tmp_path / "real",)), tmp_path, image_shape, state_dim, len(low), False,
                          probe_aux(cfg).privileged_dim)

    assert np.isfinite(buf.privileged[:, :2]).all() == used and np.isnan(buf.privileged).all() != used


def test_real_fraction_replays_the_real_folders_in_that_share_of_each_off_policy_batch(tmp_path):
    import numpy as np

    from rlcyclegan.data.collect import collect
    from rlcyclegan.train.qtopt import load_offline, probe_env

    cfg = preset_config("tiny", env_kwargs='{"state": "pose"}')
    collect(cfg.env, {"domain": "sim", "image_size": 32, "state": "pose"}, "scripted", 4, tmp_path / "sim", workers=1, progress=False)
    collect(cfg.env, {"domain": "real", "image_size": 32, "state": "pose"}, "scripted", 1, tmp_path / "real", workers=1, progress=False)
    image_shape, state_dim, low, *_ = probe_env(cfg)

    buf, episodes = load_offline(replace(cfg, data=(tmp_path / "sim", tmp_path / "real"), real_fraction=0.5), tmp_path,
                                 image_shape, state_dim, len(low), False)
    batch = buf.sample(40, np.random.default_rng(0))

    assert episodes == 5 and len(buf) == len(buf.main) + len(buf.extra) and len(buf.extra) < len(buf.main) / 2
    real_images = {im.tobytes() for im in buf.extra.images[buf.extra.obs_index]}
    assert [im.tobytes() in real_images for im in batch["image"]] == [False] * 20 + [True] * 20


def test_training_with_real_fraction_runs_and_records_it(tmp_path):
    from rlcyclegan.data.collect import collect

    cfg = preset_config("tiny", env_kwargs='{"state": "pose"}', out=tmp_path, name="rf", steps=6, online=False, eval_every=0,
                        checkpoint_every=3, real_fraction=0.25, data=(tmp_path / "sim", tmp_path / "real"))
    collect(cfg.env, {"domain": "sim", "image_size": 32, "state": "pose"}, "scripted", 2, tmp_path / "sim", workers=1, progress=False)
    collect(cfg.env, {"domain": "real", "image_size": 32, "state": "pose"}, "scripted", 1, tmp_path / "real", workers=1, progress=False)
    run = train_qtopt(cfg)

    assert json.loads((run / "config.json").read_text())["real_fraction"] == 0.25
    assert load_checkpoint(run)["step"] == 6


def test_real_fraction_without_real_folders_raises_naming_them(tmp_path):
    from rlcyclegan.data.collect import collect
    from rlcyclegan.train.qtopt import load_offline, probe_env

    cfg = preset_config("tiny", env_kwargs='{"state": "pose"}')
    collect(cfg.env, {"domain": "sim", "image_size": 32, "state": "pose"}, "scripted", 2, tmp_path / "sim", workers=1, progress=False)
    image_shape, state_dim, low, *_ = probe_env(cfg)
    with pytest.raises(ValueError, match=r"real_fraction 0.5: .*none of .*sim"):
        load_offline(replace(cfg, data=(tmp_path / "sim",), real_fraction=0.5), tmp_path, image_shape, state_dim, len(low), False)


def test_policy_weights_polyak_saves_and_evaluates_the_polyak_average(bandit_data, tmp_path):
    run = train_qtopt(bandit_config(bandit_data, tmp_path, "polyak", steps=20, online=False, policy_weights="polyak"))
    ckpt = load_checkpoint(run)

    _assert_state_equal(ckpt["policy"]["qnet"], ckpt["q_polyak"], "policy")
    assert any(not torch.equal(ckpt["q_online"][k], ckpt["q_polyak"][k]) for k in ckpt["q_online"])
    _assert_state_equal(Policy.load(run).qnet.state_dict(), ckpt["q_polyak"], "loaded policy")


def test_policy_weights_ema_saves_a_separate_slower_average_as_the_policy(bandit_data, tmp_path):
    run = train_qtopt(bandit_config(bandit_data, tmp_path, "ema", steps=20, online=False, policy_weights="ema", policy_ema=0.99))
    ckpt = load_checkpoint(run)

    _assert_state_equal(ckpt["policy"]["qnet"], ckpt["q_ema"], "policy")
    assert any(not torch.equal(ckpt["q_ema"][k], ckpt["q_polyak"][k]) for k in ckpt["q_ema"] if ckpt["q_ema"][k].is_floating_point())
    _assert_state_equal(Policy.load(run).qnet.state_dict(), ckpt["q_ema"], "loaded policy")


def test_cosine_schedule_decays_from_lr_to_lr_final_fraction():
    cfg = preset_config("tiny", steps=101, lr=1e-3, lr_schedule="cosine", lr_final=0.1)
    lrs = [scheduled_lr(cfg, s) for s in range(cfg.steps)]

    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4) and lrs[50] == pytest.approx(5.5e-4)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_constant_schedule_keeps_lr():
    cfg = preset_config("tiny", steps=50, lr=1e-3)

    assert {scheduled_lr(cfg, s) for s in range(50)} == {1e-3}


def test_resume_from_a_mid_run_checkpoint_with_ema_policy_and_cosine_schedule_matches(bandit_data, tmp_path):
    settings = dict(steps=20, online=False, policy_weights="ema", policy_ema=0.9, lr_schedule="cosine", qnet_norm="batch",
                    checkpoint_every=10, keep_checkpoints=5)
    whole = train_qtopt(bandit_config(bandit_data, tmp_path, "whole", **settings))
    part = tmp_path / "part"
    shutil.copytree(whole, part)
    (part / "checkpoints" / "step_00000020.pt").unlink()
    shutil.copyfile(part / "checkpoints" / "step_00000010.pt", part / "checkpoints" / "latest.pt")

    assert main(["train", "qtopt", "--resume", str(part)]) == 0

    a, b = load_checkpoint(whole), load_checkpoint(part)
    for key in ("q_online", "q_ema", "q_polyak", "optimizer"):
        _assert_state_equal(a[key], b[key], key)


def test_resume_with_bf16_autocast_matches_the_uninterrupted_run(bandit_data, tmp_path):
    settings = dict(steps=20, online=False, amp="bf16", checkpoint_every=10, keep_checkpoints=5)
    whole = train_qtopt(bandit_config(bandit_data, tmp_path, "whole", **settings))
    part = tmp_path / "part"
    shutil.copytree(whole, part)
    (part / "checkpoints" / "step_00000020.pt").unlink()
    shutil.copyfile(part / "checkpoints" / "step_00000010.pt", part / "checkpoints" / "latest.pt")

    assert main(["train", "qtopt", "--resume", str(part)]) == 0

    a, b = load_checkpoint(whole), load_checkpoint(part)
    for key in ("q_online", "q_polyak", "optimizer"):
        _assert_state_equal(a[key], b[key], key)


def test_bf16_and_fp32_training_steps_give_close_but_different_weights(bandit_data, tmp_path):
    runs = {amp: load_checkpoint(train_qtopt(bandit_config(bandit_data, tmp_path, amp, steps=5, online=False, amp=amp)))
            for amp in ("bf16", "off")}
    a, b = runs["bf16"]["q_online"], runs["off"]["q_online"]
    diffs = [float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].is_floating_point()]
    assert 0 < max(diffs) < 0.05


@pytest.mark.parametrize("augment", [dict(augment_color=0.5), dict(augment_noise=0.05, augment_blur=1.0), dict(augment_jpeg=30)],
                         ids=["colour", "camera", "jpeg"])
def test_resume_with_image_distortions_matches_the_uninterrupted_run(bandit_data, tmp_path, augment):
    settings = dict(steps=20, online=False, checkpoint_every=10, keep_checkpoints=5, **augment)
    whole = train_qtopt(bandit_config(bandit_data, tmp_path, "whole", **settings))
    part = tmp_path / "part"
    shutil.copytree(whole, part)
    (part / "checkpoints" / "step_00000020.pt").unlink()
    shutil.copyfile(part / "checkpoints" / "step_00000010.pt", part / "checkpoints" / "latest.pt")

    assert main(["train", "qtopt", "--resume", str(part)]) == 0

    a, b = load_checkpoint(whole), load_checkpoint(part)
    for key in ("q_online", "q_polyak", "optimizer"):
        _assert_state_equal(a[key], b[key], key)


@pytest.mark.parametrize("augment", [dict(augment_color=0.5), dict(augment_noise=0.05), dict(augment_blur=1.0), dict(augment_jpeg=30)],
                         ids=["colour", "noise", "blur", "jpeg"])
def test_image_distortions_change_what_the_q_network_learns(bandit_data, tmp_path, augment):
    runs = {name: load_checkpoint(train_qtopt(bandit_config(bandit_data, tmp_path, name, steps=5, online=False, **over)))
            for name, over in (("plain", {}), ("distorted", augment))}
    a, b = runs["plain"]["q_online"], runs["distorted"]["q_online"]
    assert any(not torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------ stop on a signal
def test_sigterm_checkpoints_the_step_in_progress_and_resuming_matches_the_uninterrupted_run(bandit_data, tmp_path, monkeypatch,
                                                                                            sigterm_on_call):
    settings = dict(steps=20, online=False, checkpoint_every=10)
    whole = train_qtopt(bandit_config(bandit_data, tmp_path, "whole", **settings))
    sigterm_on_call(qtopt_module, "td_update", 7)

    with pytest.raises(TrainingInterrupted, match="SIGTERM at step 7"):
        train_qtopt(bandit_config(bandit_data, tmp_path, "stopped", **settings))
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "stopped")["step"] == 7
    assert main(["train", "qtopt", "--resume", str(tmp_path / "stopped")]) == 0

    a, b = load_checkpoint(whole), load_checkpoint(tmp_path / "stopped")
    assert a["step"] == b["step"] == 20
    for key in ("q_online", "q_polyak", "q_lagged", "optimizer"):
        _assert_state_equal(a[key], b[key], key)


def test_cli_stopped_by_sigterm_exits_143_naming_the_resume_command(bandit_data, tmp_path, sigterm_on_call, capsys):
    sigterm_on_call(qtopt_module, "td_update", 3)
    args = ["train", "qtopt", "--preset", "tiny", "--env", BANDIT_ID, "--data", str(bandit_data), "--offline-episodes", "0",
            "--no-online", "--steps", "20", "--batch-size", "8", "--eval-every", "0", "--eval-episodes", "2", "--eval-envs", "2",
            "--out", str(tmp_path), "--name", "run", "--no-progress", "--device", "cpu", "--threads", "1"]

    code = main(args)

    assert code == 128 + signal.SIGTERM
    assert f"--resume {tmp_path / 'run'}" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "run")["step"] == 3
