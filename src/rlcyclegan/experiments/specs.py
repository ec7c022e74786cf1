"""The paper's experiments as data: per-preset recipes, methods (how each trains) and experiments.

Everything a result depends on is decided here, in one place:

- :data:`RECIPES`: per preset (tiny, demo, cpu, gpu), the QT-Opt and RL-CycleGAN overrides over the
  training presets, the evaluation size and the real-data / on-policy budgets. Tune these.
- :data:`METHODS`: method name -> :class:`Method`, whose ``build`` turns a :class:`Ctx` (preset,
  seed, budget, experiment folder) into the training stages (configs) of one run.
- :data:`EXPERIMENTS`: experiment name -> its methods and evaluations.

The runner (:mod:`rlcyclegan.experiments.runner`) only executes what these produce.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

from rlcyclegan.train import qtopt as qt
from rlcyclegan.train import rlcyclegan as rc

GRASP = "rlcyclegan/Grasp-v0"
MULTIBIN = "rlcyclegan/MultiBinGrasp-v0"

DATA_SEEDS = {"sim": 100_000_000, "randomized": 200_000_000, "real": 300_000_000}
"""Episode i of a domain's scripted pool is reset with this seed + i (random-policy pools: + RANDOM_SEED_OFFSET).
Sim and real pools use different seeds, so their states are unpaired, as a real robot's data would be."""
RANDOM_SEED_OFFSET = 50_000_000


# ===================================================================================== recipes
@dataclass(frozen=True)
class Recipe:
    """What `--preset` selects for every experiment (one entry of RECIPES)."""

    qtopt_preset: str
    """Preset of `train qtopt` (rlcyclegan.train.qtopt.PRESETS) the QT-Opt stages start from."""
    qtopt: dict
    """QT-Opt config fields set over that preset. `offline_episodes` / `offline_random_episodes` size the shared
    scripted / random-policy episode pools of each domain (collected once into OUT/data)."""
    rlcyclegan_preset: str
    """Preset of `train rlcyclegan` (rlcyclegan.train.rlcyclegan.PRESETS) the GAN / CycleGAN / RL-CycleGAN stages start from."""
    rlcyclegan: dict
    """RL-CycleGAN config fields set over that preset (env_kwargs always follow the QT-Opt recipe's), for every
    `train rlcyclegan` stage: the GAN / CycleGAN translators and RL-CycleGAN alike."""
    eval_episodes: int
    """Greedy evaluation episodes per run and evaluation (unseen objects); `--episodes` overrides."""
    eval_envs: int
    """Envs stepped in lockstep during evaluation."""
    gan_real_episodes: int
    """Real scripted episodes whose images (only) the generators of zero-shot / multibin learn the real look from."""
    real_budget_fractions: tuple[float, ...]
    """real-data experiment: real-episode budgets as fractions of the Oracle's real off-policy data
    (offline_episodes + offline_random_episodes). 0.01, 0.05 and 1.0 match the paper's 5k, 28k and 580k of 580k."""
    onpolicy_budgets: tuple[int, ...]
    """finetune experiment: on-policy real episodes collected while fine-tuning."""
    finetune_real_episodes: int
    """finetune experiment: real off-policy episodes (scripted + random, as the pools) replayed besides the
    on-policy ones (the paper: 5k off-policy + 10k on-policy); 0: on-policy data only."""
    finetune_sim: bool = False
    """finetune experiment: a fine-tuning stage that starts from a run also replays that run's sim pool besides
    the real episodes, through the run's generator when it has one (RL-CycleGAN: G(sim), the images its Q_real
    learned from; Sim-only: sim as it is), so the start's training data stays in the off-policy half of each
    batch. False: real episodes only (off-policy and on-policy). Scratch never replays sim."""
    collect_workers: int = 2
    """Processes collecting the shared episode pools."""
    eval_cem: tuple[int, int, int] | None = None
    """(iterations, samples, elites) of the CEM every evaluated policy acts with, whatever it was trained with
    (None: each checkpoint's own, i.e. its training CEM)."""
    acting_both: bool = False
    """Also evaluate every RL-CycleGAN run (a policy stage with Q_real, Q_sim and F) acting on the mean logit of
    Q_real(y, a) and Q_sim(F(y), a) (`rlcyclegan eval --q-network both`), besides Q_real alone (the paper's policy,
    on which the targets are checked). Its records carry ``acting: "both"`` and the variant tag ``acting=both``, so
    the report lists them as a variant of the method; a rerun of the experiment adds them to finished runs."""
    translation_episodes: int = 20
    """Scripted unseen-object episodes whose paired sim/real renders score the generator of every run that has one
    (`rlcyclegan eval-translation`: PSNR/SSIM of G(x) against the real render over the image and over object
    pixels, the same for F(y), object-segmentation IoU, Q-consistency, own-feature FID/KID); the records carry it.
    0: not scored."""
    segmenter_steps: int = 1000
    """Training steps of the object segmenter behind the translation records' object IoU (`eval-translation
    --segmenter-steps`)."""
    camera_augment: dict = field(default_factory=lambda: dict(augment_noise=0.06, augment_blur=1.0))
    """real-data experiment, rl-cyclegan-real-camera: QT-Opt fields of the stage that trains an RL-CycleGAN + Real run's
    Q_real on (its G fixed) with camera-like distortions of every input; the QT-Opt recipe gives the rest."""
    rl_cyclegan: dict = field(default_factory=dict)
    """RL-CycleGAN config fields set over `rlcyclegan` for the RL-CycleGAN methods' own stage only (rl-cyclegan,
    rl-cyclegan-real), not for the GAN / CycleGAN translators, e.g. on-policy collection and Q-input shifts."""


