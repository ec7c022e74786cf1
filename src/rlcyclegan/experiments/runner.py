"""Run one of the paper's experiments end to end: shared data, every method and seed, evaluation, results.

    rlcyclegan experiment zero-shot --preset cpu --seeds 3 --out runs/zero-shot

1. Plan: each (seed, method, budget) becomes a run whose training stages come from the method's
   recipe (:mod:`rlcyclegan.experiments.specs`); methods a selected one needs (RL-CycleGAN starts
   from the Sim-only run of its seed) are added.
2. Data: every episode pool the pending runs use is collected once into OUT/data (resumable,
   shared by methods and seeds); subsets are hard links of the pool's shards.
3. Runs, in order, each in OUT/runs/<method>-s<seed>[-<budget>]/: a stage is trained (or resumed
   from its last checkpoint, when one exists) into RUN/<stage>/ and marked finished by
   RUN/<stage>/done.json plus RUN/<stage>/final.pt (the policy and generators alone, a few MB); the
   policy is then evaluated (greedy CEM, real domain, unseen objects) and RUN/result.json written.
   A run with result.json is finished and skipped on a rerun.
   OUT/.gitignore leaves out the data, checkpoints and TensorBoard logs: committing OUT keeps exactly
   what a rerun on a fresh clone needs to skip the finished runs and to start the runs that depend
   on them (the data is collected again, with the same seeds).
4. OUT/results.jsonl is rebuilt from every RUN/result.json after each run (one record per run and
   evaluation, in a fixed order), and OUT/experiment.json records the commands and recipe.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlcyclegan.data.collect import CollectError, collect
from rlcyclegan.data.dataset import EpisodeDataset
from rlcyclegan.data.store import list_shards, read_shard, write_shard
from rlcyclegan.experiments import specs
from rlcyclegan.experiments.specs import EXPERIMENTS, METHODS, RECIPES, Ctx, DataSpec, Stage
from rlcyclegan.rl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rlcyclegan.train import qtopt as qt
from rlcyclegan.train import rlcyclegan as rc
from rlcyclegan.train.common import (TrainingDiverged, machine_info, pick_device, precision_name, to_jsonable,
                                     write_json_atomic)
from rlcyclegan.train.qtopt import train_qtopt
from rlcyclegan.train.rlcyclegan import train_rlcyclegan

TRAINERS = {"qtopt": train_qtopt, "rlcyclegan": train_rlcyclegan}
"""Stage kind -> training function ``f(cfg, resume=None) -> run folder`` (looked up at call time)."""
RUNTIME_FIELDS = ("progress", "threads", "device", "out", "name")
"""Config fields that do not change what a stage computes: left out of config hashes and free to change on resume."""
RESUMABLE_FIELDS = RUNTIME_FIELDS + ("steps", "max_minutes")
"""Config fields a stage may change when an interrupted run resumes (as `train qtopt --resume`)."""
ADDED_FIELDS = ("aux_weight", "aux_actions", "aux_domains", "policy_weights", "policy_ema", "lr_schedule", "lr_final", "amp", "done_fraction", "q_batch_size", "augment_color", "augment_noise", "augment_blur", "real_fraction", "qnet_input_blur", "augment_jpeg")
"""Config fields added after experiments were already run: at their default value they are left out of
config hashes, and a saved config without them reads as having the default, so runs finished or
interrupted before a field existed still count as the same recipe. Append every new training field here."""
ADDED_RLCYCLEGAN_FIELDS = ("online", "collect_policy", "collect_domain", "collect_objects", "online_start", "collect_every",
                           "collect_episodes", "collect_envs", "online_capacity", "online_fraction", "online_ramp", "epsilon", "noise", "augment_shift", "augment_color", "augment_noise", "augment_blur", "real_fraction")
"""As ADDED_FIELDS, for `train rlcyclegan` configs only (QT-Opt has fields of these names since its first run)."""


def added_fields(cfg: Any) -> tuple[str, ...]:
    """ADDED_FIELDS, plus ADDED_RLCYCLEGAN_FIELDS for an RL-CycleGAN config."""
    return ADDED_FIELDS + (ADDED_RLCYCLEGAN_FIELDS if isinstance(cfg, rc.RLCycleGANConfig) else ())


RESULTS_NAME = "results.jsonl"
EXPERIMENT_NAME = "experiment.json"


class ExperimentError(ValueError):
    """The experiment cannot run as asked: unknown name, preset or method, or an output folder that holds another."""


# ===================================================================================== plan
@dataclass
class RunPlan:
    """One run: a method at a seed (and budget), its stages and where it lives."""

    run_id: str
    method: str
    seed: int
    budget: int | None
    folder: Path
    stages: list[Stage]
    needs: list[str]
    """Run ids that must be finished first."""
    datasets: list[DataSpec]
    real_offline: int
    onpolicy_real: bool
    variant: str = ""
    """Tag of the `--set` overrides the run trains with ('' = the recipe as it is)."""

    @property
    def spec(self) -> specs.Method:
        return METHODS[self.method]


@dataclass
class Plan:
    name: str
    preset: str
    seeds: tuple[int, ...]
    out: Path
    episodes: int
    runs: list[RunPlan]
    added: list[str] = field(default_factory=list)
    """Methods added because a selected one needs them."""
    command: str = ""
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """`--set` overrides: stage kind (qtopt, rlcyclegan) -> config field -> value."""

    def datasets(self, runs: list[RunPlan] | None = None) -> list[DataSpec]:
        """The datasets of ``runs`` (default: all), each once, pools before what is made from them."""
        seen: dict[str, DataSpec] = {}
        for run in self.runs if runs is None else runs:
            for d in run.datasets:
                seen.setdefault(d.name, d)
        return list(seen.values())


def check_name(name: str) -> None:
    if name not in EXPERIMENTS:
        raise ExperimentError(f"unknown experiment {name!r}; expected one of: {', '.join(EXPERIMENTS)}")


def select_methods(name: str, only: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(methods to run in the experiment's order, methods added as dependencies of the selected ones)."""
    methods = list(EXPERIMENTS[name].methods)
    if not only:
        return methods, []
    unknown = [m for m in only if m not in methods]
    if unknown:
        raise ExperimentError(f"--only: {', '.join(unknown)} not in experiment {name!r}; its methods: {', '.join(methods)}")
    chosen = set(only)
    todo = list(only)
    while todo:
        for dep in METHODS[todo.pop()].needs:
            if dep not in chosen:
                chosen.add(dep)
                todo.append(dep)
    return [m for m in methods if m in chosen], [m for m in methods if m in chosen and m not in only]


