"""RL-CycleGAN training (Rao et al., CVPR 2020), one file, top to bottom (CleanRL style).

    rlcyclegan train rlcyclegan --preset cpu --sim-data data/sim --real-data data/real

A CycleGAN (G: sim -> real, F: real -> sim, discriminators D_Y on real and D_X on sim images) is
trained jointly with two QT-Opt Q-networks, Q_sim on sim images and Q_real on real ones, and the
RL-scene consistency loss ties them together: translating an image (and cycling it back) must not
change the Q-value of the action taken there. Q_real is the policy that runs in the real domain.

1. Data: a sim replay buffer over the sim episode folders; real data as episodes (with actions and
   rewards, a replay buffer too), as images only (a folder of PNG/JPEG, an .npz or an .h5), or both.
2. Loop, one training step:
   a. sample a sim batch (x, a, r, x', done) and a real batch y;
   b. generator step (G, F): adversarial + cycle (+ identity) + RL-scene losses;
   c. Q step (Q_sim, Q_real): TD loss on x and F(G(x)) for Q_sim, on G(x) (and real transitions)
      for Q_real, with CEM over a Polyak target and clipped double-Q with a lagged target;
   d. discriminator step (D_X, D_Y) on real images vs pooled generated ones;
   e. Polyak / lagged target updates.
3. Every ``eval_every`` steps Q_real plays greedy CEM episodes in the real domain; every
   ``checkpoint_every`` steps a checkpoint (everything needed to resume exactly) and a PNG of
   x, G(x), F(G(x)), y, F(y), G(F(y)) with the six RL-scene Q-values.

Methods: ``rlcyclegan`` (all of the above), ``cyclegan`` (no RL-scene loss, no Q-networks: the
paper's protocol trains the policy afterwards on G-translated sim data) and ``gan`` (G and D_Y
only, the paper's GAN baseline).

Image conventions: the replay stores uint8 NHWC images; generators and discriminators take float
NCHW in [-1, 1] (:func:`to_gan_input`); the Q-networks take float NCHW in [-0.5, 0.5] (what
``GraspQNet.preprocess`` makes of uint8 images), so data images go through Q's own preprocessing
and generator outputs g are scaled to 0.5 * g: Q sees real, sim and translated images on one scale.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from rlcyclegan.data.dataset import EpisodeDataset, load_image_array, load_image_folder
from rlcyclegan.data.schema import parse_shard_name, shard_name
from rlcyclegan.data.store import Episode, list_shards, read_shard, write_shard
from rlcyclegan.losses.cyclegan import (
    LossWeights,
    cycle_loss,
    discriminator_loss,
    generator_adversarial_loss,
    identity_loss,
    rl_scene_terms,
    total_generator_loss,
)
from rlcyclegan.nets.discriminators import DISCRIMINATOR_PRESETS, DiscriminatorConfig, make_discriminator
from rlcyclegan.nets.generators import GENERATOR_PRESETS, GeneratorConfig, from_gan_output, make_generator, to_gan_input
from rlcyclegan.nets.image_pool import ImagePool
from rlcyclegan.nets.qnet import QNET_PRESETS, GraspQNet, QNetConfig
from rlcyclegan.rl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rlcyclegan.rl.policy import Policy
from rlcyclegan.rl.qtopt import AuxSpec, aux_actions, aux_spec, auxiliary_loss, lagged_update, polyak_update, qtopt_targets, td_loss
from rlcyclegan.rl.replay import ReplayBuffer, sample_mixed
from rlcyclegan.rl.actor import run_episodes
from rlcyclegan.rl.translate import ImageTranslator
from rlcyclegan.rl.translate import load_generator as _load_generator
from rlcyclegan.train.common import (
    camera_noise,
    camera_noise_params,
    claim_run,
    color_jitter,
    color_jitter_params,
    release_run,
    parse_action_gates,
    MetricsLog,
    Stopwatch,
    StopOnSignal,
    TrainingDiverged,
    autocast,
    use_bf16,
    pick_device,
    restore_rng_state,
    rng_state,
    to_jsonable,
    write_json_atomic,
)
from rlcyclegan.train.qtopt import ONLINE_SEED, evaluate, online_mix, without_privileged

METHODS = ("rlcyclegan", "cyclegan", "gan")
RESUMABLE_CHANGES = ("steps", "max_minutes", "progress", "out", "name", "threads", "device")
"""Config fields a resumed run may change (they do not alter what a training step computes)."""


@dataclass
class RLCycleGANConfig:
    """RL-CycleGAN training: a CycleGAN and two QT-Opt Q-networks, trained jointly (the defaults are the `cpu` preset)."""

    # ---- method and data
    method: Literal["rlcyclegan", "cyclegan", "gan"] = "rlcyclegan"
    """rlcyclegan: CycleGAN + Q_sim/Q_real + RL-scene loss; cyclegan: CycleGAN only (no Q-networks, the
    policy is trained afterwards on G-translated sim data); gan: G and D_Y only (no F, D_X, cycle or RL-scene)."""
    sim_data: tuple[Path, ...] = ()
    """Sim episode folders (from `rlcyclegan collect`); required."""
    real_data: tuple[Path, ...] = ()
    """Real data, required: episode folders (or shard files) with actions and rewards, and/or images only: a
    folder of PNG/JPEG images, an .npz or an .h5 holding an (N, H, W, 3) uint8 array ("images"). Episodes
    only: their frames are the GAN's y and their transitions Q_real's real TD data. Images only: the GAN's y,
    and Q_real learns on G(x) alone. Both (e.g. many unlabeled camera frames and a few labeled episodes): the
    GAN's y are drawn from all real frames (images and the episodes' frames alike), and Q_real's real TD rows
    from the episodes' transitions, a batch of their own."""

    # ---- networks
    generator: str = "unet_small"
    """Generator preset for G and F (rlcyclegan.nets.generators.GENERATOR_PRESETS)."""
    generator_channels: int = 0
    """Override the generator preset's full-resolution channels (0 = the preset's)."""
    discriminator: str = "multiscale_small"
    """Discriminator preset for D_X and D_Y (rlcyclegan.nets.discriminators.DISCRIMINATOR_PRESETS)."""
    discriminator_channels: int = 0
    """Override the discriminator preset's first-layer channels (0 = the preset's)."""
    qnet: str = "default"
    """Q-network preset of Q_sim and Q_real (small, default, deep, spatial, large); ignored with --init-q."""
    qnet_coords: bool = False
    """Give the Q-networks pixel-coordinate input channels (CoordConv); ignored with --init-q."""
    action_gates: str = "auto"
    """On/off action dimensions the Q-networks see canonicalised: "auto" (what the env declares), "none" or
    "4,5" (see ``nets.qnet.canonical_action``); ignored with --init-q."""
    init_q: Path | None = None
    """A Sim-only QT-Opt checkpoint or run folder: Q_sim (and its targets) start from its Q-network and the Q
    architecture is the checkpoint's. None: Q_sim starts at random. Q_real always starts as a copy of Q_sim."""
    init_from: Path | None = None
    """An RL-CycleGAN run folder or checkpoint to continue from on other data (joint fine-tuning, e.g. with
    on-policy real episodes, --online-real): every network (G, F, D_X, D_Y, Q_sim, Q_real and their target
    networks), the optimizers' moments and the image pools start from it; steps, RNGs and the on-policy buffer
    start anew, and the learning rates are this config's. The networks' config must be the checkpoint's (the
    Q architecture is taken from it; --init-q is ignored)."""

    # ---- losses
    lambda_gan: float = 1.0
    """Weight of each generator's adversarial loss."""
    lambda_cycle: float = 10.0
    """Weight of the cycle-consistency loss."""
    lambda_rl_scene: float = 1.0
    """Weight of the RL-scene consistency loss (method rlcyclegan only; 0 before rl_scene_warmup)."""
    lambda_rl: float = 1.0
    """Weight of the Q-networks' TD loss (0 = the Q-networks only learn from the RL-scene loss, if at all)."""
    aux_weight: float = 0.0
    """Weight of the auxiliary loss on privileged sim state (0 = off, as in the paper; see
    ``QTOptConfig.aux_weight``). Q_sim learns it on x and Q_real on G(x), both with the sim state's
    targets, so Q_real learns where objects are in real-looking images. Needs sim data with privileged
    state (`obs/privileged`) and an env with ``auxiliary_targets``; the Q-networks get aux outputs (an
    --init-q checkpoint must have them: train it with the same --aux-weight > 0)."""
    aux_actions: int = 8
    """Random moves per state scored by the auxiliary loss besides the logged action."""
    lambda_identity: float = 0.0
    """Weight of the optional CycleGAN identity loss d(F(x), x) + d(G(y), y) (0 = off, as in the paper)."""
    adversarial: Literal["lsgan", "nonsaturating"] = "lsgan"
    """Adversarial loss: least squares (CycleGAN) or the non-saturating cross-entropy."""
    cycle_distance: Literal["mse", "l1"] = "mse"
    """Distance of the cycle and identity losses (the paper: mse; CycleGAN: l1)."""
    rl_scene_distance: Literal["mse", "l1"] = "mse"
    """Distance between Q-values in the RL-scene loss (the paper: mse)."""
    rl_scene_updates_q: bool = False
    """Whether the RL-scene loss also trains Q_sim and Q_real (it always trains G and F). Off by default: the
    paper writes the loss as L_RL-scene(G, F), and letting it move the Q-networks lets them lower it by making
    Q blind to what the generators change (at the limit, a constant Q), which weakens exactly the signal that
    keeps the task-relevant parts of the scene; the Q-networks then learn from rewards (TD) only."""
    q_real_bootstrap: Literal["sim", "own"] = "sim"
    """Target of Q_real's TD loss on translated sim transitions (G(x), a, r, x'): "sim" bootstraps from Q_sim's
    targets at x' (r + gamma V_sim(x'), the value Q_sim's own TD loss already computed; the RL-scene loss makes
    V_real(G(x')) equal it), "own" from Q_real's targets at G(x') (one more generator pass and CEM per step).
    Real transitions always bootstrap from Q_real's own targets at y'. "sim" keeps the RL-CycleGAN step
    within 1.3x a CycleGAN step on a CPU (`rlcyclegan bench train`)."""
    policy_weights: Literal["online", "polyak"] = "online"
    """Which Q_real weights the saved policy (checkpoint `policy` entry, `rlcyclegan eval`, the in-training
    evaluation) uses: the online network, or its Polyak average (Q_real's target network), as QT-Opt's
    `--policy-weights polyak`, which the cpu experiment recipe uses for both. The saved Q_sim (`policy_sim`,
    `rlcyclegan eval --q-network sim`) follows the same choice."""
    augment_shift: int = 0
    """Random shift (pixels, replicate padding, as QT-Opt's ``augment_shift``) of every image a Q-network sees in
    training: the RL-scene inputs (which are also the online TD inputs), the TD targets' next images and the
    auxiliary-loss inputs; each image gets its own shift. 0 = off. The gradient into G and F flows through the
    shift. Meant to keep Q_real from reading pixel-exact traces of G that real images do not have."""
    augment_color: float = 0.0
    """Strength in [0, 1] of random photometric distortions (brightness, contrast, saturation, hue; QT-Opt's
    ``--augment-color``) of the same Q inputs as ``augment_shift``, after the shift, one draw per image. 0 = off."""
    augment_noise: float = 0.0
    """Largest std (0..1 scale) of Gaussian pixel noise added to the same Q inputs, after a random blur of up to
    ``augment_blur`` pixels (QT-Opt's options of the same names; one draw per image). 0 = off."""
    augment_blur: float = 0.0
    """Largest sigma (pixels) of a random Gaussian blur of the same Q inputs. 0 = off."""
    rl_scene_warmup: int = 1000
    """Steps with RL-scene weight 0 (the Q-networks learn by TD first; without --init-q their values are noise)."""

    # ---- optimisation
    lr_generator: float = 2e-4
    """Adam learning rate of G and F (betas 0.5, 0.999 as in CycleGAN)."""
    lr_discriminator: float = 2e-4
    """Adam learning rate of D_X and D_Y (betas 0.5, 0.999)."""
    lr_q: float = 5e-4
    """Adam learning rate of Q_sim and Q_real."""
    batch_size: int = 16
    """Sim transitions (and real images) per step."""
    q_batch_size: int = 0
    """Sim transitions per step in the Q-networks' TD loss (0 = batch_size). The first batch_size go through
    the generators and the RL-scene loss as always; the others train only the Q-networks: Q_sim by TD on x,
    Q_real on G(x) (G without gradient), both against Q_sim's targets at x'. The GAN's batch stays small while
    the Q-networks keep the batch their --init-q recipe trained with (64 in the cpu QT-Opt recipe); needs
    q_real_bootstrap "sim"."""
    done_fraction: float = 0.0
    """Share of each batch of sim transitions (and of real ones, when the real data has them) drawn among the
    grasp attempts (terminal transitions), as QT-Opt's ``done_fraction``; the rest uniformly. 0 = uniform. A
    Q-network trained with it (the cpu QT-Opt recipe: 0.25) keeps seeing as many reward-carrying transitions
    when training goes on here."""
    steps: int = 10_000
    """Training steps (one generator, one Q and one discriminator update each)."""
    grad_clip: float = 10.0
    """Gradient-norm clip of the Q-networks (0 = off)."""
    gamma: float = 0.9
    """Discount of the TD targets."""
    polyak: float = 0.995
    """Decay of the Polyak-averaged target networks."""
    lagged_period: int = 1000
    """Steps between refreshes of the lagged target networks."""
    cem_iterations: int = 2
    """CEM iterations (targets and acting)."""
    cem_samples: int = 64
    """CEM samples per iteration."""
    cem_elites: int = 6
    """CEM elites refitted per iteration."""
    pool_size: int = 50
    """Generated images kept in each discriminator's history pool (0 = no pool)."""

    # ---- on-policy sim collection (method rlcyclegan; QT-Opt's on-policy data)
    online: bool = False
    """Collect on-policy sim episodes during training, as QT-Opt does: every ``collect_every`` steps the
    collecting policy (``collect_policy``) plays ``collect_episodes`` episodes with exploration in the sim env;
    they go to an on-policy buffer that supplies up to ``online_fraction`` of every sim batch (all of its uses:
    the GAN, the RL-scene loss and both TD losses) and to RUN/online on disk (a resumed run reloads them).
    Off by default (the paper trains on the stored sim data); the offline-only Q_real lags a QT-Opt policy
    trained on G(sim) with on-policy data (docs/rlcyclegan.md)."""
    collect_policy: Literal["real", "sim"] = "real"
    """Which Q-network collects: "real" = Q_real acting on G(x), the translated sim frames (the policy that will
    run on the robot, so it visits the states it will meet), "sim" = Q_sim acting on the sim frames x. The online
    weights act (as in QT-Opt); the stored episodes hold the sim frames."""
    collect_domain: str = "sim"
    """Visual domain of the collection envs (rlcyclegan envs); it must look like the sim data."""
    collect_objects: str = "train"
    """Object set of the collection envs (rlcyclegan envs)."""
    online_start: int = 1000
    """First training step at which on-policy collection starts."""
    collect_every: int = 250
    """Training steps between collection rounds."""
    collect_episodes: int = 25
    """Episodes per collection round."""
    collect_envs: int = 16
    """Envs stepped in lockstep while collecting (CEM and G run batched over them)."""
    online_capacity: int = 40_000
    """Transitions kept in the on-policy ring buffer."""
    online_fraction: float = 0.5
    """Share of each sim batch drawn from the on-policy buffer once it holds ``online_ramp`` transitions."""
    online_ramp: int = 2000
    """On-policy transitions at which ``online_fraction`` is reached; below, the share grows in proportion.
    Shorter than QT-Opt's 10k: the cpu preset's 10k steps collect about 7k on-policy transitions in all."""
    online_real: bool = False
    """The on-policy episodes are real-robot episodes (fine-tuning on the robot): Q_real acts on the collection
    env's images as they are (no G) and the episodes join the real transitions, up to ``online_fraction`` of every
    real batch (Q_real's TD loss on real data and the y side of the GAN and RL-scene losses), instead of the sim
    batches. Set --collect-domain to the real look (`real` for rlcyclegan envs); needs --online, real data of
    episodes and collect_policy "real"."""
    epsilon: float = 0.05
    """Probability of a uniform random action per step while collecting."""
    noise: float = 0.1
    """Std of Gaussian noise on the CEM action while collecting (fraction of the half range)."""

    # ---- evaluation (Q_real as a greedy CEM policy), logging, checkpoints
    env: str = "rlcyclegan/Grasp-v0"
    """Gymnasium env id Q_real is evaluated in (and whose action bounds CEM uses)."""
    env_kwargs: str = "{}"
    """Extra env constructor arguments as JSON (merged over domain/objects/image_size for rlcyclegan envs)."""
    eval_domain: str = "real"
    """Visual domain of the evaluation episodes (rlcyclegan envs)."""
    eval_objects: str = "test"
    """Object set of the evaluation episodes (test = shapes never seen in training)."""
    eval_every: int = 1000
    """Steps between evaluations of Q_real (0 = never; method rlcyclegan only); one also runs at the end."""
    eval_episodes: int = 100
    """Greedy episodes per evaluation."""
    eval_envs: int = 25
    """Envs stepped in lockstep for evaluation."""
    checkpoint_every: int = 1000
    """Steps between checkpoints and visuals (one is always written at the end)."""
    keep_checkpoints: int = 2
    """Numbered checkpoints kept besides latest.pt."""
    log_every: int = 50
    """Steps between TensorBoard scalar writes."""
    max_minutes: float = 58.0
    """Stop (after a checkpoint) once this much wall time has passed (0 = no limit)."""

    # ---- run
    seed: int = 0
    """Seed of everything (initialisation, sampling, CEM, image pools)."""
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
    """Run folder name (default: METHOD-TIMESTAMP)."""
    progress: bool = True
    """Show a progress bar."""


