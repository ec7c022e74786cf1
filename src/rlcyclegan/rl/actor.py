"""Playing episodes with a Q-policy: several envs stepped in lockstep so CEM runs batched.

Used for on-policy collection during training (optionally in worker processes that receive the
current weights every round) and for evaluation.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from rlcyclegan.data.collect import PRIVILEGED_KEY, privileged_of
from rlcyclegan.data.store import Episode


@dataclass
class EpisodeBuilder:
    """Accumulates one episode: :meth:`observe` the reset result, then append each step's action,
    reward and flags and :meth:`observe` its result."""

    images: list = field(default_factory=list)
    states: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    rewards: list = field(default_factory=list)
    terminated: list = field(default_factory=list)
    truncated: list = field(default_factory=list)
    privileged: list | None = None
    """``info["privileged"]`` of every observation, or None when the reset info had none."""

    def observe(self, obs: Any, info: dict | None = None) -> None:
        """Record an observation and, when the reset info had ``"privileged"``, its info's vector
        (then every later info must have one: RuntimeError otherwise)."""
        if not self.images:
            if info is not None and PRIVILEGED_KEY in info:
                self.privileged = [privileged_of(info, "env.reset")]
        elif self.privileged is not None:
            where = f"env.step (step {len(self.images) - 1})"
            self.privileged.append(privileged_of(info or {}, where, len(self.privileged[0])))
        if isinstance(obs, dict):
            self.images.append(np.asarray(obs["image"], np.uint8))
            self.states.append(np.asarray(obs.get("state", np.zeros(0)), np.float32))
        else:
            self.images.append(np.asarray(obs, np.uint8))
            self.states.append(np.zeros(0, np.float32))

    def build(self, success: bool, index: int, seed: int, shape_ids: Sequence[int]) -> Episode:
        return Episode(
            images=np.stack(self.images),
            states=np.stack(self.states).astype(np.float32),
            actions=np.stack(self.actions).astype(np.float32),
            rewards=np.asarray(self.rewards, np.float32),
            terminated=np.asarray(self.terminated, np.bool_),
            truncated=np.asarray(self.truncated, np.bool_),
            success=bool(success),
            index=index,
            seed=seed,
            shape_ids=[int(i) for i in shape_ids],
            privileged=None if self.privileged is None else np.stack(self.privileged),
        )


def run_episodes(
    envs: Sequence[Any],
    act: Callable[[dict], np.ndarray],
    seeds: Sequence[int],
    first_index: int = 0,
    max_steps: int = 1000,
) -> list[Episode]:
    """Play one episode per seed, ``len(envs)`` at a time in lockstep; ``act`` maps a batched obs
    dict ``{"image": (B, H, W, 3), "state": (B, S)}`` to (B, A) actions. Episodes come back in
    seed order (index ``first_index + i``); an episode longer than ``max_steps`` is cut there (truncated).
    Episodes carry ``info["privileged"]`` (:attr:`Episode.privileged`) when the envs provide it."""
    pending = list(enumerate(seeds))
    results: dict[int, Episode] = {}
    slots: list[dict | None] = [None] * len(envs)

    def start(k: int) -> None:
        if not pending:
            slots[k] = None
            return
        i, seed = pending.pop(0)
        obs, info = envs[k].reset(seed=int(seed))
        b = EpisodeBuilder()
        b.observe(obs, info)
        slots[k] = {"i": i, "seed": int(seed), "obs": obs, "builder": b, "shape_ids": info.get("shape_ids", []), "t": 0}

    for k in range(len(envs)):
        start(k)
    while any(s is not None for s in slots):
        live = [k for k, s in enumerate(slots) if s is not None]
        obs_list = [slots[k]["obs"] for k in live]
        if isinstance(obs_list[0], dict):
            batch = {"image": np.stack([o["image"] for o in obs_list])}
            if "state" in obs_list[0]:
                batch["state"] = np.stack([o["state"] for o in obs_list]).astype(np.float32)
        else:
            batch = {"image": np.stack(obs_list)}
        actions = act(batch)
        for j, k in enumerate(live):
            s = slots[k]
            obs, reward, term, trunc, info = envs[k].step(actions[j])
            b = s["builder"]
            b.actions.append(np.asarray(actions[j], np.float32))
            b.rewards.append(float(reward))
            b.terminated.append(bool(term))
            b.truncated.append(bool(trunc))
            b.observe(obs, info)
            s["obs"], s["t"] = obs, s["t"] + 1
            if term or trunc or s["t"] >= max_steps:
                if not (term or trunc):
                    b.truncated[-1] = True
                success = bool(info.get("success", float(np.sum(b.rewards)) > 0))
                results[s["i"]] = b.build(success, first_index + s["i"], s["seed"], s["shape_ids"])
                start(k)
    return [results[i] for i in range(len(seeds))]


# ------------------------------------------------------------------------------------ worker pool
@dataclass(frozen=True)
class ActorSpec:
    """What a worker needs to build its envs and its copy of the Q-network."""

    env_id: str
    env_kwargs: dict
    envs_per_worker: int
    qnet_config: dict
    action_low: list
    action_high: list
    cem: dict
    translate_with: str | None = None
    """Generator checkpoint/run: wrap the envs so observations are G-translated (see rl/translate.py)."""


def _make_policy(spec: ActorSpec, state_dict: dict | None, seed: int):
    from rlcyclegan.nets.qnet import GraspQNet, QNetConfig
    from rlcyclegan.rl.policy import Policy

    qnet = GraspQNet(QNetConfig(**spec.qnet_config))
    if state_dict is not None:
        qnet.load_state_dict(state_dict)
    return Policy(qnet, np.asarray(spec.action_low), np.asarray(spec.action_high), seed=seed, **spec.cem)


def _make_envs(spec: ActorSpec) -> list:
    import gymnasium as gym

    import rlcyclegan.envs  # noqa: F401  (registers the env ids)

    envs = [gym.make(spec.env_id, **spec.env_kwargs) for _ in range(spec.envs_per_worker)]
    if spec.translate_with:
        from rlcyclegan.rl.translate import ImageTranslator, TranslatedObservations

        translator = ImageTranslator.load(spec.translate_with)
        envs = [TranslatedObservations(e, translator) for e in envs]
    return envs


def play(spec: ActorSpec, envs: list, state_dict: dict, seeds: Sequence[int], first_index: int, rng_seed: int, epsilon: float, noise: float) -> list[Episode]:
    """One collection job: load the weights, play the seeds with exploration."""
    if mp.current_process().name != "MainProcess":
        torch.set_num_threads(1)
    policy = _make_policy(spec, state_dict, rng_seed)
    return run_episodes(envs, lambda obs: policy.act(obs, epsilon=epsilon, noise=noise), seeds, first_index)


def _worker(spec: ActorSpec, jobs: Any, results: Any) -> None:
    try:
        envs = _make_envs(spec)
        while True:
            job = jobs.get()
            if job is None:
                break
            tag, args = job
            results.put((tag, play(spec, envs, *args)))
    except BaseException:  # noqa: BLE001  (reported to the parent)
        results.put(("error", traceback.format_exc()))


class ActorPool:
    """Plays episodes for the trainer: in this process (``workers=0``) or in spawned worker
    processes, each with ``envs_per_worker`` envs; the current weights are pushed with every job.

    The episodes of a job depend only on (weights, seeds, rng_seed, workers), so collection is
    reproducible and a resumed run recollects exactly the data it lost.
    """

    def __init__(self, spec: ActorSpec, workers: int = 0):
        self.spec = spec
        self.workers = workers
        self._procs: list = []
        self._envs: list | None = None
        if workers > 0:
            ctx = mp.get_context("spawn")
            self._jobs, self._results = ctx.Queue(), ctx.Queue()
            self._procs = [ctx.Process(target=_worker, args=(spec, self._jobs, self._results), daemon=True) for _ in range(workers)]
            for p in self._procs:
                p.start()
        else:
            self._envs = _make_envs(spec)

    def collect(self, state_dict: dict, seeds: Sequence[int], first_index: int, rng_seed: int, epsilon: float, noise: float) -> list[Episode]:
        """Play ``seeds`` (split evenly across workers; chunk i uses ``rng_seed + i``)."""
        state_dict = {k: v.detach().cpu() for k, v in state_dict.items()}
        n_chunks = max(1, self.workers)
        chunks = [list(c) for c in np.array_split(np.asarray(seeds, dtype=np.int64), n_chunks) if len(c)]
        starts = np.cumsum([0] + [len(c) for c in chunks])[:-1]
        if self.workers == 0:
            out: list[Episode] = []
            for i, (c, s0) in enumerate(zip(chunks, starts)):
                out += play(self.spec, self._envs, state_dict, c, first_index + int(s0), rng_seed + i, epsilon, noise)
            return out
        for i, (c, s0) in enumerate(zip(chunks, starts)):
            self._jobs.put((i, (state_dict, c, first_index + int(s0), rng_seed + i, epsilon, noise)))
        got: dict[int, list[Episode]] = {}
        while len(got) < len(chunks):
            tag, payload = self._results.get()
            if tag == "error":
                self.close()
                raise RuntimeError(f"actor worker failed:\n{payload}")
            got[tag] = payload
        return [ep for i in range(len(chunks)) for ep in got[i]]

    def close(self) -> None:
        for _ in self._procs:
            try:
                self._jobs.put(None)
            except Exception:  # noqa: BLE001
                pass
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
        self._procs = []
        for e in self._envs or []:
            e.close()
        self._envs = None