STAGE_CONFIGS = {"qtopt": qt.QTOptConfig, "rlcyclegan": rc.RLCycleGANConfig}
RECIPE_SETTABLE = ("finetune_sim", "finetune_real_episodes", "gan_real_episodes")
"""Recipe fields `--set recipe.FIELD=VALUE` may vary: the ones that shape the training stages of a method (the
evaluation and the budgets belong to the experiment as a whole)."""
OVERRIDE_LOCKED = ("out", "name", "seed", "env", "sim_data", "real_data", "data", "init_q", "translate_with", "init_from",
                   "progress", "threads", "device")
"""Fields `--set` may not change: where a run lives and what it learns from belong to the experiment's recipe."""


def parse_overrides(items: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]]:
    """`--set KIND.FIELD=VALUE` items -> {kind: {field: value}}; VALUE is read as JSON, else kept as a string."""
    import dataclasses

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        kind, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise ExperimentError(f"--set {item!r}: expected KIND.FIELD=VALUE, e.g. rlcyclegan.lambda_rl_scene=10")
        if kind == "recipe":
            if name not in RECIPE_SETTABLE:
                raise ExperimentError(f"--set {item!r}: the recipe field {name!r} is not one --set varies; "
                                      f"expected one of: {', '.join(RECIPE_SETTABLE)}")
            default = getattr(RECIPES["cpu"], name)
        elif kind not in STAGE_CONFIGS:
            raise ExperimentError(f"--set {item!r}: unknown kind {kind!r}; expected one of: {', '.join([*STAGE_CONFIGS, 'recipe'])}")
        else:
            fields = {f.name: f for f in dataclasses.fields(STAGE_CONFIGS[kind])}
            if name not in fields:
                raise ExperimentError(f"--set {item!r}: {STAGE_CONFIGS[kind].__name__} has no field {name!r}")
            if name in OVERRIDE_LOCKED:
                raise ExperimentError(f"--set {item!r}: {name!r} is fixed by the experiment's recipe")
            default = getattr(STAGE_CONFIGS[kind](), name)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if isinstance(default, bool) or isinstance(value, bool):
            ok = isinstance(value, bool) and isinstance(default, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float))
            value = float(value) if ok else value
        elif isinstance(default, int):
            ok = isinstance(value, int)
        else:
            ok = default is None or isinstance(value, type(default))
        if not ok:
            kind_name = type(default).__name__
            article = "an" if kind_name[0] in "aeiou" else "a"
            raise ExperimentError(f"--set {item!r}: {name} takes {article} {kind_name} (got {value!r})")
        if kind == "recipe" and isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ExperimentError(f"--set {item!r}: {name} must be >= 0")
        out.setdefault(kind, {})[name] = value
    return out


def variant_tag(overrides: dict[str, dict[str, Any]]) -> str:
    """Folder-safe tag of the overrides, e.g. lambda_rl_scene=10 (kind-prefixed only when both kinds are set)."""
    both = len(overrides) > 1
    def fmt(v: Any) -> str:
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return v if isinstance(v, str) else json.dumps(v)

    parts = [f"{kind + '.' if both else ''}{name}={fmt(v)}"
             for kind in sorted(overrides) for name, v in sorted(overrides[kind].items())]
    return ",".join(parts).replace("/", "_").replace(" ", "")


def apply_overrides(stages: list[Stage], overrides: dict[str, dict[str, Any]]) -> list[Stage]:
    """The stages with the `--set` fields of their kind replaced (each config re-checked)."""
    from dataclasses import replace

    out = []
    for s in stages:
        fields = overrides.get(s.kind)
        if fields:
            cfg = replace(s.config, **fields)
            try:
                (qt.check_config if s.kind == "qtopt" else rc.check_config)(cfg)
            except (ValueError, TypeError) as e:
                raise ExperimentError(f"--set makes an invalid {s.kind} config for stage {s.name!r}: {e}") from e
            s = replace(s, config=cfg)
        out.append(s)
    return out


