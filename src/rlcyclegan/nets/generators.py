"""Image-to-image generators of the CycleGAN part of RL-CycleGAN (sim -> real and real -> sim).

Two architectures, both fully convolutional:

* :class:`UNetGenerator` (the default, as in GraspGAN and RL-CycleGAN): an encoder of stride-2
  convolutions and a decoder that upsamples (nearest or bilinear, then a 3x3 conv, which avoids the
  checkerboard artefacts of transposed convolutions) and concatenates the encoder map of the same
  resolution (skip connections). The skips carry the fine detail, so a U-Net can keep the scene
  geometry exactly while it changes the appearance.
* :class:`ResNetGenerator` (the CycleGAN generator of Johnson et al.): two stride-2 downsamplings,
  ``n_blocks`` residual blocks with reflection padding, two upsamplings.

Image convention: generators take float NCHW images in [-1, 1] and return images of the same
shape in [-1, 1] (``tanh`` output). :func:`to_gan_input` and :func:`from_gan_output` convert from
and to the environments' uint8 NHWC images. Both networks work in ``torch.channels_last``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

GENERATOR_NAMES = ("unet", "resnet")
NORMS = ("instance", "batch", "none")
UPSAMPLE_MODES = ("nearest", "bilinear")


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of a generator (store it in checkpoints to rebuild the network)."""

    name: str = "unet"
    """Architecture: ``"unet"`` (:class:`UNetGenerator`) or ``"resnet"`` (:class:`ResNetGenerator`)."""
    in_channels: int = 3
    """Channels of the input image."""
    out_channels: int = 3
    """Channels of the output image."""
    channels: int = 32
    """Channels at full resolution; doubled at each downsampling, up to ``max_channels``."""
    max_channels: int = 256
    """Cap on the channels of any layer."""
    depth: int = 5
    """U-Net only: number of stride-2 downsamplings (image sides must be divisible by 2**depth)."""
    n_blocks: int = 6
    """ResNet only: number of residual blocks at 1/4 resolution (CycleGAN: 6 for 128 px, 9 for 256 px)."""
    norm: str = "instance"
    """Normalisation after each conv: ``"instance"`` (affine), ``"batch"`` or ``"none"``."""
    upsample: str = "nearest"
    """Decoder upsampling before each 3x3 conv: ``"nearest"`` or ``"bilinear"``."""

    def __post_init__(self) -> None:
        for field, value, choices in (
            ("name", self.name, GENERATOR_NAMES),
            ("norm", self.norm, NORMS),
            ("upsample", self.upsample, UPSAMPLE_MODES),
        ):
            if value not in choices:
                raise ValueError(f"GeneratorConfig.{field} must be one of {list(choices)}, got {value!r}")
        for field in ("in_channels", "out_channels", "channels", "max_channels", "depth"):
            if getattr(self, field) < 1:
                raise ValueError(f"GeneratorConfig.{field} must be >= 1, got {getattr(self, field)}")
        if self.n_blocks < 0:
            raise ValueError(f"GeneratorConfig.n_blocks must be >= 0, got {self.n_blocks}")

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# Building blocks


def make_norm(kind: str, channels: int) -> nn.Module:
    """Normalisation layer by name: ``"instance"`` (affine), ``"batch"`` or ``"none"`` (identity)."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {list(NORMS)}, got {kind!r}")


def _widths(cfg: GeneratorConfig, levels: int) -> list[int]:
    """Channels at each resolution level 0..levels (level i is 1/2**i of the image side)."""
    return [min(cfg.channels * 2**i, cfg.max_channels) for i in range(levels + 1)]


def _check_image(x: torch.Tensor, cfg: GeneratorConfig, multiple: int, who: str) -> None:
    if x.ndim != 4 or x.shape[1] != cfg.in_channels:
        raise ValueError(f"{who}: image has shape {tuple(x.shape)}, expected (B, {cfg.in_channels}, H, W) float")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple or h == 0 or w == 0:
        raise ValueError(f"{who}: image size {h}x{w} is not divisible by {multiple}; use a size such as 64, 128 or 256")


class _UpBlock(nn.Module):
    """Upsample x2, concatenate the skip map, 3x3 conv, norm, ReLU."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, norm: str, mode: str):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode=mode, **({} if mode == "nearest" else {"align_corners": False}))
        self.conv = nn.Conv2d(in_ch + skip_ch, out_ch, 3, padding=1, bias=norm == "none")
        self.norm = make_norm(norm, out_ch)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.up(x), skip], dim=1)
        return self.act(self.norm(self.conv(x)))