PRESETS: dict[str, dict] = {
    # for tests: 32 px data, a few channels, a handful of steps, no evaluation
    "tiny": dict(
        generator_channels=4, discriminator_channels=4, qnet="small", batch_size=4, steps=20, rl_scene_warmup=0,
        cem_iterations=1, cem_samples=16, cem_elites=4, lagged_period=10, pool_size=8, eval_every=0,
        eval_episodes=4, eval_envs=2, checkpoint_every=10, log_every=5, max_minutes=0.0,
    ),
    # a few CPU minutes on 64 px data: enough to see the translation take shape
    "demo": dict(
        generator_channels=8, discriminator_channels=8, qnet="small", batch_size=8, steps=1500, rl_scene_warmup=300,
        lagged_period=250, eval_every=500, eval_episodes=50, checkpoint_every=250, log_every=25, max_minutes=20.0,
    ),
    "cpu": dict(),  # the dataclass defaults
    "gpu": dict(
        generator="unet", discriminator="multiscale", qnet="large", batch_size=64, steps=100_000, lr_q=3e-4,
        rl_scene_warmup=5000, polyak=0.999, lagged_period=5000, eval_every=5000, eval_episodes=200,
        checkpoint_every=5000, log_every=100, max_minutes=0.0,
    ),
}


def preset_config(name: str, /, **overrides) -> RLCycleGANConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return replace(RLCycleGANConfig(), **{**PRESETS[name], **overrides})


