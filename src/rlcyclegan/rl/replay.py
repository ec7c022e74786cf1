"""Replay for QT-Opt: a bounded ring buffer of transitions, filled from stored episodes.

QT-Opt mixes off-policy data loaded from disk with on-policy data from the current policy. Here
there are two buffers, an ``offline`` one holding every stored episode (:class:`IndexedReplay`, each
image stored once) and a bounded ``online`` ring (:class:`ReplayBuffer`), and :func:`sample_mixed`
draws a configurable fraction of each batch from the online one.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from rlcyclegan.data.store import Episode

FIELDS = ("image", "next_image", "state", "next_state", "action", "reward", "done")


class ReplayBuffer:
    """Fixed-capacity ring of (s, a, r, s', done) transitions with uint8 images.

    ``done`` marks a terminal s' (no bootstrapping); a time-limit truncation is not done.
    ``position`` and ``size`` (and the order of additions) fully determine the contents, which is
    what exact resumption relies on. With ``privileged_dim`` > 0 each transition also keeps the
    privileged simulator vector of s (``Episode.privileged``; NaN for episodes without one), which
    :meth:`sample` returns under ``"privileged"``.
    """

    def __init__(self, capacity: int, image_shape: tuple[int, int, int], state_dim: int, action_dim: int, privileged_dim: int = 0):
        if capacity < 1:
            raise ValueError(f"ReplayBuffer: capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.image_shape = tuple(int(v) for v in image_shape)
        self.state_dim, self.action_dim = int(state_dim), int(action_dim)
        self.image = np.zeros((capacity, *self.image_shape), np.uint8)
        self.next_image = np.zeros((capacity, *self.image_shape), np.uint8)
        self.state = np.zeros((capacity, state_dim), np.float32)
        self.next_state = np.zeros((capacity, state_dim), np.float32)
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.bool_)
        self.privileged_dim = int(privileged_dim)
        self.privileged = np.full((capacity, self.privileged_dim), np.nan, np.float32) if self.privileged_dim else None
        self.position = 0
        self.size = 0
        self.added = 0

    def __len__(self) -> int:
        return self.size

    def add_episode(self, episode: Episode) -> None:
        """Append the T transitions of an episode (its T+1 observations give s and s')."""
        t = episode.length
        if episode.images.shape[1:] != self.image_shape:
            raise ValueError(f"ReplayBuffer: episode {episode.index} images are {episode.images.shape[1:]}, buffer holds {self.image_shape}")
        if episode.actions.shape[1] != self.action_dim or episode.states.shape[1] != self.state_dim:
            raise ValueError(
                f"ReplayBuffer: episode {episode.index} has action dim {episode.actions.shape[1]} and state dim "
                f"{episode.states.shape[1]}, buffer holds {self.action_dim} and {self.state_dim}"
            )
        self.add_transitions(
            image=episode.images[:t],
            next_image=episode.images[1:],
            state=episode.states[:t],
            next_state=episode.states[1:],
            action=episode.actions,
            reward=episode.rewards,
            done=episode.terminated,
            **({"privileged": _episode_privileged(episode, self.privileged_dim)} if self.privileged_dim else {}),
        )

    def add_episodes(self, episodes: Iterable[Episode]) -> None:
        for ep in episodes:
            self.add_episode(ep)

    def add_transitions(self, **batch: np.ndarray) -> None:
        """Append a batch of transitions given as arrays named as :data:`FIELDS`, oldest overwritten first."""
        missing = set(FIELDS) - set(batch)
        if missing:
            raise ValueError(f"ReplayBuffer.add_transitions: missing field(s) {sorted(missing)}")
        n = len(batch["action"])
        if n > self.capacity:  # only the last `capacity` survive anyway
            batch = {k: v[-self.capacity :] for k, v in batch.items()}
            self.added += n - self.capacity
            n = self.capacity
        idx = (self.position + np.arange(n)) % self.capacity
        for name in FIELDS:
            getattr(self, name)[idx] = batch[name]
        if self.privileged is not None:
            self.privileged[idx] = batch["privileged"] if "privileged" in batch else np.nan
        self.position = int((self.position + n) % self.capacity)
        self.size = int(min(self.size + n, self.capacity))
        self.added += n

    def sample(self, n: int, rng: np.random.Generator, done_fraction: float = 0.0) -> dict[str, np.ndarray]:
        """``n`` transitions drawn uniformly with replacement; with ``done_fraction`` > 0, that share
        of them is drawn among the terminal transitions only (``done``: grasp attempts and
        terminations, not time-outs), the rest uniformly over all (none terminal: all uniform)."""
        idx = _sample_indices(self.size, self.done, n, rng, done_fraction, "ReplayBuffer")
        out = {name: getattr(self, name)[idx] for name in FIELDS}
        if self.privileged is not None:
            out["privileged"] = self.privileged[idx]
        return out


class IndexedReplay:
    """A fixed set of transitions whose images are stored once per observation, not twice.

    Off-policy data never changes during a run, so s and s' can point into one array of observations
    instead of each transition holding two image copies (the layout of :class:`ReplayBuffer`). That
    halves the memory of QT-Opt's seeding data (~12 KB per 64x64 observation instead of ~25 KB per
    transition), which is what lets a run hold the ~100k episodes QT-Opt-style seeding asks for.
    :meth:`sample` draws exactly what a :class:`ReplayBuffer` holding the same transitions in the
    same order would draw with the same generator. ``privileged`` (optional, one row per transition:
    the privileged vector of s) is returned by :meth:`sample` as ``"privileged"``.
    """

    def __init__(self, images: np.ndarray, obs_index: np.ndarray, next_obs_index: np.ndarray, state: np.ndarray,
                 next_state: np.ndarray, action: np.ndarray, reward: np.ndarray, done: np.ndarray,
                 privileged: np.ndarray | None = None):
        n = len(action)
        lengths = {**({"privileged": len(privileged)} if privileged is not None else {}),"obs_index": len(obs_index), "next_obs_index": len(next_obs_index), "state": len(state),
                   "next_state": len(next_state), "reward": len(reward), "done": len(done)}
        bad = {k: v for k, v in lengths.items() if v != n}
        if bad:
            raise ValueError(f"IndexedReplay: {n} actions but {bad} rows")
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(f"IndexedReplay: images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
        if n and (min(obs_index.min(), next_obs_index.min()) < 0 or max(obs_index.max(), next_obs_index.max()) >= len(images)):
            raise ValueError(f"IndexedReplay: observation indices outside [0, {len(images)})")
        self.images = images
        self.obs_index = np.asarray(obs_index, np.int64)
        self.next_obs_index = np.asarray(next_obs_index, np.int64)
        self.state = np.asarray(state, np.float32)
        self.next_state = np.asarray(next_state, np.float32)
        self.action = np.asarray(action, np.float32)
        self.reward = np.asarray(reward, np.float32)
        self.done = np.asarray(done, np.bool_)
        self.privileged = None if privileged is None else np.asarray(privileged, np.float32)
        self.privileged_dim = 0 if privileged is None else self.privileged.shape[1]
        self.size = n
        self.image_shape = tuple(images.shape[1:])

    @classmethod
    def concatenate(cls, parts: list["IndexedReplay"]) -> "IndexedReplay":
        """One replay holding the transitions of ``parts`` in order."""
        if not parts:
            raise ValueError("IndexedReplay.concatenate: nothing to concatenate")
        offsets = np.cumsum([0] + [len(p.images) for p in parts[:-1]])
        cat = np.concatenate
        dims = {p.privileged_dim for p in parts}
        privileged = None
        if dims != {0}:
            if len(dims) != 1 and 0 not in dims:
                raise ValueError(f"IndexedReplay.concatenate: parts hold privileged vectors of different sizes {sorted(dims)}")
            dim = max(dims)  # parts without privileged data get NaN rows
            privileged = cat([p.privileged if p.privileged is not None else np.full((len(p), dim), np.nan, np.float32) for p in parts])
        return cls(cat([p.images for p in parts]), cat([p.obs_index + o for p, o in zip(parts, offsets)]),
                   cat([p.next_obs_index + o for p, o in zip(parts, offsets)]), cat([p.state for p in parts]),
                   cat([p.next_state for p in parts]), cat([p.action for p in parts]), cat([p.reward for p in parts]),
                   cat([p.done for p in parts]), privileged)

    def __len__(self) -> int:
        return self.size

    def subset(self, rows: np.ndarray) -> "IndexedReplay":
        """The transitions selected by ``rows`` (a boolean mask or indices), sharing this replay's images."""
        pick = lambda a: None if a is None else a[rows]  # noqa: E731
        return IndexedReplay(self.images, self.obs_index[rows], self.next_obs_index[rows], self.state[rows], self.next_state[rows],
                             self.action[rows], self.reward[rows], self.done[rows], pick(self.privileged))

    def sample(self, n: int, rng: np.random.Generator, done_fraction: float = 0.0) -> dict[str, np.ndarray]:
        """As :meth:`ReplayBuffer.sample`."""
        idx = _sample_indices(self.size, self.done, n, rng, done_fraction, type(self).__name__)
        out = {name: getattr(self, name)[idx] for name in ("state", "next_state", "action", "reward", "done")}
        if self.privileged is not None:
            out["privileged"] = self.privileged[idx]
        out["image"] = self.images[self.obs_index[idx]]
        out["next_image"] = self.images[self.next_obs_index[idx]]
        return out


class FractionReplay:
    """Two replays drawn in a fixed ratio: ``round(n * fraction)`` rows of each batch from ``extra``, the rest from
    ``main`` (e.g. a few real episodes beside many sim ones, replayed in a set share of every batch instead of in
    proportion to their size). It samples like one buffer, so :func:`sample_mixed` takes it as the off-policy part."""

    def __init__(self, main: "IndexedReplay | ReplayBuffer", extra: "IndexedReplay | ReplayBuffer", fraction: float):
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"FractionReplay: fraction must be in (0, 1), got {fraction}")
        if len(main) == 0 or len(extra) == 0:
            raise ValueError(f"FractionReplay: both replays must hold transitions (got {len(main)} and {len(extra)})")
        self.main, self.extra, self.fraction = main, extra, fraction

    def __len__(self) -> int:
        return len(self.main) + len(self.extra)

    def sample(self, n: int, rng: np.random.Generator, done_fraction: float = 0.0) -> dict[str, np.ndarray]:
        """As :meth:`ReplayBuffer.sample`, each part drawn with ``done_fraction`` from its own replay."""
        n_extra = int(round(n * self.fraction))
        parts = [b.sample(k, rng, done_fraction) for b, k in ((self.main, n - n_extra), (self.extra, n_extra)) if k]
        return concat_batches(parts, "FractionReplay")


def concat_batches(parts: list[dict[str, np.ndarray]], who: str) -> dict[str, np.ndarray]:
    """Sampled batches stacked row-wise; rows of a batch without privileged vectors get NaN ones."""
    if len(parts) == 1:
        return parts[0]
    out = {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}
    dims = {p["privileged"].shape[1] for p in parts if "privileged" in p}
    if len(dims) > 1:
        raise ValueError(f"{who}: the buffers hold privileged vectors of different sizes {sorted(dims)}")
    if dims:  # rows of a buffer without privileged data are NaN
        dim = dims.pop()
        out["privileged"] = np.concatenate([p.get("privileged", np.full((len(p["action"]), dim), np.nan, np.float32)) for p in parts])
    return out


def _episode_privileged(episode: Episode, dim: int) -> np.ndarray:
    """The (T, dim) privileged vectors of an episode's s observations; NaN when it has none."""
    priv = getattr(episode, "privileged", None)
    if priv is None:
        return np.full((episode.length, dim), np.nan, np.float32)
    if priv.ndim != 2 or priv.shape[1] != dim:
        raise ValueError(f"ReplayBuffer: episode {episode.index} privileged has shape {priv.shape}, buffer holds (T+1, {dim})")
    return priv[: episode.length]


def _sample_indices(size: int, done: np.ndarray, n: int, rng: np.random.Generator, done_fraction: float, who: str) -> np.ndarray:
    if size == 0:
        raise ValueError(f"{who}.sample: the buffer is empty")
    if not 0.0 <= done_fraction <= 1.0:
        raise ValueError(f"{who}.sample: done_fraction must be in [0, 1], got {done_fraction}")
    n_done = int(round(n * done_fraction))
    ends = np.flatnonzero(done[:size]) if n_done else np.zeros(0, np.int64)
    if len(ends) == 0:
        return rng.integers(0, size, n)
    return np.concatenate([ends[rng.integers(0, len(ends), n_done)], rng.integers(0, size, n - n_done)])


def sample_mixed(
    offline: ReplayBuffer | IndexedReplay | FractionReplay | None, online: ReplayBuffer | None, n: int, online_fraction: float, rng: np.random.Generator,
    done_fraction: float = 0.0,
) -> dict[str, np.ndarray]:
    """A batch of ``n`` with ``round(n * online_fraction)`` rows from ``online`` (when it holds data);
    ``done_fraction`` is passed to each buffer's :meth:`ReplayBuffer.sample`."""
    have_off = offline is not None and len(offline) > 0
    have_on = online is not None and len(online) > 0
    if not have_off and not have_on:
        raise ValueError("sample_mixed: both replay buffers are empty")
    n_on = n if not have_off else (int(round(n * online_fraction)) if have_on else 0)
    parts = []
    if n - n_on:
        parts.append(offline.sample(n - n_on, rng, done_fraction))  # type: ignore[union-attr]
    if n_on:
        parts.append(online.sample(n_on, rng, done_fraction))  # type: ignore[union-attr]
    return concat_batches(parts, "sample_mixed")
