"""In-memory access to a directory of episode shards, and loading plain image folders.

:class:`EpisodeDataset` reads every shard of a directory into memory (grasping datasets are
small: 1000 episodes of 64x64 images are about 150 MB) and exposes the episodes, the flat
transitions for reinforcement learning, and the plain image set for unpaired GAN training.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from rlcyclegan.data.schema import MANIFEST_NAME, SHAPE_ID_PAD
from rlcyclegan.data.store import Episode, Shard, list_shards, read_shard

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def wilson_interval(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (default: 95%). (0, 1) when ``trials`` is 0."""
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"need 0 <= successes <= trials, got successes={successes}, trials={trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return lo, hi


class EpisodeDataset:
    """All episodes of a shard directory, concatenated in episode-index order.

    Attributes hold the concatenated schema arrays with offsets re-based to the whole dataset:
    ``obs_images`` (None with ``load_images=False``), ``obs_states``, ``actions``, ``rewards``,
    ``terminated``, ``truncated`` and the per-episode ``episode_index``, ``episode_seed``,
    ``obs_start``, ``step_start``, ``lengths``, ``success``, ``returns``, ``shape_ids``, and
    ``obs_privileged`` ((N_obs, P) float32 privileged simulator state, see :meth:`privileged`).

    ``obs/privileged`` is optional: it is carried only when *every* shard has it. A directory where
    only some shards have it (e.g. sim data extended with shards from an env without it) loads
    without it: ``has_privileged`` is False and ``obs_privileged`` is None.

    Raises FileNotFoundError if the directory does not exist and ValueError if it has no shards,
    a shard is unreadable or invalid, shards disagree on image/state/action sizes (or on the
    privileged size P, when all have it), or an episode index appears twice.
    """

    def __init__(self, path: str | os.PathLike[str], load_images: bool = True) -> None:
        self.path = Path(path)
        shard_paths = list_shards(self.path)
        if not shard_paths:
            raise ValueError(f"{self.path}: no episode shards (shard-*.h5) found")
        self.shards: list[Shard] = [read_shard(p, load_images=load_images) for p in shard_paths]
        self._check_compatible()
        self._concatenate(load_images)
        self.manifest: dict[str, Any] | None = None
        """Contents of ``dataset.json`` (the collection settings), or None for hand-written datasets."""
        manifest = self.path / MANIFEST_NAME
        if manifest.exists():
            try:
                self.manifest = json.loads(manifest.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{manifest}: not valid JSON ({exc})") from None

    # ----------------------------------------------------------------------------- loading
    def _check_compatible(self) -> None:
        first = self.shards[0]
        for shard in self.shards[1:]:
            for what, a, b in (
                ("image shape (H, W, 3)", shard.image_shape, first.image_shape),
                ("state size", shard.arrays["obs/state"].shape[1:], first.arrays["obs/state"].shape[1:]),
                ("action size", shard.arrays["action"].shape[1:], first.arrays["action"].shape[1:]),
            ):
                if a != b:
                    raise ValueError(f"{shard.path}: {what} is {a} but {first.path} has {b}; shards must match")
        if all("obs/privileged" in s.arrays for s in self.shards):
            p0 = first.arrays["obs/privileged"].shape[1:]
            for shard in self.shards[1:]:
                p = shard.arrays["obs/privileged"].shape[1:]
                if p != p0:
                    raise ValueError(
                        f"{shard.path}: privileged size is {p} but {first.path} has {p0}; shards must match"
                    )
        owner: dict[int, Path] = {}
        for shard in self.shards:
            for idx in shard.episode_indices.tolist():
                if idx in owner:
                    raise ValueError(f"episode index {idx} appears in both {owner[idx]} and {shard.path}")
                owner[idx] = shard.path

    def _concatenate(self, load_images: bool) -> None:
        shards = self.shards

        def cat(name: str) -> np.ndarray:
            return np.concatenate([s.arrays[name] for s in shards])

        self.obs_images: np.ndarray | None = cat("obs/image") if load_images else None
        self.obs_states = cat("obs/state")
        self.has_privileged = all("obs/privileged" in s.arrays for s in shards)
        """Whether every shard has ``obs/privileged`` (else it is dropped: ``obs_privileged`` is None)."""
        self.obs_privileged: np.ndarray | None = cat("obs/privileged") if self.has_privileged else None
        self.actions = cat("action")
        self.rewards = cat("reward")
        self.terminated = cat("terminated")
        self.truncated = cat("truncated")
        self.episode_index = cat("episode/index")
        self.episode_seed = cat("episode/seed")
        self.lengths = cat("episode/length")
        self.success = cat("episode/success")
        self.returns = cat("episode/return")
        self.obs_start = np.concatenate([[0], np.cumsum(self.lengths.astype(np.int64) + 1)[:-1]]).astype(np.int64)
        self.step_start = np.concatenate([[0], np.cumsum(self.lengths.astype(np.int64))[:-1]]).astype(np.int64)
        k = max(s.arrays["episode/shape_ids"].shape[1] for s in shards)
        self.shape_ids = np.full((len(self.lengths), k), SHAPE_ID_PAD, dtype=np.int32)
        row = 0
        self.episode_shard = np.empty(len(self.lengths), dtype=np.int32)  # position in self.shards
        for i, s in enumerate(shards):
            ids = s.arrays["episode/shape_ids"]
            self.shape_ids[row : row + len(ids), : ids.shape[1]] = ids
            self.episode_shard[row : row + len(ids)] = i
            row += len(ids)
        # Shards are in file-name order; sort episodes by their global index should a
        # hand-written dataset interleave blocks.
        if np.any(np.diff(self.episode_index) < 0):
            self._sort_by_index()

    def _sort_by_index(self) -> None:
        order = np.argsort(self.episode_index, kind="stable")
        obs_rows = np.concatenate([self.obs_start[e] + np.arange(self.lengths[e] + 1) for e in order])
        step_rows = np.concatenate([self.step_start[e] + np.arange(self.lengths[e]) for e in order]).astype(np.int64)
        if self.obs_images is not None:
            self.obs_images = self.obs_images[obs_rows]
        self.obs_states = self.obs_states[obs_rows]
        if self.obs_privileged is not None:
            self.obs_privileged = self.obs_privileged[obs_rows]
        for name in ("actions", "rewards", "terminated", "truncated"):
            setattr(self, name, getattr(self, name)[step_rows])
        for name in ("episode_index", "episode_seed", "lengths", "success", "returns", "shape_ids", "episode_shard"):
            setattr(self, name, getattr(self, name)[order])
        self.obs_start = np.concatenate([[0], np.cumsum(self.lengths.astype(np.int64) + 1)[:-1]]).astype(np.int64)
        self.step_start = np.concatenate([[0], np.cumsum(self.lengths.astype(np.int64))[:-1]]).astype(np.int64)

    # ----------------------------------------------------------------------------- summary
    @property
    def num_episodes(self) -> int:
        return int(len(self.lengths))

    @property
    def num_steps(self) -> int:
        return int(len(self.actions))

    @property
    def num_observations(self) -> int:
        return int(len(self.obs_states))

    @property
    def num_successes(self) -> int:
        return int(self.success.sum())

    @property
    def success_rate(self) -> float:
        return self.num_successes / self.num_episodes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, 3)."""
        return self.shards[0].image_shape

    def _attr_values(self, key: str) -> list[str]:
        return sorted({str(s.attrs.get(key, "unknown")) for s in self.shards})

    @property
    def env_ids(self) -> list[str]:
        """Distinct ``env_id`` attributes of the shards."""
        return self._attr_values("env_id")

    @property
    def domains(self) -> list[str]:
        """Distinct visual domains of the shards."""
        return self._attr_values("domain")

    @property
    def object_sets(self) -> list[str]:
        """Distinct object sets of the shards."""
        return self._attr_values("objects")

    @property
    def policies(self) -> list[str]:
        """Distinct policy names of the shards."""
        return self._attr_values("policy")

    def summary(self) -> dict[str, Any]:
        """Counts, success rate with its 95% Wilson interval, and the data's provenance."""
        lo, hi = wilson_interval(self.num_successes, self.num_episodes)
        return {
            "path": str(self.path),
            "env_ids": self.env_ids,
            "domains": self.domains,
            "objects": self.object_sets,
            "policies": self.policies,
            "episodes": self.num_episodes,
            "steps": self.num_steps,
            "observations": self.num_observations,
            "successes": self.num_successes,
            "success_rate": self.success_rate,
            "success_ci95": [lo, hi],
            "mean_length": float(self.lengths.mean()),
            "mean_return": float(self.returns.mean()),
            "image_shape": list(self.image_shape),
            "state_size": int(self.obs_states.shape[1]),
            "privileged_size": None if self.obs_privileged is None else int(self.obs_privileged.shape[1]),
            "action_size": int(self.actions.shape[1]),
            "shards": len(self.shards),
            "shard_files": [s.path.name for s in self.shards],
            "format_version": int(self.shards[0].attrs["format_version"]),
        }

    # ----------------------------------------------------------------------------- episodes
    def __len__(self) -> int:
        return self.num_episodes

    def __getitem__(self, i: int) -> Episode:
        """The ``i``-th episode (position in the dataset, not its global index); arrays are views."""
        n = self.num_episodes
        if not -n <= i < n:
            raise IndexError(f"episode {i} out of range for a dataset of {n} episodes")
        i %= n
        o0, s0, t = int(self.obs_start[i]), int(self.step_start[i]), int(self.lengths[i])
        ids = self.shape_ids[i]
        images = self._require_images()[o0 : o0 + t + 1]
        return Episode(
            images=images,
            states=self.obs_states[o0 : o0 + t + 1],
            actions=self.actions[s0 : s0 + t],
            rewards=self.rewards[s0 : s0 + t],
            terminated=self.terminated[s0 : s0 + t],
            truncated=self.truncated[s0 : s0 + t],
            success=bool(self.success[i]),
            index=int(self.episode_index[i]),
            seed=int(self.episode_seed[i]),
            shape_ids=[int(x) for x in ids[ids != SHAPE_ID_PAD]],
            privileged=None if self.obs_privileged is None else self.obs_privileged[o0 : o0 + t + 1],
        )

    def __iter__(self) -> Iterator[Episode]:
        for i in range(self.num_episodes):
            yield self[i]

    def _require_images(self) -> np.ndarray:
        if self.obs_images is None:
            raise ValueError(f"{self.path}: dataset was opened with load_images=False; images are not available")
        return self.obs_images

    # ----------------------------------------------------------------------------- learning views
    def transitions(self) -> dict[str, np.ndarray]:
        """All steps as flat (s, a, r, s', done) transitions, one row per step.

        Observations are referenced by row into :meth:`images` / ``obs_states`` rather than copied:

        - ``obs_index``, ``next_obs_index`` (int64): rows of s and s';
        - ``state``, ``next_state`` (float32, (N, S)): the low-dimensional states of s and s';
        - ``action`` (float32, (N, A)), ``reward`` (float32);
        - ``done`` (bool): s' is terminal, so the target must not bootstrap from it (equal to
          ``terminated``; a time-limit ``truncated`` step is *not* done);
        - ``terminated``, ``truncated`` (bool): as stored; ``last`` = terminated or truncated;
        - ``episode`` (int64): position of the episode in the dataset; ``step``: t within it;
        - ``privileged`` (float32, (N, P)): the privileged simulator state of s (rows of
          :meth:`privileged` at ``obs_index``); only when :attr:`has_privileged`.

        Use :meth:`materialize` to gather the images.
        """
        n = self.num_steps
        episode = np.repeat(np.arange(self.num_episodes, dtype=np.int64), self.lengths.astype(np.int64))
        step = np.arange(n, dtype=np.int64) - self.step_start[episode]
        obs_index = self.obs_start[episode] + step
        next_obs_index = obs_index + 1
        out = {
            "obs_index": obs_index,
            "next_obs_index": next_obs_index,
            "state": self.obs_states[obs_index],
            "next_state": self.obs_states[next_obs_index],
            "action": self.actions.copy(),
            "reward": self.rewards.copy(),
            "done": self.terminated.copy(),
            "terminated": self.terminated.copy(),
            "truncated": self.truncated.copy(),
            "last": self.terminated | self.truncated,
            "episode": episode,
            "step": step,
        }
        if self.obs_privileged is not None:
            out["privileged"] = self.obs_privileged[obs_index]
        return out

    def materialize(
        self, transitions: dict[str, np.ndarray], rows: Sequence[int] | np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Copy of ``transitions`` (optionally only ``rows``) with ``image`` and ``next_image`` gathered.

        The images are (N, H, W, 3) uint8 arrays indexed by ``obs_index`` / ``next_obs_index``.
        """
        images = self._require_images()
        sel = slice(None) if rows is None else np.asarray(rows)
        out = {key: value[sel] for key, value in transitions.items()}
        out["image"] = images[out["obs_index"]]
        out["next_image"] = images[out["next_obs_index"]]
        return out

    def privileged(self) -> np.ndarray | None:
        """Privileged simulator state of every observation, (N_obs, P) float32 (rows as :meth:`images`),
        or None when not every shard has ``obs/privileged`` (real data, envs without it)."""
        return self.obs_privileged

    def images(self) -> np.ndarray:
        """Every observation image of the dataset, (N_obs, H, W, 3) uint8 (final observations included)."""
        return self._require_images()

    def __repr__(self) -> str:
        return (
            f"EpisodeDataset({str(self.path)!r}: {self.num_episodes} episodes, {self.num_steps} steps, "
            f"success {self.success_rate:.3f}, images {self.image_shape}, domains {self.domains})"
        )


def load_image_folder(directory: str | os.PathLike[str], resize: int | tuple[int, int] | None = None) -> np.ndarray:
    """Load every PNG/JPEG image directly inside ``directory`` as one (N, H, W, 3) uint8 array.

    Files are read in name order and converted to RGB (grayscale, palette and RGBA images are
    accepted; alpha is dropped). All images must have the same size unless ``resize`` gives a
    target size (an int for square images, or ``(height, width)``), in which case each image is
    resized with bicubic filtering. Raises FileNotFoundError for a missing directory and
    ValueError when there are no images, an image cannot be decoded, or sizes differ.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image folder {directory} does not exist or is not a directory")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"{directory}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)} files)")
    target: tuple[int, int] | None = None
    if resize is not None:
        target = (resize, resize) if isinstance(resize, int) else (int(resize[0]), int(resize[1]))
        if min(target) < 1:
            raise ValueError(f"resize must be positive, got {resize}")
    arrays: list[np.ndarray] = []
    for path in files:
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if target is not None and img.size != (target[1], target[0]):
                    img = img.resize((target[1], target[0]), Image.Resampling.BICUBIC)
                arr = np.asarray(img, dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"{path}: cannot read image: {exc}") from None
        if arrays and arr.shape != arrays[0].shape:
            raise ValueError(
                f"{directory}: images have different sizes: {files[0].name} is "
                f"{arrays[0].shape[1]}x{arrays[0].shape[0]} but {path.name} is {arr.shape[1]}x{arr.shape[0]} "
                "(width x height); pass resize= to load them at one size"
            )
        arrays.append(arr)
    return np.stack(arrays)


def load_image_array(path: str | os.PathLike[str]) -> np.ndarray:
    """The image array of an ``.npz`` (array ``images``/``image``, or its only array) or an ``.h5``
    (dataset ``images``, ``image`` or an episode shard's ``obs/image``). Raises ValueError naming
    the file and what it holds when there is none, or for another file type."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path) as z:
            key = next((k for k in ("images", "image") if k in z.files), z.files[0] if len(z.files) == 1 else None)
            if key is None:
                raise ValueError(f"{path}: no 'images' array (arrays: {z.files})")
            return np.asarray(z[key])
    if path.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            key = next((k for k in ("images", "image", "obs/image") if k in f), None)
            if key is None:
                raise ValueError(f"{path}: no 'images' dataset (keys: {list(f.keys())})")
            return np.asarray(f[key][()])
    raise ValueError(f"{path}: not an .npz or .h5 image file")