CPU_AUX_WEIGHT = 10.0
"""Weight of the auxiliary loss on privileged sim state in the cpu recipes (QT-Opt and RL-CycleGAN alike)."""
CPU_QTOPT_BEST = dict(
    env_kwargs='{"state": "pose"}', qnet_coords=True, qnet_norm="batch", augment_shift=2, done_fraction=0.25,
    offline_episodes=10_000, aux_weight=CPU_AUX_WEIGHT, policy_weights="polyak", steps=40_000,
)
"""The QT-Opt recipe on 2 CPU cores (docs/qtopt.md): pose state, CoordConv, batch norm, 2-pixel shifts, a
quarter of each batch among grasp attempts, 10k scripted seeding episodes, the auxiliary distance-after-move
loss on privileged sim state (never on real-domain data, see `_oracle`), the Polyak-averaged weights as the
policy (+5 points over the online ones at 16k and 18k steps), and 40k steps (about 43 minutes with bf16 on
an AMX CPU; the preset's 58-minute limit stops it first elsewhere)."""
CPU_RL_CYCLEGAN_BEST = dict(online=True, augment_shift=2, steps=17_000, max_minutes=100.0)
"""The RL-CycleGAN recipe on 2 CPU cores (docs/rlcyclegan.md, zero-shot table): on-policy sim episodes collected
by Q_real acting on G(x) (as QT-Opt collects its own; the paper does not say how its sim data was collected), the
QT-Opt recipe's 2-pixel shifts of every Q input, and 17k joint steps (about 84 minutes, CycleGAN's translator +
QT-Opt time). Chosen on seed 0 over the paper protocol's offline-only 10k steps: 67.4% vs 53.2% in `real`;
online alone 57.6% (10k: 62.8% with the shifts). Its variants' folders keep those runs."""
CPU_EVAL_CEM = (3, 256, 12)
"""The acting CEM of the cpu recipe's evaluations: 3 iterations of 256 samples, 12 elites (training keeps
QT-Opt's 2 x 64, 6 elites). Chosen on validation seeds apart from the evaluation seeds: on the 40k-step
Sim-only policy, 2x64 gave 79.4% and 3x256 86.6% (500 episodes each); 4.3 ms per action at batch 1."""

