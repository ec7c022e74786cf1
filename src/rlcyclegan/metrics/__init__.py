"""Metrics of image translation: PSNR and SSIM (optionally masked), Fréchet distance and KID of feature sets."""

from rlcyclegan.metrics.image import frechet_distance, kid, psnr, ssim

__all__ = ["frechet_distance", "kid", "psnr", "ssim"]
