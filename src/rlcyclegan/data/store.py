"""Writing and reading episode shards (HDF5 files laid out as described in :mod:`.schema`).

Writing is atomic: a shard is written to ``<name>.tmp`` next to its final path, flushed to disk,
and moved into place with :func:`os.replace`. A process killed mid-write leaves at most a
``*.tmp`` file, which readers ignore, never a partial ``shard-*.h5``.

Reading validates the file against the schema and raises an error that names the file (and the
field, when one is at fault) instead of h5py's low-level messages.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rlcyclegan.data.schema import (
    EPISODE_AXIS,
    FIELDS,
    FORMAT_VERSION,
    OBS_AXIS,
    OPTIONAL_FIELDS,
    REQUIRED_ATTRS,
    SHAPE_ID_PAD,
    STEP_AXIS,
    SHARD_PREFIX,
    SHARD_SUFFIX,
    TMP_SUFFIX,
    parse_shard_name,
    shard_name,
)

IMAGE_COMPRESSION = "gzip"
"""gzip is readable by every HDF5 build (lzf is h5py-only); level 1 is fast and still ~3-5x smaller."""
IMAGE_COMPRESSION_LEVEL = 1


@dataclass
class Episode:
    """One episode in memory: T steps, T+1 observations (the final observation included)."""

    images: np.ndarray
    """(T+1, H, W, 3) uint8 RGB images."""
    states: np.ndarray
    """(T+1, S) float32 states."""
    actions: np.ndarray
    """(T, A) float32 actions."""
    rewards: np.ndarray
    """(T,) float32 rewards."""
    terminated: np.ndarray
    """(T,) bool: the step reached a terminal state."""
    truncated: np.ndarray
    """(T,) bool: the step hit the time limit."""
    success: bool
    """Whether the episode succeeded."""
    index: int = 0
    """Global episode index in its dataset."""
    seed: int = -1
    """Seed passed to env.reset, or -1 if unknown (e.g. real robot data)."""
    shape_ids: list[int] = field(default_factory=list)
    """Object-shape ids in the scene at reset (may be empty)."""
    privileged: np.ndarray | None = None
    """(T+1, P) float32 privileged simulator state of each observation (``info["privileged"]``), or
    None when the source has none (real data, envs that do not provide it)."""

    @property
    def length(self) -> int:
        """Number of steps T."""
        return int(len(self.actions))

    @property
    def episode_return(self) -> float:
        """Undiscounted sum of rewards."""
        return float(np.sum(self.rewards, dtype=np.float64))

    def validate(self) -> None:
        """Check dtypes and shapes; raise ValueError naming the offending field."""
        t = self.length
        expected: dict[str, tuple[np.ndarray, np.dtype, int, int]] = {
            # name: (array, dtype, ndim, length)
            "images": (self.images, np.dtype(np.uint8), 4, t + 1),
            "states": (self.states, np.dtype(np.float32), 2, t + 1),
            "actions": (self.actions, np.dtype(np.float32), 2, t),
            "rewards": (self.rewards, np.dtype(np.float32), 1, t),
            "terminated": (self.terminated, np.dtype(np.bool_), 1, t),
            "truncated": (self.truncated, np.dtype(np.bool_), 1, t),
        }
        if self.privileged is not None:
            expected["privileged"] = (self.privileged, np.dtype(np.float32), 2, t + 1)
        for name, (arr, dtype, ndim, length) in expected.items():
            if not isinstance(arr, np.ndarray):
                raise ValueError(f"episode {self.index}: {name} must be a numpy array, got {type(arr).__name__}")
            if arr.dtype != dtype:
                raise ValueError(f"episode {self.index}: {name} has dtype {arr.dtype}, expected {dtype}")
            if arr.ndim != ndim or arr.shape[0] != length:
                what = "T+1" if length == t + 1 else "T"
                raise ValueError(
                    f"episode {self.index}: {name} has shape {arr.shape}, expected {ndim} dims with "
                    f"{what}={length} rows (T = len(actions) = {t})"
                )
        if self.images.shape[-1] != 3:
            raise ValueError(f"episode {self.index}: images has shape {self.images.shape}, expected (T+1, H, W, 3)")


@dataclass
class Shard:
    """A shard read from disk: validated arrays (keyed by schema field name) and file attributes."""

    path: Path
    attrs: dict[str, Any]
    """File attributes; ``env_kwargs`` and ``env_config`` are decoded from JSON into dicts."""
    arrays: dict[str, np.ndarray]
    """Schema field name -> array. ``obs/image`` is absent when read with ``load_images=False``;
    optional fields (``obs/privileged``) are present only when the file has them."""
    image_shape: tuple[int, int, int]
    """(H, W, 3) of the shard's images, known even when the images were not loaded."""

    @property
    def num_episodes(self) -> int:
        return int(len(self.arrays["episode/index"]))

    @property
    def num_steps(self) -> int:
        return int(len(self.arrays["action"]))

    @property
    def episode_indices(self) -> np.ndarray:
        return self.arrays["episode/index"]

    def episodes(self) -> Iterator[Episode]:
        """The shard's episodes as :class:`Episode` objects (requires the images to be loaded)."""
        if "obs/image" not in self.arrays:
            raise ValueError(f"{self.path}: images were not loaded (read_shard(..., load_images=True))")
        a = self.arrays
        for e in range(self.num_episodes):
            o0, s0, t = int(a["episode/obs_start"][e]), int(a["episode/step_start"][e]), int(a["episode/length"][e])
            ids = a["episode/shape_ids"][e]
            yield Episode(
                images=a["obs/image"][o0 : o0 + t + 1],
                states=a["obs/state"][o0 : o0 + t + 1],
                actions=a["action"][s0 : s0 + t],
                rewards=a["reward"][s0 : s0 + t],
                terminated=a["terminated"][s0 : s0 + t],
                truncated=a["truncated"][s0 : s0 + t],
                success=bool(a["episode/success"][e]),
                index=int(a["episode/index"][e]),
                seed=int(a["episode/seed"][e]),
                shape_ids=[int(i) for i in ids[ids != SHAPE_ID_PAD]],
                privileged=a["obs/privileged"][o0 : o0 + t + 1] if "obs/privileged" in a else None,
            )