RECIPES: dict[str, Recipe] = {
    # tests: 32 px, a dozen steps, a handful of episodes (seconds per run)
    "tiny": Recipe(
        qtopt_preset="tiny",
        qtopt=dict(env_kwargs='{"state": "pose"}', aux_weight=1.0, offline_episodes=8, offline_random_episodes=4, steps=12, online_start=4, collect_every=4, collect_episodes=2,
                   envs_per_worker=2, eval_every=0, eval_episodes=2, eval_envs=2, checkpoint_every=6, lagged_period=5, online_ramp=10),
        rlcyclegan_preset="tiny",
        rlcyclegan=dict(steps=6, checkpoint_every=3),
        eval_episodes=4, eval_envs=4, gan_real_episodes=8, real_budget_fractions=(0.5, 1.0), onpolicy_budgets=(4,),
        finetune_real_episodes=4, collect_workers=1, eval_cem=(3, 16, 4), translation_episodes=2, segmenter_steps=20, acting_both=True,
    ),
    # `rlcyclegan demo`: the newcomer's CPU job (about 30 minutes on 2 cores, all stages included)
    "demo": Recipe(
        qtopt_preset="demo",
        qtopt=dict(env_kwargs='{"state": "pose"}', qnet_coords=True, qnet_norm="batch", augment_shift=2, done_fraction=0.25),
        rlcyclegan_preset="demo",
        rlcyclegan=dict(eval_every=0, max_minutes=12.0),
        eval_episodes=100, eval_envs=25, gan_real_episodes=200, real_budget_fractions=(0.1, 1.0), onpolicy_budgets=(50,),
        finetune_real_episodes=50, translation_episodes=10,
    ),
    # 2 CPU cores, one run about an hour
    "cpu": Recipe(
        qtopt_preset="cpu",
        qtopt=dict(CPU_QTOPT_BEST),
        rlcyclegan_preset="cpu",
        rlcyclegan=dict(eval_every=0),
        eval_episodes=500, eval_envs=25, gan_real_episodes=3000, real_budget_fractions=(0.01, 0.05, 0.2, 1.0),
        onpolicy_budgets=(250, 1000), finetune_real_episodes=500, eval_cem=CPU_EVAL_CEM,
        translation_episodes=50, rl_cyclegan=dict(CPU_RL_CYCLEGAN_BEST), acting_both=True,
        camera_augment=dict(augment_noise=0.06, augment_blur=1.0, steps=12_000, eval_every=0),
    ),
    # one GPU
    "gpu": Recipe(
        qtopt_preset="gpu",
        qtopt=dict(env_kwargs='{"state": "pose"}', qnet_coords=True, qnet_norm="batch", augment_shift=2, done_fraction=0.25),
        rlcyclegan_preset="gpu",
        rlcyclegan=dict(eval_every=0),
        eval_episodes=1000, eval_envs=50, gan_real_episodes=20_000, real_budget_fractions=(0.01, 0.05, 0.2, 1.0),
        onpolicy_budgets=(1000, 5000, 10_000), finetune_real_episodes=2500, collect_workers=8,
        translation_episodes=100, acting_both=True,
        rl_cyclegan=dict(online=True, augment_shift=2),  # the cpu recipe's choice (not yet measured on a GPU); the preset's own steps
    ),
}


# ===================================================================================== data
@dataclass(frozen=True)
class DataSpec:
    """A dataset in OUT/data: a collected pool, the first episodes of one (a subset), or a pool's images (.npz)."""

    name: str
    """File or folder name under OUT/data."""
    kind: Literal["collect", "subset", "images"]
    """collect: `rlcyclegan collect` into the folder; subset: the first `episodes` episodes of `source`; images:
    the observation images of the first `episodes` episodes of `source`, as an .npz (no actions: images only)."""
    episodes: int
    """Episodes collected, or taken from the source."""
    env: str = GRASP
    """Env id (collect)."""
    env_kwargs: tuple[tuple[str, object], ...] = ()
    """Env arguments as sorted (key, value) pairs (collect)."""
    policy: str = "scripted"
    """Exploration policy (collect)."""
    seed: int = 0
    """Episode i is reset with seed + i (collect)."""
    source: str = ""
    """Name of the pool a subset or image array is taken from."""


# ===================================================================================== runs
@dataclass
class Stage:
    """One training run inside a run folder: RUN/<name>, trained by `train qtopt` or `train rlcyclegan`."""

    name: str
    kind: Literal["qtopt", "rlcyclegan"]
    config: qt.QTOptConfig | rc.RLCycleGANConfig