def plan_experiment(name: str, preset: str = "cpu", seeds: int = 1, out: Path | str = Path("runs/experiment"),
                    episodes: int | None = None, only: tuple[str, ...] = (), budgets: tuple[int, ...] = (),
                    overrides: tuple[str, ...] = ()) -> Plan:
    """Every run of the experiment (dependencies before the runs that use them), with its stages and data.

    ``overrides`` (`--set KIND.FIELD=VALUE`) make a variant of the selected methods (``only``, else all): their
    stages of that kind train with the changed fields (KIND recipe: their stages are built from the recipe with
    the changed fields), in folders tagged with them (METHOD-sSEED+TAG), beside the recipe's own runs; methods
    added only as dependencies stay the recipe's. A selected method without a stage of that kind is a variant
    when it starts from a selected method that has one (e.g. --only rl-cyclegan-real rl-cyclegan-real-camera
    --set rlcyclegan.augment_noise=0.06: the camera stage starts from the varied RL-CycleGAN + Real run)."""
    from dataclasses import replace

    check_name(name)
    if preset not in RECIPES:
        raise ExperimentError(f"unknown preset {preset!r}; expected one of: {', '.join(RECIPES)}")
    if seeds < 1:
        raise ExperimentError(f"--seeds must be >= 1 (got {seeds})")
    if episodes is not None and episodes < 1:
        raise ExperimentError(f"--episodes must be >= 1 (got {episodes})")
    if any(b < 1 for b in budgets):
        raise ExperimentError(f"--budgets must be >= 1 (got {list(budgets)})")
    out = Path(out)
    recipe = RECIPES[preset]
    methods, added = select_methods(name, tuple(only))
    over = parse_overrides(overrides)
    tag = variant_tag(over) if over else ""
    varied = frozenset(m for m in methods if m not in added) if over else frozenset()
    varied_recipe = replace(recipe, **over.get("recipe", {}))
    touched: set[str] = set()
    runs: list[RunPlan] = []
    for seed in range(seeds):
        for method in methods:
            m = METHODS[method]
            variant = tag if method in varied else ""
            probe = Ctx(name, preset, recipe, out, EXPERIMENTS[name].env, seed, method)
            for budget in specs.budgets(probe, m, tuple(budgets) or None):
                ctx = Ctx(name, preset, varied_recipe if variant else recipe, out, EXPERIMENTS[name].env, seed, method,
                          budget, variant, varied)
                stages = m.build(ctx)
                if variant:
                    if any(s.kind in over for s in stages):
                        touched.add(method)
                    if "recipe" in over:
                        own = m.build(Ctx(name, preset, recipe, out, EXPERIMENTS[name].env, seed, method, budget, variant, varied))
                        if [s.config for s in own] != [s.config for s in stages]:
                            touched.add(method)
                    stages = apply_overrides(stages, over)
                runs.append(RunPlan(specs.run_id(method, seed, budget, variant), method, seed, budget, ctx.run_dir(), stages,
                                    [specs.run_id(dep, seed, specs.dependency_budget(method, dep, budget), variant=tag if dep in varied else "")
                                     for dep in m.needs],
                                    list(ctx.datasets.values()), m.real_offline(ctx), m.onpolicy_real, variant))
    if over:  # a method that starts from a varied method selected with it is a variant too (it starts from the variant)
        grew = True
        while grew:
            carried = {m for m in varied - touched if any(dep in touched for dep in METHODS[m].needs)}
            touched |= carried
            grew = bool(carried)
        untouched = sorted(varied - touched)
        if untouched:
            raise ExperimentError(f"--set {', '.join(over)}.*: methods {', '.join(untouched)} have no such stage "
                                  f"(or train the same with it); select the methods it applies to with --only")
    plan = Plan(name, preset, tuple(range(seeds)), out, episodes or recipe.eval_episodes, runs, added, overrides=over)
    plan.command = command_line(name, preset, seeds, out, episodes, only, budgets, overrides)
    check_datasets(plan)
    return plan


def check_datasets(plan: Plan) -> None:
    seen: dict[str, DataSpec] = {}
    for run in plan.runs:
        for d in run.datasets:
            if seen.setdefault(d.name, d) != d:
                raise ExperimentError(f"recipes disagree on the dataset {d.name!r}: {seen[d.name]} vs {d}")


def command_line(name: str, preset: str, seeds: int, out: Path, episodes: int | None, only, budgets, overrides=()) -> str:
    parts = ["rlcyclegan", "experiment", name, "--preset", preset, "--seeds", str(seeds), "--out", str(out)]
    if episodes is not None:
        parts += ["--episodes", str(episodes)]
    if only:
        parts += ["--only", *only]
    if budgets:
        parts += ["--budgets", *map(str, budgets)]
    if overrides:
        parts += ["--set", *overrides]
    return shlex.join(parts)


# ===================================================================================== hashing
def normalized_config(cfg: Any, out: Path) -> dict:
    """A stage config as JSON, without run-time fields, with paths under ``out`` written as $OUT/..."""
    prefix = str(out).rstrip("/") + "/"

    def norm(v: Any) -> Any:
        if isinstance(v, str) and v.startswith(prefix):
            return "$OUT/" + v[len(prefix):]
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v

    defaults, added = field_defaults(cfg), added_fields(cfg)
    return {k: norm(v) for k, v in to_jsonable(cfg).items()
            if k not in RUNTIME_FIELDS and not (k in added and k in defaults and v == defaults[k])}


def field_defaults(cfg: Any) -> dict:
    """Default values (as JSON) of a config dataclass's fields that have a plain default."""
    import dataclasses

    out = {}
    for f in dataclasses.fields(cfg):
        if f.default is not dataclasses.MISSING:
            out[f.name] = to_jsonable(f.default)
    return out


