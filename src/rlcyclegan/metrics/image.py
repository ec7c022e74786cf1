"""Image-translation metrics, written from scratch: PSNR, SSIM, Fréchet distance and KID.

PSNR and SSIM compare two images pixel by pixel (e.g. a sim image and its sim -> real -> sim
cycle, or a translated image and a paired target), optionally inside a boolean mask (e.g. the
object or the gripper). Images are channels-last RGB, (H, W, 3) or a batch (B, H, W, 3), uint8 or
float, numpy or torch; ``data_range`` is the span of pixel values (255 for uint8, 1 for [0, 1]).
Both return one value per image: a float for one image, a float64 array (B,) for a batch.

The Fréchet distance and :func:`kid` compare two *sets* of feature vectors (N, D). In this
project the features come from the project's own networks (e.g. the Q-network's image encoder),
not from Inception-v3, so the values are NOT comparable to published FID / KID numbers; they are
only meaningful relative to each other, with the same feature extractor.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = np.ndarray | torch.Tensor

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _to_tensor(x: ArrayLike) -> torch.Tensor:
    """A CPU float64 tensor holding ``x`` (numpy or torch, any numeric dtype)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64)
    return torch.from_numpy(np.array(x, dtype=np.float64))  # a copy: read-only arrays are fine


def _image_pair(
    a: ArrayLike, b: ArrayLike, mask: ArrayLike | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, bool]:
    """Check and batch two images and a mask: (B, H, W, 3) float64 tensors, a (B, H, W) bool mask, batched?"""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"a has shape {tuple(a.shape)} but b has shape {tuple(b.shape)}")
    if len(a.shape) not in (3, 4) or a.shape[-1] != 3:
        raise ValueError(f"a must be (H, W, 3) or (B, H, W, 3) channels-last RGB, got shape {tuple(a.shape)}")
    batched = len(a.shape) == 4
    ta, tb = _to_tensor(a), _to_tensor(b)
    if not batched:
        ta, tb = ta[None], tb[None]
    tm = None
    if mask is not None:
        tm = mask.detach().cpu() if isinstance(mask, torch.Tensor) else torch.from_numpy(np.array(mask))
        if tuple(tm.shape) != tuple(a.shape[:-1]):
            want = tuple(a.shape[:-1])
            raise ValueError(f"mask must have shape {want} (the images' without channels), got {tuple(tm.shape)}")
        if tm.dtype != torch.bool:
            raise ValueError(f"mask must be boolean, got dtype {tm.dtype}")
        if not batched:
            tm = tm[None]
    return ta, tb, tm, batched