@dataclass(frozen=True)
class Evaluation:
    """Where a run's policy is evaluated: greedy episodes in `domain` on `objects` of `env`."""

    name: str
    env: str
    domain: str = "real"
    objects: str = "test"


@dataclass
class Ctx:
    """What a method's recipe sees: the experiment, preset, seed and budget of one run, and the data registry."""

    experiment: str
    preset: str
    recipe: Recipe
    out: Path
    env: str
    seed: int
    method: str = ""
    budget: int | None = None
    variant: str = ""
    """Tag of the `--set` overrides this run trains with ('' = the recipe as it is), see :func:`run_id`."""
    varied: frozenset[str] = frozenset()
    """Methods of the experiment that run with the variant (their folders carry its tag)."""
    datasets: dict[str, DataSpec] = field(default_factory=dict)
    """Shared by all runs of an experiment: every dataset a recipe asks for is registered here and made before training."""

    # ---- configs
    def qtopt(self, stage: str, **fields) -> qt.QTOptConfig:
        """QT-Opt config of ``stage`` in this run's folder: the recipe's preset and overrides, then ``fields``."""
        over = {**self.recipe.qtopt, "env": self.env, "seed": self.seed, "out": self.run_dir(), "name": stage, **fields}
        return qt.preset_config(self.recipe.qtopt_preset, **over)

    def rlcyclegan(self, stage: str, **fields) -> rc.RLCycleGANConfig:
        """RL-CycleGAN config of ``stage`` in this run's folder (same env and env_kwargs as the QT-Opt recipe)."""
        over = {**self.recipe.rlcyclegan, "env": self.env, "env_kwargs": self.env_kwargs_json(), "seed": self.seed,
                "out": self.run_dir(), "name": stage, **fields}
        return rc.preset_config(self.recipe.rlcyclegan_preset, **over)

    def base_qtopt(self) -> qt.QTOptConfig:
        return qt.preset_config(self.recipe.qtopt_preset, **self.recipe.qtopt)

    def env_kwargs_json(self) -> str:
        return self.base_qtopt().env_kwargs

    def image_size(self) -> int:
        return self.base_qtopt().image_size

    def pool_sizes(self) -> tuple[int, int]:
        """(scripted, random-policy) episodes of each domain's off-policy pool (the QT-Opt recipe's offline data)."""
        base = self.base_qtopt()
        return base.offline_episodes, base.offline_random_episodes

    # ---- folders
    def run_dir(self, method: str | None = None) -> Path:
        """This run's folder, or the folder of ``method``'s run of the same seed (and of the same budget when
        ``method`` takes budgets of the same kind as this run's method, see :func:`dependency_budget`)."""
        if method is None:
            return self.out / "runs" / run_id(self.method, self.seed, self.budget, self.variant)
        budget = dependency_budget(self.method, method, self.budget)
        return self.out / "runs" / run_id(method, self.seed, budget, variant=self.variant if method in self.varied else "")

    # ---- data
    def _slug(self) -> str:
        return self.env.split("/")[-1].split("-")[0].lower()

    def _pool(self, domain: str, policy: str, episodes: int) -> DataSpec:
        kwargs = {"domain": domain, "objects": "train", "image_size": self.image_size(), **json.loads(self.env_kwargs_json() or "{}")}
        seed = DATA_SEEDS[domain] + (RANDOM_SEED_OFFSET if policy == "random" else 0)
        spec = DataSpec(f"{self._slug()}-{domain}-{policy}-{episodes}", "collect", episodes, self.env,
                        tuple(sorted(kwargs.items())), policy, seed)
        return self._register(spec)

    def _register(self, spec: DataSpec) -> DataSpec:
        old = self.datasets.setdefault(spec.name, spec)
        if old != spec:
            raise ValueError(f"two recipes want different data under the name {spec.name!r}: {old} vs {spec}")
        return spec

    def pool_size(self, domain: str, policy: str) -> int:
        scripted, random = self.pool_sizes()
        if policy == "random":
            return random
        return max(scripted, self.recipe.gan_real_episodes) if domain == "real" else scripted

    def episodes(self, domain: str, total: int | None = None) -> tuple[Path, ...]:
        """Episode folders of ``domain``: the whole off-policy pool (scripted + random), or its first ``total``
        episodes split between scripted and random in the pool's proportion."""
        scripted, random = self.pool_sizes()
        if total is None:
            want = {"scripted": scripted, "random": random}
        else:
            n_s = min(scripted, int(round(total * scripted / max(scripted + random, 1))))
            want = {"scripted": n_s, "random": min(random, total - n_s)}
        folders = []
        for policy, n in want.items():
            if n <= 0:
                continue
            pool = self._pool(domain, policy, self.pool_size(domain, policy))
            spec = pool if n == pool.episodes else self._register(DataSpec(f"{pool.name}-first{n}", "subset", n, source=pool.name))
            folders.append(self.data_path(spec))
        return tuple(folders)

    def real_images(self, episodes: int | None = None) -> Path:
        """An .npz of the images of the first ``episodes`` (default: gan_real_episodes) real scripted episodes."""
        n = episodes or self.recipe.gan_real_episodes
        pool = self._pool("real", "scripted", self.pool_size("real", "scripted"))
        return self.data_path(self._register(DataSpec(f"{self._slug()}-real-images-{n}.npz", "images", min(n, pool.episodes), source=pool.name)))

    def data_path(self, spec: DataSpec) -> Path:
        return self.out / "data" / spec.name

    def real_budget(self) -> int:
        """The budget as real episodes (real-data experiment) - set by the planner from `real_budget_fractions`."""
        assert self.budget is not None
        return self.budget


