"""Collect grasping episodes into a directory of HDF5 shards, resumably and in parallel.

Determinism: episode ``i`` is reset with env seed ``seed + i`` and acted on by a fresh policy
seeded from that env seed (:func:`policy_seed`), so every episode, and hence every shard, is the
same whatever the number of workers or the order they run in.

Layout: shard ``k`` holds episodes ``[k * shard_size, (k + 1) * shard_size)`` and is named by its
first episode. ``dataset.json`` records the collection settings; a later run into the same
directory checks them and collects only the episodes whose shards are missing or partial (a
partial last shard is extended by rewriting it atomically with its old and new episodes).

Parallelism: ``workers > 1`` starts that many *spawned* processes (MuJoCo's EGL contexts must not
be forked) that take shards from a task queue and report each finished episode on a result queue,
which feeds the progress bar. Shards are written atomically by the worker that collected them, so
a crash, Ctrl-C or kill leaves only complete shards, and a rerun picks up where it stopped.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from rlcyclegan.data.schema import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    SHARD_PREFIX,
    SHARD_SUFFIX,
    TMP_SUFFIX,
    shard_name,
)
from rlcyclegan.data.store import Episode, list_shards, read_shard, write_shard

PRIVILEGED_KEY = "privileged"
"""Info key of the privileged simulator state (stored as ``obs/privileged`` when the env provides it)."""

MAX_EPISODE_STEPS = 100_000
"""Safety net: an episode that neither terminates nor truncates within this many steps is an error."""

MANIFEST_KEYS = ("format_version", "env_id", "env_kwargs", "policy", "seed", "shard_size")
"""Manifest fields that must agree between runs collecting into the same directory."""

_POLICY_STREAM = 0x5EED_9011C7
"""Mixed with the env seed so the policy's random stream differs from the environment's."""


class CollectError(ValueError):
    """This collection cannot run: invalid arguments, or the output directory's manifest records
    other settings, or its files are not a dataset this run can extend (no manifest, a bad shard)."""


def policy_seed(env_seed: int) -> int:
    """Seed of the policy for the episode reset with ``env_seed`` (a deterministic function of it)."""
    return int(np.random.SeedSequence([env_seed, _POLICY_STREAM]).generate_state(1, np.uint32)[0])


# --------------------------------------------------------------------------------------------- episodes
def run_episode(env: Any, policy_name: str, env_seed: int, index: int) -> Episode:
    """Play one episode of ``env`` with a fresh ``policy_name`` policy and record it.

    When the reset info has ``"privileged"`` every step's info must have it too (else RuntimeError);
    the vectors become :attr:`Episode.privileged`. Envs without it give ``privileged=None``.
    """
    from rlcyclegan.envs import make_policy

    policy = make_policy(policy_name, env, seed=policy_seed(env_seed))
    obs, info = env.reset(seed=env_seed)
    policy.reset()
    images, states = [np.array(obs["image"], dtype=np.uint8)], [np.array(obs["state"], dtype=np.float32)]
    actions: list[np.ndarray] = []
    rewards: list[float] = []
    terminated: list[bool] = []
    truncated: list[bool] = []
    shape_ids = [int(i) for i in info.get("shape_ids", [])]
    privileged = [privileged_of(info, "env.reset")] if PRIVILEGED_KEY in info else None
    size = None if privileged is None else len(privileged[0])
    while True:
        action = np.array(policy.act(obs), dtype=np.float32)
        obs, reward, term, trunc, info = env.step(action)
        images.append(np.array(obs["image"], dtype=np.uint8))
        states.append(np.array(obs["state"], dtype=np.float32))
        actions.append(action)
        rewards.append(float(reward))
        terminated.append(bool(term))
        truncated.append(bool(trunc))
        if privileged is not None:
            privileged.append(privileged_of(info, f"env.step (step {len(actions) - 1} of episode {index})", size))
        if term or trunc:
            break
        if len(actions) >= MAX_EPISODE_STEPS:
            raise RuntimeError(
                f"episode {index} (seed {env_seed}) ran {MAX_EPISODE_STEPS} steps without terminating or truncating"
            )
    if "success" not in info:
        raise RuntimeError(f"env.step info has no 'success' key (got keys {sorted(info)})")
    return Episode(
        images=np.stack(images),
        states=np.stack(states),
        actions=np.stack(actions),
        rewards=np.array(rewards, dtype=np.float32),
        terminated=np.array(terminated, dtype=np.bool_),
        truncated=np.array(truncated, dtype=np.bool_),
        success=bool(info["success"]),
        index=index,
        seed=env_seed,
        shape_ids=shape_ids,
        privileged=None if privileged is None else np.stack(privileged),
    )


def privileged_of(info: Mapping[str, Any], where: str, size: int | None = None) -> np.ndarray:
    """``info["privileged"]`` as a float32 vector; RuntimeError naming ``where`` if it is absent, not
    1-D, or (with ``size``) not of that length."""
    if PRIVILEGED_KEY not in info:
        raise RuntimeError(
            f"{where} info has no {PRIVILEGED_KEY!r} key (got keys {sorted(info)}) but env.reset gave one; "
            "an env must give it after every step or never"
        )
    value = np.array(info[PRIVILEGED_KEY], dtype=np.float32)
    if value.ndim != 1 or (size is not None and len(value) != size):
        expected = "a vector (P,)" if size is None else f"({size},) as at env.reset"
        raise RuntimeError(f"{where} info[{PRIVILEGED_KEY!r}] has shape {value.shape}, expected {expected}")
    return value


# --------------------------------------------------------------------------------------------- shards
@dataclass(frozen=True)
class Job:
    """What every worker needs to know: the collection settings."""

    env_id: str
    env_kwargs: dict[str, Any]
    policy: str
    seed: int
    shard_size: int
    out_dir: str


@dataclass(frozen=True)
class ShardTask:
    """One shard to (re)write: collect ``new`` episodes and keep ``kept`` ones from the existing file."""

    first_episode: int
    new: tuple[int, ...]
    kept: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return shard_name(self.first_episode)

    def describe(self) -> str:
        episodes = sorted(self.new + self.kept)
        return f"{self.name} (episodes {episodes[0]}-{episodes[-1]})"


class ShardCollector:
    """Owns one environment and writes shards with it (used in-process and inside each worker)."""

    def __init__(self, job: Job) -> None:
        import gymnasium

        import rlcyclegan  # noqa: F401  (registers the environments, also in spawned workers)

        self.job = job
        self.env = gymnasium.make(job.env_id, **job.env_kwargs)
        config = self.env.unwrapped.config_dict() if hasattr(self.env.unwrapped, "config_dict") else {}
        self.config: dict[str, Any] = dict(config)

    def close(self) -> None:
        self.env.close()

    def collect(self, task: ShardTask, on_episode: Callable[[Episode], None]) -> Path:
        """Collect the task's new episodes, merge the kept ones, and write the shard atomically."""
        job = self.job
        path = Path(job.out_dir) / task.name
        episodes: list[Episode] = []
        if task.kept:
            old = {ep.index: ep for ep in read_shard(path).episodes()}
            episodes += [old[i] for i in task.kept]
        for index in task.new:
            ep = run_episode(self.env, job.policy, job.seed + index, index)
            episodes.append(ep)
            on_episode(ep)
        episodes.sort(key=lambda ep: ep.index)
        if len({ep.privileged is None for ep in episodes}) > 1:
            # A partial shard written before the env provided info["privileged"]: keep the shard uniform
            # (a dataset with such a shard does without obs/privileged anyway).
            for ep in episodes:
                ep.privileged = None
        kwargs = job.env_kwargs
        return write_shard(
            path,
            episodes,
            env_id=job.env_id,
            domain=str(self.config.get("domain", kwargs.get("domain", "unknown"))),
            objects=str(self.config.get("objects", kwargs.get("objects", "unknown"))),
            policy=job.policy,
            env_kwargs=kwargs,
            extra_attrs={
                "env_config": self.config,
                "seed": job.seed,
                "shard_size": job.shard_size,
                "first_episode": task.first_episode,
            },
        )


