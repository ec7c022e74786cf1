"""Translation metrics on small hand-made images and feature sets: PSNR, SSIM, Fréchet distance, KID."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlcyclegan.metrics import frechet_distance, kid, psnr, ssim


def _image(seed: int = 0, shape: tuple[int, ...] = (32, 32, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape).astype(np.uint8)


def _noisy(img: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    return img + np.random.default_rng(seed).normal(0.0, sigma, img.shape)


# PSNR


def test_psnr_of_identical_images_is_inf():
    img = _image()
    assert psnr(img, img) == math.inf


def test_psnr_of_a_constant_offset_equals_the_hand_computed_value():
    a, b = np.full((8, 8, 3), 100, np.uint8), np.full((8, 8, 3), 110, np.uint8)
    # MSE = 10^2 = 100; 10 log10(255^2 / 100) = 28.13 dB
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))


def test_psnr_of_float_images_uses_the_data_range():
    a, b = np.zeros((4, 4, 3)), np.full((4, 4, 3), 0.1)
    # MSE = 0.01; 10 log10(1 / 0.01) = 20 dB
    assert psnr(a, b, data_range=1.0) == pytest.approx(20.0)


def test_psnr_of_a_batch_gives_one_value_per_image():
    a = np.full((2, 8, 8, 3), 100, np.uint8)
    b = a.copy()
    b[0] += 10  # MSE 100
    b[1] += 20  # MSE 400

    values = psnr(a, b)

    np.testing.assert_allclose(values, [10 * math.log10(255**2 / 100), 10 * math.log10(255**2 / 400)])


def test_psnr_accepts_torch_tensors_like_numpy_arrays():
    a, b = _image(0, (2, 16, 16, 3)), _image(1, (2, 16, 16, 3))
    np.testing.assert_allclose(psnr(torch.from_numpy(a), torch.from_numpy(b)), psnr(a, b))


def test_masked_psnr_only_looks_at_masked_pixels():
    a = np.full((8, 8, 3), 100, np.uint8)
    b = np.zeros((8, 8, 3), np.uint8)  # far off outside the mask
    mask = np.zeros((8, 8), bool)
    mask[2:5, 3:6] = True
    b[mask] = 105  # MSE 5^2 inside the mask

    assert psnr(a, b, mask=mask) == pytest.approx(10 * math.log10(255**2 / 25))


def test_masked_psnr_of_an_empty_mask_is_nan():
    values = psnr(_image(0, (2, 8, 8, 3)), _image(1, (2, 8, 8, 3)), mask=np.zeros((2, 8, 8), bool))
    assert np.isnan(values).all()


def test_psnr_names_mismatched_shapes():
    with pytest.raises(ValueError, match=r"b has shape \(8, 8, 3\)"):
        psnr(_image(0, (2, 8, 8, 3)), _image(0, (8, 8, 3)))


def test_psnr_rejects_a_mask_of_the_wrong_shape():
    with pytest.raises(ValueError, match="mask"):
        psnr(_image(), _image(), mask=np.ones((32, 31), bool))


# SSIM


def test_ssim_of_identical_images_is_one():
    img = _image(0, (2, 32, 32, 3))
    np.testing.assert_allclose(ssim(img, img), [1.0, 1.0])


def test_ssim_of_a_noisy_image_is_below_one():
    img = _image()
    assert ssim(img, _noisy(img, 5.0)) < 1.0


def test_ssim_decreases_with_more_noise():
    img = _image()
    values = [ssim(img, _noisy(img, sigma)) for sigma in (5.0, 20.0, 50.0)]
    assert values[0] > values[1] > values[2]


def test_ssim_is_symmetric():
    a, b = _image(0), _noisy(_image(0), 20.0)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-12)


def test_ssim_of_two_constant_images_equals_the_luminance_term():
    a, b = np.full((16, 16, 3), 100, np.uint8), np.full((16, 16, 3), 110, np.uint8)
    # no variance: SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1), C1 = (0.01 * 255)^2 = 6.5025
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1))


def test_masked_ssim_only_looks_at_windows_centred_in_the_mask():
    a = _image()
    b = a.astype(np.float64)
    b[:, :10] = _noisy(a, 50.0)[:, :10]  # noise in columns 0-9 only
    mask = np.zeros((32, 32), bool)
    mask[:, 16:] = True  # windows centred at column >= 16 span columns >= 11

    assert ssim(a, b, mask=mask) == pytest.approx(1.0)
    assert ssim(a, b) < 0.99


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="11x11"):
        ssim(_image(0, (8, 8, 3)), _image(0, (8, 8, 3)))


# Fréchet distance


def _with_moments(seed: int, n: int, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """n samples whose sample mean and (unbiased) sample covariance are exactly ``mean`` and diag(``var``)."""
    z = np.random.default_rng(seed).normal(size=(n, mean.size))
    z -= z.mean(0)
    chol = np.linalg.cholesky(np.cov(z, rowvar=False))
    z = z @ np.linalg.inv(chol).T  # sample covariance now the identity
    return mean + z * np.sqrt(var)


def test_frechet_distance_of_identical_sets_is_zero():
    feats = np.random.default_rng(0).normal(size=(100, 6))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_diagonal_gaussians_matches_the_closed_form():
    mu1, s1 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 4.0, 0.25])
    mu2, s2 = np.array([1.0, 1.0, 0.0]), np.array([4.0, 1.0, 1.0])
    a, b = _with_moments(0, 50, mu1, s1), _with_moments(1, 80, mu2, s2)
    # ||mu1 - mu2||^2 = 1 + 0 + 4 = 5; sum(s1 + s2 - 2 sqrt(s1 s2)) = (5 - 4) + (5 - 4) + (1.25 - 1) = 2.25
    assert frechet_distance(a, b) == pytest.approx(7.25)


def test_frechet_distance_is_unchanged_by_a_common_rotation():
    """Non-diagonal covariances: rotating both sets by one orthogonal matrix keeps the distance."""
    mu1, s1 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 4.0, 0.25])
    mu2, s2 = np.array([1.0, 1.0, 0.0]), np.array([4.0, 1.0, 1.0])
    a, b = _with_moments(0, 50, mu1, s1), _with_moments(1, 80, mu2, s2)
    rotation, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))

    assert frechet_distance(a @ rotation, b @ rotation) == pytest.approx(7.25)


def test_frechet_distance_accepts_torch_features():
    a = np.random.default_rng(0).normal(size=(40, 4))
    b = np.random.default_rng(1).normal(size=(30, 4)) + 1.0
    assert frechet_distance(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(
        frechet_distance(a, b), rel=1e-5
    )


def test_frechet_distance_names_mismatched_feature_sizes():
    with pytest.raises(ValueError, match=r"feats_b has shape \(10, 3\)"):
        frechet_distance(np.zeros((10, 4)), np.zeros((10, 3)))


# KID


def _gaussian_features(seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(200, 8)) + shift


def test_kid_of_two_samples_of_one_distribution_is_about_zero():
    mean, _ = kid(_gaussian_features(0), _gaussian_features(1), subsets=10, subset_size=100)
    assert abs(mean) < 0.05


def test_kid_of_shifted_distributions_is_positive():
    mean, _ = kid(_gaussian_features(0), _gaussian_features(1, shift=0.5), subsets=10, subset_size=100)
    assert mean > 0.5


def test_kid_is_reproducible_for_a_seed_and_reports_a_spread():
    a, b = _gaussian_features(0), _gaussian_features(1, shift=0.5)
    first = kid(a, b, subsets=5, subset_size=50, seed=3)
    assert first == kid(a, b, subsets=5, subset_size=50, seed=3)
    assert first[1] > 0


def test_kid_names_mismatched_feature_sizes():
    with pytest.raises(ValueError, match=r"feats_b has shape \(10, 3\)"):
        kid(np.zeros((10, 4)), np.zeros((10, 3)))