class _ResBlock(nn.Module):
    """x + (reflect-pad, 3x3 conv, norm, ReLU, reflect-pad, 3x3 conv, norm)(x)."""

    def __init__(self, ch: int, norm: str):
        super().__init__()
        bias = norm == "none"
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect", bias=bias),
            make_norm(norm, ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect", bias=bias),
            make_norm(norm, ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


# ----------------------------------------------------------------------------------------------
# Generators


class UNetGenerator(nn.Module):
    """U-Net: float (B, C, H, W) in [-1, 1] -> float (B, C', H, W) in [-1, 1]; H, W divisible by 2**depth.

    Encoder: a 3x3 stem conv at full resolution, then ``depth`` blocks of (4x4 stride-2 conv, norm,
    LeakyReLU 0.2); the innermost block has no norm, so a 1x1 bottleneck is allowed. Decoder: per
    level, upsample x2, concatenate the encoder map of that resolution, 3x3 conv, norm, ReLU. A 1x1
    conv and ``tanh`` give the image.
    """

    def __init__(self, cfg: GeneratorConfig = GeneratorConfig()):
        super().__init__()
        self.cfg = cfg
        w = _widths(cfg, cfg.depth)
        self.stem = nn.Sequential(nn.Conv2d(cfg.in_channels, w[0], 3, padding=1), nn.LeakyReLU(0.2, inplace=True))
        self.down = nn.ModuleList()
        for i in range(1, cfg.depth + 1):
            innermost = i == cfg.depth
            norm = "none" if innermost else cfg.norm
            self.down.append(
                nn.Sequential(
                    nn.Conv2d(w[i - 1], w[i], 4, stride=2, padding=1, bias=norm == "none"),
                    make_norm(norm, w[i]),
                    nn.LeakyReLU(0.2, inplace=True),
                )
            )
        self.up = nn.ModuleList(_UpBlock(w[i], w[i - 1], w[i - 1], cfg.norm, cfg.upsample) for i in range(cfg.depth, 0, -1))
        self.head = nn.Conv2d(w[0], cfg.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_image(x, self.cfg, 2**self.cfg.depth, "UNetGenerator")
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        y = skips.pop()
        for block in self.up:
            y = block(y, skips.pop())
        return torch.tanh(self.head(y))


class ResNetGenerator(nn.Module):
    """CycleGAN ResNet: float (B, C, H, W) in [-1, 1] -> float (B, C', H, W) in [-1, 1]; H, W divisible by 4.

    7x7 conv, two (3x3 stride-2 conv, norm, ReLU) downsamplings, ``n_blocks`` residual blocks, two
    (upsample x2, 3x3 conv, norm, ReLU) upsamplings, 7x7 conv and ``tanh``; reflection padding
    everywhere except the stride-2 convs.
    """

    def __init__(self, cfg: GeneratorConfig = GeneratorConfig(name="resnet")):
        super().__init__()
        self.cfg = cfg
        w = _widths(cfg, 2)
        bias = cfg.norm == "none"
        up_kwargs = {} if cfg.upsample == "nearest" else {"align_corners": False}
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.in_channels, w[0], 7, padding=3, padding_mode="reflect", bias=bias),
            make_norm(cfg.norm, w[0]),
            nn.ReLU(inplace=True),
        ]
        for i in (1, 2):
            layers += [
                nn.Conv2d(w[i - 1], w[i], 3, stride=2, padding=1, bias=bias),
                make_norm(cfg.norm, w[i]),
                nn.ReLU(inplace=True),
            ]
        layers += [_ResBlock(w[2], cfg.norm) for _ in range(cfg.n_blocks)]
        for i in (2, 1):
            layers += [
                nn.Upsample(scale_factor=2, mode=cfg.upsample, **up_kwargs),
                nn.Conv2d(w[i], w[i - 1], 3, padding=1, padding_mode="reflect", bias=bias),
                make_norm(cfg.norm, w[i - 1]),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.Conv2d(w[0], cfg.out_channels, 7, padding=3, padding_mode="reflect"), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_image(x, self.cfg, 4, "ResNetGenerator")
        return self.net(x)


# ----------------------------------------------------------------------------------------------
# Factory


GENERATOR_PRESETS: dict[str, dict] = {
    # GPU-sized U-Net: 32 -> 256 channels, bottleneck 2x2 at 64 px and 8x8 at 256 px.
    "unet": dict(),
    # CPU-sized U-Net for 64 px images: 16 -> 64 channels, bottleneck 4x4.
    "unet_small": dict(channels=16, depth=4, max_channels=64),
    # CycleGAN's generator for 128 px images (use n_blocks=9 at 256 px).
    "resnet": dict(name="resnet", channels=64, n_blocks=6),
    "resnet_small": dict(name="resnet", channels=16, n_blocks=3),
}


def make_generator(name_or_config: str | GeneratorConfig = "unet", **overrides) -> UNetGenerator | ResNetGenerator:
    """String-keyed factory: ``make_generator("unet_small", channels=8)`` or ``make_generator(cfg)``.

    A :class:`GeneratorConfig` is used as is (``overrides`` replace its fields); a string names a
    preset of :data:`GENERATOR_PRESETS`.
    """
    if isinstance(name_or_config, GeneratorConfig):
        cfg = replace(name_or_config, **overrides)
    elif name_or_config in GENERATOR_PRESETS:
        cfg = GeneratorConfig(**{**GENERATOR_PRESETS[name_or_config], **overrides})
    else:
        raise ValueError(f"unknown generator {name_or_config!r}; expected one of {sorted(GENERATOR_PRESETS)}")
    return UNetGenerator(cfg) if cfg.name == "unet" else ResNetGenerator(cfg)


# ----------------------------------------------------------------------------------------------
# Image conversion


def to_gan_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, C) images -> float32 (B, C, H, W) in [-1, 1] (0 -> -1, 255 -> 1).

    The result is a permuted view of NHWC memory, i.e. already ``torch.channels_last``.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"to_gan_input: expected uint8 (B, H, W, C) images, got {images.dtype} of shape {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def from_gan_output(images: torch.Tensor) -> torch.Tensor:
    """float (B, C, H, W) in [-1, 1] -> uint8 (B, H, W, C), rounded and clamped; no gradient.

    Exactly inverts :func:`to_gan_input`.
    """
    if not images.is_floating_point() or images.ndim != 4:
        raise ValueError(
            f"from_gan_output: expected float (B, C, H, W) images, got {images.dtype} of shape {tuple(images.shape)}"
        )
    pixels = (images.detach().float() + 1.0).mul_(127.5).round_().clamp_(0, 255)
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).contiguous()