def check_config(cfg: RLCycleGANConfig) -> None:
    problems = []
    if cfg.method not in METHODS:
        problems.append(f"method must be one of {METHODS} (got {cfg.method!r})")
    if not cfg.sim_data:
        problems.append("--sim-data is required (sim episode folders)")
    if not cfg.real_data:
        problems.append("--real-data is required (real episode folders or images)")
    if cfg.steps < 1 or cfg.batch_size < 1:
        problems.append(f"steps and batch_size must be >= 1 (got {cfg.steps}, {cfg.batch_size})")
    if not 0 <= cfg.polyak < 1:
        problems.append(f"polyak must be in [0, 1) (got {cfg.polyak})")
    if cfg.generator not in GENERATOR_PRESETS:
        problems.append(f"generator must be one of {sorted(GENERATOR_PRESETS)} (got {cfg.generator!r})")
    if cfg.discriminator not in DISCRIMINATOR_PRESETS:
        problems.append(f"discriminator must be one of {sorted(DISCRIMINATOR_PRESETS)} (got {cfg.discriminator!r})")
    if cfg.qnet not in QNET_PRESETS:
        problems.append(f"qnet must be one of {sorted(QNET_PRESETS)} (got {cfg.qnet!r})")
    if cfg.q_real_bootstrap not in ("sim", "own"):
        problems.append(f"q_real_bootstrap must be sim or own (got {cfg.q_real_bootstrap!r})")
    if cfg.q_batch_size and cfg.q_batch_size < cfg.batch_size:
        problems.append(f"q_batch_size must be 0 or >= batch_size (got {cfg.q_batch_size} < {cfg.batch_size})")
    if q_extra(cfg) and cfg.q_real_bootstrap != "sim":
        problems.append("q_batch_size > batch_size needs q_real_bootstrap 'sim'")
    if not 0 <= cfg.done_fraction <= 1:
        problems.append(f"done_fraction must be in [0, 1] (got {cfg.done_fraction})")
    if cfg.online:
        if cfg.method != "rlcyclegan":
            problems.append(f"online collection needs method rlcyclegan (a Q-network to act; got {cfg.method!r})")
        if cfg.collect_policy not in ("real", "sim"):
            problems.append(f"collect_policy must be real or sim (got {cfg.collect_policy!r})")
        if not 0 <= cfg.online_fraction <= 1:
            problems.append(f"online_fraction must be in [0, 1] (got {cfg.online_fraction})")
        if min(cfg.collect_every, cfg.collect_episodes, cfg.collect_envs, cfg.online_capacity) < 1 or cfg.online_start < 0:
            problems.append("collect_every, collect_episodes, collect_envs and online_capacity must be >= 1, online_start >= 0")
        if cfg.online_real and cfg.collect_policy != "real":
            problems.append("online_real collects with Q_real on the robot: collect_policy must be real")
        if not 0 <= cfg.epsilon <= 1 or cfg.noise < 0:
            problems.append(f"epsilon must be in [0, 1] and noise >= 0 (got {cfg.epsilon}, {cfg.noise})")
    elif cfg.online_real:
        problems.append("online_real needs online collection (--online)")
    if cfg.init_from is not None and cfg.method != "rlcyclegan":
        problems.append(f"init_from continues an RL-CycleGAN run: method must be rlcyclegan (got {cfg.method!r})")
    if cfg.augment_shift < 0:
        problems.append(f"augment_shift must be >= 0 (got {cfg.augment_shift})")
    if not 0.0 <= cfg.augment_color <= 1.0:
        problems.append(f"augment_color must be in [0, 1] (got {cfg.augment_color})")
    if not 0.0 <= cfg.augment_noise <= 1.0 or cfg.augment_blur < 0:
        problems.append(f"augment_noise must be in [0, 1] and augment_blur >= 0 (got {cfg.augment_noise}, {cfg.augment_blur})")
    if cfg.rl_scene_warmup < 0 or cfg.pool_size < 0 or cfg.checkpoint_every < 1 or cfg.log_every < 1:
        problems.append("rl_scene_warmup and pool_size must be >= 0, checkpoint_every and log_every >= 1")
    for name in ("lambda_gan", "lambda_cycle", "lambda_rl_scene", "lambda_rl", "lambda_identity"):
        if getattr(cfg, name) < 0:
            problems.append(f"{name} must be >= 0 (got {getattr(cfg, name)})")
    if problems:
        raise ValueError("invalid RL-CycleGAN config: " + "; ".join(problems))


# ===================================================================================== data
def is_episode_source(path: Path) -> bool:
    """An episode folder (holds shard-*.h5) or a single episode shard file."""
    if path.is_dir():
        return bool(list_shards(path))
    if path.suffix in (".h5", ".hdf5") and path.is_file():
        import h5py

        with h5py.File(path, "r") as f:
            return "obs/image" in f and "action" in f
    return False


def episode_buffer(paths: list[Path], image_shape=None, state_dim=None, action_dim=None, privileged: bool = False) -> ReplayBuffer:
    """A replay buffer holding every transition of the episode folders / shard files (checked for matching sizes);
    with ``privileged`` also their privileged states, which every episode must then have (of one size)."""
    episodes = []
    for p in paths:
        if p.is_dir():
            episodes += list(EpisodeDataset(p))
        else:
            episodes += list(read_shard(p).episodes())
    if not episodes:
        raise ValueError(f"no episodes in {[str(p) for p in paths]}")
    shape = tuple(episodes[0].images.shape[1:])
    sdim, adim = episodes[0].states.shape[1], episodes[0].actions.shape[1]
    for what, have, want in (("image shape", shape, image_shape), ("state size", sdim, state_dim), ("action size", adim, action_dim)):
        if want is not None and tuple(np.atleast_1d(have)) != tuple(np.atleast_1d(want)):
            raise ValueError(f"{[str(p) for p in paths]}: {what} is {have}, the sim data has {want}")
    privileged_dim = 0
    if privileged:
        privileged_dim = episodes[0].privileged.shape[1] if episodes[0].privileged is not None else 0
        bad = [e.index for e in episodes if e.privileged is None or e.privileged.shape[1] != privileged_dim]
        if bad:
            raise ValueError(f"{[str(p) for p in paths]}: {len(bad)} episode(s) (e.g. {bad[:3]}) have no privileged state "
                             "(obs/privileged), or one of another size, which --aux-weight needs; collect them again with this version")
    buf = ReplayBuffer(sum(e.length for e in episodes), shape, sdim, adim, privileged_dim)
    buf.add_episodes(episodes)
    return buf


def read_images(path: Path, image_shape: tuple[int, int, int]) -> np.ndarray:
    """(N, H, W, 3) uint8 images of a source: episode folder or shard, image folder (resized to fit), .npz or .h5."""
    if is_episode_source(path):
        if path.is_dir():
            images = EpisodeDataset(path).images()
        else:
            images = read_shard(path).arrays["obs/image"]
    elif path.is_dir():
        images = load_image_folder(path, resize=image_shape[:2])
    elif path.suffix in (".npz", ".h5", ".hdf5"):
        images = load_image_array(path)
    else:
        raise ValueError(f"{path}: not an episode folder, image folder, .npz or .h5")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != tuple(image_shape):
        raise ValueError(f"{path}: images are {images.dtype} {images.shape[1:]}, expected uint8 {tuple(image_shape)} like the sim data")
    return images


@dataclass
class RealData:
    """Real data: a transition buffer of the episode sources and/or an image array of the images-only ones."""

    buffer: ReplayBuffer | None
    images: np.ndarray | None

    @property
    def has_transitions(self) -> bool:
        return self.buffer is not None

    @property
    def mixed(self) -> bool:
        """Both kinds: the GAN's y come from every real frame, Q_real's real TD rows from the transitions."""
        return self.buffer is not None and self.images is not None

    def __len__(self) -> int:
        """Real frames the GAN draws y from (images-only frames plus the transitions' observations)."""
        return (len(self.images) if self.images is not None else 0) + (len(self.buffer) if self.buffer is not None else 0)

    def frames(self, rows: np.ndarray) -> np.ndarray:
        """Real frames by row over [images-only frames, then the transitions' observations]."""
        n_img = len(self.images) if self.images is not None else 0
        out = np.empty((len(rows), *(self.images if self.images is not None else self.buffer.image).shape[1:]), np.uint8)  # type: ignore[union-attr]
        in_img = rows < n_img
        if in_img.any():
            out[in_img] = self.images[rows[in_img]]  # type: ignore[index]
        if (~in_img).any():
            out[~in_img] = self.buffer.image[rows[~in_img] - n_img]  # type: ignore[union-attr]
        return out


def load_real(paths: list[Path], image_shape, state_dim: int, action_dim: int) -> RealData:
    """Episode sources become one transition buffer, images-only sources one image array (either may be None)."""
    episodes = [p for p in paths if is_episode_source(p)]
    images = [p for p in paths if p not in episodes]
    return RealData(episode_buffer(episodes, image_shape, state_dim, action_dim) if episodes else None,
                    np.concatenate([read_images(p, image_shape) for p in images]) if images else None)


def sample_batch(sim: ReplayBuffer, real: RealData, n: int, rng: np.random.Generator, device: torch.device,
                 done_fraction: float = 0.0, q_extra: int = 0, online: ReplayBuffer | None = None, online_fraction: float = 0.0,
                 online_real: bool = False) -> dict:
    """{"sim": the replay fields of n sim transitions, "real": {"image"} or the replay fields of n real ones}, as tensors.

    Real images-only data has no actions or states: the y-side RL-scene terms then use the sim
    batch's actions and states (row i of y is scored with the action of sim transition i). Mixed real data
    (:attr:`RealData.mixed`) gives "real": {"image"} drawn over every real frame, and "real_td": the replay
    fields of n real transitions for Q_real's TD loss.
    ``done_fraction`` of the transitions are drawn among terminal ones (see RLCycleGANConfig.done_fraction).
    ``q_extra`` > 0 adds "sim_q": that many more sim transitions for the Q-networks' TD loss only
    (RLCycleGANConfig.q_batch_size), drawn after the others. With an ``online`` buffer, ``online_fraction`` of
    each sim draw comes from it (:func:`sample_mixed`; without one the draws are exactly ``sim.sample``'s), or, with
    ``online_real``, of each real draw (the on-policy episodes are real ones; RLCycleGANConfig.online_real).
    """
    sim_online, real_online = (None, online) if online_real else (online, None)
    s = sample_mixed(sim, sim_online, n, online_fraction, rng, done_fraction)
    if real.buffer is not None and not real.mixed:
        r = sample_mixed(real.buffer, real_online, n, online_fraction, rng, done_fraction)
    else:
        r = {"image": real.frames(rng.integers(0, len(real), n))}
    to = lambda d: {k: torch.as_tensor(v).to(device) for k, v in d.items()}  # noqa: E731
    batch = {"sim": to(s), "real": to(r)}
    if real.mixed:
        batch["real_td"] = to(sample_mixed(real.buffer, real_online, n, online_fraction, rng, done_fraction))
    if q_extra > 0:
        batch["sim_q"] = to(sample_mixed(sim, sim_online, q_extra, online_fraction, rng, done_fraction))
    return batch