def config_hash(stages: list[Stage], out: Path) -> str:
    """Stable hash (16 hex digits) of the training configs of ``stages`` (independent of where OUT is)."""
    blob = json.dumps([{"stage": s.name, "kind": s.kind, "config": normalized_config(s.config, out)} for s in stages], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ===================================================================================== data
def make_dataset(spec: DataSpec, out: Path, workers: int, progress: bool) -> None:
    """Collect a pool (resumable), or make a subset / image array of a pool (once)."""
    path = out / "data" / spec.name
    log = out / "data" / "collection.json"
    if spec.kind == "collect":
        try:
            summary = collect(spec.env, dict(spec.env_kwargs), spec.policy, spec.episodes, path, workers=workers, seed=spec.seed, progress=progress)
        except CollectError as e:
            raise ExperimentError(f"{e} (did the recipe change? delete {path} or use another --out)") from e
        if summary["new_episodes"]:
            times = json.loads(log.read_text()) if log.exists() else {}
            times[spec.name] = {"episodes": summary["episodes"], "success_rate": round(summary["success_rate"], 4),
                                "seconds": round(times.get(spec.name, {}).get("seconds", 0.0) + summary["seconds"], 1)}
            write_json_atomic(log, dict(sorted(times.items())))
    elif spec.kind == "subset":
        if not (path / "subset.json").exists():
            make_subset(out / "data" / spec.source, path, spec.episodes)
    elif not path.exists():
        ds = EpisodeDataset(out / "data" / spec.source)
        images = np.concatenate([ds[i].images for i in range(min(spec.episodes, len(ds)))])
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, images=images)
        os.replace(tmp, path)


def make_subset(source: Path, dest: Path, episodes: int) -> None:
    """``dest``: the episodes of ``source`` with index < ``episodes`` (whole shards hard-linked, the last one cut)."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    kept = 0
    for path in list_shards(source):
        index = read_shard(path, load_images=False).episode_indices
        if index.min() >= episodes:
            continue
        if index.max() < episodes:
            try:
                os.link(path, tmp / path.name)
            except OSError:
                shutil.copyfile(path, tmp / path.name)
            kept += len(index)
            continue
        shard = read_shard(path)
        eps = [e for e in shard.episodes() if e.index < episodes]
        a = shard.attrs
        write_shard(tmp / path.name, eps, env_id=a["env_id"], domain=a["domain"], objects=a["objects"], policy=a["policy"],
                    env_kwargs=a.get("env_kwargs"))
        kept += len(eps)
    if kept != episodes:
        raise ExperimentError(f"{source} holds {kept} episodes below index {episodes}; expected {episodes}")
    write_json_atomic(tmp / "subset.json", {"source": source.name, "episodes": episodes})
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


# ===================================================================================== runs
def run_status(run: RunPlan) -> str:
    """done (result.json exists and every stage has its done.json), interrupted (a stage has a checkpoint) or pending.

    A finished run whose stage's done.json was moved away (to train a stage that stopped at max_minutes further,
    see short_of_steps) is interrupted: the rerun finishes that stage and evaluates the run again."""
    if (run.folder / "result.json").exists() and all((run.folder / s.name / "done.json").exists() for s in run.stages):
        return "done"
    if any((run.folder / s.name / "checkpoints" / "latest.pt").exists() for s in run.stages):
        return "interrupted"
    return "pending"


def stale(plan: Plan, run: RunPlan) -> bool:
    """A finished run whose training configs differ from what the recipe now makes (it is kept, not retrained).

    Its recorded config hash differing is not enough: a run finished before a field existed (one missing from
    ADDED_FIELDS) hashes differently while it trained exactly as the recipe does now. So the saved configs decide
    (:func:`config_changes`); a stage without its config.json counts as changed."""
    if json.loads((run.folder / "result.json").read_text()).get("config_hash") == config_hash(run.stages, plan.out):
        return False
    return any(not (run.folder / s.name / "config.json").exists() or config_changes(s, run.folder / s.name, RUNTIME_FIELDS)
               for s in run.stages)


def experiment_folder_of(run_out: str, run_folder: Path) -> str:
    """The experiment folder a stage config's ``out`` (EXPERIMENT/runs/RUN) was written under, or "" when it is not."""
    tail = "/" + "/".join(run_folder.parts[-2:])  # runs/RUN
    return run_out[: -len(tail)] if run_out.endswith(tail) else ""


def relative_paths(config: dict, experiment: str) -> dict:
    """``config`` (JSON) with the paths under ``experiment`` written as $OUT/... (a moved experiment compares equal)."""
    if not experiment:
        return config
    prefix = experiment.rstrip("/") + "/"

    def rel(v: Any) -> Any:
        if isinstance(v, str) and v.startswith(prefix):
            return "$OUT/" + v[len(prefix):]
        return [rel(x) for x in v] if isinstance(v, list) else v

    return {k: rel(v) for k, v in config.items()}