def run_id(method: str, seed: int, budget: int | None = None, variant: str = "") -> str:
    """Run folder name: METHOD-sSEED[-BUDGET][+VARIANT], e.g. rl-cyclegan-s0+lambda_rl_scene=10."""
    return f"{method}-s{seed}" + ("" if budget is None else f"-{budget}") + (f"+{variant}" if variant else "")


def dependency_budget(method: str, dep: str, budget: int | None) -> int | None:
    """The budget of the run of ``dep`` that a run of ``method`` at ``budget`` builds on: the same budget when both
    methods take budgets of one kind (a stage on top of another method's run at that budget), else none."""
    own, other = METHODS[method].budget if method in METHODS else "", METHODS[dep].budget
    return budget if own and own == other else None


# ===================================================================================== methods
@dataclass(frozen=True)
class Method:
    """How one method trains (its stages), which stage is the policy, and what it costs in real data."""

    label: str
    """Name in tables and plots (the paper's)."""
    build: Callable[[Ctx], list[Stage]]
    """The run's training stages, in order (later stages may use earlier ones' folders)."""
    policy_stage: str
    """Stage whose checkpoint is the evaluated policy (an RL-CycleGAN stage: its Q_real)."""
    generator_stage: str | None = None
    """Stage holding a sim-to-real generator (for the report's translation grids), if any."""
    needs: tuple[str, ...] = ()
    """Methods whose run of the same seed must be finished first (of the same budget when they take budgets of
    the same kind, else with none: :func:`dependency_budget`)."""
    real_offline: Callable[[Ctx], int] = lambda ctx: 0
    """Real episodes (or their images) the run learns from, on-policy excluded."""
    onpolicy_real: bool = False
    """Whether the policy stage's on-policy episodes are collected in the real domain (they count as real data)."""
    budget: Literal["", "real", "onpolicy"] = ""
    """What the experiment's budget list means for this method ('' = one run per seed, no budget)."""


def _sim_only(ctx: Ctx) -> list[Stage]:
    return [Stage("qtopt", "qtopt", ctx.qtopt("qtopt", domain="sim", data=ctx.episodes("sim")))]


def _randomized(ctx: Ctx) -> list[Stage]:
    return [Stage("qtopt", "qtopt", ctx.qtopt("qtopt", domain="randomized", eval_domain="real", data=ctx.episodes("randomized")))]


