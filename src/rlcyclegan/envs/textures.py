"""Procedural textures (numpy, deterministic from a seed) for the `real` and `randomized` looks.

Each generator returns a ``(size, size, 3)`` uint8 image that tiles reasonably and is written into
a MuJoCo texture after the model compiles.
"""

from __future__ import annotations

import numpy as np


def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: random values on a coarse periodic grid, bicubic-ish upsampled."""
    grid = rng.random((cells, cells))
    t = np.arange(size) * cells / size
    i0 = np.floor(t).astype(int) % cells
    i1 = (i0 + 1) % cells
    f = t - np.floor(t)
    f = f * f * (3 - 2 * f)  # smoothstep
    rows = grid[i0][:, None, :] * (1 - f)[:, None, None] + grid[i1][:, None, :] * f[:, None, None]
    rows = rows[:, 0, :]
    out = rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]
    return out


def fractal_noise(rng: np.random.Generator, size: int, octaves: int = 4, base_cells: int = 4) -> np.ndarray:
    """Sum of value-noise octaves, normalised to [0, 1]."""
    total = np.zeros((size, size))
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        cells = min(base_cells * 2**o, size)
        total += amp * _value_noise(rng, size, cells)
        norm += amp
        amp *= 0.5
    total /= norm
    return (total - total.min()) / max(np.ptp(total), 1e-8)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def wood(rng: np.random.Generator, size: int, light: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """Wood grain: distorted rings along one axis with fine fibre noise."""
    y, x = np.mgrid[0:size, 0:size] / size
    warp = fractal_noise(rng, size, octaves=3, base_cells=2)
    rings = np.sin((y * rng.uniform(6, 12) + warp * 2.5) * 2 * np.pi) * 0.5 + 0.5
    fibre = fractal_noise(rng, size, octaves=2, base_cells=32)
    t = np.clip(0.65 * rings**2 + 0.35 * fibre, 0, 1)
    del x
    return _to_uint8(_mix(light, dark, t))


def speckle(rng: np.random.Generator, size: int, base: np.ndarray, spot: np.ndarray, density: float = 0.08) -> np.ndarray:
    """Plastic or stone look: a smooth base with small random flecks."""
    t = 0.25 * fractal_noise(rng, size, octaves=3, base_cells=4)
    flecks = (rng.random((size, size)) < density).astype(float)
    t = np.clip(t + 0.75 * flecks, 0, 1)
    return _to_uint8(_mix(base, spot, t))


def stripes(rng: np.random.Generator, size: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Printed packaging look: soft stripes at a random angle."""
    y, x = np.mgrid[0:size, 0:size] / size
    ang = rng.uniform(0, np.pi)
    freq = rng.integers(2, 6)  # integer so the texture tiles
    phase = (np.cos(ang) * x + np.sin(ang) * y) * freq
    t = (np.sin(phase * 2 * np.pi) > rng.uniform(-0.5, 0.5)).astype(float)
    t = 0.85 * t + 0.15 * fractal_noise(rng, size, octaves=2, base_cells=8)
    return _to_uint8(_mix(a, b, t))


def checker(rng: np.random.Generator, size: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Checks of a random (tiling) period, lightly noised."""
    n = int(rng.integers(2, 9))
    y, x = np.mgrid[0:size, 0:size] * n // size
    t = ((x + y) % 2).astype(float) * 0.9 + 0.1 * fractal_noise(rng, size, octaves=2, base_cells=8)
    return _to_uint8(_mix(a, b, t))


def marble(rng: np.random.Generator, size: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Veined look from turbulent noise."""
    y, x = np.mgrid[0:size, 0:size] / size
    n = fractal_noise(rng, size, octaves=4, base_cells=3)
    t = np.abs(np.sin((x + y + 3.0 * n) * np.pi * rng.uniform(1, 3))) ** 0.5
    return _to_uint8(_mix(a, b, t))


def brushed(rng: np.random.Generator, size: int, base: np.ndarray) -> np.ndarray:
    """Brushed metal: fine streaks along one axis."""
    streaks = rng.normal(0, 1, size=(1, size)).repeat(size, 0)
    streaks = (streaks - streaks.min()) / max(np.ptp(streaks), 1e-8)
    t = 0.8 + 0.2 * streaks + 0.05 * fractal_noise(rng, size, octaves=2, base_cells=16)
    return _to_uint8(np.clip(base[None, None, :] * t[..., None], 0, 1))


PATTERNS = ("wood", "speckle", "stripes", "checker", "marble")


def random_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A texture of random pattern and random colours (domain randomization)."""
    kind = PATTERNS[rng.integers(len(PATTERNS))]
    a, b = rng.random(3), rng.random(3)
    if kind == "wood":
        return wood(rng, size, a, b)
    if kind == "speckle":
        return speckle(rng, size, a, b, density=rng.uniform(0.02, 0.2))
    if kind == "stripes":
        return stripes(rng, size, a, b)
    if kind == "checker":
        return checker(rng, size, a, b)
    return marble(rng, size, a, b)