def config_changes(stage: Stage, folder: Path, ignore: tuple[str, ...] = ()) -> dict:
    """Fields (but ``ignore``) whose value in ``folder/config.json`` differs from ``stage``'s config: {field: (saved, now)}.

    A field the saved config lacks did not exist when the stage ran and reads as its default (every field is added
    with the default that keeps what training did before). Paths are compared relative to the experiment folder
    each config was written under."""
    saved = json.loads((folder / "config.json").read_text())
    now = to_jsonable(stage.config)
    defaults = field_defaults(stage.config)
    saved = {**{k: defaults[k] for k in now if k in defaults and k not in saved}, **saved}
    run_folder = Path(now.get("out") or folder.parent)
    saved = relative_paths(saved, experiment_folder_of(str(saved.get("out") or ""), run_folder))
    now = relative_paths(now, experiment_folder_of(str(now.get("out") or ""), run_folder))
    return {k: (saved.get(k), v) for k, v in now.items() if k not in ignore and saved.get(k) != v}


def check_resumable(stage: Stage, folder: Path) -> None:
    """An interrupted QT-Opt stage resumes only with the config it started with (RESUMABLE_FIELDS aside).

    Paths are compared relative to the experiment folder each config was written under, so an experiment folder that
    was moved or copied (another clone, another --out) resumes its interrupted stages."""
    if not (folder / "config.json").exists():
        return
    diff = config_changes(stage, folder, RESUMABLE_FIELDS)
    if diff:
        raise ExperimentError(f"{folder}: interrupted with another config (field: (saved, recipe)): {diff}; "
                              f"delete {folder.parent} to train it again with the current recipe")


FINAL_NAME = "final.pt"
FINAL_KEYS = ("kind", "step", "elapsed", "online_episodes", "config", "policy", "policy_sim", "generator", "generator_real2sim")
"""What a finished stage's final.pt keeps of its last checkpoint: everything evaluation, translation metrics,
later stages (init_q, init_from, translate_with) and the report read; not the optimizer, targets, pools or RNGs."""
GITIGNORE = """# Written by `rlcyclegan experiment`. What git keeps of this folder (configs, metrics, done.json,
# final.pt, result.json, results.jsonl) lets a rerun on a fresh clone skip the finished runs; the rest is
# collected again (same seeds) or only needed to resume an interrupted stage on the same machine.
!runs/
data/
checkpoints/
tb/
offline/
offline-random/
online/
visuals/
*.tmp
*.lock
"""


def export_final(folder: Path) -> Path:
    """Write ``folder/final.pt`` from the stage's last checkpoint (see FINAL_KEYS); returns its path."""
    ckpt = load_checkpoint(folder / "checkpoints" / "latest.pt")
    return save_checkpoint(folder / FINAL_NAME, {k: ckpt[k] for k in FINAL_KEYS if k in ckpt})


def short_of_steps(stage: Stage, folder: Path, step: int | None) -> bool:
    """Warn (and return True) when a stage stopped before its steps: its `max_minutes` wall-time limit bound, so
    its result depends on how fast the machine ran and is not the recipe's training."""
    want = stage.config.steps
    if step is None or step >= want:
        return False
    print(f"[experiment] WARNING: {folder} stopped at step {step} of {want} (max_minutes={stage.config.max_minutes:g} "
          f"reached); its result is of a shorter training than the recipe's. To finish it (exact resume): move "
          f"{folder}/done.json away, then run the experiment again with --max-minutes M, M larger than "
          f"{stage.config.max_minutes:g}", file=sys.stderr)
    return True


def stage_machine(stage: Stage) -> dict:
    """The machine finishing ``stage`` (:func:`machine_info`) and the precision its ``amp`` resolved to there."""
    device = pick_device(stage.config.device)
    return {**machine_info(device), "precision": precision_name(device, getattr(stage.config, "amp", "auto"))}


def train_stage(stage: Stage, folder: Path, out: Path, max_minutes: float | None = None) -> str:
    """Train, resume or skip one stage; returns what happened (trained, resumed, skipped).

    ``max_minutes`` (`experiment --max-minutes`) replaces the recipe's wall-time cap of the stage for this call only:
    a machine slower than the recipe assumed finishes its steps, or an interrupted stage trains on. The recipe's cap
    stays in the config hash (done.json records the step reached and the cap that bound it, and a stage short of its
    steps is warned about), so a stage that reached its steps counts as the recipe's training whatever cap it ran under."""
    from dataclasses import replace

    done = folder / "done.json"
    h = config_hash([stage], out)
    recipe_cap = stage.config.max_minutes
    if max_minutes is not None:
        if max_minutes <= 0:
            raise ExperimentError(f"--max-minutes must be > 0 (got {max_minutes:g})")
        stage = replace(stage, config=replace(stage.config, max_minutes=float(max_minutes)))
    if done.exists():
        if json.loads(done.read_text())["config_hash"] != h:
            raise ExperimentError(f"{folder}: finished with another config than the current recipe; delete {folder.parent} to retrain")
        if not (folder / FINAL_NAME).exists():
            if not (folder / "checkpoints" / "latest.pt").exists():
                raise ExperimentError(f"{folder}: finished (done.json) but holds neither {FINAL_NAME} nor checkpoints/latest.pt; "
                                      f"delete {folder.parent} to retrain")
            export_final(folder)  # a stage finished before final.pt existed
        return "skipped"
    train = TRAINERS[stage.kind]
    if (folder / "checkpoints" / "latest.pt").exists():
        if stage.kind == "qtopt":
            check_resumable(stage, folder)
            write_json_atomic(folder / "config.json", stage.config)
        train(stage.config, resume=folder)
        action = "resumed"
    else:
        train(stage.config)
        action = "trained"
    ckpt = load_checkpoint(folder)
    short_of_steps(stage, folder, ckpt.get("step"))
    export_final(folder)
    write_json_atomic(done, {"config_hash": h, "step": ckpt.get("step"), "elapsed": round(float(ckpt.get("elapsed", 0.0)), 3),
                             "online_episodes": int(ckpt.get("online_episodes", 0)),
                             **({"max_minutes": stage.config.max_minutes} if stage.config.max_minutes != recipe_cap else {}),
                             "machine": stage_machine(stage)})  # what finished the stage
    return action