def _translated(method: str) -> Callable[[Ctx], list[Stage]]:
    """GAN / CycleGAN baselines: train the generator on sim episodes and real images, then QT-Opt on G(sim)."""

    def build(ctx: Ctx) -> list[Stage]:
        translator = ctx.rlcyclegan("translator", method=method, sim_data=ctx.episodes("sim"), real_data=(ctx.real_images(),))
        policy = ctx.qtopt("qtopt", domain="sim", data=ctx.episodes("sim"), translate_with=ctx.run_dir() / "translator")
        return [Stage("translator", "rlcyclegan", translator), Stage("qtopt", "qtopt", policy)]

    return build


def _rl_q_aux(ctx: Ctx) -> dict:
    """RL-CycleGAN's Q-networks follow the QT-Opt recipe: its auxiliary loss (their --init-q run has its
    outputs) and, when the recipe exports the Polyak-averaged weights, Q_real's Polyak average as the policy."""
    base = ctx.base_qtopt()
    out: dict = {"aux_weight": base.aux_weight} if base.aux_weight > 0 else {}
    if base.policy_weights == "polyak":
        out["policy_weights"] = "polyak"
    return out


def _rl_cyclegan(ctx: Ctx) -> list[Stage]:
    cfg = ctx.rlcyclegan("rlcyclegan", method="rlcyclegan", sim_data=ctx.episodes("sim"), real_data=(ctx.real_images(),),
                         init_q=ctx.run_dir("sim-only") / "qtopt", **_rl_q_aux(ctx), **ctx.recipe.rl_cyclegan)
    return [Stage("rlcyclegan", "rlcyclegan", cfg)]


def _oracle(ctx: Ctx) -> list[Stage]:
    # The Oracle is the upper bound: the same recipe in the target domain, including the privileged auxiliary
    # loss there (our pseudo-real env has the simulator's truth; methods that stand for real robot data never use it).
    privileged = {"aux_domains": ("sim", "randomized", "real")} if ctx.base_qtopt().aux_weight > 0 else {}
    return [Stage("qtopt", "qtopt", ctx.qtopt("qtopt", domain="real", data=ctx.episodes("real"), **privileged))]


def _real_only(ctx: Ctx) -> list[Stage]:
    return [Stage("qtopt", "qtopt", ctx.qtopt("qtopt", domain="real", online=False, data=ctx.episodes("real", ctx.real_budget())))]


def _sim_plus_real(ctx: Ctx) -> list[Stage]:
    data = ctx.episodes("sim") + ctx.episodes("real", ctx.real_budget())
    return [Stage("qtopt", "qtopt", ctx.qtopt("qtopt", domain="sim", eval_domain="real", data=data))]


def _rl_cyclegan_real(ctx: Ctx) -> list[Stage]:
    cfg = ctx.rlcyclegan("rlcyclegan", method="rlcyclegan", sim_data=ctx.episodes("sim"), real_data=ctx.episodes("real", ctx.real_budget()),
                         init_q=ctx.run_dir("sim-only") / "qtopt", **_rl_q_aux(ctx), **ctx.recipe.rl_cyclegan)
    return [Stage("rlcyclegan", "rlcyclegan", cfg)]


def _rl_cyclegan_real_camera(ctx: Ctx) -> list[Stage]:
    """Q_real of the RL-CycleGAN + Real run at the same budget, trained on by QT-Opt with that run's G fixed: the same
    sim pool through G and the same real episodes, on-policy episodes collected in sim through G, and every Q input
    blurred and noised at random (``recipe.camera_augment``), so that the real camera's blur and sensor noise stop
    telling Q_real which domain an image is from (``scripts/diagnostics/real_look_ablation.py``)."""
    start = ctx.run_dir("rl-cyclegan-real") / METHODS["rl-cyclegan-real"].policy_stage
    fields = {**ctx.recipe.camera_augment}
    cfg = ctx.qtopt("qtopt", domain="sim", eval_domain="real", data=ctx.episodes("sim") + ctx.episodes("real", ctx.real_budget()),
                    init_from=start, translate_with=start, **fields)
    return [Stage("qtopt", "qtopt", cfg)]


def finetune_steps(ctx: Ctx) -> int:
    """Training steps that collect the budget's on-policy episodes (a round at step 0, then every collect_every)."""
    base = ctx.base_qtopt()
    rounds = math.ceil((ctx.budget or 0) / base.collect_episodes)
    return max(rounds, 1) * base.collect_every


