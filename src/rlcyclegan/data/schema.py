"""The on-disk episode format, described as data in one place.

A dataset is a directory of HDF5 *shards*. Each shard holds a block of consecutive episodes as
flat arrays (all observations of all its episodes in one array, all steps in another) plus
per-episode bookkeeping arrays that say where each episode starts. The store, the dataset loader,
the documentation (``docs/data.md``) and the tests all work from :data:`FIELDS` (required in every
shard) and :data:`OPTIONAL_FIELDS` (present only when the data has them).

Symbolic dimension names used in :attr:`FieldSpec.shape`:

``N_obs``
    observations in the shard: sum over episodes of ``length + 1``;
``N_steps``
    steps (actions) in the shard: sum over episodes of ``length``;
``E``
    episodes in the shard;
``H``, ``W``
    image height and width; the trailing ``3`` is RGB;
``S``, ``A``
    state and action sizes;
``K``
    the most objects any episode of the shard had (``shape_ids`` is padded with -1);
``P``
    size of the privileged simulator state (``obs/privileged``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FORMAT_VERSION = 1
"""Version of the shard layout. Readers refuse shards whose ``format_version`` attr differs."""

SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".h5"
TMP_SUFFIX = ".tmp"
MANIFEST_NAME = "dataset.json"
SHAPE_ID_PAD = -1
"""Fill value of ``episode/shape_ids`` beyond an episode's own objects."""

OBS_AXIS = "N_obs"
STEP_AXIS = "N_steps"
EPISODE_AXIS = "E"


@dataclass(frozen=True)
class FieldSpec:
    """One array of a shard: its HDF5 path, dtype, symbolic shape and meaning."""

    name: str
    """Path of the dataset inside the shard file, e.g. ``"obs/image"``."""
    dtype: np.dtype
    """Exact numpy dtype the array is stored and read with."""
    shape: tuple[str | int, ...]
    """Symbolic shape; the first entry is the length axis (``N_obs``, ``N_steps`` or ``E``)."""
    description: str
    """What the values mean (copied into the documentation)."""

    @property
    def axis(self) -> str:
        """The length axis this field is indexed by: ``N_obs``, ``N_steps`` or ``E``."""
        return str(self.shape[0])

    @property
    def ndim(self) -> int:
        return len(self.shape)


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "obs/image",
        np.dtype(np.uint8),
        (OBS_AXIS, "H", "W", 3),
        "RGB camera image of each observation. An episode of T steps has T+1 observations: the "
        "reset observation, then the observation after every step (the final one included).",
    ),
    FieldSpec(
        "obs/state",
        np.dtype(np.float32),
        (OBS_AXIS, "S"),
        "Low-dimensional robot state of each observation; for the MuJoCo grasping environments "
        "S=2: [gripper closed flag (0/1), gripper height above the bin floor in metres].",
    ),
    FieldSpec(
        "action",
        np.dtype(np.float32),
        (STEP_AXIS, "A"),
        "Action passed to env.step at each step (A=6 for the grasping environments, in [-1, 1]).",
    ),
    FieldSpec("reward", np.dtype(np.float32), (STEP_AXIS,), "Reward returned by env.step."),
    FieldSpec(
        "terminated",
        np.dtype(np.bool_),
        (STEP_AXIS,),
        "True on the step that ended the episode by reaching a terminal state (no bootstrapping).",
    ),
    FieldSpec(
        "truncated",
        np.dtype(np.bool_),
        (STEP_AXIS,),
        "True on the step that ended the episode by the time limit (the state is not terminal).",
    ),
    FieldSpec(
        "episode/index",
        np.dtype(np.int64),
        (EPISODE_AXIS,),
        "Global index of the episode in the dataset (unique across shards).",
    ),
    FieldSpec(
        "episode/seed",
        np.dtype(np.int64),
        (EPISODE_AXIS,),
        "Seed passed to env.reset (collected data: base seed + episode index); -1 if unknown.",
    ),
    FieldSpec(
        "episode/obs_start",
        np.dtype(np.int64),
        (EPISODE_AXIS,),
        "Row of the episode's first observation in obs/image and obs/state.",
    ),
    FieldSpec(
        "episode/step_start",
        np.dtype(np.int64),
        (EPISODE_AXIS,),
        "Row of the episode's first step in action, reward, terminated and truncated.",
    ),
    FieldSpec(
        "episode/length",
        np.dtype(np.int32),
        (EPISODE_AXIS,),
        "Number of steps T of the episode (it has T+1 observations).",
    ),
    FieldSpec(
        "episode/success",
        np.dtype(np.bool_),
        (EPISODE_AXIS,),
        "Whether the episode succeeded (info['success'] after its last step: an object was grasped and lifted).",
    ),
    FieldSpec(
        "episode/return",
        np.dtype(np.float32),
        (EPISODE_AXIS,),
        "Undiscounted sum of the episode's rewards.",
    ),
    FieldSpec(
        "episode/shape_ids",
        np.dtype(np.int32),
        (EPISODE_AXIS, "K"),
        "Object-shape ids present in the scene at reset (info['shape_ids']), padded with -1.",
    ),
)
"""Fields every shard has (readers require them)."""