ACTING_BOTH = "acting=both"
"""Variant tag of the records of an RL-CycleGAN run acting with Q_real(y) and Q_sim(F(y)) together (Recipe.acting_both)."""


def acts_both(plan: Plan, run: RunPlan) -> bool:
    """Whether the recipe also evaluates this run acting with both Q-networks: its policy stage is an RL-CycleGAN
    one (Q_real, Q_sim and F in one checkpoint) and the recipe asks for it (Recipe.acting_both)."""
    stage = next(s for s in run.stages if s.name == run.spec.policy_stage)
    return RECIPES[plan.preset].acting_both and stage.kind == "rlcyclegan" and getattr(stage.config, "method", "") == "rlcyclegan"


def acting_tag(variant: str | None) -> str:
    """The variant tag of a run's acting=both records: the run's own --set tag, then acting=both."""
    return f"{variant},{ACTING_BOTH}" if variant else ACTING_BOTH


def evaluate_run(plan: Plan, run: RunPlan, device: str, progress: bool, actings: tuple[str, ...] | None = None) -> list[dict]:
    """The run's records: its policy evaluated in each of the experiment's evaluations; for an RL-CycleGAN run with
    Recipe.acting_both, also acting with both Q-networks (``actings`` restricts to some of "real", "both")."""
    from rlcyclegan.rl.evaluate import evaluate_checkpoint

    ctx = Ctx(plan.name, plan.preset, RECIPES[plan.preset], plan.out, EXPERIMENTS[plan.name].env, run.seed, run.method, run.budget)
    stage_info = {s.name: json.loads((run.folder / s.name / "done.json").read_text()) for s in run.stages}
    policy = run.folder / run.spec.policy_stage
    onpolicy = stage_info[run.spec.policy_stage]["online_episodes"]
    policy_cfg = next(s.config for s in run.stages if s.name == run.spec.policy_stage)
    onpolicy_domain = getattr(policy_cfg, "domain", getattr(policy_cfg, "collect_domain", None)) if getattr(policy_cfg, "online", False) else None
    train_seconds = sum(info["elapsed"] for info in stage_info.values())
    kwargs = {"image_size": ctx.image_size(), **json.loads(ctx.env_kwargs_json() or "{}")}
    recipe = RECIPES[plan.preset]
    if actings is None:
        actings = ("real", "both") if acts_both(plan, run) else ("real",)
    translation = None
    if "real" in actings:  # the acting=both records share the run's generator: its metrics are on the Q_real records
        translation = translation_metrics(plan.preset, run.folder / run.spec.generator_stage if run.spec.generator_stage else None, device)
    records = []
    for ev, acting in ((ev, acting) for ev in specs.evaluations(plan.name) for acting in actings):
        cem = dict(zip(("iterations", "samples", "elites"), recipe.eval_cem)) if recipe.eval_cem else None
        res = evaluate_checkpoint(policy, env_id=ev.env, domain=ev.domain, objects=ev.objects, episodes=plan.episodes,
                                  envs=min(recipe.eval_envs, plan.episodes), env_kwargs=kwargs, device=device, progress=progress,
                                  cem=cem, q_network=acting)
        variant = acting_tag(run.variant) if acting == "both" else run.variant
        records.append({
            "experiment": plan.name, "method": run.method, "label": run.spec.label + (f" [{variant}]" if variant else ""),
            "variant": variant or None, **({"acting": "both"} if acting == "both" else {}), "seed": run.seed, "budget": run.budget,
            "budget_kind": run.spec.budget or None, "preset": plan.preset, "config_hash": config_hash(run.stages, plan.out),
            "eval": ev.name, "eval_env": ev.env, "eval_domain": ev.domain, "eval_objects": ev.objects,
            "success": res["success"], "success_low": res["success_low"], "success_high": res["success_high"],
            "successes": res["successes"], "eval_episodes": res["episodes"], "eval_seed": res["seed"], "eval_cem": res["cem"],
            "train_seconds": round(train_seconds, 1), "eval_seconds": round(res["seconds"], 1),
            "wall_seconds": round(train_seconds + res["seconds"], 1),
            "budget_share": (round(run.budget / sum(ctx.pool_sizes()), 6) if run.spec.budget == "real" and run.budget else None),
            "real_episodes": run.real_offline + (onpolicy if run.onpolicy_real else 0),
            "onpolicy_episodes": onpolicy, "onpolicy_domain": onpolicy_domain,
            "train_env": ctx.env, "image_size": ctx.image_size(),
            "stages": [s.name for s in run.stages], "steps": {name: info["step"] for name, info in stage_info.items()},
            "machines": {name: info["machine"] for name, info in stage_info.items() if "machine" in info},
            "run": os.path.relpath(run.folder, plan.out), "policy": os.path.relpath(policy, plan.out),
            "generator": (os.path.relpath(run.folder / run.spec.generator_stage, plan.out) if run.spec.generator_stage else None),
            **({"translation": translation} if translation is not None and acting == "real" else {}),
        })
    return records


