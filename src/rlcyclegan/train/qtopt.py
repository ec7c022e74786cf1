"""QT-Opt on images, one file, top to bottom (CleanRL style).

    rlcyclegan train qtopt --preset cpu --domain sim

1. Off-policy data: stored episode folders (``--data``), or scripted episodes collected into the
   run folder first.
2. Loop: sample a batch mixing off-policy and on-policy replay; compute TD targets with CEM over
   the Polyak target network and clipped double-Q with the lagged target; log-loss step; update
   the targets. Every ``collect_every`` steps the current policy plays ``collect_episodes``
   episodes (with exploration) that go to the on-policy ring buffer and to ``online/`` on disk.
3. Every ``eval_every`` steps: greedy success on ``eval_objects`` (test = unseen shapes), written
   to TensorBoard, ``metrics.jsonl`` and ``curve.png``; checkpoints go to ``checkpoints/``.

Exact resumption: a checkpoint holds the weights, both targets, the optimizer, every RNG, the step
and how many on-policy rounds were collected. On resume the on-policy buffer is rebuilt from the
``online/`` round files up to that count (later rounds are recollected: collection depends only on
the weights and the round's seeds), so a run killed at any point and resumed ends with the same
weights as an uninterrupted one (CPU).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from rlcyclegan.data.dataset import EpisodeDataset, wilson_interval
from rlcyclegan.data.schema import parse_shard_name, shard_name
from rlcyclegan.data.store import list_shards, read_shard, write_shard
from rlcyclegan.nets.qnet import PARAMETER_FREE_FIELDS, QNET_PRESETS, GraspQNet, QNetConfig
from rlcyclegan.rl.actor import ActorPool, ActorSpec, run_episodes
from rlcyclegan.rl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rlcyclegan.rl.policy import Policy
from rlcyclegan.rl.qtopt import (AuxSpec, aux_actions, aux_spec, auxiliary_loss, ema_update, lagged_update, polyak_update, qtopt_targets,
                                 td_loss)
from rlcyclegan.rl.replay import FractionReplay, IndexedReplay, ReplayBuffer, sample_mixed
from rlcyclegan.train.common import (
    JPEG_BEST_QUALITY,
    camera_noise,
    camera_noise_params,
    claim_run,
    color_jitter,
    color_jitter_params,
    jpeg_compress,
    jpeg_quality_params,
    release_run,
    parse_action_gates,
    MetricsLog,
    Stopwatch,
    StopOnSignal,
    TrainingDiverged,
    autocast,
    use_bf16,
    pick_device,
    plot_success_curve,
    restore_rng_state,
    rng_state,
    to_jsonable,
    write_json_atomic,
)

EVAL_SEED = 2_000_000_000
"""Evaluation episodes during training use seeds EVAL_SEED + i (the same episodes at every eval)."""
ONLINE_SEED = 1_000_000_000
"""On-policy episode k is reset with ONLINE_SEED + seed * 10_000_000 + k."""


@dataclass
class QTOptConfig:
    """QT-Opt training of a vision Q-network (the defaults are the `cpu` preset)."""

    # ---- environment
    env: str = "rlcyclegan/Grasp-v0"
    """Gymnasium env id: image observations (a dict with "image" and optional "state", or the image) and a Box action."""
    domain: str = "sim"
    """Visual domain the policy is trained in (rlcyclegan envs: sim, randomized, real)."""
    objects: str = "train"
    """Object set for training episodes (rlcyclegan envs)."""
    image_size: int = 64
    """Camera image side in pixels."""
    env_kwargs: str = "{}"
    """Extra env constructor arguments as JSON (merged over domain/objects/image_size for rlcyclegan envs)."""

    # ---- off-policy data
    data: tuple[Path, ...] = ()
    """Episode folders (from `rlcyclegan collect`) used as off-policy data; empty: collect `offline_episodes`."""
    offline_episodes: int = 3000
    """Scripted episodes collected into RUN/offline when --data is not given."""
    offline_policy: str = "scripted"
    """Policy that plays the collected off-policy episodes: scripted, scripted-explore (random jaw angles and
    opening random moves in 30% of episodes each) or random."""
    offline_random_episodes: int = 1000
    """Random-policy episodes added to the collected off-policy data (into RUN/offline-random) when --data is
    not given: they close and terminate anywhere, so Q learns those actions fail instead of extrapolating."""
    collect_workers: int = 2
    """Processes for collecting the off-policy episodes."""
    init_from: Path | None = None
    """A QT-Opt checkpoint or run folder, or an RL-CycleGAN one (its `policy` entry: Q_real): the Q-network and
    both targets start from its weights instead of at random (fine-tuning). The architecture must match
    (--qnet, --qnet-coords, --qnet-norm, image size, state and action sizes); a new run only (--resume ignores it)."""
    translate_with: Path | None = None
    """Generator checkpoint or run folder (from `train rlcyclegan`, any method): every training image not
    already in the `real` domain (off-policy folders recorded in another domain; on-policy collection unless
    --domain is real) goes through its sim-to-real G first; real images are replayed as they are. This is the
    paper's protocol for the GAN and CycleGAN baselines (train on G(sim), then act on real images as is), and
    lets a real-domain run (fine-tuning) replay G(sim) besides its real episodes."""

    real_fraction: float = 0.0
    """Share of each off-policy batch drawn from the --data folders recorded in the `real` domain, the rest from
    the others (0: every stored transition equally likely, whatever its folder). With a few real episodes beside
    many (translated) sim ones, uniform sampling replays the real images in a small share of each batch;
    RL-CycleGAN trains on equal sim and real batches (the paper's 256 + 256), e.g. --real-fraction 0.5."""

    # ---- on-policy collection
    online: bool = True
    """Collect on-policy episodes with the current policy during training."""
    online_start: int = 1000
    """First training step at which on-policy collection starts."""
    collect_every: int = 250
    """Training steps between on-policy collection rounds."""
    collect_episodes: int = 25
    """Episodes played per collection round."""
    online_capacity: int = 40_000
    """Transitions kept in the on-policy ring buffer."""
    online_fraction: float = 0.5
    """Fraction of each batch drawn from on-policy data once the on-policy buffer is full enough (QT-Opt moved to 50%)."""
    online_ramp: int = 10_000
    """On-policy transitions at which `online_fraction` is reached; below, the fraction grows in proportion
    (so the first few on-policy episodes are not replayed hundreds of times)."""
    epsilon: float = 0.05
    """Probability of a uniform random action per step during collection."""
    noise: float = 0.1
    """Std of Gaussian noise on the CEM action during collection (fraction of the half range)."""
    actor_workers: int = 0
    """Worker processes for on-policy collection (0 = in the training process); weights are pushed every round."""
    envs_per_worker: int = 16
    """Envs stepped in lockstep per actor (CEM runs batched over them)."""

    # ---- learning
    steps: int = 18_000
    """Gradient steps."""
    batch_size: int = 64
    """Transitions per gradient step."""
    done_fraction: float = 0.0
    """Share of each batch drawn among terminal transitions (grasp attempts and terminations).
    Uniform replay (0, as QT-Opt) gives these, the only transitions whose target is the reward
    itself, ~10% of a batch, and judging a grasp from the image is the slowest thing to learn."""
    lr: float = 5e-4
    """Adam learning rate."""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """Learning-rate schedule over `steps`: constant, or cosine decay from `lr` to `lr * lr_final` at the last step
    (smaller steps late in the run settle the greedy policy instead of leaving it wherever the last updates threw it)."""
    lr_final: float = 0.1
    """Final learning rate of the cosine schedule, as a fraction of `lr`."""
    weight_decay: float = 0.0
    """Adam (L2) weight decay; QT-Opt used 7e-5."""
    grad_clip: float = 10.0
    """Gradient-norm clip (0 = off)."""
    gamma: float = 0.9
    """Discount."""
    step_penalty: float = 0.0
    """Subtracted from the reward of every step that does not end the episode (QT-Opt used 0.05) to favour
    grasping sooner; targets are clipped to [0, 1] for the sigmoid Q. Applied at learning time, so stored
    data keeps the env's reward. Off by default: with 0.05 our cpu runs learned to terminate at once."""
    loss: Literal["log", "mse"] = "log"
    """TD loss on sigmoid Q: log loss (cross-entropy, QT-Opt) or squared error."""
    polyak: float = 0.995
    """Decay of the Polyak-averaged target network (QT-Opt: 0.9999 over far more steps)."""
    policy_weights: Literal["online", "polyak", "ema"] = "online"
    """Which weights the saved policy (checkpoint `policy` entry, `rlcyclegan eval`, the in-training evaluation)
    uses: the online Q-network; its Polyak average (the target network), which smooths the step-to-step
    swings of the greedy policy; or a separate, slower moving average (`policy_ema`) kept only as the policy.
    On-policy collection always acts with the online network."""
    policy_ema: float = 0.999
    """Decay of the moving average kept as the policy when `policy_weights` is ema. Unlike the target network it
    also averages the batch-norm running statistics, so they match the averaged weights."""
    lagged_period: int = 1000
    """Steps between refreshes of the lagged target network."""
    augment_shift: int = 4
    """Random image shift (pixels, replicate padding) applied to s and s' of every batch, as in DrQ (0 = off)."""
    augment_color: float = 0.0
    """Strength in [0, 1] of random photometric distortions of s and s' (one draw per transition, shared by both):
    brightness, contrast, saturation and hue, as QT-Opt distorts its camera images (``train.common.color_jitter_params``;
    0 = off). It keeps a policy trained on translated images G(sim) from leaning on colours the generator
    makes up: an unseen real object's colour is not in the sim image, so G can only guess it."""
    augment_noise: float = 0.0
    """Largest std (0..1 scale) of Gaussian pixel noise added to s and s' (each image its own std, drawn uniformly up
    to this, and its own noise; 0 = off), after a random Gaussian blur of up to `augment_blur` pixels."""
    augment_blur: float = 0.0
    """Largest sigma (pixels) of a random Gaussian blur of s and s' (one sigma per transition; 0 = off). With
    `augment_noise`, camera-like distortions that keep a policy trained on G(sim) from reading how G draws fine
    detail, which a real camera's blur, sensor noise and compression draw otherwise."""
    augment_jpeg: int = 0
    """Lowest quality of a JPEG round trip of s and s' (one quality per transition, uniform from this to 95), after
    the other augmentations; 0 = off. Real cameras stream compressed frames: block and chroma artifacts that a
    generator does not draw, and that the real images a policy acts on always carry."""
    qnet: str = "default"
    """Q-network size (string key: small, default, deep, spatial, large)."""
    qnet_coords: bool = False
    """Give the Q-network pixel-coordinate input channels (CoordConv)."""
    qnet_norm: str = "none"
    """Normalisation in the Q-network's image tower: none, batch (QT-Opt used batch norm) or group."""
    qnet_input_blur: float = 0.0
    """Sigma (pixels) of a fixed Gaussian low-pass the Q-network applies to every image, in training and when it
    acts (``nets.qnet.QNetConfig.input_blur``; 0 = off). Unlike `augment_blur`, the real camera's images are
    smoothed too when the policy acts. It has no weights: --init-from a network without it works."""
    action_gates: str = "auto"
    """On/off action dimensions the Q-network sees canonicalised (see ``nets.qnet.canonical_action``):
    "auto" = what the env declares as ``action_gates`` (Grasp-v0: close, terminate), "none", or indices "4,5"."""
    aux_weight: float = 0.0
    """Weight of an auxiliary loss on privileged simulator state (0 = off: pure QT-Opt). The env must
    provide ``info["privileged"]`` (stored with the episodes) and ``auxiliary_targets(privileged, actions)``
    (Grasp-v0: the distance from where the action takes the gripper to the nearest object). The Q-network
    gets extra outputs beside the Q logit, read from the same last hidden layer, regressed (squared error)
    on those targets for the logged action and `aux_actions` random ones per state. A departure from
    QT-Opt, which learns from the grasp reward alone: it teaches the shared features where the objects are
    relative to each move, which the sparse TD signal teaches too slowly (docs/qtopt.md)."""
    aux_actions: int = 8
    """Random actions per state scored by the auxiliary loss besides the logged one (gates off: moves only)."""
    aux_domains: tuple[str, ...] = ("sim", "randomized")
    """Data domains whose privileged state the auxiliary loss may use. Episodes of other domains (off-policy
    folders by their `domain` attribute, on-policy episodes by --domain) train Q without it even when their
    files carry it: our pseudo-real env records it, a real robot cannot. The Oracle of the experiments adds
    "real" (an upper bound with every advantage of the recipe)."""
    cem_iterations: int = 2
    """CEM iterations (acting and targets)."""
    cem_samples: int = 64
    """CEM samples per iteration."""
    cem_elites: int = 6
    """CEM elites refitted per iteration."""

    # ---- evaluation, logging, checkpoints
    eval_every: int = 1000
    """Steps between evaluations (0 = only at the end)."""
    eval_episodes: int = 100
    """Greedy episodes per evaluation."""
    eval_objects: str = "test"
    """Object set for evaluation (test = shapes never seen in training)."""
    eval_domain: str = ""
    """Visual domain of the evaluation episodes (rlcyclegan envs); empty: the training domain, or
    `real` when --translate-with is given."""
    eval_envs: int = 25
    """Envs stepped in lockstep for evaluation."""
    checkpoint_every: int = 1000
    """Steps between checkpoints (one is always written at the end)."""
    keep_checkpoints: int = 2
    """Numbered checkpoints kept besides latest.pt."""
    log_every: int = 50
    """Steps between TensorBoard scalar writes."""
    max_minutes: float = 58.0
    """Stop (after a checkpoint) once this much wall time has passed, collection included (0 = no limit)."""

    # ---- run
    seed: int = 0
    """Seed of everything (data collection, sampling, CEM, exploration)."""
    device: str = "auto"
    """auto (CUDA if available), cpu, cuda or cuda:N."""
    amp: str = "auto"
    """Mixed precision of the training step: "auto" (bf16 autocast on CUDA and on CPUs with native bf16
    units, AMX or AVX512-BF16, where it is 1.5-2x faster; fp32 elsewhere), "bf16" or "off". Weights, optimizer and losses stay fp32;
    acting and evaluation run in fp32 on a CPU."""
    threads: int = 0
    """torch CPU threads (0 = leave torch's default)."""
    out: Path = Path("runs")
    """Parent folder of run folders."""
    name: str = ""
    """Run folder name (default: qtopt-DOMAIN-TIMESTAMP)."""
    progress: bool = True
    """Show progress bars."""


PRESETS: dict[str, dict] = {
    "tiny": dict(
        image_size=32, offline_episodes=20, offline_random_episodes=10, collect_workers=1, steps=60, batch_size=16, qnet="small",
        online_start=20, collect_every=20, collect_episodes=4, envs_per_worker=4, eval_every=30,
        eval_episodes=4, eval_envs=4, checkpoint_every=20, log_every=10, cem_samples=16, cem_elites=4,
        lagged_period=25, online_capacity=2000, online_ramp=50, max_minutes=0.0,
    ),
    # `rlcyclegan demo`: the Sim-only policy of the newcomer's CPU job (a few minutes on 2 cores, 64 px)
    "demo": dict(
        qnet="small", offline_episodes=400, offline_random_episodes=150, steps=3000, batch_size=32, online_start=1000,
        collect_every=250, collect_episodes=10, envs_per_worker=10, eval_every=0, eval_episodes=25, checkpoint_every=500,
        lagged_period=500, online_ramp=2000, max_minutes=8.0,
    ),
    "cpu": dict(),  # the dataclass defaults
    "gpu": dict(
        qnet="large", offline_episodes=20_000, offline_random_episodes=5000, collect_workers=8, steps=100_000, batch_size=256, lr=3e-4,
        actor_workers=8, collect_every=250, collect_episodes=64, online_capacity=200_000,
        eval_every=5000, eval_episodes=200, polyak=0.999, lagged_period=5000, max_minutes=0.0,
    ),
}


def preset_config(name: str, /, **overrides) -> QTOptConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return replace(QTOptConfig(), **{**PRESETS[name], **overrides})


# ===================================================================================== helpers
def env_kwargs_for(cfg: QTOptConfig, objects: str | None = None, domain: str | None = None) -> dict:
    try:
        extra = json.loads(cfg.env_kwargs or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"--env-kwargs is not valid JSON: {e}") from e
    if cfg.env.startswith("rlcyclegan/"):
        return {"domain": domain or cfg.domain, "objects": objects or cfg.objects, "image_size": cfg.image_size, **extra}
    return extra


def eval_domain(cfg: QTOptConfig) -> str:
    """Domain of the evaluation episodes: `eval_domain`, else `real` with a translator, else the training domain."""
    return cfg.eval_domain or ("real" if cfg.translate_with is not None else cfg.domain)


def check_config(cfg: QTOptConfig) -> None:
    problems = []
    if cfg.steps < 1:
        problems.append(f"steps must be >= 1 (got {cfg.steps})")
    if cfg.batch_size < 1:
        problems.append(f"batch_size must be >= 1 (got {cfg.batch_size})")
    if not 0 <= cfg.online_fraction <= 1:
        problems.append(f"online_fraction must be in [0, 1] (got {cfg.online_fraction})")
    if not 0 <= cfg.polyak < 1:
        problems.append(f"polyak must be in [0, 1) (got {cfg.polyak})")
    if not 0 <= cfg.policy_ema < 1:
        problems.append(f"policy_ema must be in [0, 1) (got {cfg.policy_ema})")
    if not 0 <= cfg.lr_final <= 1:
        problems.append(f"lr_final must be in [0, 1] (got {cfg.lr_final})")
    if cfg.aux_weight < 0 or cfg.aux_actions < 0:
        problems.append(f"aux_weight and aux_actions must be >= 0 (got {cfg.aux_weight}, {cfg.aux_actions})")
    if not 0.0 <= cfg.augment_color <= 1.0:
        problems.append(f"augment_color must be in [0, 1] (got {cfg.augment_color})")
    if not 0.0 <= cfg.augment_noise <= 1.0 or cfg.augment_blur < 0:
        problems.append(f"augment_noise must be in [0, 1] and augment_blur >= 0 (got {cfg.augment_noise}, {cfg.augment_blur})")
    if cfg.augment_jpeg != 0 and not 1 <= cfg.augment_jpeg <= JPEG_BEST_QUALITY:
        problems.append(f"augment_jpeg must be 0 (off) or a JPEG quality in [1, {JPEG_BEST_QUALITY}] (got {cfg.augment_jpeg})")
    if not 0.0 <= cfg.qnet_input_blur <= 8.0:
        problems.append(f"qnet_input_blur must be in [0, 8] pixels (got {cfg.qnet_input_blur})")
    if not 0.0 <= cfg.real_fraction < 1.0:
        problems.append(f"real_fraction must be in [0, 1) (got {cfg.real_fraction})")
    if cfg.real_fraction > 0 and not cfg.data:
        problems.append("real_fraction needs --data folders, some of them recorded in the real domain")
    if cfg.qnet not in QNET_PRESETS:
        problems.append(f"qnet must be one of {sorted(QNET_PRESETS)} (got {cfg.qnet!r})")
    if not cfg.data and cfg.offline_episodes < 1 and not cfg.online:
        problems.append("no data: give --data, offline_episodes >= 1 or --online")
    if problems:
        raise ValueError("invalid QT-Opt config: " + "; ".join(problems))


def probe_env(cfg: QTOptConfig) -> tuple[tuple[int, int, int], int, np.ndarray, np.ndarray, tuple[int, ...]]:
    """Image shape, state size, action bounds and action gates of the configured env (checked: Box actions, image obs)."""
    import gymnasium as gym

    import rlcyclegan.envs  # noqa: F401

    env = gym.make(cfg.env, **env_kwargs_for(cfg))
    try:
        if not isinstance(env.action_space, gym.spaces.Box) or env.action_space.shape is None or len(env.action_space.shape) != 1:
            raise ValueError(f"{cfg.env}: QT-Opt needs a 1-D Box action space, got {env.action_space}")
        space = env.observation_space
        img_space = space["image"] if isinstance(space, gym.spaces.Dict) else space
        if not isinstance(img_space, gym.spaces.Box) or len(img_space.shape) != 3 or img_space.shape[-1] != 3:
            raise ValueError(f"{cfg.env}: observations must be an (H, W, 3) image or a dict with one under 'image', got {space}")
        state_dim = int(space["state"].shape[0]) if isinstance(space, gym.spaces.Dict) and "state" in space.spaces else 0
        gates = parse_action_gates(cfg.action_gates, cfg.env)
        if any(not 0 <= i < env.action_space.shape[0] for i in gates):
            raise ValueError(f"action_gates {gates}: indices must be in [0, {env.action_space.shape[0]}) for {cfg.env}")
        return tuple(img_space.shape), state_dim, env.action_space.low.copy(), env.action_space.high.copy(), gates
    finally:
        env.close()


def probe_aux(cfg: QTOptConfig) -> AuxSpec | None:
    """The env's auxiliary-target hook when ``aux_weight`` > 0 (a clear error when it has none), else None."""
    if cfg.aux_weight <= 0:
        return None
    import gymnasium as gym

    import rlcyclegan.envs  # noqa: F401

    env = gym.make(cfg.env, **env_kwargs_for(cfg))
    try:
        return aux_spec(env, f"aux_weight={cfg.aux_weight}")
    finally:
        env.close()


def load_offline(cfg: QTOptConfig, run: Path, image_shape, state_dim, action_dim, progress: bool,
                 privileged_dim: int = 0) -> tuple[IndexedReplay | FractionReplay | None, int]:
    """The off-policy buffer (all stored transitions; with ``real_fraction``, its real and other rows drawn in
    that ratio) and the number of episodes in it."""
    dirs = list(cfg.data)
    if not dirs and cfg.offline_episodes > 0:
        from rlcyclegan.data.collect import collect

        summary = collect(cfg.env, env_kwargs_for(cfg), cfg.offline_policy, cfg.offline_episodes, run / "offline",
                          workers=cfg.collect_workers, seed=cfg.seed * 10_000_000, progress=progress)
        print(f"off-policy data: {summary['episodes']} {cfg.offline_policy} episodes, success {summary['success_rate']:.3f}")
        dirs = [run / "offline"]
        if cfg.offline_random_episodes > 0:
            summary = collect(cfg.env, env_kwargs_for(cfg), "random", cfg.offline_random_episodes, run / "offline-random",
                              workers=cfg.collect_workers, seed=cfg.seed * 10_000_000 + 5_000_000, progress=progress)
            print(f"off-policy data: {summary['episodes']} random episodes, success {summary['success_rate']:.3f}")
            dirs.append(run / "offline-random")
    if not dirs:
        return None, 0
    sets = [EpisodeDataset(d, load_images=False) for d in dirs]  # sizes first; images one folder at a time below
    for d, ds in zip(dirs, sets):
        if ds.image_shape != tuple(image_shape):
            raise ValueError(f"{d}: images are {ds.image_shape}, the env renders {tuple(image_shape)}")
    translate = None
    if cfg.translate_with is not None:
        from rlcyclegan.rl.translate import ImageTranslator

        translate = ImageTranslator.load(cfg.translate_with)
    # Every observation is held once (s and s' index into it), written straight into one array.
    counts = [ds.num_observations for ds in sets]
    images = np.empty((sum(counts), *image_shape), np.uint8)
    parts, offset, real_rows = [], 0, []
    for d, ds, count in zip(dirs, sets, counts):
        if translate is not None and "real" in ds.domains and len(ds.domains) > 1:
            raise ValueError(f"{d}: holds episodes of the domains {ds.domains}; with --translate-with, keep real "
                             "episodes (replayed as they are) and the ones G translates in separate folders")
        imgs = EpisodeDataset(d).images()
        if len(imgs) != count:
            raise ValueError(f"{d}: changed while it was being loaded ({count} then {len(imgs)} observations)")
        through_g = translate is not None and ds.domains != ["real"]
        images[offset : offset + count] = translate(imgs) if through_g else imgs  # translated once, before indexing
        del imgs
        tr = ds.transitions()
        keys = ("obs_index", "next_obs_index", "state", "next_state", "action", "reward", "done")
        use = privileged_dim and set(ds.domains) <= set(cfg.aux_domains)
        if privileged_dim and not use:  # not simulator data: no privileged state, whatever the files hold
            tr["privileged"] = np.full((len(tr["action"]), privileged_dim), np.nan, np.float32)
            keys += ("privileged",)
        elif use:
            if tr.get("privileged") is None:
                raise ValueError(f"{d}: episodes without privileged state (obs/privileged), which --aux-weight needs; "
                                 "collect them again with this version")
            if tr["privileged"].shape[1] != privileged_dim:
                raise ValueError(f"{d}: privileged vectors of size {tr['privileged'].shape[1]}, the env gives {privileged_dim}")
            keys += ("privileged",)
        parts.append({k: tr[k] + offset if k.endswith("obs_index") else tr[k] for k in keys})
        real_rows.append(np.full(len(tr["action"]), ds.domains == ["real"]))
        offset += count
    buf = IndexedReplay(images, **{k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    if cfg.real_fraction > 0:
        real = np.concatenate(real_rows)
        if real.all() or not real.any():
            raise ValueError(f"real_fraction {cfg.real_fraction}: needs --data folders recorded in the real domain and others; "
                             f"{'all' if real.any() else 'none'} of {', '.join(str(d) for d in dirs)} are real")
        buf = FractionReplay(buf.subset(~real), buf.subset(real), cfg.real_fraction)
    return buf, sum(ds.num_episodes for ds in sets)


def without_privileged(episodes, keep: bool) -> list:
    """The episodes, with their privileged state removed unless ``keep`` (copies; the originals are untouched)."""
    return list(episodes) if keep else [replace(e, privileged=None) for e in episodes]


def make_qnet(cfg: QTOptConfig, image_shape, state_dim: int, action_dim: int, gates: tuple[int, ...] = (),
              aux_outputs: int = 0) -> GraspQNet:
    return GraspQNet(QNetConfig(**{**QNET_PRESETS[cfg.qnet], "image_size": image_shape[0], "state_dim": state_dim,
                                   "action_dim": action_dim, "coords": cfg.qnet_coords, "norm": cfg.qnet_norm,
                                   "action_gates": gates, "aux_outputs": aux_outputs, "input_blur": cfg.qnet_input_blur}))


def load_initial_weights(q: GraspQNet, source: Path) -> None:
    """Copy into ``q`` the Q-network of a QT-Opt checkpoint / run folder, or Q_real (the `policy` entry) of an
    RL-CycleGAN one; raises CheckpointError when it has none or its architecture differs from ``q``'s."""
    ckpt = load_checkpoint(source)
    entry = ckpt.get("policy")
    if entry is None:
        raise CheckpointError(f"init_from {source}: a {ckpt.get('kind')!r} checkpoint without a Q-network "
                              "(use a QT-Opt run or an RL-CycleGAN run of method rlcyclegan)")
    saved = QNetConfig(**entry["qnet_config"]).to_dict()  # fills fields added since it was saved
    diff = {k: (saved.get(k), v) for k, v in q.cfg.to_dict().items() if saved.get(k) != v and k not in PARAMETER_FREE_FIELDS}
    if diff:
        raise CheckpointError(f"init_from {source}: its Q-network differs from the config's (field: (checkpoint, config)): {diff}")
    q.load_state_dict(entry["qnet"])


def evaluate(policy: Policy, envs: list, episodes: int, seed: int = EVAL_SEED) -> dict:
    """Greedy success rate over ``episodes`` episodes (seeds ``seed + i``) with its Wilson interval."""
    eps = run_episodes(envs, policy.act, [seed + i for i in range(episodes)])
    succ = int(sum(e.success for e in eps))
    lo, hi = wilson_interval(succ, episodes)
    return {"success": succ / episodes, "success_low": lo, "success_high": hi, "successes": succ,
            "eval_episodes": episodes, "mean_length": float(np.mean([e.length for e in eps]))}


def scheduled_lr(cfg: QTOptConfig, step: int) -> float:
    """Learning rate of gradient step ``step`` (0-based): a function of the step alone, so a resumed run matches."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    progress = min(step / max(cfg.steps - 1, 1), 1.0)
    return cfg.lr * (cfg.lr_final + (1.0 - cfg.lr_final) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def online_mix(cfg: QTOptConfig, online_size: int) -> float:
    """Fraction of a batch drawn from the on-policy buffer: ramps up to `online_fraction` at `online_ramp` transitions."""
    if online_size == 0:
        return 0.0
    return cfg.online_fraction * min(1.0, online_size / max(cfg.online_ramp, 1))


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each uint8 (B, H, W, C) image by up to ``pad`` pixels in x and y (edges replicated)."""
    b, h, w, _ = images.shape
    padded = torch.nn.functional.pad(images.permute(0, 3, 1, 2).float(), (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator, device=generator.device).to(images.device)
    rows = (offsets[:, 0, None] + torch.arange(h, device=images.device))[:, :, None]  # (B, H, 1)
    cols = (offsets[:, 1, None] + torch.arange(w, device=images.device))[:, None, :]  # (B, 1, W)
    out = padded[torch.arange(b, device=images.device)[:, None, None], :, rows, cols]  # (B, H, W, C)
    return out.to(torch.uint8)


def jitter_pair(image: torch.Tensor, next_image: torch.Tensor, strength: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`rlcyclegan.train.common.color_jitter` of uint8 (B, H, W, C) s and s', one set of factors per transition."""
    params = color_jitter_params(image.shape[0], strength, generator)

    def apply(t: torch.Tensor) -> torch.Tensor:
        x = color_jitter(t.permute(0, 3, 1, 2).float().div(255.0), params)
        return x.mul(255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    return apply(image), apply(next_image)


def camera_pair(image: torch.Tensor, next_image: torch.Tensor, noise: float, blur: float,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`rlcyclegan.train.common.camera_noise` of uint8 (B, H, W, C) s and s': one blur and noise level per
    transition, fresh noise per image."""
    params = camera_noise_params(image.shape[0], noise, blur, generator)

    def apply(t: torch.Tensor) -> torch.Tensor:
        x = camera_noise(t.permute(0, 3, 1, 2).float().div(255.0), params, generator)
        return x.mul(255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    return apply(image), apply(next_image)


def jpeg_pair(image: torch.Tensor, next_image: torch.Tensor, lowest: int,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`rlcyclegan.train.common.jpeg_compress` of uint8 (B, H, W, C) s and s' at one quality per transition."""
    qualities = jpeg_quality_params(image.shape[0], lowest, generator)
    return jpeg_compress(image, qualities), jpeg_compress(next_image, qualities)


def td_update(q: GraspQNet, q_polyak: GraspQNet, q_lagged: GraspQNet, opt: torch.optim.Optimizer, batch: dict, bounds: tuple,
              cfg: QTOptConfig, cem_gen: torch.Generator, device: torch.device,
              aux: AuxSpec | None = None) -> tuple[float, torch.Tensor, torch.Tensor, float, float]:
    """One QT-Opt gradient step on a batch of tensors; returns (TD loss, logits, targets, grad norm, aux loss).

    With ``aux`` (and ``batch["privileged"]``), the loss adds ``cfg.aux_weight`` times the auxiliary loss;
    the aux loss returned is NaN without it. The optimizer does not step when the loss is not finite
    (the caller stops the run).
    """
    cem = dict(iterations=cfg.cem_iterations, samples=cfg.cem_samples, elites=cfg.cem_elites)
    # TD target: CEM argmax on the Polyak target, min with the lagged target there (clipped double-Q)
    with autocast(device, cfg.amp):
        target = qtopt_targets(q_polyak, q_lagged, batch["next_image"], batch["next_state"], batch["reward"], batch["done"],
                               bounds, cfg.gamma, cem, cem_gen, cfg.step_penalty)
    aux_value = torch.tensor(float("nan"))
    if aux is None:
        with autocast(device, cfg.amp):
            logits = q(batch["image"], batch["state"], batch["action"])
        loss = td_loss(logits, target, cfg.loss)
        total = loss
    else:
        actions = aux_actions(batch["action"], cfg.aux_actions, bounds, q.cfg.action_gates, cem_gen)
        aux_target = aux.targets(batch["privileged"].cpu().numpy(), actions.cpu().numpy())
        with autocast(device, cfg.amp):
            all_logits, aux_pred = q.head(q.encode(batch["image"]), batch["state"], actions, with_aux=True)
        logits = all_logits[:, 0]
        loss = td_loss(logits, target, cfg.loss)
        aux_value = auxiliary_loss(aux_pred, torch.as_tensor(aux_target, device=aux_pred.device))
        total = loss + cfg.aux_weight * aux_value
    if not torch.isfinite(total):
        return float(loss.item()), logits, target, float("nan"), float(aux_value.item())
    opt.zero_grad(set_to_none=True)
    total.backward()
    gnorm = torch.nn.utils.clip_grad_norm_(q.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
    opt.step()
    return float(loss.item()), logits, target, float(gnorm), float(aux_value.item())


# ===================================================================================== training
def train_qtopt(cfg: QTOptConfig, resume: Path | None = None) -> Path:
    """Train (or resume) a QT-Opt run; returns the run folder."""
    import gymnasium as gym
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    check_config(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    use_bf16(device, cfg.amp)  # a bad --amp fails here, before any data is collected

    # ---- run folder
    if resume is not None:
        run = Path(resume)
        claim_run(run)
    else:
        run = cfg.out / (cfg.name or f"qtopt-{cfg.domain}-{time.strftime('%Y%m%d-%H%M%S')}")
        claim_run(run)
        if (run / "checkpoints" / "latest.pt").exists():
            raise FileExistsError(f"{run} already holds a run; resume it with --resume {run}")
        run.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run / "config.json", cfg)
    ckpt = load_checkpoint(run, kind="qtopt") if resume is not None else None
    clock = Stopwatch(ckpt["elapsed"] if ckpt else 0.0)

    # ---- data and networks
    image_shape, state_dim, low, high, gates = probe_env(cfg)
    aux = probe_aux(cfg)
    action_dim = len(low)
    p_dim, aux_out = (aux.privileged_dim, aux.outputs) if aux else (0, 0)
    offline, offline_episodes = load_offline(cfg, run, image_shape, state_dim, action_dim, cfg.progress, p_dim)
    online = ReplayBuffer(cfg.online_capacity, image_shape, state_dim, action_dim, p_dim) if cfg.online else None
    online_privileged = cfg.domain in cfg.aux_domains  # else on-policy episodes enter the buffer with NaN privileged rows
    torch.manual_seed(cfg.seed)
    sample_rng = np.random.default_rng(cfg.seed)
    q = make_qnet(cfg, image_shape, state_dim, action_dim, gates, aux_out).to(device)
    q_polyak = make_qnet(cfg, image_shape, state_dim, action_dim, gates, aux_out).to(device)
    q_lagged = make_qnet(cfg, image_shape, state_dim, action_dim, gates, aux_out).to(device)
    if cfg.init_from is not None and resume is None:
        load_initial_weights(q, Path(cfg.init_from))
    q_ema = make_qnet(cfg, image_shape, state_dim, action_dim, gates, aux_out).to(device) if cfg.policy_weights == "ema" else None
    for t in (q_polyak, q_lagged, q_ema):
        if t is not None:
            t.load_state_dict(q.state_dict())
            t.requires_grad_(False).eval()  # targets use running statistics when the tower has batch norm
    opt = torch.optim.Adam(q.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    cem_gen = torch.Generator(device).manual_seed(cfg.seed + 1)
    cem = dict(iterations=cfg.cem_iterations, samples=cfg.cem_samples, elites=cfg.cem_elites)

    step, rounds, online_episodes = 0, 0, 0
    metrics = MetricsLog(run / "metrics.jsonl")
    online_dir = run / "online"
    if ckpt is not None:
        saved_q = QNetConfig(**ckpt["policy"]["qnet_config"]).to_dict()
        if saved_q != q.cfg.to_dict():
            diff = {k: (saved_q.get(k), v) for k, v in q.cfg.to_dict().items() if saved_q.get(k) != v}
            raise CheckpointError(f"{run}: checkpoint Q-network differs from the config (field: (checkpoint, config)): {diff}")
        q.load_state_dict(ckpt.get("q_online", ckpt["policy"]["qnet"]))  # older checkpoints: the policy is the online net
        q_polyak.load_state_dict(ckpt["q_polyak"])
        q_lagged.load_state_dict(ckpt["q_lagged"])
        if q_ema is not None:
            if "q_ema" not in ckpt:
                raise CheckpointError(f"{run}: the checkpoint has no q_ema entry; it was not trained with policy_weights=ema")
            q_ema.load_state_dict(ckpt["q_ema"])
        opt.load_state_dict(ckpt["optimizer"])
        restore_rng_state(ckpt["rng"], sample_rng, cem_gen)
        step, rounds, online_episodes = ckpt["step"], ckpt["rounds"], ckpt["online_episodes"]
        metrics.truncate_after(step)
        for path in list_shards(online_dir) if online_dir.exists() else []:
            if parse_shard_name(path.name) < online_episodes:
                online.add_episodes(without_privileged(read_shard(path).episodes(), online_privileged))  # type: ignore[union-attr]
            else:
                path.unlink()  # collected after the checkpoint: recollected identically below
        print(f"resumed {run} at step {step} ({rounds} on-policy rounds, {online_episodes} episodes)")
    elif online_dir.exists():
        shutil.rmtree(online_dir)

    # ---- actors
    spec = ActorSpec(cfg.env, env_kwargs_for(cfg), cfg.envs_per_worker, q.cfg.to_dict(), low.tolist(), high.tolist(), {"cem_" + k: v for k, v in cem.items()},
                     translate_with=None if cfg.translate_with is None or cfg.domain == "real" else str(cfg.translate_with))
    actors = ActorPool(spec, cfg.actor_workers) if cfg.online else None
    eval_envs = [gym.make(cfg.env, **env_kwargs_for(cfg, objects=cfg.eval_objects, domain=eval_domain(cfg))) for _ in range(cfg.eval_envs)]
    eval_policy = Policy(make_qnet(cfg, image_shape, state_dim, action_dim, gates, aux_out), low, high, device=device, seed=cfg.seed + 2, **{"cem_" + k: v for k, v in cem.items()})
    writer = SummaryWriter(str(run / "tb"), purge_step=step if ckpt else None)

    def checkpoint() -> None:
        payload = {
            "kind": "qtopt",
            "config": to_jsonable(cfg),
            "policy": {"qnet_config": q.cfg.to_dict(), "qnet": policy_net().state_dict(), "action_low": low, "action_high": high,
                       "cem": {"cem_" + k: v for k, v in cem.items()}, "env": {"id": cfg.env, "kwargs": env_kwargs_for(cfg)}},
            "q_online": q.state_dict(),
            "q_polyak": q_polyak.state_dict(),
            "q_lagged": q_lagged.state_dict(),
            **({"q_ema": q_ema.state_dict()} if q_ema is not None else {}),
            "optimizer": opt.state_dict(),
            "rng": rng_state(sample_rng, cem_gen),
            "step": step,
            "rounds": rounds,
            "online_episodes": online_episodes,
            "elapsed": clock(),
        }
        path = save_checkpoint(run / "checkpoints" / f"step_{step:08d}.pt", payload)
        shutil.copyfile(path, run / "checkpoints" / "latest.pt.tmp")
        (run / "checkpoints" / "latest.pt.tmp").replace(run / "checkpoints" / "latest.pt")
        numbered = sorted((run / "checkpoints").glob("step_*.pt"))
        for old in numbered[: max(0, len(numbered) - cfg.keep_checkpoints)]:
            old.unlink()

    def policy_net() -> GraspQNet:
        if cfg.policy_weights == "polyak":
            return q_polyak
        return q_ema if q_ema is not None else q

    def run_eval() -> dict:
        eval_policy.qnet.load_state_dict(policy_net().state_dict())
        eval_policy.generator.manual_seed(cfg.seed + 2)
        res = evaluate(eval_policy, eval_envs, cfg.eval_episodes)
        rec = {"step": step, "wall_minutes": clock() / 60, "episodes": offline_episodes + online_episodes, **res}
        metrics.append(rec)
        writer.add_scalar("eval/success", res["success"], step)
        writer.add_scalar("eval/success_vs_minutes", res["success"], int(clock()))
        writer.add_scalar("eval/mean_length", res["mean_length"], step)
        plot_success_curve(metrics.records(), run / "curve.png", f"QT-Opt {cfg.env} trained in {cfg.domain}{' via G' if cfg.translate_with else ''}, eval {eval_domain(cfg)}, {cfg.eval_objects} objects")
        return rec

    def collect_round() -> None:
        nonlocal rounds, online_episodes
        first = online_episodes
        seeds = [ONLINE_SEED + cfg.seed * 10_000_000 + first + i for i in range(cfg.collect_episodes)]
        eps = actors.collect(q.state_dict(), seeds, first, rng_seed=cfg.seed * 1_000_003 + rounds, epsilon=cfg.epsilon, noise=cfg.noise)  # type: ignore[union-attr]
        write_shard(online_dir / shard_name(first), eps, env_id=cfg.env, domain=cfg.domain, objects=cfg.objects,
                    policy="qtopt", env_kwargs=env_kwargs_for(cfg), extra_attrs={"round": rounds, "step": step})
        online.add_episodes(without_privileged(eps, online_privileged))  # type: ignore[union-attr]
        rounds += 1
        online_episodes += len(eps)
        writer.add_scalar("collect/success", float(np.mean([e.success for e in eps])), step)
        writer.add_scalar("collect/online_transitions", len(online), step)  # type: ignore[arg-type]

    # ---- the loop
    bar = tqdm(total=cfg.steps, initial=step, desc=f"qtopt {run.name}", unit="step", disable=not cfg.progress, dynamic_ncols=True)
    last_rec: dict = {}
    t_log, s_log = time.monotonic(), step
    stop = StopOnSignal().install()  # Ctrl-C / SIGTERM: checkpoint this step, then raise TrainingInterrupted
    try:
        while step < cfg.steps:
            if cfg.online and step >= cfg.online_start and (step - cfg.online_start) % cfg.collect_every == 0 and rounds <= (step - cfg.online_start) // cfg.collect_every:
                collect_round()
            frac = online_mix(cfg, len(online) if online is not None else 0)
            b = sample_mixed(offline, online, cfg.batch_size, frac, sample_rng, cfg.done_fraction)
            t = {k: torch.as_tensor(v, device=device) for k, v in b.items()}
            if cfg.augment_shift > 0:
                t["image"] = random_shift(t["image"], cfg.augment_shift, cem_gen)
                t["next_image"] = random_shift(t["next_image"], cfg.augment_shift, cem_gen)
            if cfg.augment_color > 0:
                t["image"], t["next_image"] = jitter_pair(t["image"], t["next_image"], cfg.augment_color, cem_gen)
            if cfg.augment_noise > 0 or cfg.augment_blur > 0:
                t["image"], t["next_image"] = camera_pair(t["image"], t["next_image"], cfg.augment_noise, cfg.augment_blur, cem_gen)
            if cfg.augment_jpeg > 0:
                t["image"], t["next_image"] = jpeg_pair(t["image"], t["next_image"], cfg.augment_jpeg, cem_gen)

            for group in opt.param_groups:
                group["lr"] = scheduled_lr(cfg, step)
            loss, logits, target, gnorm, aux_loss = td_update(q, q_polyak, q_lagged, opt, t, (low, high), cfg, cem_gen, device, aux)
            if not math.isfinite(loss) or (aux is not None and not math.isfinite(gnorm)):
                raise TrainingDiverged(f"non-finite loss (TD {loss}, auxiliary {aux_loss}) at step {step}; "
                                       f"the last good checkpoint is {run / 'checkpoints' / 'latest.pt'}")
            step += 1
            polyak_update(q_polyak, q, cfg.polyak)
            lagged_update(q_lagged, q, step, cfg.lagged_period)
            if q_ema is not None:
                ema_update(q_ema, q, cfg.policy_ema)
            bar.update(1)

            if step % cfg.log_every == 0:
                now = time.monotonic()
                qv = torch.sigmoid(logits.detach().float())
                scalars = {"loss/td": loss, "q/mean": qv.mean().item(), "q/max": qv.max().item(), "q/target_mean": target.mean().item(),
                           "q/grad_norm": float(gnorm), "perf/steps_per_second": (step - s_log) / max(now - t_log, 1e-9),
                           "perf/wall_minutes": clock() / 60, "data/online_fraction": frac, "opt/lr": opt.param_groups[0]["lr"]}
                if aux is not None:
                    scalars["loss/aux"] = aux_loss
                for k, v in scalars.items():
                    writer.add_scalar(k, v, step)
                t_log, s_log = now, step
                shown = {"loss": f"{loss:.3f}", "q": f"{qv.mean().item():.2f}"}
                if "success" in last_rec:  # no success column before the first evaluation
                    shown["succ"] = f"{last_rec['success']:.2f}"
                bar.set_postfix(shown, refresh=False)
            if cfg.eval_every and step % cfg.eval_every == 0:
                last_rec = run_eval()
            out_of_time = cfg.max_minutes > 0 and clock() > cfg.max_minutes * 60
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time or stop.requested:
                if (step == cfg.steps or out_of_time) and not (cfg.eval_every and step % cfg.eval_every == 0):
                    last_rec = run_eval()
                checkpoint()
            if stop.requested and step < cfg.steps:
                raise stop.interrupted(run, step)
            if out_of_time:
                print(f"stopping at step {step}: max_minutes={cfg.max_minutes} reached")
                break
    finally:
        stop.restore()
        bar.close()
        writer.close()
        if actors is not None:
            actors.close()
        for e in eval_envs:
            e.close()
        release_run(run)
    if last_rec:
        print(f"step {step}: success {last_rec['success']:.3f} [{last_rec['success_low']:.3f}, {last_rec['success_high']:.3f}] "
              f"on {last_rec['eval_episodes']} {cfg.eval_objects}-object episodes, {clock() / 60:.1f} min")
    print(f"run folder: {run}")
    return run

