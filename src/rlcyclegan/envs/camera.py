"""A camera image-formation model: what a real robot camera does to the light that reaches it.

Applied after rendering in the `real` domain (and, with random parameters, in `randomized`), in
this order: optical blur (Gaussian PSF), vignetting, white balance (per-channel gains), sensor
noise (signal-dependent shot noise + read noise, in linear light), gamma encoding, JPEG
compression. Every step is a function of the documented parameters and a random generator, so
the same seed gives the same image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class CameraModel:
    """Parameters of the image-formation pipeline (all images are uint8 RGB)."""

    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Per-channel gains applied in linear light (a warm camera has red > 1, blue < 1)."""
    gamma: float = 1.0
    """Extra tone curve exponent applied on top of the renderer's output (1 = none)."""
    vignetting: float = 0.0
    """Fractional brightness loss at the image corners (0 = none, 0.4 = corners at 60%)."""
    blur_sigma: float = 0.0
    """Standard deviation of the Gaussian point-spread function, in pixels at 64x64 (scaled with size)."""
    shot_noise: float = 0.0
    """Signal-dependent noise: std = shot_noise * sqrt(intensity), intensity in [0, 1]."""
    read_noise: float = 0.0
    """Signal-independent Gaussian noise std, intensity units in [0, 1]."""
    jpeg_quality: int = 0
    """JPEG quality 1-95 for a compression round trip; 0 disables it."""
    contrast: float = 1.0
    """Contrast around mid-grey after the tone curve (1 = unchanged)."""

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Run the pipeline on one ``(H, W, 3)`` uint8 image."""
        h, w, _ = image.shape
        img = (image.astype(np.float32) / 255.0) ** 2.2  # to linear light
        if self.blur_sigma > 0:
            img = gaussian_blur(img, self.blur_sigma * h / 64.0)
        if self.vignetting > 0:
            img = img * vignette_mask(h, w, self.vignetting)[..., None]
        img = img * np.asarray(self.white_balance, dtype=np.float32)
        if self.shot_noise > 0 or self.read_noise > 0:
            std = self.shot_noise * np.sqrt(np.clip(img, 0, None)) + self.read_noise
            img = img + rng.standard_normal(img.shape, dtype=np.float32) * std
        img = np.clip(img, 0.0, 1.0) ** (1.0 / (2.2 * self.gamma))
        if self.contrast != 1.0:
            img = np.clip((img - 0.5) * self.contrast + 0.5, 0.0, 1.0)
        out = (img * 255.0 + 0.5).astype(np.uint8)
        if self.jpeg_quality > 0:
            out = jpeg_roundtrip(out, self.jpeg_quality)
        return out


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an ``(H, W, C)`` float image with edge replication."""
    radius = max(1, int(np.ceil(2.5 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(img, ((radius, radius), (0, 0), (0, 0)), mode="edge")
    img = sum(k[i] * pad[i : i + img.shape[0]] for i in range(len(k)))
    pad = np.pad(img, ((0, 0), (radius, radius), (0, 0)), mode="edge")
    return sum(k[i] * pad[:, i : i + img.shape[1]] for i in range(len(k)))


_VIGNETTE_CACHE: dict[tuple[int, int, float], np.ndarray] = {}


def vignette_mask(h: int, w: int, strength: float) -> np.ndarray:
    """Cos^4-like radial falloff reaching ``1 - strength`` in the corners."""
    key = (h, w, strength)
    if key not in _VIGNETTE_CACHE:
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((x - (w - 1) / 2) / (w / 2)) ** 2 + ((y - (h - 1) / 2) / (h / 2)) ** 2
        _VIGNETTE_CACHE[key] = (1.0 - strength * (r2 / 2.0) ** 1.5).astype(np.float32)
    return _VIGNETTE_CACHE[key]


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode to JPEG at ``quality`` and decode again (4:2:0 chroma subsampling, as cameras do)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality), subsampling=2)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))
