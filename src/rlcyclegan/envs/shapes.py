"""A procedural family of graspable convex shapes with a fixed train / unseen-test split.

Every shape is a small point cloud whose convex hull MuJoCo builds at compile time and uses for
both collision and rendering. Shape ``i`` is generated from its own seed, so the family is the
same on every machine and in every process. Kinds (by share of the family):

- ``hull``: convex hull of 6-20 random points in an anisotropic ellipsoid (rocks, blobs, wedges)
- ``box``: cuboids of varied aspect ratio
- ``cylinder``: 8- to 16-sided prisms (cans, discs, pegs)
- ``capsule``: pill shapes (hull of two hemispheres)
- ``ellipsoid``: smooth ellipsoids sampled on their surface

The split is fixed: every tenth shape (``shape_id % 10 == 9``) is held out as an unseen test
object, like the paper's evaluation on unseen objects. Sizes are chosen so that every shape fits
between the open gripper jaws along at least one horizontal axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

NUM_SHAPES = 2000
"""Size of the shape family (ids ``0 .. NUM_SHAPES-1``)."""

TEST_EVERY = 10
"""Every ``TEST_EVERY``-th shape (ids with ``id % TEST_EVERY == TEST_EVERY - 1``) is a test shape."""

SPLITS = ("train", "test", "all")

_KINDS = ("hull", "box", "cylinder", "capsule", "ellipsoid")
_KIND_PROBS = (0.5, 0.15, 0.13, 0.11, 0.11)
_FAMILY_SEED = 20200614  # fixed: changing it changes every shape


@dataclass(frozen=True)
class Shape:
    """One member of the family: a convex point cloud (metres, centred on its bounding box)."""

    shape_id: int
    kind: str
    vertices: np.ndarray  # (n, 3) float64
    mass: float  # kg
    friction: float  # sliding friction coefficient


def split_ids(split: str) -> np.ndarray:
    """Shape ids of a split: ``"train"`` (90%), ``"test"`` (10%, unseen objects) or ``"all"``."""
    ids = np.arange(NUM_SHAPES)
    if split == "train":
        return ids[ids % TEST_EVERY != TEST_EVERY - 1]
    if split == "test":
        return ids[ids % TEST_EVERY == TEST_EVERY - 1]
    if split == "all":
        return ids
    raise ValueError(f"objects split must be one of {SPLITS}, got {split!r}")


def _fibonacci_sphere(n: int) -> np.ndarray:
    k = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * k / n)
    theta = np.pi * (1 + 5**0.5) * k
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


def _prism(radius: float, half_height: float, sides: int) -> np.ndarray:
    ang = np.arange(sides) * 2 * np.pi / sides
    ring = np.stack([radius * np.cos(ang), radius * np.sin(ang)], axis=1)
    top = np.concatenate([ring, np.full((sides, 1), half_height)], axis=1)
    bottom = np.concatenate([ring, np.full((sides, 1), -half_height)], axis=1)
    return np.concatenate([top, bottom])


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


@lru_cache(maxsize=None)
def make_shape(shape_id: int) -> Shape:
    """Generate shape ``shape_id`` deterministically."""
    if not 0 <= shape_id < NUM_SHAPES:
        raise ValueError(f"shape_id must be in [0, {NUM_SHAPES}), got {shape_id}")
    rng = np.random.default_rng([_FAMILY_SEED, shape_id])
    kind = _KINDS[rng.choice(len(_KINDS), p=_KIND_PROBS)]
    if kind == "hull":
        semi = rng.uniform(0.015, 0.034, size=3)
        n = int(rng.integers(8, 21))
        pts = rng.normal(size=(n, 3))
        pts /= np.linalg.norm(pts, axis=1, keepdims=True)
        pts *= rng.uniform(0.8, 1.0, size=(n, 1)) * semi
    elif kind == "box":
        half = rng.uniform(0.01, 0.035, size=3)
        half[rng.integers(3)] = min(half.min(), rng.uniform(0.01, 0.024))  # one graspable side
        pts = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half
    elif kind == "cylinder":
        pts = _prism(rng.uniform(0.012, 0.028), rng.uniform(0.008, 0.04), int(rng.integers(8, 17)))
    elif kind == "capsule":
        radius, half_len = rng.uniform(0.01, 0.022), rng.uniform(0.005, 0.03)
        cap = _fibonacci_sphere(24) * radius
        cap_top, cap_bot = cap[cap[:, 2] >= 0], cap[cap[:, 2] <= 0]
        pts = np.concatenate([cap_top + [0, 0, half_len], cap_bot - [0, 0, half_len]])
    else:  # ellipsoid
        pts = _fibonacci_sphere(32) * rng.uniform(0.012, 0.032, size=3)
    pts = pts @ _random_rotation(rng).T
    # Keep it graspable: the narrowest horizontal-ish extent must fit between open jaws (8 cm).
    extent = pts.max(0) - pts.min(0)
    if extent.min() > 0.055:
        pts *= 0.055 / extent.min()
    pts -= (pts.max(0) + pts.min(0)) / 2
    return Shape(
        shape_id=shape_id,
        kind=kind,
        vertices=pts,
        mass=float(rng.uniform(0.03, 0.2)),
        friction=float(rng.uniform(0.7, 1.2)),
    )


def shape_colour(shape_id: int, palette: np.ndarray) -> np.ndarray:
    """A colour for a shape, chosen deterministically from an ``(n, 3)`` palette and jittered."""
    rng = np.random.default_rng([_FAMILY_SEED + 1, shape_id])
    base = palette[rng.integers(len(palette))]
    return np.clip(base + rng.normal(0, 0.06, size=3), 0.0, 1.0)