def y_actions(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(state, action) paired with the real images y: the real transitions' own, or the sim batch's."""
    src = batch["real"] if "action" in batch["real"] else batch["sim"]
    return src["state"], src["action"]


# ===================================================================================== networks
@dataclass
class Nets:
    """Every module, optimizer and image pool of a run (None where the method has none)."""

    G: nn.Module
    D_Y: nn.Module
    F: nn.Module | None
    D_X: nn.Module | None
    q_sim: GraspQNet | None
    q_real: GraspQNet | None
    q_sim_polyak: GraspQNet | None
    q_sim_lagged: GraspQNet | None
    q_real_polyak: GraspQNet | None
    q_real_lagged: GraspQNet | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    opt_q: torch.optim.Optimizer | None
    pool_y: ImagePool
    pool_x: ImagePool | None
    bounds: tuple[np.ndarray, np.ndarray] | None
    aux: AuxSpec | None = None

    MODULES = ("G", "F", "D_X", "D_Y", "q_sim", "q_real", "q_sim_polyak", "q_sim_lagged", "q_real_polyak", "q_real_lagged")
    STATEFUL = MODULES + ("opt_g", "opt_d", "opt_q", "pool_x", "pool_y")

    def state_dicts(self) -> dict:
        """Name -> state_dict of every module, optimizer and pool (None for absent ones)."""
        return {k: (None if getattr(self, k) is None else getattr(self, k).state_dict()) for k in self.STATEFUL}

    def load_state_dicts(self, states: dict, device: torch.device) -> None:
        for k in self.STATEFUL:
            obj = getattr(self, k)
            if (obj is None) != (states.get(k) is None):
                raise CheckpointError(f"checkpoint has {'no ' if states.get(k) is None else ''}{k}, the config {'needs' if obj is not None else 'has none'}")
            if obj is not None:
                obj.load_state_dict(states[k])
        for pool in (self.pool_x, self.pool_y):
            if pool is not None:
                pool.images = [im.to(device) for im in pool.images]


def generator_config(cfg: RLCycleGANConfig) -> GeneratorConfig:
    over = {"channels": cfg.generator_channels} if cfg.generator_channels > 0 else {}
    return GeneratorConfig(**{**GENERATOR_PRESETS[cfg.generator], **over})


def discriminator_config(cfg: RLCycleGANConfig) -> DiscriminatorConfig:
    over = {"channels": cfg.discriminator_channels} if cfg.discriminator_channels > 0 else {}
    return DiscriminatorConfig(**{**DISCRIMINATOR_PRESETS[cfg.discriminator], **over})


def q_config(cfg: RLCycleGANConfig, image_size: int, state_dim: int, action_dim: int, aux_outputs: int = 0) -> QNetConfig:
    """The Q architecture: --init-from's or --init-q's when given, else the preset for this data."""
    source = cfg.init_from if cfg.init_from is not None else cfg.init_q
    if source is not None:
        qc = QNetConfig(**load_checkpoint(source)["policy"]["qnet_config"])
        want = {"image_size": image_size, "state_dim": state_dim, "action_dim": action_dim}
        if aux_outputs:
            want["aux_outputs"] = aux_outputs
        diff = {k: (getattr(qc, k), v) for k, v in want.items() if getattr(qc, k) != v}
        if diff:
            raise CheckpointError(f"{source}: its Q-network does not fit the data (field: (checkpoint, data)): {diff}")
        return qc
    return QNetConfig(**{**QNET_PRESETS[cfg.qnet], "image_size": image_size, "state_dim": state_dim,
                         "action_dim": action_dim, "coords": cfg.qnet_coords,
                         "action_gates": parse_action_gates(cfg.action_gates, cfg.env, action_dim), "aux_outputs": aux_outputs})


def build_nets(cfg: RLCycleGANConfig, image_size: int, state_dim: int, action_dim: int, device: torch.device,
               bounds: tuple[np.ndarray, np.ndarray] | None = None, aux: AuxSpec | None = None) -> Nets:
    """Modules (seeded with cfg.seed), optimizers and pools for cfg.method; Q from --init-q when given."""
    torch.manual_seed(cfg.seed)
    cycle = cfg.method != "gan"
    rl = cfg.method == "rlcyclegan"
    G = make_generator(generator_config(cfg)).to(device)
    F = make_generator(generator_config(cfg)).to(device) if cycle else None
    D_Y = make_discriminator(discriminator_config(cfg)).to(device)
    D_X = make_discriminator(discriminator_config(cfg)).to(device) if cycle else None
    qs: list[GraspQNet | None] = [None] * 6
    if rl:
        qc = q_config(cfg, image_size, state_dim, action_dim, aux.outputs if aux else 0)
        qs = [GraspQNet(qc).to(device) for _ in range(6)]
        if cfg.init_q is not None and cfg.init_from is None:  # Q_sim from the Sim-only QT-Opt run
            qs[0].load_state_dict(load_checkpoint(cfg.init_q, map_location=device)["policy"]["qnet"])
        qs[1].load_state_dict(qs[0].state_dict())  # Q_real starts as Q_sim
        for online, targets in ((qs[0], qs[2:4]), (qs[1], qs[4:6])):
            for t in targets:
                t.load_state_dict(online.state_dict())
                t.requires_grad_(False)
    gen_params = list(G.parameters()) + (list(F.parameters()) if F is not None else [])
    d_params = list(D_Y.parameters()) + (list(D_X.parameters()) if D_X is not None else [])
    pool_gen = lambda k: torch.Generator().manual_seed(cfg.seed * 1000 + k)  # noqa: E731
    return Nets(
        G=G, D_Y=D_Y, F=F, D_X=D_X,
        q_sim=qs[0], q_real=qs[1], q_sim_polyak=qs[2], q_sim_lagged=qs[3], q_real_polyak=qs[4], q_real_lagged=qs[5],
        opt_g=torch.optim.Adam(gen_params, lr=cfg.lr_generator, betas=(0.5, 0.999)),
        opt_d=torch.optim.Adam(d_params, lr=cfg.lr_discriminator, betas=(0.5, 0.999)),
        opt_q=torch.optim.Adam(list(qs[0].parameters()) + list(qs[1].parameters()), lr=cfg.lr_q) if rl else None,
        pool_y=ImagePool(cfg.pool_size, pool_gen(1)),
        pool_x=ImagePool(cfg.pool_size, pool_gen(2)) if cycle else None,
        bounds=bounds,
        aux=aux,
    )


INIT_FROM_FIELDS = ("method", "generator", "generator_channels", "discriminator", "discriminator_channels", "pool_size")
"""Config fields an --init-from checkpoint must share with the config (they shape the networks and pools)."""


def load_init_from(nets: Nets, cfg: RLCycleGANConfig, device: torch.device) -> None:
    """Start every network, optimizer moment and image pool from the --init-from run (see RLCycleGANConfig.init_from);
    the learning rates stay this config's."""
    source = Path(cfg.init_from)  # type: ignore[arg-type]
    ckpt = load_checkpoint(source, map_location=device)
    if ckpt.get("kind") != "rlcyclegan" or "state" not in ckpt:
        raise CheckpointError(f"init_from {source}: holds no RL-CycleGAN training state (a {ckpt.get('kind')!r} checkpoint"
                              f"{', or a final.pt export, which keeps the policy and generators only' if 'state' not in ckpt else ''}); "
                              "give the run folder of an RL-CycleGAN run whose checkpoints/latest.pt is there")
    saved = ckpt["config"]
    diff = {k: (saved.get(k), to_jsonable(getattr(cfg, k))) for k in INIT_FROM_FIELDS if saved.get(k) != to_jsonable(getattr(cfg, k))}
    if (saved.get("aux_weight", 0.0) > 0) != (cfg.aux_weight > 0):
        diff["aux_weight"] = (saved.get("aux_weight"), cfg.aux_weight)
    if diff:
        raise CheckpointError(f"init_from {source}: its networks were built with another config (field: (checkpoint, config)): {diff}")
    try:
        nets.load_state_dicts(ckpt["state"], device)
    except (RuntimeError, KeyError, ValueError, CheckpointError) as e:
        raise CheckpointError(f"init_from {source}: its networks do not fit this config: {e}") from e
    for opt, lr in ((nets.opt_g, cfg.lr_generator), (nets.opt_d, cfg.lr_discriminator), (nets.opt_q, cfg.lr_q)):
        for group in opt.param_groups if opt is not None else ():
            group["lr"] = lr


# ===================================================================================== one step
def q_image(image: torch.Tensor) -> torch.Tensor:
    """Q-network input from a uint8 NHWC data image: float NCHW in [-0.5, 0.5] (GraspQNet.preprocess's mapping)."""
    return image.permute(0, 3, 1, 2).float().div(255.0).sub(0.5)


def q_from_gan(image: torch.Tensor) -> torch.Tensor:
    """Q-network input from a generator output in [-1, 1]: 0.5 * g, on the scale of :func:`q_image`."""
    return 0.5 * image.float()


def shift_images(images: torch.Tensor, pad: int, generator: torch.Generator | None) -> torch.Tensor:
    """Shift each float (B, C, H, W) image by up to ``pad`` pixels in x and y (edges replicated), differentiably;
    ``pad`` 0 returns the images unchanged. Offsets come from ``generator`` (on the images' device)."""
    if pad <= 0:
        return images
    if generator is None:
        raise ValueError("shift_images: a torch.Generator is needed for augment_shift > 0")
    b, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator, device=generator.device).to(images.device)
    rows = (offsets[:, 0, None] + torch.arange(h, device=images.device))[:, :, None]  # (B, H, 1)
    cols = (offsets[:, 1, None] + torch.arange(w, device=images.device))[:, None, :]  # (B, 1, W)
    return padded[torch.arange(b, device=images.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)  # (B, C, H, W)


def image_distance(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    return torch.nn.functional.mse_loss(a, b) if kind == "mse" else torch.nn.functional.l1_loss(a, b)


def q_extra(cfg: RLCycleGANConfig) -> int:
    """Sim transitions per step that only the Q-networks' TD loss sees (q_batch_size beyond batch_size)."""
    return max(0, cfg.q_batch_size - cfg.batch_size) if cfg.method == "rlcyclegan" else 0


def rl_scene_weight(cfg: RLCycleGANConfig, step: int) -> float:
    """lambda_RL-scene at a step: 0 for methods without it and during the warmup."""
    return cfg.lambda_rl_scene if cfg.method == "rlcyclegan" and step >= cfg.rl_scene_warmup else 0.0


def rl_scene_q_values(nets: Nets, batch: dict, x: torch.Tensor, gx: torch.Tensor, fgx: torch.Tensor, y: torch.Tensor,
                      fy: torch.Tensor, gfy: torch.Tensor, augment=None) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """The six Q-values (probabilities) of the RL-scene loss, with one encode and one head call per Q-network.

    Q_sim sees [x, F(G(x)), F(y)], Q_real sees [G(x), y, G(F(y))]; x-side rows use the sim actions a,
    y-side rows the real transitions' actions (or the sim ones for images-only real data).
    ``augment`` (images -> images, e.g. :func:`shift_images`) is applied to each Q-network's input.
    Returns (values by name, Q_sim logits (3B,), Q_real logits (3B,)) in that row order.
    """
    sim = batch["sim"]
    aug = augment if augment is not None else (lambda t: t)
    s_y, a_y = y_actions(batch)
    n = len(x)
    logits_sim = nets.q_sim.head(  # type: ignore[union-attr]
        nets.q_sim.encode(aug(torch.cat([q_image(sim["image"]), q_from_gan(fgx), q_from_gan(fy)]))),  # type: ignore[union-attr]
        torch.cat([sim["state"], sim["state"], s_y]), torch.cat([sim["action"], sim["action"], a_y])).float()
    logits_real = nets.q_real.head(  # type: ignore[union-attr]
        nets.q_real.encode(aug(torch.cat([q_from_gan(gx), q_image(batch["real"]["image"]), q_from_gan(gfy)]))),  # type: ignore[union-attr]
        torch.cat([sim["state"], s_y, s_y]), torch.cat([sim["action"], a_y, a_y])).float()
    qs, qr = torch.sigmoid(logits_sim), torch.sigmoid(logits_real)
    values = {"q_x": qs[:n], "q_x2": qs[n:2 * n], "q_y1": qs[2 * n:], "q_x1": qr[:n], "q_y": qr[n:2 * n], "q_y2": qr[2 * n:]}
    return values, logits_sim, logits_real


def q_augment(cfg: RLCycleGANConfig, generator: torch.Generator | None):
    """The training-time augmentation of Q-network inputs (RLCycleGANConfig.augment_shift, then augment_color, then
    augment_blur and augment_noise), or None when all are off."""
    camera = cfg.augment_noise > 0 or cfg.augment_blur > 0
    if cfg.augment_shift <= 0 and cfg.augment_color <= 0 and not camera:
        return None
    if generator is None:
        raise ValueError("q_augment: a torch.Generator is needed for augment_shift or augment_color > 0")

    def augment(t: torch.Tensor) -> torch.Tensor:
        t = shift_images(t, cfg.augment_shift, generator)
        if cfg.augment_color > 0:
            params = color_jitter_params(t.shape[0], cfg.augment_color, generator)  # type: ignore[arg-type]
            t = color_jitter(t.float() + 0.5, params) - 0.5  # Q inputs are on a [-0.5, 0.5] scale
        if camera:
            params = camera_noise_params(t.shape[0], cfg.augment_noise, cfg.augment_blur, generator)  # type: ignore[arg-type]
            t = camera_noise(t.float() + 0.5, params, generator) - 0.5  # type: ignore[arg-type]
        return t

    return augment


def generator_step(nets: Nets, batch: dict, cfg: RLCycleGANConfig, step: int, device: torch.device,
                   aug_gen: torch.Generator | None = None) -> tuple[dict, dict]:
    """Updates G and F: lambda_GAN (L_GAN(G, D_Y) + L_GAN(F, D_X)) + lambda_cycle L_cyc (+ lambda_id L_id)
    + lambda_RL-scene L_RL-scene. D_X and D_Y get no gradient (requires_grad off during the step). The
    RL-scene loss also leaves gradients on Q_sim and Q_real when rl_scene_updates_q (applied by
    :func:`q_step`'s optimizer step); otherwise the backward pass reaches G and F only.

    Returns (scalars, fakes): detached losses for logging, and the detached generated images plus the
    Q-networks' logits on x, F(G(x)) (Q_sim) and G(x), y (Q_real): the Q step reuses this forward pass
    as its online TD forward (same weights, same images), so the graph is kept for it.
    """
    lam_scene = rl_scene_weight(cfg, step)
    q_trains = cfg.rl_scene_updates_q and lam_scene > 0
    for d in (nets.D_X, nets.D_Y):
        if d is not None:
            d.requires_grad_(False)
    x, y = to_gan_input(batch["sim"]["image"]), to_gan_input(batch["real"]["image"])
    n = len(x)
    terms: dict[str, torch.Tensor] = {}
    scalars: dict[str, torch.Tensor | float] = {}
    fakes: dict[str, torch.Tensor] = {}
    with autocast(device, cfg.amp):
        gx = nets.G(x)
        terms["gan_g"] = generator_adversarial_loss([o.float() for o in nets.D_Y(gx)], cfg.adversarial)
        fakes["gx"] = gx.detach().float()
        if nets.F is not None:
            fgx, fy = nets.F(gx), nets.F(y)
            gfy = nets.G(fy)
            terms["gan_f"] = generator_adversarial_loss([o.float() for o in nets.D_X(fy)], cfg.adversarial)  # type: ignore[misc]
            terms["cycle"] = cycle_loss(x, fgx.float(), y, gfy.float(), cfg.cycle_distance)
            fakes.update(fgx=fgx.detach().float(), fy=fy.detach().float())
            if cfg.lambda_identity > 0:
                terms["identity"] = identity_loss(x, nets.F(x).float(), y, nets.G(y).float(), cfg.cycle_distance)
            if nets.q_sim is not None:
                qv, logits_sim, logits_real = rl_scene_q_values(nets, batch, x, gx, fgx, y, fy, gfy, q_augment(cfg, aug_gen))
                scene = rl_scene_terms(qv["q_x"], qv["q_x1"], qv["q_x2"], qv["q_y"], qv["q_y1"], qv["q_y2"], cfg.rl_scene_distance)
                scene_loss = torch.stack(list(scene.values())).sum()
                if lam_scene > 0:  # during the warmup the values are only logged
                    terms["rl_scene"] = scene_loss
                scalars["loss/rl_scene"] = scene_loss.detach()
                scalars.update({f"rl_scene/{k}": v.detach() for k, v in scene.items()})
                scalars.update({f"q/{k}": v.detach().mean() for k, v in qv.items()})
                fakes["logits_sim"] = logits_sim[: 2 * n]  # Q_sim(x, a), Q_sim(F(G(x)), a)
                fakes["logits_real"] = logits_real[: 2 * n if "action" in batch["real"] else n]  # Q_real(G(x), a)[, Q_real(y, a_y)]
        elif cfg.lambda_identity > 0:
            terms["identity"] = image_distance(nets.G(y).float(), y, cfg.cycle_distance)
    total = total_generator_loss(terms, LossWeights(cfg.lambda_gan, cfg.lambda_cycle, lam_scene, cfg.lambda_rl, cfg.lambda_identity))
    trained = [nets.G, nets.F] + ([nets.q_sim, nets.q_real] if q_trains else [])
    nets.opt_g.zero_grad(set_to_none=True)
    total.backward(inputs=[p for m in trained if m is not None for p in m.parameters()], retain_graph="logits_sim" in fakes)
    nets.opt_g.step()
    for d in (nets.D_X, nets.D_Y):
        if d is not None:
            d.requires_grad_(True)
    scalars.update({f"loss/{k}": v.detach() for k, v in terms.items()})
    scalars["loss/generator_total"] = total.detach()
    scalars["weight/rl_scene"] = lam_scene
    return scalars, fakes


PROGRESS_LOSSES = {"gan": "loss/gan_g", "cyc": "loss/cycle", "scene": "loss/rl_scene", "td": "loss/td_real", "d_y": "loss/d_y"}
"""Short names for the progress bar, shown only for the losses a run has (a GAN has no cycle or RL-scene loss)."""


def progress_postfix(scalars: dict[str, float]) -> dict[str, str]:
    """The progress bar's loss readout: the losses of PROGRESS_LOSSES present in this step's scalars."""
    return {short: f"{scalars[key]:.3f}" for short, key in PROGRESS_LOSSES.items() if key in scalars}


def td_target(q_polyak: GraspQNet, q_lagged: GraspQNet, batch: dict, bounds: tuple, cfg: RLCycleGANConfig,
              cem_gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """QT-Opt's TD target for a batch whose ``next_image`` is already a Q input (float NCHW in [-0.5, 0.5]).

    See :func:`rlcyclegan.rl.qtopt.qtopt_targets` (the same target as ``train.qtopt.td_update``).
    """
    cem = dict(iterations=cfg.cem_iterations, samples=cfg.cem_samples, elites=cfg.cem_elites)
    with autocast(device, cfg.amp):
        return qtopt_targets(q_polyak, q_lagged, batch["next_image"], batch["next_state"], batch["reward"], batch["done"],
                             bounds, cfg.gamma, cem, cem_gen)


def q_step(nets: Nets, batch: dict, fakes: dict, cfg: RLCycleGANConfig, cem_gen: torch.Generator, device: torch.device) -> dict:
    """Updates Q_sim and Q_real only: lambda_RL times their TD (log) losses.

    Q_sim: TD on (x, a) and (F(G(x)), a), both against Q_sim's target at x' (F(G(x')) ~ x' by cycle
    consistency, so the cycled copy bootstraps where the original does: one CEM, and x' is not cycled).
    Q_real: TD on (G(x), a, r, x') and, when the real data has transitions, on (y, a_y, r_y, y') (with mixed real
    data those are ``batch["real_td"]``, not the GAN's y, and get their own Q_real forward here). The translated
    transitions bootstrap from Q_sim's targets at x' (q_real_bootstrap="sim", the default) or from Q_real's at
    G(x') translated without gradient ("own"); real transitions from Q_real's own Polyak and lagged targets.

    With q_batch_size > batch_size, ``batch["sim_q"]`` adds transitions for TD only: Q_sim on x, Q_real on
    G(x) (translated without gradient), both against Q_sim's targets at x' (one CEM with the batch's own).

    The online Q forward is the generator step's (``fakes["logits_*"]``); the backward pass is restricted
    to the Q parameters, so no gradient reaches G or F, exactly as with detached generator outputs. The
    gradients add to those the RL-scene loss left on the Q-networks (rl_scene_updates_q).
    """
    sim = batch["sim"]
    real = batch["real"] if "action" in batch["real"] else batch.get("real_td")  # real transitions, if any
    aug = q_augment(cfg, cem_gen) or (lambda t: t)  # augment_shift: every image a Q-network sees, targets' included
    fields = ("state", "next_state", "action", "reward", "done")
    extra = batch.get("sim_q")  # q_batch_size: more sim transitions for TD only, one CEM with the others
    target_src = sim if extra is None else {k: torch.cat([sim[k], extra[k]]) for k in ("next_image", *fields)}
    target_all = td_target(nets.q_sim_polyak, nets.q_sim_lagged, {**target_src, "next_image": aug(q_image(target_src["next_image"]))}, nets.bounds, cfg, cem_gen, device)  # type: ignore[arg-type]
    target_x, target_extra = target_all[: len(sim["reward"])], target_all[len(sim["reward"]):]
    target_sim = torch.cat([target_x, target_x])
    if cfg.q_real_bootstrap == "own":
        with torch.no_grad(), autocast(device, cfg.amp):
            gx_next = nets.G(to_gan_input(sim["next_image"])).float()
        real_b = {"next_image": aug(q_from_gan(gx_next)), **{k: sim[k] for k in fields}}
        if real is not None:
            real_b = {"next_image": torch.cat([real_b["next_image"], aug(q_image(real["next_image"]))]), **{k: torch.cat([sim[k], real[k]]) for k in fields}}
        target_real = td_target(nets.q_real_polyak, nets.q_real_lagged, real_b, nets.bounds, cfg, cem_gen, device)  # type: ignore[arg-type]
    else:  # r + gamma V_sim(x') for (G(x), a); Q_real's own targets only for real transitions
        target_real = target_x
        if real is not None:
            real_b = {"next_image": aug(q_image(real["next_image"])), **{k: real[k] for k in fields}}
            target_real = torch.cat([target_x, td_target(nets.q_real_polyak, nets.q_real_lagged, real_b, nets.bounds, cfg, cem_gen, device)])  # type: ignore[arg-type]
    logits_sim, logits_real = fakes["logits_sim"], fakes["logits_real"]
    if "real_td" in batch:  # mixed real data: the transitions are not the GAN's y, so Q_real sees them here
        with autocast(device, cfg.amp):
            lt = nets.q_real.head(nets.q_real.encode(aug(q_image(real["image"]))), real["state"], real["action"]).float()  # type: ignore[union-attr,index]
        logits_real = torch.cat([logits_real, lt])
    if extra is not None:  # Q_sim on x, Q_real on G(x) (no gradient to G), both against Q_sim's targets at x'
        with torch.no_grad(), autocast(device, cfg.amp):
            gx_extra = nets.G(to_gan_input(extra["image"])).float()
        with autocast(device, cfg.amp):
            ls = nets.q_sim.head(nets.q_sim.encode(aug(q_image(extra["image"]))), extra["state"], extra["action"]).float()  # type: ignore[union-attr]
            lr = nets.q_real.head(nets.q_real.encode(aug(q_from_gan(gx_extra))), extra["state"], extra["action"]).float()  # type: ignore[union-attr]
        logits_sim, target_sim = torch.cat([logits_sim, ls]), torch.cat([target_sim, target_extra])
        logits_real, target_real = torch.cat([logits_real, lr]), torch.cat([target_real, target_extra])
    loss_sim, loss_real = td_loss(logits_sim, target_sim, "log"), td_loss(logits_real, target_real, "log")
    params = list(nets.q_sim.parameters()) + list(nets.q_real.parameters())  # type: ignore[union-attr]
    total = cfg.lambda_rl * (loss_sim + loss_real)
    aux_scalars = {}
    if nets.aux is not None and cfg.aux_weight > 0:
        aux_sim, aux_real = aux_losses(nets, sim, fakes["gx"], cfg, cem_gen, device)
        total = total + cfg.aux_weight * (aux_sim + aux_real)
        aux_scalars = {"loss/aux_sim": aux_sim.detach(), "loss/aux_real": aux_real.detach()}
    total.backward(inputs=params)
    gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
    nets.opt_q.step()  # type: ignore[union-attr]
    return {"loss/td_sim": loss_sim.detach(), "loss/td_real": loss_real.detach(), "q/grad_norm": gnorm.detach(),
            "q/sim_mean": torch.sigmoid(logits_sim.detach()).mean(), "q/real_mean": torch.sigmoid(logits_real.detach()).mean(),
            "q/sim_target_mean": target_sim.mean(), "q/real_target_mean": target_real.mean(), **aux_scalars}


def aux_losses(nets: Nets, sim: dict, gx: torch.Tensor, cfg: RLCycleGANConfig, cem_gen: torch.Generator,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Auxiliary losses of Q_sim on (x, a) and Q_real on (G(x), a) (G(x) detached: only the Q-networks learn),
    for the logged action and ``aux_actions`` random moves per state, against the targets the env computes
    from x's privileged state (the same for G(x): translation keeps the scene)."""
    acts = aux_actions(sim["action"], cfg.aux_actions, nets.bounds, nets.q_sim.cfg.action_gates, cem_gen)  # type: ignore[union-attr]
    aug = q_augment(cfg, cem_gen) or (lambda t: t)
    target = torch.as_tensor(nets.aux.targets(sim["privileged"].cpu().numpy(), acts.cpu().numpy()), device=device)  # type: ignore[union-attr]
    with autocast(device, cfg.amp):
        _, pred_sim = nets.q_sim.head(nets.q_sim.encode(aug(q_image(sim["image"]))), sim["state"], acts, with_aux=True)  # type: ignore[union-attr]
        _, pred_real = nets.q_real.head(nets.q_real.encode(aug(q_from_gan(gx))), sim["state"], acts, with_aux=True)  # type: ignore[union-attr]
    return auxiliary_loss(pred_sim, target), auxiliary_loss(pred_real, target)


def discriminator_step(nets: Nets, batch: dict, fakes: dict, cfg: RLCycleGANConfig, device: torch.device) -> dict:
    """Updates D_Y (and D_X) only: real images vs generated ones drawn through the history pools (detached)."""
    x, y = to_gan_input(batch["sim"]["image"]), to_gan_input(batch["real"]["image"])
    with autocast(device, cfg.amp):
        fake_y = nets.pool_y.query(fakes["gx"])
        loss_dy = discriminator_loss([o.float() for o in nets.D_Y(y)], [o.float() for o in nets.D_Y(fake_y)], cfg.adversarial)
        loss = loss_dy
        scalars = {"loss/d_y": loss_dy.detach()}
        if nets.D_X is not None:
            fake_x = nets.pool_x.query(fakes["fy"])  # type: ignore[union-attr]
            loss_dx = discriminator_loss([o.float() for o in nets.D_X(x)], [o.float() for o in nets.D_X(fake_x)], cfg.adversarial)
            loss = loss + loss_dx
            scalars["loss/d_x"] = loss_dx.detach()
    nets.opt_d.zero_grad(set_to_none=True)
    loss.backward()
    nets.opt_d.step()
    return scalars


def update_targets(nets: Nets, cfg: RLCycleGANConfig, step: int) -> None:
    """Polyak averages every step, lagged copies every lagged_period steps (``step`` counts completed steps)."""
    for q, polyak, lagged in ((nets.q_sim, nets.q_sim_polyak, nets.q_sim_lagged), (nets.q_real, nets.q_real_polyak, nets.q_real_lagged)):
        if q is not None:
            polyak_update(polyak, q, cfg.polyak)
            lagged_update(lagged, q, step, cfg.lagged_period)


def train_step(nets: Nets, batch: dict, cfg: RLCycleGANConfig, step: int, cem_gen: torch.Generator, device: torch.device) -> dict:
    """One RL-CycleGAN step (generator, Q, discriminator, targets); returns the detached scalars.

    Raises TrainingDiverged when a loss is not finite.
    """
    if nets.opt_q is not None:
        nets.opt_q.zero_grad(set_to_none=True)  # the generator step may add RL-scene gradients; q_step adds TD ones
    scalars, fakes = generator_step(nets, batch, cfg, step, device, cem_gen)
    if nets.q_sim is not None:
        scalars.update(q_step(nets, batch, fakes, cfg, cem_gen, device))
    scalars.update(discriminator_step(nets, batch, fakes, cfg, device))
    update_targets(nets, cfg, step + 1)
    losses = [v for k, v in scalars.items() if k.startswith("loss/")]
    if not bool(torch.isfinite(torch.stack([v.float() for v in losses])).all()):
        bad = sorted(k for k in scalars if k.startswith("loss/") and not math.isfinite(float(scalars[k])))
        raise TrainingDiverged(f"non-finite loss(es) {bad} at step {step}")
    return scalars


# ===================================================================================== visuals, policy, checkpoints
@torch.no_grad()
def save_visuals(nets: Nets, vis: dict, path: Path, title: str):
    """PNG grid: rows x, G(x), F(G(x)), y, F(y), G(F(y)) for up to 4 examples, each captioned with its Q-value.

    Returns the matplotlib figure (closed by the caller, e.g. by TensorBoard's add_figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modules = [m for m in (nets.G, nets.F, nets.q_sim, nets.q_real) if m is not None]
    training = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        x, y = to_gan_input(vis["sim"]["image"]), to_gan_input(vis["real"]["image"])
        gx = nets.G(x).float()
        rows = [("x (sim)\nQ_sim", x, "q_x"), ("G(x)\nQ_real", gx, "q_x1")]
        qv: dict = {}
        if nets.F is not None:
            fgx, fy = nets.F(gx).float(), nets.F(y).float()
            gfy = nets.G(fy).float()
            rows += [("F(G(x))\nQ_sim", fgx, "q_x2"), ("y (real)\nQ_real", y, "q_y"), ("F(y)\nQ_sim", fy, "q_y1"),
                     ("G(F(y))\nQ_real", gfy, "q_y2")]
            if nets.q_sim is not None:
                qv = {k: v.cpu().numpy() for k, v in rl_scene_q_values(nets, vis, x, gx, fgx, y, fy, gfy)[0].items()}
        else:
            rows += [("y (real)", y, None)]
    finally:
        for m, t in zip(modules, training):
            m.train(t)
    n = len(x)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.6 * n + 0.8, 1.7 * len(rows)), squeeze=False)
    for r, (label, imgs, qkey) in enumerate(rows):
        pix = from_gan_output(imgs).cpu().numpy()
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(pix[c])
            ax.set_xticks([])
            ax.set_yticks([])
            if qkey in qv:
                ax.set_title(f"Q = {qv[qkey][c]:.3f}", fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    if not qv and nets.F is not None:
        for r in range(len(rows)):
            axes[r][0].set_ylabel(rows[r][0].split("\n")[0], fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    tmp.replace(path)
    return fig


def eval_env_kwargs(cfg: RLCycleGANConfig, image_size: int) -> dict:
    try:
        extra = json.loads(cfg.env_kwargs or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"--env-kwargs is not valid JSON: {e}") from e
    if cfg.env.startswith("rlcyclegan/"):
        return {"domain": cfg.eval_domain, "objects": cfg.eval_objects, "image_size": image_size, **extra}
    return extra


def probe_aux(cfg: RLCycleGANConfig, image_size: int) -> AuxSpec:
    """The env's auxiliary-target hook (a clear error when it has none)."""
    import gymnasium as gym

    import rlcyclegan.envs  # noqa: F401

    env = gym.make(cfg.env, **eval_env_kwargs(cfg, image_size))
    try:
        return aux_spec(env, f"aux_weight={cfg.aux_weight}")
    finally:
        env.close()


def probe_env(cfg: RLCycleGANConfig, image_shape, state_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Action bounds of the evaluation env, checked against the data (1-D Box actions, same image and state sizes)."""
    import gymnasium as gym

    import rlcyclegan.envs  # noqa: F401

    env = gym.make(cfg.env, **eval_env_kwargs(cfg, image_shape[0]))
    try:
        if not isinstance(env.action_space, gym.spaces.Box) or len(env.action_space.shape or ()) != 1:
            raise ValueError(f"{cfg.env}: CEM needs a 1-D Box action space, got {env.action_space}")
        space = env.observation_space
        img = space["image"] if isinstance(space, gym.spaces.Dict) else space
        sdim = int(space["state"].shape[0]) if isinstance(space, gym.spaces.Dict) and "state" in space.spaces else 0
        if tuple(img.shape) != tuple(image_shape) or sdim != state_dim:
            raise ValueError(f"{cfg.env}: renders {tuple(img.shape)} images with state size {sdim}, the data has "
                             f"{tuple(image_shape)} and {state_dim} (set --env-kwargs)")
        return env.action_space.low.copy(), env.action_space.high.copy()
    finally:
        env.close()


def policy_entry(q: GraspQNet, bounds: tuple, cfg: RLCycleGANConfig, image_size: int) -> dict:
    """A Q-network in the format :meth:`Policy.load` reads."""
    return {"qnet_config": q.cfg.to_dict(), "qnet": q.state_dict(), "action_low": bounds[0], "action_high": bounds[1],
            "cem": {"cem_iterations": cfg.cem_iterations, "cem_samples": cfg.cem_samples, "cem_elites": cfg.cem_elites},
            "env": {"id": cfg.env, "kwargs": eval_env_kwargs(cfg, image_size)}}


def config_diff(saved: dict, cfg: RLCycleGANConfig) -> dict:
    """Fields (outside RESUMABLE_CHANGES) whose values differ: name -> (checkpoint, config). A field the saved
    config lacks (added to the config after that run started) counts as having its default."""
    now = to_jsonable(cfg)
    defaults = to_jsonable(RLCycleGANConfig())
    saved = {**{k: defaults[k] for k in now if k not in saved and k in defaults}, **saved}
    return {k: (saved.get(k), v) for k, v in now.items() if k not in RESUMABLE_CHANGES and saved.get(k) != v}


def load_generator(ckpt_or_run: str | Path, direction: Literal["sim2real", "real2sim"] = "sim2real", device: str | torch.device = "cpu") -> nn.Module:
    """G (sim -> real) or F (real -> sim) of a checkpoint file or run folder, in eval mode (see
    :func:`rlcyclegan.rl.translate.load_generator`)."""
    return _load_generator(ckpt_or_run, direction, device)


# ===================================================================================== on-policy collection
def collect_env_kwargs(cfg: RLCycleGANConfig, image_size: int) -> dict:
    """Constructor arguments of the collection envs (sim look, training objects for rlcyclegan envs)."""
    return eval_env_kwargs(replace(cfg, eval_domain=cfg.collect_domain, eval_objects=cfg.collect_objects), image_size)


def collect_episodes(envs: list, q: GraspQNet, generator: nn.Module | None, bounds: tuple, cfg: RLCycleGANConfig,
                     seeds: list[int], first_index: int, rng_seed: int, device: torch.device) -> list[Episode]:
    """One collection round: ``q`` (a copy holding the acting weights) plays one episode per seed in ``envs``
    by CEM with epsilon-random actions and Gaussian noise; with a ``generator`` (a copy of G) it sees G(x),
    the translated frames, and acts as Q_real would on the robot. The episodes hold the envs' own (sim) frames.
    Depends only on the weights, seeds and rng_seed, so a resumed run recollects a lost round identically."""
    policy = Policy(q, bounds[0], bounds[1], device=device, seed=rng_seed,
                    cem_iterations=cfg.cem_iterations, cem_samples=cfg.cem_samples, cem_elites=cfg.cem_elites)
    translate = ImageTranslator(generator, device) if generator is not None else None

    def act(obs: dict) -> np.ndarray:
        seen = {**obs, "image": translate(obs["image"])} if translate is not None else obs
        return policy.act(seen, epsilon=cfg.epsilon, noise=cfg.noise)

    return run_episodes(envs, act, seeds, first_index)


# ===================================================================================== training
def train_rlcyclegan(cfg: RLCycleGANConfig, resume: Path | None = None) -> Path:
    """Train (or resume) an RL-CycleGAN / CycleGAN / GAN run; returns the run folder."""
    import gymnasium as gym
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    cfg = replace(cfg, out=Path(cfg.out), sim_data=tuple(Path(p) for p in cfg.sim_data), real_data=tuple(Path(p) for p in cfg.real_data),
                  init_q=None if cfg.init_q is None else Path(cfg.init_q),
                  init_from=None if cfg.init_from is None else Path(cfg.init_from))  # strings are fine from Python
    check_config(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    use_bf16(device, cfg.amp)  # a bad --amp fails here

    # ---- run folder (a resumed run must have the same config, except RESUMABLE_CHANGES)
    if resume is not None:
        run = Path(resume)
        claim_run(run)
        ckpt = load_checkpoint(run, kind="rlcyclegan")
        diff = config_diff(ckpt["config"], cfg)
        if diff:
            raise CheckpointError(f"{run}: the checkpoint was trained with another config (field: (checkpoint, config)): {diff}")
        write_json_atomic(run / "config.json", cfg)
    else:
        run = cfg.out / (cfg.name or f"{cfg.method}-{time.strftime('%Y%m%d-%H%M%S')}")
        claim_run(run)
        if (run / "checkpoints" / "latest.pt").exists():
            raise FileExistsError(f"{run} already holds a run; resume it with --resume {run}")
        run.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run / "config.json", cfg)
        ckpt = None
    clock = Stopwatch(ckpt["elapsed"] if ckpt else 0.0)

    # ---- data and networks
    use_aux = cfg.aux_weight > 0 and cfg.method == "rlcyclegan"
    sim = episode_buffer(list(cfg.sim_data), privileged=use_aux)
    image_shape, state_dim, action_dim = sim.image_shape, sim.state_dim, sim.action_dim
    aux = probe_aux(cfg, image_shape[0]) if use_aux else None
    if aux is not None and aux.privileged_dim != sim.privileged_dim:
        raise ValueError(f"{[str(p) for p in cfg.sim_data]}: privileged states of size {sim.privileged_dim}, {cfg.env} gives {aux.privileged_dim}")
    real = load_real(list(cfg.real_data), image_shape, state_dim, action_dim)
    if cfg.online_real and real.buffer is None:
        raise ValueError(f"online_real: the on-policy real episodes join the real transitions, so --real-data must be episode "
                         f"folders or shards (with actions and rewards), not images only: {[str(p) for p in cfg.real_data]}")
    rl = cfg.method == "rlcyclegan"
    bounds = probe_env(cfg, image_shape, state_dim) if rl else None
    nets = build_nets(cfg, image_shape[0], state_dim, action_dim, device, bounds, aux)
    if cfg.init_from is not None and ckpt is None:
        load_init_from(nets, cfg, device)
    sample_rng = np.random.default_rng(cfg.seed)
    cem_gen = torch.Generator(device).manual_seed(cfg.seed + 1)
    vis_rows = np.arange(min(4, len(sim), cfg.batch_size))
    vis = {"sim": {k: torch.as_tensor(getattr(sim, k)[vis_rows]).to(device) for k in ("image", "state", "action")},
           "real": ({k: torch.as_tensor(getattr(real.buffer, k)[vis_rows % len(real.buffer)]).to(device) for k in ("image", "state", "action")}
                    if real.buffer is not None else {"image": torch.as_tensor(real.images[vis_rows % len(real.images)]).to(device)})}  # type: ignore[index]

    do_eval = rl and cfg.eval_every > 0
    eval_envs = [gym.make(cfg.env, **eval_env_kwargs(cfg, image_shape[0])) for _ in range(cfg.eval_envs)] if do_eval else []
    eval_policy = (Policy(GraspQNet(nets.q_real.cfg), bounds[0], bounds[1], device=device, seed=cfg.seed + 2,  # type: ignore[union-attr,index]
                          cem_iterations=cfg.cem_iterations, cem_samples=cfg.cem_samples, cem_elites=cfg.cem_elites) if do_eval else None)
    # on-policy collection: a buffer, envs, and copies of the acting Q (and G) refreshed every round
    # (online_real: real episodes, collected by Q_real on the images as they come, joining the real transitions)
    keep_privileged = use_aux and not cfg.online_real  # real data never carries the simulator's privileged state
    online = (ReplayBuffer(cfg.online_capacity, image_shape, state_dim, action_dim, sim.privileged_dim if keep_privileged else 0)
              if cfg.online else None)
    collect_envs = [gym.make(cfg.env, **collect_env_kwargs(cfg, image_shape[0])) for _ in range(cfg.collect_envs)] if cfg.online else []
    actor_q = GraspQNet(nets.q_real.cfg).to(device) if cfg.online else None  # type: ignore[union-attr]
    actor_g = make_generator(nets.G.cfg).to(device) if cfg.online and cfg.collect_policy == "real" and not cfg.online_real else None
    online_dir = run / "online"
    step, rounds, online_episodes = 0, 0, 0
    metrics = MetricsLog(run / "metrics.jsonl")
    if ckpt is not None:  # after every construction, so nothing draws from the restored RNGs before the loop
        nets.load_state_dicts(ckpt["state"], device)
        restore_rng_state(ckpt["rng"], sample_rng, cem_gen)
        step, rounds, online_episodes = ckpt["step"], ckpt.get("rounds", 0), ckpt.get("online_episodes", 0)
        metrics.truncate_after(step)
        for path in list_shards(online_dir) if online is not None and online_dir.exists() else []:
            if parse_shard_name(path.name) < online_episodes:
                online.add_episodes(without_privileged(read_shard(path).episodes(), keep_privileged))  # type: ignore[union-attr]
            else:
                path.unlink()  # collected after the checkpoint: recollected identically below
        print(f"resumed {run} at step {step}" + (f" ({rounds} on-policy rounds, {online_episodes} episodes)" if cfg.online else ""))
    elif online_dir.exists():
        shutil.rmtree(online_dir)
    writer = SummaryWriter(str(run / "tb"), purge_step=step if ckpt else None)

    def real_policy_net() -> GraspQNet:
        return nets.q_real_polyak if cfg.policy_weights == "polyak" else nets.q_real  # type: ignore[return-value]

    def sim_policy_net() -> GraspQNet:  # the same choice for Q_sim (`eval --q-network sim`, Q-consistency)
        return nets.q_sim_polyak if cfg.policy_weights == "polyak" else nets.q_sim  # type: ignore[return-value]

    def checkpoint() -> None:
        payload = {
            "kind": "rlcyclegan",
            "config": to_jsonable(cfg),
            "state": nets.state_dicts(),
            "generator": {"direction": "sim2real", "config": nets.G.cfg.to_dict(), "weights": nets.G.state_dict()},
            "generator_real2sim": ({"direction": "real2sim", "config": nets.F.cfg.to_dict(), "weights": nets.F.state_dict()}
                                   if nets.F is not None else None),
            "rng": rng_state(sample_rng, cem_gen),
            "step": step,
            "rounds": rounds,
            "online_episodes": online_episodes,
            "elapsed": clock(),
        }
        if rl:
            payload["policy"] = policy_entry(real_policy_net(), bounds, cfg, image_shape[0])
            payload["policy_sim"] = policy_entry(sim_policy_net(), bounds, cfg, image_shape[0])
        path = save_checkpoint(run / "checkpoints" / f"step_{step:08d}.pt", payload)
        shutil.copyfile(path, run / "checkpoints" / "latest.pt.tmp")
        (run / "checkpoints" / "latest.pt.tmp").replace(run / "checkpoints" / "latest.pt")
        numbered = sorted((run / "checkpoints").glob("step_*.pt"))
        for old in numbered[: max(0, len(numbered) - cfg.keep_checkpoints)]:
            old.unlink()
        fig = save_visuals(nets, vis, run / "visuals" / f"step_{step:08d}.png", f"{cfg.method} step {step}")
        writer.add_figure("visuals", fig, step)  # closes the figure

    def run_eval() -> dict:
        eval_policy.qnet.load_state_dict(real_policy_net().state_dict())  # type: ignore[union-attr]
        eval_policy.generator.manual_seed(cfg.seed + 2)  # type: ignore[union-attr]
        res = evaluate(eval_policy, eval_envs, cfg.eval_episodes)  # type: ignore[arg-type]
        rec = {"step": step, "wall_minutes": clock() / 60, "domain": cfg.eval_domain, "objects": cfg.eval_objects, **res}
        metrics.append(rec)
        writer.add_scalar("eval/success", res["success"], step)
        writer.add_scalar("eval/mean_length", res["mean_length"], step)
        return rec

    def collect_round() -> None:
        """QT-Opt's on-policy collection (RLCycleGANConfig.online): the current online Q_real on G(x) (or Q_sim
        on x) plays a round of sim episodes; they enter the on-policy buffer and RUN/online."""
        nonlocal rounds, online_episodes
        actor_q.load_state_dict((nets.q_real if cfg.collect_policy == "real" else nets.q_sim).state_dict())  # type: ignore[union-attr]
        if actor_g is not None:
            actor_g.load_state_dict(nets.G.state_dict())
        first = online_episodes
        seeds = [ONLINE_SEED + cfg.seed * 10_000_000 + first + i for i in range(cfg.collect_episodes)]
        eps = collect_episodes(collect_envs, actor_q, actor_g, bounds, cfg, seeds, first, cfg.seed * 1_000_003 + rounds, device)  # type: ignore[arg-type]
        write_shard(online_dir / shard_name(first), eps, env_id=cfg.env, domain=cfg.collect_domain, objects=cfg.collect_objects,
                    policy=f"rlcyclegan-q_{cfg.collect_policy}", env_kwargs=collect_env_kwargs(cfg, image_shape[0]),
                    extra_attrs={"round": rounds, "step": step})
        online.add_episodes(without_privileged(eps, keep_privileged))  # type: ignore[union-attr]
        rounds += 1
        online_episodes += len(eps)
        writer.add_scalar("collect/success", float(np.mean([e.success for e in eps])), step)
        writer.add_scalar("collect/online_transitions", len(online), step)  # type: ignore[arg-type]

    # ---- the loop
    bar = tqdm(total=cfg.steps, initial=step, desc=f"{cfg.method} {run.name}", unit="step", disable=not cfg.progress, dynamic_ncols=True)
    last_rec: dict = {}
    t_log, s_log = time.monotonic(), step
    stop = StopOnSignal().install()  # Ctrl-C / SIGTERM: checkpoint this step, then raise TrainingInterrupted
    try:
        while step < cfg.steps:
            if online is not None and step >= cfg.online_start and (step - cfg.online_start) % cfg.collect_every == 0 \
                    and rounds <= (step - cfg.online_start) // cfg.collect_every:
                collect_round()
            frac = online_mix(cfg, len(online)) if online is not None else 0.0  # type: ignore[arg-type]
            batch = sample_batch(sim, real, cfg.batch_size, sample_rng, device, cfg.done_fraction, q_extra(cfg), online, frac,
                                 online_real=cfg.online_real)
            try:
                scalars = train_step(nets, batch, cfg, step, cem_gen, device)
            except TrainingDiverged as e:
                raise TrainingDiverged(f"{e}; the last good checkpoint is {run / 'checkpoints' / 'latest.pt'}") from None
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0:
                now = time.monotonic()
                scalars = {k: float(v) for k, v in scalars.items()}
                scalars.update({"perf/steps_per_second": (step - s_log) / max(now - t_log, 1e-9), "perf/wall_minutes": clock() / 60})
                if online is not None:
                    scalars["data/online_fraction"] = frac
                for k, v in scalars.items():
                    writer.add_scalar(k, v, step)
                t_log, s_log = now, step
                bar.set_postfix(progress_postfix(scalars), refresh=False)
            out_of_time = cfg.max_minutes > 0 and clock() > cfg.max_minutes * 60
            last = step == cfg.steps or out_of_time
            if do_eval and (step % cfg.eval_every == 0 or last):
                last_rec = run_eval()
            if step % cfg.checkpoint_every == 0 or last or stop.requested:
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
        for e in eval_envs + collect_envs:
            e.close()
        release_run(run)
    if last_rec:
        print(f"step {step}: Q_real success {last_rec['success']:.3f} [{last_rec['success_low']:.3f}, {last_rec['success_high']:.3f}] "
              f"on {last_rec['eval_episodes']} {cfg.eval_domain}/{cfg.eval_objects} episodes, {clock() / 60:.1f} min")
    print(f"run folder: {run}")
    return run