def _flatten(episodes: Sequence[Episode]) -> dict[str, np.ndarray]:
    """Concatenate episodes into the schema's flat arrays."""
    if not episodes:
        raise ValueError("a shard needs at least one episode")
    for ep in episodes:
        ep.validate()
    first = episodes[0]
    lacking = [ep.index for ep in episodes if ep.privileged is None]
    if lacking and len(lacking) < len(episodes):
        having = [ep.index for ep in episodes if ep.privileged is not None]
        raise ValueError(
            f"episodes {having} have privileged states but episodes {lacking} do not; obs/privileged is "
            "all or nothing within a shard (give it to every episode, or set privileged=None on all)"
        )
    for ep in episodes[1:]:
        for name, a, b in (
            ("images", ep.images.shape[1:], first.images.shape[1:]),
            ("states", ep.states.shape[1:], first.states.shape[1:]),
            ("actions", ep.actions.shape[1:], first.actions.shape[1:]),
            ("privileged", _row_shape(ep.privileged), _row_shape(first.privileged)),
        ):
            if a != b:
                raise ValueError(
                    f"episode {ep.index}: {name} rows have shape {a} but episode {first.index} has {b}; "
                    "all episodes of a shard must match"
                )
    indices = [ep.index for ep in episodes]
    if len(set(indices)) != len(indices):
        raise ValueError(f"duplicate episode indices in one shard: {indices}")
    lengths = np.array([ep.length for ep in episodes], dtype=np.int32)
    k = max(1, max(len(ep.shape_ids) for ep in episodes))
    shape_ids = np.full((len(episodes), k), SHAPE_ID_PAD, dtype=np.int32)
    for e, ep in enumerate(episodes):
        shape_ids[e, : len(ep.shape_ids)] = ep.shape_ids
    arrays = {
        "obs/image": np.concatenate([ep.images for ep in episodes]),
        "obs/state": np.concatenate([ep.states for ep in episodes]),
        "action": np.concatenate([ep.actions for ep in episodes]),
        "reward": np.concatenate([ep.rewards for ep in episodes]),
        "terminated": np.concatenate([ep.terminated for ep in episodes]),
        "truncated": np.concatenate([ep.truncated for ep in episodes]),
        "episode/index": np.array(indices, dtype=np.int64),
        "episode/seed": np.array([ep.seed for ep in episodes], dtype=np.int64),
        "episode/obs_start": np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64),
        "episode/step_start": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
        "episode/length": lengths,
        "episode/success": np.array([ep.success for ep in episodes], dtype=np.bool_),
        "episode/return": np.array([ep.episode_return for ep in episodes], dtype=np.float32),
        "episode/shape_ids": shape_ids,
    }
    if first.privileged is not None:
        arrays["obs/privileged"] = np.concatenate([ep.privileged for ep in episodes])
    return arrays


def _row_shape(arr: np.ndarray | None) -> tuple[int, ...] | None:
    return None if arr is None else arr.shape[1:]