OPTIONAL_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "obs/privileged",
        np.dtype(np.float32),
        (OBS_AXIS, "P"),
        "Privileged simulator state of each observation (env info['privileged'] at reset and after "
        "each step), for auxiliary losses in sim; for rlcyclegan/Grasp-v0 P=22: gripper x, y, then "
        "x, y of up to 10 objects (relative to the bin centre in units of the workspace half-width, as "
        "the 'pose' state), +inf-padded (NaN rows: unknown). Absent for real data and for envs that do not provide it; "
        "when present, every episode of the shard has it.",
    ),
)
"""Fields a shard may have; readers validate them when present and do without them otherwise."""

FIELDS_BY_NAME: dict[str, FieldSpec] = {f.name: f for f in (*FIELDS, *OPTIONAL_FIELDS)}

REQUIRED_ATTRS: dict[str, str] = {
    "format_version": "integer layout version; must equal FORMAT_VERSION",
    "env_id": "Gymnasium id of the environment, or a free-form source name for real data",
    "domain": "visual domain: 'sim', 'randomized' or 'real'",
    "objects": "object set: 'train' or 'test' (or a free-form name for real data)",
    "policy": "name of the policy that chose the actions ('scripted', 'random', ...)",
    "env_kwargs": "JSON object: keyword arguments passed to gymnasium.make",
    "rlcyclegan_version": "version of the package that wrote the shard",
    "created": "UTC time the shard was written, ISO 8601",
}
"""File attributes every shard has (name -> meaning)."""

OPTIONAL_ATTRS: dict[str, str] = {
    "env_config": "JSON object: env.unwrapped.config_dict() of the environment that produced the data",
    "seed": "base seed of the collection run (episode i used env seed `seed + i`)",
    "shard_size": "episodes per shard of the collection run",
    "first_episode": "index of the first episode of the shard's block (the number in its file name)",
    "num_episodes": "number of episodes in the shard",
}
"""File attributes written by the collector; readers do not require them."""


def shard_name(first_episode: int) -> str:
    """File name of the shard whose block starts at episode ``first_episode``."""
    if first_episode < 0:
        raise ValueError(f"first_episode must be >= 0, got {first_episode}")
    return f"{SHARD_PREFIX}{first_episode:07d}{SHARD_SUFFIX}"


def parse_shard_name(name: str) -> int | None:
    """The first-episode number encoded in a shard file name, or None if it is not one."""
    if not (name.startswith(SHARD_PREFIX) and name.endswith(SHARD_SUFFIX)):
        return None
    digits = name[len(SHARD_PREFIX) : -len(SHARD_SUFFIX)]
    return int(digits) if digits.isdigit() else None
