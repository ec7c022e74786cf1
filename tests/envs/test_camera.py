import numpy as np

from rlcyclegan.envs.camera import CameraModel, gaussian_blur


def _image(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def test_identity_camera_model_leaves_image_unchanged():
    img = _image()
    assert np.array_equal(CameraModel().apply(img, np.random.default_rng(0)), img)


def test_camera_model_is_deterministic_for_a_seed():
    cam = CameraModel(shot_noise=0.05, read_noise=0.01, jpeg_quality=60, blur_sigma=0.7, vignetting=0.3)
    a = cam.apply(_image(), np.random.default_rng(3))
    b = cam.apply(_image(), np.random.default_rng(3))
    c = cam.apply(_image(), np.random.default_rng(4))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_vignetting_darkens_corners_more_than_centre():
    flat = np.full((33, 33, 3), 200, np.uint8)
    out = CameraModel(vignetting=0.4).apply(flat, np.random.default_rng(0)).astype(int)
    assert out[0, 0].mean() < out[16, 16].mean() - 20


def test_blur_preserves_mean_and_reduces_variance():
    img = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    out = gaussian_blur(img, 1.0)
    assert abs(out.mean() - img.mean()) < 0.01
    assert out.std() < 0.6 * img.std()
