"""PatchGAN and multi-scale discriminators: logit-map shapes, spectral norm, size errors, factory."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parametrize

from rlcyclegan.nets.discriminators import (
    DISCRIMINATOR_PRESETS,
    DiscriminatorConfig,
    MultiScaleDiscriminator,
    PatchGANDiscriminator,
    make_discriminator,
)

TINY = DiscriminatorConfig(channels=4, max_channels=8)


def gan_images(b: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g) * 2 - 1


def convs(net: torch.nn.Module) -> list[torch.nn.Conv2d]:
    return [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]


@pytest.mark.parametrize("n_layers", [2, 3, 4])
def test_patchgan_gives_one_logit_per_patch(n_layers):
    net = PatchGANDiscriminator(DiscriminatorConfig(channels=4, n_layers=n_layers))

    out = net(gan_images(2, 64))

    side = 64 // 2**n_layers
    assert out.shape == (2, 1, side, side) and torch.isfinite(out).all()


@pytest.mark.parametrize("num_scales", [1, 2, 3])
@pytest.mark.parametrize("size", [64, 128])
def test_multiscale_returns_one_logit_map_per_scale_halving_each_time(num_scales, size):
    net = make_discriminator(TINY, num_scales=num_scales)

    maps = net(gan_images(2, size))

    expected = [size // 2 ** (TINY.n_layers + k) for k in range(num_scales)]
    assert [tuple(m.shape) for m in maps] == [(2, 1, s, s) for s in expected]


def test_each_scale_sees_the_image_average_pooled_by_two_to_the_k():
    net = make_discriminator(TINY, num_scales=3)
    x = gan_images(2, 64)
    seen = []
    for patchgan in net.scales:
        patchgan.register_forward_hook(lambda module, inp, out: seen.append(inp[0]))

    net(x)

    for k, image in enumerate(seen):
        torch.testing.assert_close(image, torch.nn.functional.avg_pool2d(x, 2**k) if k else x)


def test_scales_have_independent_weights():
    net = make_discriminator(TINY, num_scales=2)

    first, second = (list(s.parameters()) for s in net.scales)
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(first, second))


def test_spectral_norm_option_registers_the_parametrization_on_every_conv():
    net = make_discriminator(TINY, spectral_norm=True)

    assert convs(net) and all(parametrize.is_parametrized(c, "weight") for c in convs(net))


def test_without_spectral_norm_no_conv_is_parametrized():
    net = make_discriminator(TINY)

    assert not any(parametrize.is_parametrized(c) for c in convs(net))


def test_spectral_norm_bounds_the_largest_singular_value_of_each_conv():
    torch.manual_seed(0)
    net = make_discriminator(TINY, spectral_norm=True, num_scales=1)
    for _ in range(30):  # power iterations run in training-mode forwards
        net(gan_images(2, 32))

    sigmas = [torch.linalg.matrix_norm(c.weight.detach().flatten(1), ord=2).item() for c in convs(net)]

    assert max(sigmas) < 1.05


def test_first_block_has_no_normalisation_and_the_others_do():
    net = PatchGANDiscriminator(DiscriminatorConfig(channels=4, n_layers=3))
    layers = list(net.net)

    assert isinstance(layers[1], torch.nn.Identity)
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in layers) == 2


@pytest.mark.parametrize("size", [40, 16])
def test_image_size_not_fitting_the_scales_raises_naming_the_size(size):
    net = make_discriminator(TINY, num_scales=2)  # needs a multiple of 16, at least 32

    with pytest.raises(ValueError, match=f"image size {size}x{size}"):
        net(gan_images(1, size))


def test_patchgan_alone_checks_the_image_size():
    with pytest.raises(ValueError, match="image size 36x36"):
        PatchGANDiscriminator(TINY)(gan_images(1, 36))


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(0)
    net = make_discriminator(TINY, spectral_norm=True).eval()
    x = gan_images(2, 64)

    with torch.no_grad():
        expected = net(x)
        got = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))

    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(DISCRIMINATOR_PRESETS))
def test_every_preset_builds_a_multiscale_discriminator(name):
    net = make_discriminator(name)

    assert isinstance(net, MultiScaleDiscriminator) and len(net.scales) == net.cfg.num_scales


def test_make_discriminator_applies_preset_and_overrides():
    net = make_discriminator("multiscale_sn", num_scales=3)

    assert net.cfg.spectral_norm and net.cfg.num_scales == 3


def test_make_discriminator_unknown_name_raises_listing_choices():
    with pytest.raises(ValueError, match="'huge'.*multiscale"):
        make_discriminator("huge")


@pytest.mark.parametrize("field, value", [("norm", "layer"), ("num_scales", 0), ("n_layers", 0)])
def test_config_rejects_bad_field_values(field, value):
    with pytest.raises(ValueError, match=field):
        DiscriminatorConfig(**{field: value})


def test_config_to_dict_round_trips():
    assert DiscriminatorConfig(**TINY.to_dict()) == TINY
