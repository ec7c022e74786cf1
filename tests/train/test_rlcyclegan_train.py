"""RL-CycleGAN training: which losses move which parameters, the methods, exact resumption, and
the run's outputs (Q_real policy, generators). Tiny nets on 32 px image-bandit data."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from bandit_env import BANDIT_ID, random_bandit_episodes

from rlcyclegan.data.store import write_episodes
from rlcyclegan.nets.generators import to_gan_input
from rlcyclegan.nets.qnet import QNET_PRESETS, GraspQNet, QNetConfig
from rlcyclegan.rl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rlcyclegan.rl.policy import Policy
from rlcyclegan.train.common import TrainingDiverged, TrainingInterrupted
from rlcyclegan.train.rlcyclegan import (
    build_nets,
    config_diff,
    discriminator_step,
    generator_step,
    load_generator,
    preset_config,
    q_from_gan,
    q_image,
    q_step,
    sample_batch,
    train_rlcyclegan,
    train_step,
)

BOUNDS = (np.array([-1.0], np.float32), np.array([1.0], np.float32))


def to_real(images: np.ndarray) -> np.ndarray:
    """The 'real' look of the bandit: colour channels reversed and a warm tint."""
    out = images[..., ::-1].astype(np.int16) + np.array([60, 20, 0], np.int16)
    return np.clip(out, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def real_data(build_once) -> dict[str, Path]:
    """Real bandit data built once: episodes (with actions/rewards) and the same images only (.npz)."""

    def build(folder: Path) -> None:
        eps = random_bandit_episodes(40, seed=10_000)
        for e in eps:
            e.images = to_real(e.images)
        write_episodes(folder / "episodes", eps, env_id=BANDIT_ID, domain="real", objects="train", policy="random")
        np.savez(folder / "images.npz", images=np.concatenate([e.images for e in eps]))

    folder = build_once("rlcyclegan-real", build)
    return {"episodes": folder / "episodes", "images": folder / "images.npz"}


def config(sim: Path, real: Path, out: Path, name: str = "run", **overrides):
    settings = dict(sim_data=(sim,), real_data=(real,), env=BANDIT_ID, out=out, name=name, progress=False, device="cpu", threads=1)
    return preset_config("tiny", **{**settings, **overrides})


def nets_for(method: str = "rlcyclegan", **overrides):
    cfg = preset_config("tiny", method=method, **overrides)
    return cfg, build_nets(cfg, 32, 0, 1, torch.device("cpu"), BOUNDS)


def synthetic_batch(n: int = 4, real_transitions: bool = True, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)

    def side() -> dict:
        return {"image": torch.randint(0, 256, (n, 32, 32, 3), generator=g, dtype=torch.uint8),
                "next_image": torch.randint(0, 256, (n, 32, 32, 3), generator=g, dtype=torch.uint8),
                "state": torch.zeros(n, 0), "next_state": torch.zeros(n, 0), "action": torch.rand(n, 1, generator=g) * 2 - 1,
                "reward": (torch.rand(n, generator=g) > 0.5).float(), "done": torch.ones(n, dtype=torch.bool)}

    sim, real = side(), side()
    return {"sim": sim, "real": real if real_transitions else {"image": real["image"]}}


def snapshot(*modules) -> list[torch.Tensor]:
    return [p.detach().clone() for m in modules for p in m.parameters()]


def same(before: list[torch.Tensor], *modules) -> bool:
    return all(torch.equal(a, b) for a, b in zip(before, [p for m in modules for p in m.parameters()]))


def has_grad(module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


# ------------------------------------------------------------------------------------ which loss moves what
def test_discriminator_step_leaves_the_generators_unchanged():
    cfg, nets = nets_for()
    batch = synthetic_batch()
    _, fakes = generator_step(nets, batch, cfg, 0, torch.device("cpu"))
    gens, discs = snapshot(nets.G, nets.F), snapshot(nets.D_X, nets.D_Y)

    discriminator_step(nets, batch, fakes, cfg, torch.device("cpu"))

    assert same(gens, nets.G, nets.F)
    assert not same(discs, nets.D_X, nets.D_Y)


def test_generator_step_gives_the_discriminators_no_gradient_and_leaves_them_unchanged():
    cfg, nets = nets_for()
    discs, gens = snapshot(nets.D_X, nets.D_Y), snapshot(nets.G, nets.F)

    generator_step(nets, synthetic_batch(), cfg, 0, torch.device("cpu"))

    assert same(discs, nets.D_X, nets.D_Y)
    assert all(p.grad is None for d in (nets.D_X, nets.D_Y) for p in d.parameters())
    assert all(p.requires_grad for d in (nets.D_X, nets.D_Y) for p in d.parameters())  # restored for their own step
    assert not same(gens, nets.G, nets.F)


@pytest.mark.parametrize("updates_q", [False, True])
def test_rl_scene_loss_reaches_g_and_f_and_the_q_networks_only_if_asked(updates_q):
    # only the RL-scene term has weight: whatever gets a gradient got it from that term
    cfg, nets = nets_for(lambda_gan=0.0, lambda_cycle=0.0, lambda_rl_scene=1.0, rl_scene_updates_q=updates_q)
    nets.opt_q.zero_grad(set_to_none=True)

    scalars, _ = generator_step(nets, synthetic_batch(), cfg, 0, torch.device("cpu"))

    assert scalars["loss/rl_scene"] > 0
    assert has_grad(nets.G) and has_grad(nets.F)
    assert has_grad(nets.q_sim) == updates_q and has_grad(nets.q_real) == updates_q


def test_q_step_updates_only_the_q_networks_and_its_gradient_reaches_no_generator():
    cfg, nets = nets_for()
    batch = synthetic_batch()
    _, fakes = generator_step(nets, batch, cfg, 0, torch.device("cpu"))
    others, qs = snapshot(nets.G, nets.F, nets.D_X, nets.D_Y), snapshot(nets.q_sim, nets.q_real)
    gen_grads = [p.grad.clone() for m in (nets.G, nets.F) for p in m.parameters()]

    nets.opt_q.zero_grad(set_to_none=True)
    q_step(nets, batch, fakes, cfg, torch.Generator().manual_seed(0), torch.device("cpu"))

    assert same(others, nets.G, nets.F, nets.D_X, nets.D_Y)
    assert all(torch.equal(a, p.grad) for a, p in zip(gen_grads, [p for m in (nets.G, nets.F) for p in m.parameters()]))
    assert not same(qs, nets.q_sim, nets.q_real)


def test_q_step_reuses_the_generator_steps_q_forward_on_the_same_images():
    cfg, nets = nets_for(amp="off")  # fp32: the two forwards must agree to 1e-5 (bf16 would differ by its rounding)
    batch = synthetic_batch()
    q_before = [snapshot(nets.q_sim), snapshot(nets.q_real)]
    _, fakes = generator_step(nets, batch, cfg, 0, torch.device("cpu"))
    sim, real = batch["sim"], batch["real"]
    with torch.no_grad():  # the same forward, from scratch, on detached images (Q is unchanged by the generator step)
        fresh_sim = nets.q_sim(torch.cat([q_image(sim["image"]), q_from_gan(fakes["fgx"])]), torch.cat([sim["state"]] * 2), torch.cat([sim["action"]] * 2))
        fresh_real = nets.q_real(torch.cat([q_from_gan(fakes["gx"]), q_image(real["image"])]), torch.cat([sim["state"], real["state"]]),
                                 torch.cat([sim["action"], real["action"]]))

    assert same(q_before[0], nets.q_sim) and same(q_before[1], nets.q_real)
    assert torch.allclose(fakes["logits_sim"], fresh_sim, atol=1e-5) and torch.allclose(fakes["logits_real"], fresh_real, atol=1e-5)


def record_td_targets(monkeypatch) -> list[tuple]:
    """Replace td_target by a recorder of (target networks, next images) returning zeros."""
    import rlcyclegan.train.rlcyclegan as rlc

    calls: list[tuple] = []

    def fake(q_polyak, q_lagged, batch, *args, **kwargs):
        calls.append((q_polyak, batch["next_image"].clone()))
        return torch.zeros(len(batch["next_image"]))

    monkeypatch.setattr(rlc, "td_target", fake)
    return calls


@pytest.mark.parametrize("real_transitions", [False, True])
def test_translated_sim_transitions_bootstrap_from_q_sim_targets_by_default(monkeypatch, real_transitions):
    cfg, nets = nets_for()
    batch = synthetic_batch(real_transitions=real_transitions)
    _, fakes = generator_step(nets, batch, cfg, 0, torch.device("cpu"))
    calls = record_td_targets(monkeypatch)

    scalars = q_step(nets, batch, fakes, cfg, torch.Generator().manual_seed(0), torch.device("cpu"))

    assert cfg.q_real_bootstrap == "sim"
    assert calls[0][0] is nets.q_sim_polyak and torch.equal(calls[0][1], q_image(batch["sim"]["next_image"]))
    if real_transitions:  # real transitions: Q_real's own targets at the real next images only
        assert len(calls) == 2 and calls[1][0] is nets.q_real_polyak
        assert torch.equal(calls[1][1], q_image(batch["real"]["next_image"]))
    else:
        assert len(calls) == 1
    assert float(scalars["q/real_target_mean"]) == 0.0


def test_q_real_can_bootstrap_from_its_own_targets_at_translated_next_images(monkeypatch):
    cfg, nets = nets_for(q_real_bootstrap="own", amp="off")  # fp32: compared with a fresh fp32 translation
    batch = synthetic_batch(real_transitions=False)
    _, fakes = generator_step(nets, batch, cfg, 0, torch.device("cpu"))
    calls = record_td_targets(monkeypatch)

    q_step(nets, batch, fakes, cfg, torch.Generator().manual_seed(0), torch.device("cpu"))

    with torch.no_grad():
        expected = q_from_gan(nets.G(to_gan_input(batch["sim"]["next_image"])))
    assert len(calls) == 2 and calls[1][0] is nets.q_real_polyak
    assert torch.allclose(calls[1][1], expected, atol=1e-6)


def test_q_networks_see_data_and_generated_images_on_one_scale():
    images = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    _, nets = nets_for()

    assert torch.allclose(q_image(images), q_from_gan(to_gan_input(images)), atol=1e-6)
    assert torch.equal(q_image(images), nets.q_sim.preprocess(images))


def test_a_few_joint_steps_reduce_the_cycle_loss():
    cfg, nets = nets_for(lr_generator=2e-3)
    batch = synthetic_batch(seed=1)  # one fixed batch of bandit-like images: the cycle loss must fall on it
    images = np.stack([e.images[0] for e in random_bandit_episodes(8)])
    batch["sim"]["image"], batch["real"]["image"] = torch.as_tensor(images[:4]), torch.as_tensor(to_real(images[4:]))
    gen = torch.Generator().manual_seed(0)
    cycle = [float(train_step(nets, batch, cfg, step, gen, torch.device("cpu"))["loss/cycle"]) for step in range(30)]

    assert np.mean(cycle[-5:]) < 0.7 * np.mean(cycle[:5])


def test_images_only_real_data_trains_with_the_sim_actions():
    cfg, nets = nets_for()
    scalars = train_step(nets, synthetic_batch(real_transitions=False), cfg, 0, torch.Generator().manual_seed(0), torch.device("cpu"))

    assert {"rl_scene/y_y1", "rl_scene/y_y2", "rl_scene/y1_y2", "loss/td_real"} <= set(scalars)


def test_non_finite_loss_raises_training_diverged():
    cfg, nets = nets_for(lambda_cycle=float("nan"))

    with pytest.raises(TrainingDiverged, match="generator_total"):
        train_step(nets, synthetic_batch(), cfg, 0, torch.Generator().manual_seed(0), torch.device("cpu"))


def test_init_q_starts_q_sim_from_a_qtopt_checkpoint_and_q_real_from_q_sim(tmp_path):
    qnet = GraspQNet(QNetConfig(**{**QNET_PRESETS["deep"], "image_size": 32, "state_dim": 0, "action_dim": 1}))
    save_checkpoint(tmp_path / "qtopt" / "checkpoints" / "latest.pt", {"kind": "qtopt", "policy": {"qnet_config": qnet.cfg.to_dict(), "qnet": qnet.state_dict()}})
    _, nets = nets_for(init_q=tmp_path / "qtopt")

    assert nets.q_sim.cfg == qnet.cfg  # the checkpoint's architecture, not the preset's
    for q in (nets.q_sim, nets.q_real, nets.q_sim_polyak, nets.q_sim_lagged, nets.q_real_polyak, nets.q_real_lagged):
        _assert_state_equal(q.state_dict(), qnet.state_dict(), "q")


# ------------------------------------------------------------------------------------ methods
def test_gan_method_builds_no_f_or_d_x_and_has_no_cycle_term():
    cfg, nets = nets_for("gan")
    scalars = train_step(nets, synthetic_batch(), cfg, 0, torch.Generator().manual_seed(0), torch.device("cpu"))

    assert nets.F is None and nets.D_X is None and nets.q_sim is None and nets.q_real is None
    assert "loss/cycle" not in scalars and "loss/gan_f" not in scalars and "loss/rl_scene" not in scalars
    assert {"loss/gan_g", "loss/d_y"} <= set(scalars)


def test_cyclegan_method_has_no_rl_scene_term_and_trains_no_q_networks():
    cfg, nets = nets_for("cyclegan", lambda_rl_scene=5.0)  # forced to 0 by the method
    scalars = train_step(nets, synthetic_batch(), cfg, 0, torch.Generator().manual_seed(0), torch.device("cpu"))

    assert nets.q_sim is None and nets.q_real is None and nets.opt_q is None
    assert not any(k.startswith(("rl_scene/", "q/")) for k in scalars) and "loss/rl_scene" not in scalars
    assert {"loss/cycle", "loss/gan_g", "loss/gan_f", "loss/d_x", "loss/d_y"} <= set(scalars)


# ------------------------------------------------------------------------------------ runs
def _assert_state_equal(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
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


@pytest.fixture(scope="module")
def runs(bandit_data, real_data, tmp_path_factory) -> dict:
    """An uninterrupted 8-step run (with an eval at the end), and the same run stopped at 4 and resumed to 8."""
    out = tmp_path_factory.mktemp("rlcyclegan-runs")
    full_cfg = config(bandit_data, real_data["episodes"], out, "full", steps=8, checkpoint_every=4, eval_every=8, rl_scene_warmup=2)
    full = train_rlcyclegan(full_cfg)
    half = train_rlcyclegan(replace(full_cfg, name="resumed", steps=4))
    first_half = load_checkpoint(half)
    resumed = train_rlcyclegan(replace(full_cfg, name="resumed"), resume=half)
    return {"full": full, "resumed": resumed, "first_half": first_half, "cfg": full_cfg}


def test_stopped_and_resumed_run_ends_with_exactly_the_uninterrupted_state(runs):
    full, resumed = load_checkpoint(runs["full"]), load_checkpoint(runs["resumed"])

    assert runs["first_half"]["step"] == 4 and full["step"] == resumed["step"] == 8
    _assert_state_equal(full["state"], resumed["state"], "state")
    _assert_state_equal(full["rng"], resumed["rng"], "rng")
    assert any(not torch.equal(v, full["state"]["G"][k]) for k, v in runs["first_half"]["state"]["G"].items())  # it trained


def test_sigterm_checkpoints_the_step_in_progress_and_resuming_matches_the_uninterrupted_run(runs, monkeypatch, sigterm_on_call):
    import rlcyclegan.train.rlcyclegan as module

    sigterm_on_call(module, "train_step", 3)
    with pytest.raises(TrainingInterrupted, match="SIGTERM at step 3"):
        train_rlcyclegan(replace(runs["cfg"], name="signalled"))
    monkeypatch.undo()
    stopped = runs["cfg"].out / "signalled"
    assert load_checkpoint(stopped)["step"] == 3
    train_rlcyclegan(replace(runs["cfg"], name="signalled"), resume=stopped)

    full, resumed = load_checkpoint(runs["full"]), load_checkpoint(stopped)
    assert resumed["step"] == 8
    _assert_state_equal(full["state"], resumed["state"], "state")
    _assert_state_equal(full["rng"], resumed["rng"], "rng")


def test_resume_with_another_config_is_refused_naming_the_fields(runs):
    cfg = replace(runs["cfg"], name="resumed", lambda_cycle=3.0, pool_size=2)

    with pytest.raises(CheckpointError, match="lambda_cycle.*pool_size"):
        train_rlcyclegan(cfg, resume=runs["resumed"])


def test_run_folder_holds_config_metrics_visuals_and_tensorboard(runs):
    run = runs["full"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert json.loads((run / "config.json").read_text())["method"] == "rlcyclegan"
    assert [r["step"] for r in records] == [8] and 0 <= records[0]["success_low"] <= records[0]["success_high"] <= 1
    assert sorted(p.name for p in (run / "visuals").iterdir()) == ["step_00000004.png", "step_00000008.png"]
    assert any((run / "tb").iterdir())


def test_policy_loads_q_real_from_the_run_folder_and_acts_in_the_env(runs):
    import gymnasium as gym

    policy = Policy.load(runs["full"])
    ckpt = load_checkpoint(runs["full"])
    env = gym.make(BANDIT_ID)
    obs, _ = env.reset(seed=0)
    action = policy.act(obs)
    env.step(action)

    for k, v in ckpt["policy"]["qnet"].items():
        assert torch.equal(v, ckpt["state"]["q_real"][k]), k
    assert action.shape == (1,) and -1 <= action[0] <= 1
    assert ckpt["policy"]["env"] == {"id": BANDIT_ID, "kwargs": {}}


@pytest.mark.parametrize("direction", ["sim2real", "real2sim"])
def test_load_generator_maps_images_to_images_of_the_same_shape(runs, direction):
    gen = load_generator(runs["full"], direction)
    with torch.no_grad():
        out = gen(torch.rand(2, 3, 32, 32) * 2 - 1)

    assert not gen.training and out.shape == (2, 3, 32, 32) and out.abs().max() <= 1


def test_gan_run_on_images_only_real_data_has_no_policy(bandit_data, real_data, tmp_path):
    run = train_rlcyclegan(config(bandit_data, real_data["images"], tmp_path, method="gan", steps=2))

    with pytest.raises(CheckpointError, match="no policy"):
        Policy.load(run)
    with pytest.raises(CheckpointError, match="real2sim"):
        load_generator(run, "real2sim")
    assert load_generator(run)(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


# ------------------------------------------------------------------------------------ auxiliary loss
def _aux_nets():
    from rlcyclegan.rl.qtopt import AuxSpec

    # toy privileged state: one number per state; target: |state value + action| / 2 (what an env would compute)
    aux = AuxSpec(1, 1, lambda priv, acts: (np.abs(priv[:, None, :1] + acts[..., :1]) / 2).astype(np.float32))
    cfg = preset_config("tiny", method="rlcyclegan", aux_weight=1.0)
    return cfg, build_nets(cfg, 32, 0, 1, torch.device("cpu"), BOUNDS, aux)


def test_aux_loss_trains_the_aux_outputs_of_q_sim_and_q_real_and_not_the_generators():
    cfg, nets = _aux_nets()
    batch = synthetic_batch()
    batch["sim"]["privileged"] = torch.rand(4, 1)
    _, fakes = generator_step(nets, batch, cfg, 0, torch.device("cpu"))
    gens, aux_heads = snapshot(nets.G, nets.F), snapshot(nets.q_sim.aux, nets.q_real.aux)

    scalars = q_step(nets, batch, fakes, cfg, torch.Generator().manual_seed(0), torch.device("cpu"))

    assert {"loss/aux_sim", "loss/aux_real"} <= set(scalars)
    assert same(gens, nets.G, nets.F)
    assert not same(aux_heads[:2], nets.q_sim.aux) and not same(aux_heads[2:], nets.q_real.aux)


def test_aux_weight_with_sim_data_without_privileged_state_raises_naming_it(bandit_data, real_data, tmp_path):
    with pytest.raises(ValueError, match="privileged"):
        train_rlcyclegan(config(bandit_data, real_data["images"], tmp_path, aux_weight=1.0))


def test_policy_weights_polyak_saves_q_reals_polyak_average_as_the_policy(bandit_data, real_data, tmp_path):
    run = train_rlcyclegan(config(bandit_data, real_data["episodes"], tmp_path, "polyak", steps=4, policy_weights="polyak"))
    ckpt = load_checkpoint(run)

    _assert_state_equal(ckpt["policy"]["qnet"], ckpt["state"]["q_real_polyak"], "policy")
    _assert_state_equal(ckpt["policy_sim"]["qnet"], ckpt["state"]["q_sim_polyak"], "policy_sim")
    assert any(not torch.equal(v, ckpt["state"]["q_real"][k]) for k, v in ckpt["state"]["q_real_polyak"].items())


def test_a_checkpoint_saved_before_a_field_existed_resumes_as_if_it_had_the_default(runs):
    saved = dict(load_checkpoint(runs["resumed"])["config"])
    del saved["policy_weights"]

    assert config_diff(saved, replace(runs["cfg"], name="resumed")) == {}
    assert "policy_weights" in config_diff(saved, replace(runs["cfg"], name="resumed", policy_weights="polyak"))


@pytest.mark.parametrize("real_transitions", [True, False])
def test_done_fraction_draws_that_share_of_each_batch_among_grasp_attempts(real_transitions):
    from rlcyclegan.rl.replay import ReplayBuffer
    from rlcyclegan.train.rlcyclegan import RealData

    from rlcyclegan.data import Episode

    def buffer(seed: int) -> ReplayBuffer:  # 10 episodes of 4 steps, the last one a grasp attempt
        buf = ReplayBuffer(100, (8, 8, 3), 0, 1)
        rng = np.random.default_rng(seed)
        for i in range(10):
            buf.add_episode(Episode(images=rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8), states=np.zeros((5, 0), np.float32),
                                    actions=rng.uniform(-1, 1, (4, 1)).astype(np.float32), rewards=np.zeros(4, np.float32),
                                    terminated=np.array([False, False, False, True]), truncated=np.zeros(4, bool),
                                    success=False, index=i, seed=seed + i))
        return buf

    sim = buffer(0)
    real = RealData(buffer(1), None) if real_transitions else RealData(None, sim.image[:5])
    rng = np.random.default_rng(0)
    uniform = sample_batch(sim, real, 64, rng, torch.device("cpu"))
    weighted = sample_batch(sim, real, 64, rng, torch.device("cpu"), done_fraction=0.75)

    assert sim.done[: sim.size].mean() == 0.25 and uniform["sim"]["done"].float().mean() < 0.5
    assert weighted["sim"]["done"].float().mean() >= 0.75
    if real_transitions:
        assert weighted["real"]["done"].float().mean() >= 0.75


def test_done_fraction_outside_zero_one_is_refused_naming_it(bandit_data, real_data, tmp_path):
    with pytest.raises(ValueError, match="done_fraction must be in"):
        train_rlcyclegan(config(bandit_data, real_data["images"], tmp_path, done_fraction=1.5))


# ------------------------------------------------------------------------------------ q_batch_size
def test_q_batch_size_adds_sim_transitions_that_only_the_q_td_loss_sees(monkeypatch):
    import rlcyclegan.train.rlcyclegan as rlc

    cfg, nets = nets_for(q_batch_size=10)  # batch_size 4: 6 more rows for TD
    batch = synthetic_batch()
    batch["sim_q"] = synthetic_batch(n=6, seed=1)["sim"]
    _, fakes = generator_step(nets, batch, cfg, 0, torch.device("cpu"))
    others, qs = snapshot(nets.G, nets.F, nets.D_X, nets.D_Y), snapshot(nets.q_sim, nets.q_real)
    seen: list[tuple[int, int]] = []
    real_td_loss = rlc.td_loss
    monkeypatch.setattr(rlc, "td_loss", lambda logits, target, kind: seen.append((len(logits), len(target))) or real_td_loss(logits, target, kind))

    nets.opt_q.zero_grad(set_to_none=True)
    q_step(nets, batch, fakes, cfg, torch.Generator().manual_seed(0), torch.device("cpu"))

    assert seen == [(2 * 4 + 6, 2 * 4 + 6), (2 * 4 + 6, 2 * 4 + 6)]  # Q_sim: x, F(G(x)), extra x; Q_real: G(x), y, G(extra x)
    assert same(others, nets.G, nets.F, nets.D_X, nets.D_Y) and not same(qs, nets.q_sim, nets.q_real)


def test_sample_batch_draws_the_q_only_transitions_after_the_others():
    from rlcyclegan.rl.replay import ReplayBuffer
    from rlcyclegan.train.rlcyclegan import RealData

    buf = ReplayBuffer(50, (8, 8, 3), 0, 1)
    for e in random_bandit_episodes(50, seed=3):
        e.images = np.ascontiguousarray(e.images[:, :8, :8])
        buf.add_episode(e)
    real = RealData(None, buf.image[:5])
    plain = sample_batch(buf, real, 4, np.random.default_rng(0), torch.device("cpu"))
    more = sample_batch(buf, real, 4, np.random.default_rng(0), torch.device("cpu"), q_extra=12)

    assert "sim_q" not in plain and len(more["sim_q"]["reward"]) == 12
    assert torch.equal(plain["sim"]["image"], more["sim"]["image"]) and torch.equal(plain["real"]["image"], more["real"]["image"])


@pytest.mark.parametrize("fields, message", [
    (dict(q_batch_size=2), "q_batch_size must be 0 or >= batch_size"),
    (dict(q_batch_size=8, q_real_bootstrap="own"), "needs q_real_bootstrap 'sim'"),
])
def test_bad_q_batch_size_is_refused_naming_it(bandit_data, real_data, tmp_path, fields, message):
    with pytest.raises(ValueError, match=message):
        train_rlcyclegan(config(bandit_data, real_data["images"], tmp_path, **fields))


def test_a_run_with_a_larger_q_batch_trains_and_resumes_exactly(bandit_data, real_data, tmp_path):
    cfg = config(bandit_data, real_data["episodes"], tmp_path, name="full", q_batch_size=12, done_fraction=0.5, steps=12, checkpoint_every=6)
    train_rlcyclegan(cfg)
    half = replace(cfg, name="half", steps=6)
    train_rlcyclegan(half)
    train_rlcyclegan(replace(half, steps=12), resume=tmp_path / "half")

    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "half")
    assert a["step"] == b["step"] == 12
    _assert_state_equal(a["state"], b["state"], "state")


# ------------------------------------------------------------------------------------ on-policy collection
def test_sample_batch_draws_the_online_fraction_of_sim_rows_from_the_on_policy_buffer(bandit_data):
    from rlcyclegan.rl.replay import ReplayBuffer
    from rlcyclegan.train.rlcyclegan import RealData, episode_buffer

    sim = episode_buffer([bandit_data])
    eps = random_bandit_episodes(20, seed=7)
    for e in eps:
        e.images[:] = 255  # on-policy rows are recognisable by their all-white images
    online = ReplayBuffer(100, sim.image_shape, 0, 1)
    online.add_episodes(eps)
    real = RealData(None, sim.image[:5])
    batch = sample_batch(sim, real, 16, np.random.default_rng(0), torch.device("cpu"), q_extra=8, online=online, online_fraction=0.25)

    white = lambda t: int((t.flatten(1) == 255).all(1).sum())  # noqa: E731
    assert white(batch["sim"]["image"]) == 4 and white(batch["sim_q"]["image"]) == 2


def test_without_an_online_buffer_sample_batch_draws_what_it_drew_before(bandit_data):
    from rlcyclegan.train.rlcyclegan import RealData, episode_buffer

    sim = episode_buffer([bandit_data])
    real = RealData(None, sim.image[:5])
    a = sample_batch(sim, real, 8, np.random.default_rng(3), torch.device("cpu"), done_fraction=0.5)
    expected = sim.sample(8, np.random.default_rng(3), 0.5)
    assert torch.equal(a["sim"]["image"], torch.as_tensor(expected["image"]))


def online_config(bandit_data, real_data, out: Path, name: str, **overrides):
    settings = dict(online=True, online_start=2, collect_every=3, collect_episodes=3, collect_envs=2, online_ramp=4, steps=10,
                    checkpoint_every=5, keep_checkpoints=2)
    return config(bandit_data, real_data["images"], out, name, **{**settings, **overrides})


def test_online_collection_plays_rounds_of_sim_episodes_into_run_online(bandit_data, real_data, tmp_path):
    import gymnasium as gym

    from rlcyclegan.data.store import list_shards, read_shard

    run = train_rlcyclegan(online_config(bandit_data, real_data, tmp_path, "online"))
    ckpt = load_checkpoint(run)
    shards = list_shards(run / "online")
    episodes = [e for s in shards for e in read_shard(s).episodes()]

    assert ckpt["rounds"] == 3 and ckpt["online_episodes"] == 9  # rounds at steps 2, 5 and 8
    assert len(shards) == 3 and [e.index for e in episodes] == list(range(9))
    env = gym.make(BANDIT_ID)
    first_obs, _ = env.reset(seed=episodes[0].seed)
    assert np.array_equal(episodes[0].images[0], first_obs)  # the sim frame is stored, not G(x)


def test_a_run_killed_after_an_unsaved_collection_round_resumes_to_the_uninterrupted_state(bandit_data, real_data, tmp_path):
    import shutil

    full = train_rlcyclegan(online_config(bandit_data, real_data, tmp_path, "full"))
    killed = tmp_path / "killed"
    shutil.copytree(full, killed)
    # as if killed after step 8's collection round: the latest checkpoint is step 5's, a round file is newer
    shutil.copyfile(killed / "checkpoints" / "step_00000005.pt", killed / "checkpoints" / "latest.pt")
    resumed = train_rlcyclegan(online_config(bandit_data, real_data, tmp_path, "killed"), resume=killed)

    a, b = load_checkpoint(full), load_checkpoint(resumed)
    assert b["step"] == 10 and (a["rounds"], a["online_episodes"]) == (b["rounds"], b["online_episodes"]) == (3, 9)
    _assert_state_equal(a["state"], b["state"], "state")
    _assert_state_equal(a["rng"], b["rng"], "rng")


@pytest.mark.parametrize("fields, message", [
    (dict(method="cyclegan"), "online collection needs method rlcyclegan"),
    (dict(online_fraction=1.5), "online_fraction"),
    (dict(collect_envs=0), "collect_envs"),
])
def test_bad_online_settings_are_refused_naming_them(bandit_data, real_data, tmp_path, fields, message):
    with pytest.raises(ValueError, match=message):
        train_rlcyclegan(online_config(bandit_data, real_data, tmp_path, "bad", **fields))


# ------------------------------------------------------------------------------------ Q-input shifts
def test_shift_images_moves_each_image_by_at_most_pad_pixels_and_passes_gradients():
    from rlcyclegan.train.rlcyclegan import shift_images

    images = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6).requires_grad_(True)
    out = shift_images(images, 1, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images.detach(), (1, 1, 1, 1), mode="replicate")
    crops = [{(dy, dx) for dy in range(3) for dx in range(3) if torch.equal(out[i].detach(), padded[i, :, dy:dy + 6, dx:dx + 6])} for i in range(2)]

    assert out.shape == images.shape and all(crops)
    out.sum().backward()
    assert images.grad is not None and images.grad.sum() == images.numel()
    assert shift_images(images, 0, None) is images


def test_a_run_with_shifted_q_inputs_trains_and_resumes_exactly(bandit_data, real_data, tmp_path):
    cfg = config(bandit_data, real_data["episodes"], tmp_path, name="full", augment_shift=2, steps=8, checkpoint_every=4, rl_scene_warmup=2)
    train_rlcyclegan(cfg)
    train_rlcyclegan(replace(cfg, name="half", steps=4))
    train_rlcyclegan(replace(cfg, name="half"), resume=tmp_path / "half")
    plain = train_rlcyclegan(replace(cfg, name="plain", augment_shift=0))

    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "half")
    _assert_state_equal(a["state"], b["state"], "state")
    assert any(not torch.equal(v, load_checkpoint(plain)["state"]["q_real"][k]) for k, v in a["state"]["q_real"].items())


@pytest.mark.parametrize("augment", [dict(augment_color=0.5), dict(augment_noise=0.05, augment_blur=1.0)], ids=["colour", "camera"])
def test_a_run_with_distorted_q_inputs_trains_and_resumes_exactly(bandit_data, real_data, tmp_path, augment):
    cfg = config(bandit_data, real_data["episodes"], tmp_path, name="full", steps=8, checkpoint_every=4, rl_scene_warmup=2, **augment)
    train_rlcyclegan(cfg)
    train_rlcyclegan(replace(cfg, name="half", steps=4))
    train_rlcyclegan(replace(cfg, name="half"), resume=tmp_path / "half")
    plain = train_rlcyclegan(replace(cfg, name="plain", augment_color=0.0, augment_noise=0.0, augment_blur=0.0))

    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "half")
    _assert_state_equal(a["state"], b["state"], "state")
    assert any(not torch.equal(v, load_checkpoint(plain)["state"]["q_real"][k]) for k, v in a["state"]["q_real"].items())


# ------------------------------------------------------------------------------------ fine-tuning on the robot
def test_sample_batch_with_online_real_draws_the_online_fraction_of_real_rows_from_the_on_policy_buffer(bandit_data, real_data):
    from rlcyclegan.rl.replay import ReplayBuffer
    from rlcyclegan.train.rlcyclegan import RealData, episode_buffer

    sim, real = episode_buffer([bandit_data]), RealData(episode_buffer([real_data["episodes"]]), None)
    eps = random_bandit_episodes(20, seed=7)
    for e in eps:
        e.images[:] = 255  # on-policy rows are recognisable by their all-white images
    online = ReplayBuffer(100, sim.image_shape, 0, 1)
    online.add_episodes(eps)
    batch = sample_batch(sim, real, 16, np.random.default_rng(0), torch.device("cpu"), q_extra=8, online=online,
                         online_fraction=0.25, online_real=True)

    white = lambda t: int((t.flatten(1) == 255).all(1).sum())  # noqa: E731
    assert white(batch["real"]["image"]) == 4 and "action" in batch["real"]
    assert white(batch["sim"]["image"]) == 0 and white(batch["sim_q"]["image"]) == 0


def test_init_from_starts_every_network_optimizer_and_pool_from_the_run_with_this_configs_learning_rates(runs):
    from rlcyclegan.train.rlcyclegan import load_init_from

    cfg = replace(runs["cfg"], init_from=runs["full"], lr_q=1e-5, seed=5)
    nets = build_nets(cfg, 32, 0, 1, torch.device("cpu"), BOUNDS)
    load_init_from(nets, cfg, torch.device("cpu"))

    saved = load_checkpoint(runs["full"])["state"]
    for name in ("G", "F", "D_X", "D_Y", "q_sim", "q_real", "q_sim_polyak", "q_real_lagged", "pool_x", "pool_y"):
        _assert_state_equal(saved[name], getattr(nets, name).state_dict(), name)
    assert nets.opt_q.state_dict()["state"].keys() == saved["opt_q"]["state"].keys() and saved["opt_q"]["state"]
    assert [g["lr"] for g in nets.opt_q.param_groups] == [1e-5] and [g["lr"] for g in nets.opt_g.param_groups] == [cfg.lr_generator]


@pytest.mark.parametrize("change, message", [
    (dict(generator_channels=6), r"another config .*generator_channels"),
    (dict(init_from="qtopt"), "holds no RL-CycleGAN training state"),
])
def test_init_from_a_run_that_does_not_fit_is_refused_naming_why(runs, tmp_path, change, message):
    from rlcyclegan.train.rlcyclegan import load_init_from

    if change.get("init_from") == "qtopt":  # a checkpoint without the joint training state
        ckpt = load_checkpoint(runs["full"])
        save_checkpoint(tmp_path / "slim.pt", {k: v for k, v in ckpt.items() if k not in ("state", "format_version")})
        change = dict(init_from=tmp_path / "slim.pt")
    cfg = replace(runs["cfg"], **{"init_from": runs["full"], **change})
    nets = build_nets(cfg, 32, 0, 1, torch.device("cpu"), BOUNDS)
    with pytest.raises(CheckpointError, match=message):
        load_init_from(nets, cfg, torch.device("cpu"))


def test_online_real_run_continues_a_run_and_stores_its_real_rounds(runs, bandit_data, real_data, tmp_path):
    from rlcyclegan.data.store import list_shards

    cfg = replace(online_config(bandit_data, real_data, tmp_path, "ft", online_real=True, online_start=0, steps=6,
                                init_from=runs["full"], rl_scene_warmup=0), real_data=(real_data["episodes"],))
    run = train_rlcyclegan(cfg)
    ckpt = load_checkpoint(run)
    assert ckpt["step"] == 6 and ckpt["rounds"] == 2 and len(list_shards(run / "online")) == 2  # rounds at steps 0 and 3


@pytest.mark.parametrize("fields, message", [
    (dict(online=False), "online_real needs online collection"),
    (dict(collect_policy="sim"), "collect_policy must be real"),
    (dict(real_data="images"), "not images only"),
])
def test_bad_online_real_settings_are_refused_naming_them(bandit_data, real_data, tmp_path, fields, message):
    real = (real_data[fields.pop("real_data", "episodes")],)
    with pytest.raises(ValueError, match=message):
        train_rlcyclegan(replace(online_config(bandit_data, real_data, tmp_path, "bad", online_real=True, **fields), real_data=real))


# ------------------------------------------------------------------------------------ mixed real data
def test_load_real_keeps_the_transitions_of_episodes_given_beside_images_only_data(real_data):
    from rlcyclegan.train.rlcyclegan import episode_buffer, load_real

    real = load_real([real_data["images"], real_data["episodes"]], (32, 32, 3), 0, 1)
    n_images = len(np.load(real_data["images"])["images"])

    assert real.mixed and real.has_transitions
    assert len(real.buffer) == len(episode_buffer([real_data["episodes"]])) and len(real.images) == n_images
    assert len(real) == n_images + len(real.buffer)


def test_mixed_real_data_draws_gan_frames_over_every_real_frame_and_td_rows_from_the_transitions(bandit_data, real_data):
    from rlcyclegan.train.rlcyclegan import RealData, episode_buffer

    sim, transitions = episode_buffer([bandit_data]), episode_buffer([real_data["episodes"]])
    images = np.full((len(transitions), 32, 32, 3), 255, np.uint8)  # images-only frames are all white
    batch = sample_batch(sim, RealData(transitions, images), 400, np.random.default_rng(0), torch.device("cpu"))

    white = lambda t: int((t.flatten(1) == 255).all(1).sum())  # noqa: E731
    assert set(batch["real"]) == {"image"}  # the GAN's y: scored with the sim actions
    assert 150 < white(batch["real"]["image"]) < 250  # about half: as many white frames as transitions
    assert {"image", "next_image", "state", "action", "reward", "done"} <= set(batch["real_td"])
    assert len(batch["real_td"]["action"]) == 400 and white(batch["real_td"]["image"]) == 0


def test_q_step_with_mixed_real_data_trains_q_real_on_the_transitions_against_its_own_targets(monkeypatch):
    cfg, nets = nets_for()
    batch = synthetic_batch(real_transitions=True)
    batch["real_td"], batch["real"] = batch["real"], {"image": torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)}
    _, fakes = generator_step(nets, batch, cfg, 0, torch.device("cpu"))
    calls = record_td_targets(monkeypatch)
    seen = []
    real_head = nets.q_real.head
    monkeypatch.setattr(nets.q_real, "head", lambda emb, s, a, **kw: seen.append(len(a)) or real_head(emb, s, a, **kw))

    q_step(nets, batch, fakes, cfg, torch.Generator().manual_seed(0), torch.device("cpu"))

    assert fakes["logits_real"].shape == (4,)  # the generator step's Q_real forward holds G(x) only
    assert len(calls) == 2 and calls[1][0] is nets.q_real_polyak
    assert torch.equal(calls[1][1], q_image(batch["real_td"]["next_image"]))
    assert seen == [4]  # one more Q_real forward: the transitions' own images and actions


def test_a_run_with_images_and_episodes_as_real_data_trains_and_resumes_exactly(bandit_data, real_data, tmp_path):
    cfg = config(bandit_data, real_data["images"], tmp_path, "full", real_data=(real_data["images"], real_data["episodes"]),
                 steps=6, checkpoint_every=3)
    full = load_checkpoint(train_rlcyclegan(cfg))
    half = train_rlcyclegan(replace(cfg, name="resumed", steps=3))
    resumed = load_checkpoint(train_rlcyclegan(replace(cfg, name="resumed"), resume=half))

    assert full["step"] == resumed["step"] == 6
    _assert_state_equal(full["state"], resumed["state"], "state")
    _assert_state_equal(full["rng"], resumed["rng"], "rng")


def test_progress_bar_shows_only_the_losses_a_run_has():
    from rlcyclegan.train.rlcyclegan import progress_postfix

    gan_only = progress_postfix({"loss/gan_g": 0.5, "loss/d_y": 0.25, "perf/steps_per_second": 9.0})
    assert gan_only == {"gan": "0.500", "d_y": "0.250"}
    full = progress_postfix({"loss/gan_g": 0.5, "loss/cycle": 0.1, "loss/rl_scene": 0.01, "loss/td_real": 0.2, "loss/d_y": 0.25})
    assert set(full) == {"gan", "cyc", "scene", "td", "d_y"} and "nan" not in "".join(full.values())