def _finetune(start: str | None) -> Callable[[Ctx], list[Stage]]:
    """QT-Opt in the real domain with the on-policy budget, from a run's policy (or from scratch)."""

    def build(ctx: Ctx) -> list[Stage]:
        n_off = ctx.recipe.finetune_real_episodes
        data = ctx.episodes("real", n_off) if n_off else ()
        init = translate = None
        if start is not None:
            init = ctx.run_dir(start) / METHODS[start].policy_stage
            if ctx.recipe.finetune_sim:
                data = ctx.episodes("sim") + data
                generator = METHODS[start].generator_stage
                translate = None if generator is None else ctx.run_dir(start) / generator
        cfg = ctx.qtopt("qtopt", domain="real", data=data, offline_episodes=0, offline_random_episodes=0, online=True,
                        online_start=0, steps=finetune_steps(ctx), init_from=init, translate_with=translate)
        return [Stage("qtopt", "qtopt", cfg)]

    return build


def _finetune_joint(ctx: Ctx) -> list[Stage]:
    """RL-CycleGAN's joint training continued on the robot: every network, optimizer and pool from the RL-CycleGAN
    run (--init-from), on-policy episodes collected in `real` by Q_real on the images as they come, joining the
    ``finetune_real_episodes`` real off-policy episodes as the real transitions (Q_real's TD on real data, the y
    side of the GAN and RL-scene losses) while the sim side and the RL-scene loss go on as before."""
    n_off = ctx.recipe.finetune_real_episodes
    if n_off < 1:
        raise ValueError("rl-cyclegan-joint-ft needs recipe.finetune_real_episodes >= 1 (its real transitions before the first round)")
    base = ctx.base_qtopt()  # the same collection schedule as the QT-Opt fine-tuning methods, so finetune_steps holds
    fields = {**_rl_q_aux(ctx), **ctx.recipe.rl_cyclegan,
              "online": True, "online_real": True, "collect_policy": "real", "collect_domain": "real", "collect_objects": "train",
              "online_start": 0, "collect_every": base.collect_every, "collect_episodes": base.collect_episodes,
              "collect_envs": min(base.collect_episodes, rc.RLCycleGANConfig.collect_envs), "rl_scene_warmup": 0,
              "steps": finetune_steps(ctx)}
    cfg = ctx.rlcyclegan("rlcyclegan", method="rlcyclegan", sim_data=ctx.episodes("sim"), real_data=ctx.episodes("real", n_off),
                         init_from=ctx.run_dir("rl-cyclegan") / METHODS["rl-cyclegan"].policy_stage, **fields)
    return [Stage("rlcyclegan", "rlcyclegan", cfg)]


def _gan_images(ctx: Ctx) -> int:
    return ctx.recipe.gan_real_episodes


def _finetune_real(ctx: Ctx) -> int:
    return ctx.recipe.finetune_real_episodes