def add_acting_both(plan: Plan, run: RunPlan, device: str, progress: bool) -> bool:
    """Evaluate a finished RL-CycleGAN run acting with both Q-networks when the recipe asks for it and its
    result.json predates it (Recipe.acting_both); True if result.json changed."""
    path = run.folder / "result.json"
    result = json.loads(path.read_text())
    if not acts_both(plan, run) or any(r.get("acting") == "both" for r in result["records"]):
        return False
    result["records"] = result["records"] + evaluate_run(plan, run, device, progress, actings=("both",))
    write_json_atomic(path, result)
    return True


TRANSLATION_KEYS = ("g_vs_real", "f_vs_sim", "sim_vs_real", "q_consistency", "object_segmentation", "own_fid", "own_kid",
                    "kid_subset_size")
"""What a record keeps of `evaluate_translation` (see :func:`translation_metrics`)."""


def translation_current(t: dict) -> bool:
    """Whether a record's translation metrics have their current form: KID over subsets (``kid_subset_size``; over the
    whole set its std was 0) and object segmentation IoU with its bootstrap interval. An older form is scored again
    by the next `experiment` run in the folder."""
    seg = t.get("object_segmentation") or {}
    return "kid_subset_size" in t and "iou_low" in (seg.get("g_vs_real") or {})


def translation_metrics(preset: str, generator: Path | None, device: str) -> dict | None:
    """`rlcyclegan eval-translation` of a run's generator stage on the recipe's paired renders of unseen-object
    scripted episodes (PSNR/SSIM over the image and over object pixels, object-segmentation IoU, Q-consistency,
    own-feature FID/KID), or None for a run without a generator or a recipe that does not score translations."""
    recipe = RECIPES[preset]
    n = recipe.translation_episodes
    if generator is None or n < 1:
        return None
    from rlcyclegan.experiments.translation import evaluate_translation

    res = evaluate_translation(generator, episodes=n, objects="test", device=device, segmenter_steps=recipe.segmenter_steps)
    return {"episodes": res["episodes"], "images": res["images"], "seed": res["seed"], "objects": res["objects"],
            **{k: res[k] for k in TRANSLATION_KEYS}, "feature_network": res["feature_network"]["network"],
            "seconds": round(res["seconds"], 1)}


def add_translation(out: Path, result_path: Path, device: str) -> bool:
    """Score a finished run's generator (its records' ``generator``, relative to ``out``) when its records predate
    the translation metrics or their current form (:func:`translation_current`); True if result.json changed."""
    result = json.loads(result_path.read_text())
    records = result["records"]
    if not records or not records[0].get("generator"):
        return False
    if all(translation_current(r.get("translation") or {}) for r in records if r.get("acting") != "both"):  # acting=both: no copy
        return False
    preset = records[0].get("preset")
    if preset not in RECIPES:
        return False
    metrics = translation_metrics(preset, out / records[0]["generator"], device)
    if metrics is None:
        return False
    result["records"] = [r if r.get("acting") == "both" else {**r, "translation": metrics} for r in records]
    write_json_atomic(result_path, result)
    return True


def sort_key(record: dict) -> tuple:
    """Fixed order of records: experiment, method (as listed in METHODS), budget, evaluation, seed."""
    exps, methods = list(EXPERIMENTS), list(METHODS)
    evals = [e.name for e in specs.evaluations(record["experiment"])] if record["experiment"] in EXPERIMENTS else []
    return (exps.index(record["experiment"]) if record["experiment"] in exps else len(exps), record["experiment"],
            methods.index(record["method"]) if record["method"] in methods else len(methods), record["method"],
            record.get("variant") or "", -1 if record["budget"] is None else record["budget"], evals.index(record["eval"]) if record["eval"] in evals else len(evals),
            record["eval"], record["seed"])


def write_results(out: Path) -> Path:
    """OUT/results.jsonl from every OUT/runs/*/result.json, one record per line in :func:`sort_key` order."""
    records = []
    for path in sorted((out / "runs").glob("*/result.json")):
        records += json.loads(path.read_text())["records"]
    records.sort(key=sort_key)
    dest = out / RESULTS_NAME
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")  # two experiment processes into one OUT (different --only) never share it
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    os.replace(tmp, dest)
    return dest


def write_experiment_json(plan: Plan) -> None:
    """OUT/experiment.json: name, preset, recipe, and every distinct command run into OUT (refuses another experiment)."""
    path = plan.out / EXPERIMENT_NAME
    old = json.loads(path.read_text()) if path.exists() else {}
    for key, value in (("experiment", plan.name), ("preset", plan.preset)):
        if old.get(key, value) != value:
            raise ExperimentError(f"{plan.out} holds the {old['experiment']!r} experiment at preset {old['preset']!r}; "
                                  f"use another --out for {plan.name!r} at preset {plan.preset!r}")
    commands = old.get("commands", [])
    if plan.command not in commands:
        commands.append(plan.command)
    plan.out.mkdir(parents=True, exist_ok=True)
    if not (plan.out / ".gitignore").exists():
        (plan.out / ".gitignore").write_text(GITIGNORE)
    write_json_atomic(path, {"experiment": plan.name, "preset": plan.preset, "title": EXPERIMENTS[plan.name].title,
                             "env": EXPERIMENTS[plan.name].env, "commands": commands, "recipe": to_jsonable(RECIPES[plan.preset])})