def plan_shards(out_dir: Path, episodes: int, shard_size: int) -> list[ShardTask]:
    """Shard tasks needed so that ``out_dir`` holds episodes ``0..episodes-1``.

    A shard whose file already holds all of its block's needed episodes is skipped; one holding
    only some (a partial last shard of an earlier, shorter run) becomes a task that keeps them.
    """
    tasks: list[ShardTask] = []
    for first in range(0, episodes, shard_size):
        needed = set(range(first, min(first + shard_size, episodes)))
        path = out_dir / shard_name(first)
        have: set[int] = set()
        if path.exists():
            try:
                have = {int(i) for i in read_shard(path, load_images=False).episode_indices}
            except ValueError as exc:
                raise CollectError(f"{exc}\ndelete {path} to collect its episodes again") from exc
            outside = sorted(i for i in have if not first <= i < first + shard_size)
            if outside:
                raise CollectError(
                    f"{path}: holds episodes {outside} outside its block [{first}, {first + shard_size}); "
                    f"was it written with a different shard size than {shard_size}?"
                )
        if not needed <= have:
            tasks.append(ShardTask(first, tuple(sorted(needed - have)), tuple(sorted(have))))
    return tasks


# --------------------------------------------------------------------------------------------- manifest
def _manifest(job: Job, episodes: int) -> dict[str, Any]:
    from rlcyclegan import __version__

    return {
        "format_version": FORMAT_VERSION,
        "env_id": job.env_id,
        "env_kwargs": job.env_kwargs,
        "policy": job.policy,
        "seed": job.seed,
        "shard_size": job.shard_size,
        "episodes": episodes,
        "rlcyclegan_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _check_manifest(path: Path, existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    """Raise CollectError naming each collection setting that differs from the directory's manifest."""
    diffs = []
    for key in MANIFEST_KEYS:
        old, new = existing.get(key), wanted[key]
        if key == "env_kwargs" and isinstance(old, dict):
            for sub in sorted(set(old) | set(new)):
                if old.get(sub, "<unset>") != new.get(sub, "<unset>"):
                    before, after = old.get(sub, "<unset>"), new.get(sub, "<unset>")
                    diffs.append(f"env_kwargs.{sub}: directory has {before!r}, requested {after!r}")
        elif old != new:
            diffs.append(f"{key}: directory has {old!r}, requested {new!r}")
    if diffs:
        raise CollectError(
            f"{path} was collected with different settings; use a new output directory or the same settings:\n  "
            + "\n  ".join(diffs)
        )


def _prepare_out_dir(out_dir: Path, job: Job, episodes: int) -> dict[str, Any]:
    """Create or check ``out_dir`` and its manifest; remove stale temporary files. Returns the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST_NAME
    wanted = _manifest(job, episodes)
    if manifest_path.exists():
        try:
            existing = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise CollectError(f"{manifest_path}: not valid JSON ({exc}); fix or delete it") from None
        _check_manifest(manifest_path, existing, wanted)
        return existing
    if list_shards(out_dir):
        raise CollectError(
            f"{out_dir} has episode shards but no {MANIFEST_NAME}, so their collection settings are unknown; "
            "collect into a new directory"
        )
    _write_json_atomic(manifest_path, wanted)
    return wanted


def _remove_tmp_files(out_dir: Path) -> None:
    """Delete temporary files left by interrupted shard or manifest writes."""
    for pattern in (f"{SHARD_PREFIX}*{SHARD_SUFFIX}{TMP_SUFFIX}", f"{MANIFEST_NAME}{TMP_SUFFIX}"):
        for tmp in out_dir.glob(pattern):
            tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- workers
def _worker_main(worker_id: int, job: Job, tasks: Any, results: Any, parent_pid: int) -> None:
    """Entry point of a spawned collection process.

    Messages put on ``results``: ("episode", worker_id, steps, success) per episode,
    ("shard", worker_id, shard file name) per written shard, ("error", worker_id, task
    description, traceback text) on failure, and ("done", worker_id) at the end. A worker whose
    parent died (e.g. was killed) stops after its current shard instead of running on orphaned.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates workers
    current = "environment setup"
    try:
        collector = ShardCollector(job)
        while (task := tasks.get()) is not None:
            if os.getppid() != parent_pid:
                results.cancel_join_thread()  # nobody will read the results: do not block on exit
                return
            current = task.describe()
            path = collector.collect(task, lambda ep: results.put(("episode", worker_id, ep.length, ep.success)))
            results.put(("shard", worker_id, path.name))
        collector.close()
    except BaseException:
        results.put(("error", worker_id, current, traceback.format_exc()))
        raise SystemExit(1) from None
    results.put(("done", worker_id))


class WorkerError(RuntimeError):
    """A collection worker process failed; the message carries its traceback."""


def _run_parallel(
    job: Job, task_list: list[ShardTask], workers: int, on_episode: Callable[[int, bool], None]
) -> int:
    """Run ``task_list`` on ``workers`` spawned processes; returns the number of shards written."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    tasks = ctx.Queue()
    results = ctx.Queue()
    for task in task_list:
        tasks.put(task)
    for _ in range(workers):
        tasks.put(None)
    procs = [
        ctx.Process(
            target=_worker_main, args=(w, job, tasks, results, os.getpid()), name=f"collect-{w}", daemon=True
        )
        for w in range(workers)
    ]
    finished: set[int] = set()
    shards_written = 0
    try:
        for p in procs:
            p.start()
        grace: dict[int, float] = {}  # worker -> time it was first seen dead without a "done"
        while len(finished) < workers:
            try:
                msg = results.get(timeout=0.2)
            except queue.Empty:
                msg = None
            if msg is None:
                now = time.monotonic()
                for w, p in enumerate(procs):
                    if w in finished or p.is_alive():
                        continue
                    # Its last messages may still be in flight: allow a moment before declaring it lost.
                    if now - grace.setdefault(w, now) > 2.0:
                        raise WorkerError(
                            f"collection worker {w} (pid {p.pid}) exited with code {p.exitcode} before finishing "
                            f"(killed?); complete shards in {job.out_dir} are kept, rerun the same command to resume"
                        )
                continue
            kind, w = msg[0], msg[1]
            if kind == "episode":
                on_episode(msg[2], msg[3])
            elif kind == "shard":
                shards_written += 1
            elif kind == "done":
                finished.add(w)
            elif kind == "error":
                last_line = msg[3].strip().splitlines()[-1]
                raise WorkerError(
                    f"collection worker {w} failed during {msg[2]}: {last_line}\n"
                    f"complete shards in {job.out_dir} are kept; rerun the same command to resume.\n\n"
                    f"worker traceback:\n{msg[3]}"
                )
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            if p.pid is not None:
                p.join(timeout=10)
        tasks.cancel_join_thread()
        results.cancel_join_thread()
    return shards_written


# --------------------------------------------------------------------------------------------- entry point
def collect(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None,
    policy: str,
    episodes: int,
    out_dir: str | os.PathLike[str],
    workers: int = 1,
    seed: int = 0,
    shard_size: int = 50,
    progress: bool = True,
) -> dict[str, Any]:
    """Collect ``episodes`` episodes of ``env_id`` played by ``policy`` into ``out_dir``.

    Resumes: shards already present are kept and only missing episodes are collected (never
    duplicated). Raises :class:`CollectError` (a ValueError) for invalid arguments or if
    ``out_dir``'s ``dataset.json`` was made with another env, env_kwargs, policy, seed or shard
    size. ``workers=1`` runs in this process; more start spawned worker processes. A worker
    failure raises :class:`WorkerError` with the worker's traceback.

    Returns a summary: ``episodes``, ``steps``, ``successes`` and ``success_rate`` of the whole
    directory after the run, ``new_episodes`` and ``new_steps`` collected by this run,
    ``shards``, ``shards_written``, ``seconds`` and ``episodes_per_second``.
    """
    from tqdm.auto import tqdm

    if episodes < 1:
        raise CollectError(f"episodes must be >= 1, got {episodes}")
    if workers < 1:
        raise CollectError(f"workers must be >= 1, got {workers}")
    if shard_size < 1:
        raise CollectError(f"shard_size must be >= 1, got {shard_size}")
    if seed < 0:
        raise CollectError(f"seed must be >= 0, got {seed}")
    out = Path(out_dir)
    kwargs = json.loads(json.dumps(dict(env_kwargs or {})))  # plain JSON types, as the manifest stores them
    job = Job(env_id=env_id, env_kwargs=kwargs, policy=policy, seed=seed, shard_size=shard_size, out_dir=str(out))

    start = time.monotonic()
    manifest = _prepare_out_dir(out, job, episodes)
    _remove_tmp_files(out)
    task_list = plan_shards(out, episodes, shard_size)
    to_collect = sum(len(t.new) for t in task_list)

    new_steps = 0
    new_successes = 0
    new_episodes = 0
    bar = tqdm(
        total=to_collect,
        unit="ep",
        desc=f"collect {out.name}",
        disable=not progress or to_collect == 0,
        dynamic_ncols=True,
    )

    def on_episode(steps: int, success: bool) -> None:
        nonlocal new_steps, new_successes, new_episodes
        new_episodes += 1
        new_steps += steps
        new_successes += int(success)
        bar.update(1)
        bar.set_postfix(success=f"{new_successes / new_episodes:.2f}", refresh=False)

    shards_written = 0
    try:
        n_workers = min(workers, len(task_list))
        if n_workers == 1:
            collector = ShardCollector(job)
            try:
                for task in task_list:
                    collector.collect(task, lambda ep: on_episode(ep.length, ep.success))
                    shards_written += 1
            finally:
                collector.close()
        elif n_workers > 1:
            shards_written = _run_parallel(job, task_list, n_workers, on_episode)
    finally:
        bar.close()
        _remove_tmp_files(out)

    if episodes > int(manifest.get("episodes", 0)):
        _write_json_atomic(out / MANIFEST_NAME, {**manifest, "episodes": episodes})
    seconds = time.monotonic() - start
    return {
        "out_dir": str(out),
        **_directory_totals(out),
        "new_episodes": new_episodes,
        "new_steps": new_steps,
        "shards_written": shards_written,
        "seconds": seconds,
        "episodes_per_second": new_episodes / seconds if seconds > 0 else 0.0,
    }


def _directory_totals(out: Path) -> dict[str, Any]:
    """Episode, step and success counts over all shards of ``out`` (images are not read)."""
    shards = [read_shard(p, load_images=False) for p in list_shards(out)]
    n = sum(s.num_episodes for s in shards)
    successes = sum(int(s.arrays["episode/success"].sum()) for s in shards)
    return {
        "episodes": n,
        "steps": sum(s.num_steps for s in shards),
        "successes": successes,
        "success_rate": successes / n if n else 0.0,
        "shards": len(shards),
    }