def _to_json(value: Mapping[str, Any] | None, what: str) -> str:
    try:
        return json.dumps(dict(value or {}), sort_keys=True)
    except TypeError as exc:
        raise ValueError(f"{what} must be JSON-serialisable: {exc}") from None


def write_shard(
    path: str | os.PathLike[str],
    episodes: Sequence[Episode],
    *,
    env_id: str,
    domain: str,
    objects: str,
    policy: str,
    env_kwargs: Mapping[str, Any] | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``episodes`` to the shard file ``path`` atomically and return the path.

    The file is first written as ``<path>.tmp`` and renamed into place only once complete; on any
    error (including KeyboardInterrupt) the temporary file is removed and nothing is left at
    ``path``. An existing file at ``path`` is replaced. ``extra_attrs`` values must be strings,
    numbers or dicts (dicts are stored as JSON strings).
    """
    from rlcyclegan import __version__

    path = Path(path)
    arrays = _flatten(episodes)
    attrs: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "env_id": env_id,
        "domain": domain,
        "objects": objects,
        "policy": policy,
        "env_kwargs": _to_json(env_kwargs, "env_kwargs"),
        "rlcyclegan_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "num_episodes": len(episodes),
    }
    for key, value in (extra_attrs or {}).items():
        attrs[key] = _to_json(value, key) if isinstance(value, Mapping) else value

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        with h5py.File(tmp, "w") as f:
            for key, value in attrs.items():
                f.attrs[key] = value
            for spec in (*FIELDS, *OPTIONAL_FIELDS):
                if spec.name not in arrays:
                    continue
                data = arrays[spec.name]
                if spec.name == "obs/image":
                    f.create_dataset(
                        spec.name,
                        data=data,
                        chunks=(1, *data.shape[1:]),
                        compression=IMAGE_COMPRESSION,
                        compression_opts=IMAGE_COMPRESSION_LEVEL,
                    )
                else:
                    f.create_dataset(spec.name, data=data)
        with open(tmp, "rb+") as fh:  # make the bytes durable before the rename publishes them
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def list_shards(directory: str | os.PathLike[str]) -> list[Path]:
    """Shard files of a dataset directory, in episode order; ``*.tmp`` and other files are ignored.

    Raises FileNotFoundError if the directory does not exist and NotADirectoryError if it is a file.
    Returns an empty list if there are no shards.
    """
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(f"dataset directory {directory} does not exist")
    if not directory.is_dir():
        raise NotADirectoryError(
            f"{directory} is not a directory (expected a directory of {SHARD_PREFIX}*{SHARD_SUFFIX} files)"
        )
    numbered = [(parse_shard_name(p.name), p) for p in directory.iterdir() if p.is_file()]
    return [p for _, p in sorted((first, p) for first, p in numbered if first is not None)]


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_shard(path: str | os.PathLike[str], load_images: bool = True) -> Shard:
    """Read and validate one shard.

    Raises FileNotFoundError if ``path`` does not exist and ValueError, naming the file (and the
    field when one is at fault), if it is not a readable HDF5 file (truncated or corrupted), has a
    missing or different ``format_version``, lacks a required attribute or field, or has fields
    (optional ones, such as ``obs/privileged``, when present) with wrong dtypes, shapes or
    inconsistent lengths. With ``load_images=False`` the image array is validated but not read
    (fast metadata access).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"shard {path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            return _read_open_shard(path, f, load_images)
    except OSError as exc:  # h5py's error for truncated / corrupted files (also mid-read)
        raise ValueError(f"{path}: cannot read HDF5 shard (truncated or corrupted file?): {exc}") from exc


def _read_open_shard(path: Path, f: h5py.File, load_images: bool) -> Shard:
    if "format_version" not in f.attrs:
        raise ValueError(f"{path}: missing 'format_version' attribute; not an rlcyclegan episode shard")
    version = _decode_attr(f.attrs["format_version"])
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version is {version!r} but this rlcyclegan reads version {FORMAT_VERSION}; "
            "re-collect the data or use a matching rlcyclegan version"
        )
    attrs = {key: _decode_attr(value) for key, value in f.attrs.items()}
    for key in REQUIRED_ATTRS:
        if key not in attrs:
            raise ValueError(f"{path}: missing attribute {key!r}")
    for key in ("env_kwargs", "env_config"):
        if key in attrs:
            try:
                attrs[key] = json.loads(attrs[key])
            except (TypeError, json.JSONDecodeError) as exc:
                raise ValueError(f"{path}: attribute {key!r} is not valid JSON: {exc}") from None

    arrays: dict[str, np.ndarray] = {}
    sizes: dict[str, tuple[int, str]] = {}  # symbolic dim -> (size, field that fixed it)
    image_shape = (0, 0, 3)
    for spec in (*FIELDS, *OPTIONAL_FIELDS):
        if spec.name not in f:
            if spec in OPTIONAL_FIELDS:
                continue
            raise ValueError(f"{path}: missing field {spec.name!r}")
        ds = f[spec.name]
        if not isinstance(ds, h5py.Dataset):
            raise ValueError(f"{path}: field {spec.name!r} is a group, expected an array")
        if ds.dtype != spec.dtype:
            raise ValueError(f"{path}: field {spec.name!r} has dtype {ds.dtype}, expected {spec.dtype}")
        if ds.ndim != spec.ndim:
            raise ValueError(
                f"{path}: field {spec.name!r} has shape {ds.shape}, expected {spec.ndim} dims {spec.shape}"
            )
        for dim, size in zip(spec.shape, ds.shape):
            if isinstance(dim, int):
                if size != dim:
                    raise ValueError(f"{path}: field {spec.name!r} has shape {ds.shape}, expected {spec.shape}")
            elif dim in sizes and sizes[dim][0] != size:
                other_size, other = sizes[dim]
                raise ValueError(
                    f"{path}: inconsistent lengths: field {spec.name!r} has {dim}={size} "
                    f"but {other!r} has {dim}={other_size}"
                )
            else:
                sizes.setdefault(str(dim), (size, spec.name))
        if spec.name == "obs/image":
            image_shape = (int(ds.shape[1]), int(ds.shape[2]), int(ds.shape[3]))
            if not load_images:
                continue
        arrays[spec.name] = ds[()]

    _check_episode_table(path, arrays, sizes[OBS_AXIS][0], sizes[STEP_AXIS][0], sizes[EPISODE_AXIS][0])
    return Shard(path=path, attrs=attrs, arrays=arrays, image_shape=image_shape)