METHODS: dict[str, Method] = {
    "sim-only": Method("Sim-only", _sim_only, "qtopt"),
    "randomized-sim": Method("Randomized Sim", _randomized, "qtopt"),
    "gan": Method("GAN", _translated("gan"), "qtopt", "translator", real_offline=_gan_images),
    "cyclegan": Method("CycleGAN", _translated("cyclegan"), "qtopt", "translator", real_offline=_gan_images),
    "rl-cyclegan": Method("RL-CycleGAN", _rl_cyclegan, "rlcyclegan", "rlcyclegan", needs=("sim-only",), real_offline=_gan_images),
    "oracle": Method("Oracle (QT-Opt in real)", _oracle, "qtopt", real_offline=lambda ctx: sum(ctx.pool_sizes()), onpolicy_real=True),
    "real-only": Method("Real-only", _real_only, "qtopt", real_offline=Ctx.real_budget, budget="real"),
    "sim-real": Method("Sim+Real", _sim_plus_real, "qtopt", real_offline=Ctx.real_budget, budget="real"),
    "rl-cyclegan-real": Method("RL-CycleGAN + Real", _rl_cyclegan_real, "rlcyclegan", "rlcyclegan", needs=("sim-only",),
                               real_offline=Ctx.real_budget, budget="real"),
    "rl-cyclegan-real-camera": Method("RL-CycleGAN + Real, Q_real retrained with camera noise", _rl_cyclegan_real_camera, "qtopt",
                                      needs=("rl-cyclegan-real",), real_offline=Ctx.real_budget, budget="real"),
    "rl-cyclegan-ft": Method("RL-CycleGAN + fine-tuning", _finetune("rl-cyclegan"), "qtopt", needs=("rl-cyclegan",),
                             real_offline=lambda ctx: _gan_images(ctx) + _finetune_real(ctx), onpolicy_real=True, budget="onpolicy"),
    "rl-cyclegan-joint-ft": Method("RL-CycleGAN + joint fine-tuning", _finetune_joint, "rlcyclegan", "rlcyclegan", needs=("rl-cyclegan",),
                                   real_offline=lambda ctx: _gan_images(ctx) + _finetune_real(ctx), onpolicy_real=True, budget="onpolicy"),
    "sim-only-ft": Method("Sim-only + fine-tuning", _finetune("sim-only"), "qtopt", needs=("sim-only",), real_offline=_finetune_real,
                          onpolicy_real=True, budget="onpolicy"),
    "scratch-ft": Method("Scratch (real data only)", _finetune(None), "qtopt", real_offline=_finetune_real, onpolicy_real=True,
                         budget="onpolicy"),
}


@dataclass(frozen=True)
class Experiment:
    """An experiment of the paper: its methods, env and evaluations."""

    title: str
    methods: tuple[str, ...]
    env: str = GRASP
    evaluations: tuple[Evaluation, ...] = ()
    """Empty: one evaluation in the real domain of the experiment's env on unseen objects."""


EXPERIMENTS: dict[str, Experiment] = {
    "zero-shot": Experiment("Zero-shot sim-to-real transfer", ("sim-only", "randomized-sim", "gan", "cyclegan", "rl-cyclegan", "oracle")),
    "real-data": Experiment("Adding real episodes", ("sim-only", "real-only", "sim-real", "rl-cyclegan-real", "rl-cyclegan-real-camera")),
    "finetune": Experiment("On-policy fine-tuning in real", ("sim-only", "rl-cyclegan", "rl-cyclegan-ft", "rl-cyclegan-joint-ft",
                                                                  "sim-only-ft", "scratch-ft")),
    "multibin": Experiment("Multi-bin robot (the paper's Robot 2)", ("sim-only", "cyclegan", "rl-cyclegan"), env=MULTIBIN,
                           evaluations=(Evaluation("single-bin", GRASP), Evaluation("multi-bin", MULTIBIN))),
}


def evaluations(experiment: str) -> tuple[Evaluation, ...]:
    exp = EXPERIMENTS[experiment]
    return exp.evaluations or (Evaluation("real", exp.env),)


def budgets(ctx: Ctx, method: Method, override: tuple[int, ...] | None = None) -> list[int | None]:
    """The budgets one method runs at: real episodes, on-policy episodes, or [None] (no budget)."""
    if not method.budget:
        return [None]
    if override:
        return list(override)
    if method.budget == "real":
        total = sum(ctx.pool_sizes())
        return sorted({max(1, int(round(f * total))) for f in ctx.recipe.real_budget_fractions})
    return list(ctx.recipe.onpolicy_budgets)


def recipe_from_dict(data: dict) -> Recipe:
    """A Recipe from its JSON form (experiment.json's ``recipe``); lists become tuples.

    Raises ValueError naming the fields that are missing or unknown."""
    names = {f.name for f in fields(Recipe)}
    optional = {f.name for f in fields(Recipe) if f.default is not MISSING or f.default_factory is not MISSING}
    unknown, missing = sorted(set(data) - names), sorted(names - set(data) - optional)  # a field added since keeps its default
    if unknown or missing:
        raise ValueError(f"recipe: missing fields {missing}, unknown fields {unknown}")
    return Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def with_runtime(stage: Stage, progress: bool, threads: int, device: str) -> Stage:
    """The stage with run-time settings (not part of the config hash) applied."""
    return replace(stage, config=replace(stage.config, progress=progress, threads=threads, device=device))
