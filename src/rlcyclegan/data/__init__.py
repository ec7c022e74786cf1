"""Episode data: the HDF5 shard format, writing and reading it, collection, and image grids.

Quick use::

    from rlcyclegan.data import EpisodeDataset, collect

    collect("rlcyclegan/Grasp-v0", {"domain": "sim"}, "scripted", episodes=100, out_dir="data/sim")
    ds = EpisodeDataset("data/sim")
    t = ds.transitions()          # flat (s, a, r, s', done) with image row indices
    images = ds.images()          # (N, H, W, 3) uint8, e.g. for unpaired GAN training

See ``docs/data.md`` for the format.
"""

from __future__ import annotations

from rlcyclegan.data.collect import CollectError, WorkerError, collect, policy_seed, run_episode
from rlcyclegan.data.dataset import EpisodeDataset, load_image_array, load_image_folder, wilson_interval
from rlcyclegan.data.grid import episode_grid, image_grid, save_grid
from rlcyclegan.data.schema import FIELDS, FORMAT_VERSION, MANIFEST_NAME, OPTIONAL_FIELDS, FieldSpec, shard_name
from rlcyclegan.data.store import Episode, Shard, list_shards, read_shard, write_episodes, write_shard

__all__ = [
    "FIELDS",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "OPTIONAL_FIELDS",
    "CollectError",
    "Episode",
    "EpisodeDataset",
    "FieldSpec",
    "Shard",
    "WorkerError",
    "collect",
    "episode_grid",
    "image_grid",
    "list_shards",
    "load_image_array",
    "load_image_folder",
    "policy_seed",
    "read_shard",
    "run_episode",
    "save_grid",
    "shard_name",
    "wilson_interval",
    "write_episodes",
    "write_shard",
]