def _check_episode_table(path: Path, a: dict[str, np.ndarray], n_obs: int, n_steps: int, n_eps: int) -> None:
    """The per-episode offsets must tile the flat arrays exactly, in order."""
    if n_eps == 0:
        raise ValueError(f"{path}: shard has no episodes")
    lengths = a["episode/length"].astype(np.int64)
    if (lengths < 0).any():
        raise ValueError(f"{path}: field 'episode/length' has negative values")
    if lengths.sum() != n_steps:
        raise ValueError(
            f"{path}: inconsistent lengths: sum of 'episode/length' is {lengths.sum()} but 'action' has {n_steps} rows"
        )
    if (lengths + 1).sum() != n_obs:
        raise ValueError(
            f"{path}: inconsistent lengths: episodes need {(lengths + 1).sum()} observations "
            f"(length + 1 each) but 'obs/image' has {n_obs}"
        )
    expected_obs = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    expected_steps = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for name, expected in (("episode/obs_start", expected_obs), ("episode/step_start", expected_steps)):
        if not np.array_equal(a[name], expected):
            raise ValueError(
                f"{path}: field {name!r} does not match 'episode/length' (episodes must be packed in order)"
            )
    index = a["episode/index"]
    if len(np.unique(index)) != len(index):
        raise ValueError(f"{path}: field 'episode/index' has duplicate episode indices")


def write_episodes(
    out_dir: str | os.PathLike[str],
    episodes: Sequence[Episode],
    *,
    shard_size: int = 50,
    env_id: str,
    domain: str,
    objects: str,
    policy: str,
    env_kwargs: Mapping[str, Any] | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write episodes into ``out_dir`` as shards of ``shard_size`` consecutive episode indices.

    Convenience for bringing your own data: each episode goes into the shard of block
    ``index // shard_size``. Existing shards of the same blocks are replaced. Returns the written paths.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    blocks: dict[int, list[Episode]] = {}
    for ep in episodes:
        if ep.index < 0:
            raise ValueError(f"episode index must be >= 0, got {ep.index}")
        blocks.setdefault(ep.index // shard_size * shard_size, []).append(ep)
    written = []
    for first, block in sorted(blocks.items()):
        block.sort(key=lambda ep: ep.index)
        attrs = {"shard_size": shard_size, "first_episode": first, **(extra_attrs or {})}
        written.append(
            write_shard(
                Path(out_dir) / shard_name(first),
                block,
                env_id=env_id,
                domain=domain,
                objects=objects,
                policy=policy,
                env_kwargs=env_kwargs,
                extra_attrs=attrs,
            )
        )
    return written