# ===================================================================================== progress
def show_progress(plan: Plan, status: dict[str, str], notes: dict[str, str]) -> None:
    """A table of every run: done / running / pending / interrupted / failed / blocked, with its success when done."""
    from rich.console import Console
    from rich.table import Table

    done = sum(s == "done" for s in status.values())
    table = Table(title=f"{plan.name} (preset {plan.preset}, {len(plan.seeds)} seed(s)): {done}/{len(plan.runs)} runs done",
                  title_justify="left")
    for col in ("run", "method", "status", "success [95% CI]", "training"):
        table.add_column(col)
    for run in plan.runs:
        result, wall = notes.get(run.run_id, ""), ""
        if status[run.run_id] == "done" and (run.folder / "result.json").exists():
            recs = json.loads((run.folder / "result.json").read_text())["records"]
            result = (notes[run.run_id] + "; " if run.run_id in notes else "") + ", ".join(f"{r['eval']} {r['success']:.2f} [{r['success_low']:.2f}, {r['success_high']:.2f}]" for r in recs)
            wall = f"{recs[0]['train_seconds'] / 60:.1f} min"
        table.add_row(run.run_id, run.spec.label, status[run.run_id], result, wall)
    Console(width=None if sys.stdout.isatty() else 160).print(table)


# ===================================================================================== the experiment
def run_experiment(name: str, preset: str = "cpu", seeds: int = 1, out: Path | str = Path("runs/experiment"), episodes: int | None = None,
                   only: tuple[str, ...] = (), budgets: tuple[int, ...] = (), device: str = "auto", threads: int = 0,
                   workers: int | None = None, progress: bool = True, overrides: tuple[str, ...] = (),
                   max_minutes: float | None = None) -> dict:
    """Plan, collect, train, evaluate; returns {"results": path, "trained", "resumed", "skipped", "failed": [run ids]}.

    ``max_minutes`` replaces the recipe's wall-time cap of every stage trained or resumed by this call (see
    :func:`train_stage`); the cap counts training time over all sessions of a stage, as `train --resume` does."""
    if max_minutes is not None and max_minutes <= 0:
        raise ExperimentError(f"--max-minutes must be > 0 (got {max_minutes:g})")
    plan = plan_experiment(name, preset, seeds, out, episodes, tuple(only), tuple(budgets), tuple(overrides))
    write_experiment_json(plan)
    if plan.added:
        print(f"[experiment] also running {', '.join(plan.added)}: needed by the selected methods")
    status = {r.run_id: run_status(r) for r in plan.runs}
    notes = {r.run_id: "recipe changed since (delete the run folder to rerun)" for r in plan.runs if status[r.run_id] == "done" and stale(plan, r)}
    show_progress(plan, status, notes)
    stale_runs = {r.folder for r in plan.runs if r.run_id in notes}
    for path in sorted((plan.out / "runs").glob("*/result.json")):  # every finished run of the folder, any variant
        if path.parent not in stale_runs and add_translation(plan.out, path, device):
            print(f"[experiment] {path.parent.name}: translation metrics brought to their current form in result.json")
    for run in plan.runs:  # a finished run that predates Recipe.acting_both gets its acting=both records
        if status[run.run_id] == "done" and add_acting_both(plan, run, device, progress):  # its own checkpoint, stale or not
            print(f"[experiment] {run.run_id}: evaluated acting with Q_real(y) and Q_sim(F(y)) together (acting=both)")
            write_results(plan.out)
    todo = [r for r in plan.runs if status[r.run_id] != "done"]
    recipe = RECIPES[plan.preset]
    t0 = time.monotonic()
    for spec in plan.datasets(todo):
        make_dataset(spec, plan.out, workers or recipe.collect_workers, progress)
    if todo:
        print(f"[experiment] data ready in {plan.out / 'data'} ({time.monotonic() - t0:.0f} s)")
    summary: dict[str, list[str]] = {"trained": [], "resumed": [], "skipped": [r.run_id for r in plan.runs if r not in todo], "failed": []}
    for run in todo:
        blocked = [d for d in run.needs if status.get(d) != "done"]
        if blocked:
            status[run.run_id] = "blocked"
            notes[run.run_id] = f"needs {', '.join(blocked)}"
            summary["failed"].append(run.run_id)
            continue
        status[run.run_id] = "running"
        n_done = sum(v == "done" for v in status.values())
        print(f"[experiment] {run.run_id} ({run.spec.label}): {'resuming' if run_status(run) == 'interrupted' else 'starting'}; "
              f"{n_done}/{len(plan.runs)} runs done")
        try:
            actions = [train_stage(specs.with_runtime(s, progress, threads, device), run.folder / s.name, plan.out,
                                   max_minutes) for s in run.stages]
            records = evaluate_run(plan, run, device, progress)
        except (CheckpointError, TrainingDiverged, ExperimentError, ValueError, FileExistsError, FileNotFoundError) as e:
            status[run.run_id] = "failed"
            notes[run.run_id] = str(e)[:200]
            summary["failed"].append(run.run_id)
            print(f"[experiment] {run.run_id} failed: {e}")
            continue
        write_json_atomic(run.folder / "result.json", {"config_hash": config_hash(run.stages, plan.out), "records": records})
        write_results(plan.out)
        status[run.run_id] = "done"
        summary["resumed" if "resumed" in actions else "trained"].append(run.run_id)
    results = write_results(plan.out)
    if todo:  # the table at the start already shows a plan with nothing left to run
        show_progress(plan, status, notes)
    print(f"[experiment] results: {results}")
    return {"results": results, **summary}
