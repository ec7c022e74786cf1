"""PatchGAN discriminators of the CycleGAN part of RL-CycleGAN, single- and multi-scale.

A PatchGAN (pix2pix, Isola et al.) does not score a whole image: its output is a map of logits,
one per overlapping image patch, so it judges local texture and appearance and leaves the global
layout to the generator's other losses. :class:`PatchGANDiscriminator` is ``n_layers`` blocks of
(4x4 stride-2 conv, norm, LeakyReLU 0.2), without norm in the first block, then a 3x3 conv to one
channel: a (B, 1, H / 2**n_layers, W / 2**n_layers) map of logits.

:class:`MultiScaleDiscriminator` (pix2pixHD, Wang et al.) runs K such PatchGANs, the k-th on the
image average-pooled by 2**k, so coarser scales see larger patches. Its forward returns the list
of K logit maps, which is what the adversarial losses of :mod:`rlcyclegan.losses` accept.

Inputs are float NCHW images in [-1, 1], like the generators' outputs. Spectral normalisation of
every conv (Miyato et al.) is an option.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from rlcyclegan.nets.generators import NORMS, make_norm


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Architecture of a (multi-scale) PatchGAN discriminator (store it in checkpoints)."""

    in_channels: int = 3
    """Channels of the input image."""
    channels: int = 64
    """Channels of the first conv; doubled at each further layer, up to ``max_channels``."""
    max_channels: int = 512
    """Cap on the channels of any layer."""
    n_layers: int = 3
    """Stride-2 conv blocks per PatchGAN; the logit map is 1/2**n_layers of the (pooled) image side."""
    num_scales: int = 2
    """Number of PatchGANs K; scale k sees the image average-pooled by 2**k (1 = a plain PatchGAN)."""
    norm: str = "instance"
    """Normalisation from the second block on: ``"instance"`` (affine), ``"batch"`` or ``"none"``."""
    spectral_norm: bool = False
    """Wrap every conv in spectral normalisation (``torch.nn.utils.parametrizations.spectral_norm``)."""

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"DiscriminatorConfig.norm must be one of {list(NORMS)}, got {self.norm!r}")
        for field in ("in_channels", "channels", "max_channels", "n_layers", "num_scales"):
            if getattr(self, field) < 1:
                raise ValueError(f"DiscriminatorConfig.{field} must be >= 1, got {getattr(self, field)}")

    def to_dict(self) -> dict:
        return asdict(self)


def _check_image(x: torch.Tensor, cfg: DiscriminatorConfig, halvings: int, who: str) -> None:
    """Sides must be multiples of 2**halvings and give a coarsest logit map of at least 2x2."""
    if x.ndim != 4 or x.shape[1] != cfg.in_channels:
        raise ValueError(f"{who}: image has shape {tuple(x.shape)}, expected (B, {cfg.in_channels}, H, W) float")
    h, w = x.shape[-2:]
    multiple = 2**halvings
    if h % multiple or w % multiple or h < 2 * multiple or w < 2 * multiple:
        raise ValueError(
            f"{who}: image size {h}x{w} must be a multiple of {multiple} (2**{halvings}) and at least {2 * multiple}"
        )


class PatchGANDiscriminator(nn.Module):
    """float (B, C, H, W) -> logits (B, 1, H / 2**n_layers, W / 2**n_layers); ``num_scales`` is ignored."""

    def __init__(self, cfg: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        self.cfg = cfg
        sn = _spectral_norm if cfg.spectral_norm else (lambda conv: conv)
        widths = [min(cfg.channels * 2**i, cfg.max_channels) for i in range(cfg.n_layers)]
        layers: list[nn.Module] = []
        in_ch = cfg.in_channels
        for i, out_ch in enumerate(widths):
            norm = "none" if i == 0 else cfg.norm
            layers += [
                sn(nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1, bias=norm == "none")),
                make_norm(norm, out_ch),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            in_ch = out_ch
        layers.append(sn(nn.Conv2d(in_ch, 1, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_image(x, self.cfg, self.cfg.n_layers, "PatchGANDiscriminator")
        return self.net(x)


class MultiScaleDiscriminator(nn.Module):
    """K PatchGANs on the image pooled by 1, 2, ..., 2**(K-1): float (B, C, H, W) -> list of K logit maps.

    Map k has shape (B, 1, H / 2**(n_layers + k), W / 2**(n_layers + k)); image sides must be
    multiples of 2**(n_layers + K - 1) and at least twice that.
    """

    def __init__(self, cfg: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        self.cfg = cfg
        self.scales = nn.ModuleList(PatchGANDiscriminator(cfg) for _ in range(cfg.num_scales))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        _check_image(x, self.cfg, self.cfg.n_layers + self.cfg.num_scales - 1, "MultiScaleDiscriminator")
        logits = []
        for k, patchgan in enumerate(self.scales):
            if k > 0:
                x = F.avg_pool2d(x, 2)
            logits.append(patchgan(x))
        return logits


DISCRIMINATOR_PRESETS: dict[str, dict] = {
    # A single 70x70-style PatchGAN (CycleGAN's discriminator, without its extra stride-1 layer).
    "patch": dict(num_scales=1),
    # Two scales; the default.
    "multiscale": dict(),
    "multiscale_sn": dict(spectral_norm=True),
    # CPU-sized for 64 px images: 16 -> 64 channels.
    "multiscale_small": dict(channels=16, max_channels=64),
}


def make_discriminator(name_or_config: str | DiscriminatorConfig = "multiscale", **overrides) -> MultiScaleDiscriminator:
    """String-keyed factory: ``make_discriminator("multiscale", num_scales=3)`` or ``make_discriminator(cfg)``.

    Always returns a :class:`MultiScaleDiscriminator` (a list of logit maps, one per scale, also
    for ``num_scales=1``). A :class:`DiscriminatorConfig` is used as is (``overrides`` replace
    its fields); a string names a preset of :data:`DISCRIMINATOR_PRESETS`.
    """
    if isinstance(name_or_config, DiscriminatorConfig):
        cfg = replace(name_or_config, **overrides)
    elif name_or_config in DISCRIMINATOR_PRESETS:
        cfg = DiscriminatorConfig(**{**DISCRIMINATOR_PRESETS[name_or_config], **overrides})
    else:
        raise ValueError(f"unknown discriminator {name_or_config!r}; expected one of {sorted(DISCRIMINATOR_PRESETS)}")
    return MultiScaleDiscriminator(cfg)