def _per_image(values: torch.Tensor, batched: bool) -> float | np.ndarray:
    """A (B,) tensor as a float64 array, or as a float when the input was one image."""
    out = values.numpy().astype(np.float64)
    return out if batched else float(out[0])


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of (B, H, W) ``values`` per image over the pixels where ``mask`` is True (NaN if none)."""
    if mask is None:
        return values.flatten(1).mean(1)
    m = mask.to(values.dtype)
    count = m.flatten(1).sum(1)
    total = (values * m).flatten(1).sum(1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, math.nan))


def psnr(a: ArrayLike, b: ArrayLike, mask: ArrayLike | None = None, data_range: float = 255.0) -> float | np.ndarray:
    """Peak signal-to-noise ratio 10 log10(data_range^2 / MSE) in dB, per image.

    The MSE is over all pixels and the 3 channels, or with a boolean ``mask`` (H, W) / (B, H, W)
    over the masked pixels only. Identical images give +inf; an image whose mask is empty gives NaN.
    """
    ta, tb, tm, batched = _image_pair(a, b, mask)
    mse = _masked_mean(((ta - tb) ** 2).mean(-1), tm)
    values = 10.0 * torch.log10(data_range**2 / mse)  # mse 0 -> inf, NaN stays NaN
    return _per_image(values, batched)


def _gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """A normalised 1-D Gaussian of ``size`` taps (float64)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of (B, C, H, W) per channel, 'valid' (no padding): H, W shrink by size - 1."""
    c, k = x.shape[1], window.numel()
    x = F.conv2d(x, window.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(x, window.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def _ssim_map(a: ArrayLike, b: ArrayLike, data_range: float = 255.0) -> torch.Tensor:
    """SSIM map (B, H - 10, W - 10) of two image batches (B, H, W, 3): per-RGB-channel SSIM, averaged over channels.

    Standard SSIM (Wang et al. 2004): 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03,
    local statistics over 'valid' windows only (no padding), so entry (i, j) belongs to the window
    centred on pixel (i + 5, j + 5).
    """
    ta, tb = _to_tensor(a).permute(0, 3, 1, 2), _to_tensor(b).permute(0, 3, 1, 2)
    if min(ta.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"images must be at least {SSIM_WINDOW}x{SSIM_WINDOW} for SSIM, got shape {tuple(a.shape)}")
    window = _gaussian_window()
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_a, mu_b = _blur(ta, window), _blur(tb, window)
    var_a = _blur(ta * ta, window) - mu_a**2
    var_b = _blur(tb * tb, window) - mu_b**2
    cov = _blur(ta * tb, window) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).mean(1)


def ssim(a: ArrayLike, b: ArrayLike, mask: ArrayLike | None = None, data_range: float = 255.0) -> float | np.ndarray:
    """Structural similarity per image: the mean of :func:`_ssim_map` (per RGB channel, then averaged).

    With a boolean ``mask`` the map is averaged over the windows whose centre pixel is masked
    (windows near the mask's edge still see some unmasked pixels); an image with no masked window
    centre gives NaN. 1 means identical; images must be at least 11x11.
    """
    ta, tb, tm, batched = _image_pair(a, b, mask)
    smap = _ssim_map(ta, tb, data_range)
    half = SSIM_WINDOW // 2
    if tm is not None:
        tm = tm[:, half:-half, half:-half]
    return _per_image(_masked_mean(smap, tm), batched)


def _features(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as a float64 (N, D) array with N >= 2."""
    f = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"{name} must be (N, D) features with N >= 2, got shape {f.shape}")
    return f.astype(np.float64)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigen-decomposition (negative round-off clipped)."""
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(feats_a: ArrayLike, feats_b: ArrayLike) -> float:
    """Fréchet distance of Gaussians fitted to two feature sets (N, D) and (M, D), in float64.

        ||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr(sqrt(sqrt(S_a) S_b sqrt(S_a)))

    (unbiased sample covariances). The cross term uses the symmetric matrix sqrt(S_a) S_b sqrt(S_a),
    whose eigenvalues are real and >= 0, instead of the non-symmetric S_a S_b: numerically stable
    even for singular covariances. Not comparable to Inception FID (see the module docstring).
    """
    fa, fb = _features(feats_a, "feats_a"), _features(feats_b, "feats_b")
    if fa.shape[1] != fb.shape[1]:
        raise ValueError(f"feats_a has shape {fa.shape} but feats_b has shape {fb.shape}: feature sizes differ")
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    cov_a = np.atleast_2d(np.cov(fa, rowvar=False, ddof=1))
    cov_b = np.atleast_2d(np.cov(fb, rowvar=False, ddof=1))
    root_a = _sqrt_psd(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    tr_sqrt = np.sqrt(np.clip(cross, 0.0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * tr_sqrt)


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / D + 1)^3 for all pairs of rows."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size samples: mean k(x, x') + mean k(y, y') over i != j, - 2 mean k(x, y)."""
    m = x.shape[0]
    kxx, kyy, kxy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    off = m * (m - 1)
    return float((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2.0 * kxy.mean())


def kid(
    feats_a: ArrayLike,
    feats_b: ArrayLike,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel-Inception-Distance-style score: (mean, std) of the unbiased MMD^2 over random subsets.

    Each of ``subsets`` rounds draws ``subset_size`` rows without replacement from each set (capped
    at the smaller set's size) and computes the unbiased MMD^2 with the cubic polynomial kernel
    k(x, y) = (x . y / D + 1)^3. The std is the population std over rounds. Unbiased, so it can be
    slightly negative for two samples of one distribution. The features are the project's own,
    so values are NOT comparable to Inception KID (see the module docstring).
    """
    fa, fb = _features(feats_a, "feats_a"), _features(feats_b, "feats_b")
    if fa.shape[1] != fb.shape[1]:
        raise ValueError(f"feats_a has shape {fa.shape} but feats_b has shape {fb.shape}: feature sizes differ")
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    m = min(subset_size, fa.shape[0], fb.shape[0])
    if m < 2:
        raise ValueError(f"subset_size must be >= 2, got {subset_size}")
    rng = np.random.default_rng(seed)
    scores = [
        _mmd2_unbiased(fa[rng.choice(fa.shape[0], m, replace=False)], fb[rng.choice(fb.shape[0], m, replace=False)])
        for _ in range(subsets)
    ]
    return float(np.mean(scores)), float(np.std(scores))
