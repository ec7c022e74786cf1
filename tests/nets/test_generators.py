"""The image-translation generators: shapes and range, size errors, skips, factory and image conversion."""

from __future__ import annotations

import pytest
import torch

from rlcyclegan.nets.generators import (
    GENERATOR_PRESETS,
    GeneratorConfig,
    ResNetGenerator,
    UNetGenerator,
    from_gan_output,
    make_generator,
    to_gan_input,
)

TINY_UNET = GeneratorConfig(name="unet", channels=4, depth=4, max_channels=8)
TINY_RESNET = GeneratorConfig(name="resnet", channels=4, n_blocks=1)


def gan_images(b: int, size: int, seed: int = 0, channels: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, channels, size, size, generator=g) * 2 - 1


def build(cfg: GeneratorConfig, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return make_generator(cfg, **overrides)


@pytest.mark.parametrize("cfg", [TINY_UNET, TINY_RESNET], ids=["unet", "resnet"])
@pytest.mark.parametrize("size", [64, 128, 256])
def test_generator_keeps_the_image_shape_and_outputs_in_minus_one_to_one(cfg, size):
    net = build(cfg)

    with torch.no_grad():
        out = net(gan_images(2, size))

    assert out.shape == (2, 3, size, size)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert out.min() >= -1 and out.max() <= 1


def test_generator_maps_to_a_different_number_of_output_channels():
    net = build(TINY_UNET, in_channels=1, out_channels=4)

    assert net(gan_images(2, 32, channels=1)).shape == (2, 4, 32, 32)


def test_unet_accepts_non_square_images_and_a_one_pixel_bottleneck():
    net = build(TINY_UNET, depth=5)  # 32 / 2**5 = 1

    assert net(torch.rand(2, 3, 32, 64) * 2 - 1).shape == (2, 3, 32, 64)


@pytest.mark.parametrize("cfg, size", [(TINY_UNET, 72), (TINY_RESNET, 66)], ids=["unet", "resnet"])
def test_image_size_not_divisible_by_the_downsampling_raises_naming_the_size(cfg, size):
    net = build(cfg)

    with pytest.raises(ValueError, match=f"image size {size}x{size}"):
        net(gan_images(1, size))


def test_wrong_number_of_channels_raises_naming_the_shape():
    with pytest.raises(ValueError, match=r"\(2, 4, 32, 32\)"):
        build(TINY_UNET)(torch.zeros(2, 4, 32, 32))


def test_unet_skip_connections_learn_the_identity_in_a_few_steps():
    net = build(TINY_UNET, channels=8, depth=3)
    x = gan_images(2, 32, seed=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)

    losses = []
    for _ in range(50):
        loss = (net(x) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())

    assert losses[-1] < 0.3 * losses[0]


@pytest.mark.parametrize("cfg", [TINY_UNET, TINY_RESNET], ids=["unet", "resnet"])
def test_channels_last_gives_the_same_output(cfg):
    net = build(cfg).eval()
    x = gan_images(2, 32)

    with torch.no_grad():
        expected = net(x)
        got = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))

    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cfg", [TINY_UNET, TINY_RESNET], ids=["unet", "resnet"])
def test_bilinear_upsampling_option_builds_a_working_generator(cfg):
    net = build(cfg, upsample="bilinear")

    assert net(gan_images(2, 32)).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("norm, layer", [("instance", torch.nn.InstanceNorm2d), ("batch", torch.nn.BatchNorm2d)])
def test_norm_option_selects_the_normalisation_layer(norm, layer):
    net = build(TINY_RESNET, norm=norm)

    assert any(isinstance(m, layer) for m in net.modules())


def test_norm_none_has_no_normalisation_layers():
    net = build(TINY_UNET, norm="none")

    assert not any(isinstance(m, (torch.nn.InstanceNorm2d, torch.nn.BatchNorm2d)) for m in net.modules())


def test_instance_norm_is_affine():
    norms = [m for m in build(TINY_UNET).modules() if isinstance(m, torch.nn.InstanceNorm2d)]

    assert norms and all(m.affine for m in norms)


@pytest.mark.parametrize("name", sorted(GENERATOR_PRESETS))
def test_every_preset_builds_the_named_architecture(name):
    net = make_generator(name)

    expected = ResNetGenerator if GENERATOR_PRESETS[name].get("name") == "resnet" else UNetGenerator
    assert isinstance(net, expected)


def test_make_generator_applies_preset_and_overrides():
    net = make_generator("unet_small", channels=8)

    assert net.cfg == GeneratorConfig(**{**GENERATOR_PRESETS["unet_small"], "channels": 8})


def test_make_generator_accepts_a_config_with_overrides():
    net = make_generator(TINY_RESNET, n_blocks=2)

    assert isinstance(net, ResNetGenerator) and net.cfg.n_blocks == 2 and net.cfg.channels == 4


def test_make_generator_unknown_name_raises_listing_choices():
    with pytest.raises(ValueError, match="'huge'.*unet_small"):
        make_generator("huge")


@pytest.mark.parametrize("field, value", [("name", "vit"), ("norm", "layer"), ("upsample", "transposed"), ("depth", 0)])
def test_config_rejects_bad_field_values(field, value):
    with pytest.raises(ValueError, match=field):
        GeneratorConfig(**{field: value})


def test_config_to_dict_round_trips():
    cfg = GeneratorConfig(name="resnet", channels=8, norm="batch")

    assert GeneratorConfig(**cfg.to_dict()) == cfg


def test_to_gan_input_maps_uint8_nhwc_to_float_nchw_in_minus_one_to_one():
    img = torch.tensor([0, 255, 128], dtype=torch.uint8).reshape(1, 1, 1, 3)

    x = to_gan_input(img)

    assert x.shape == (1, 3, 1, 1) and x.dtype == torch.float32
    torch.testing.assert_close(x.flatten(), torch.tensor([-1.0, 1.0, 128 / 127.5 - 1]))


def test_gan_image_conversion_round_trips_every_pixel_value():
    img = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16, 1).expand(2, 16, 16, 3).contiguous()

    assert torch.equal(from_gan_output(to_gan_input(img)), img)


def test_from_gan_output_clamps_and_rounds():
    x = torch.tensor([-3.0, 3.0, 0.0, 1 / 127.5 * 0.4 - 1]).reshape(1, 4, 1, 1)

    out = from_gan_output(x)

    assert out.shape == (1, 1, 1, 4) and out.dtype == torch.uint8
    assert out.flatten().tolist() == [0, 255, 128, 0]


def test_from_gan_output_detaches_a_generator_output():
    net = build(TINY_UNET)

    out = from_gan_output(net(to_gan_input(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))))

    assert out.shape == (2, 32, 32, 3) and not out.requires_grad


@pytest.mark.parametrize(
    "fn, bad", [(to_gan_input, torch.zeros(2, 8, 8, 3)), (from_gan_output, torch.zeros(2, 3, 8, 8, dtype=torch.uint8))]
)
def test_image_conversion_rejects_the_wrong_dtype(fn, bad):
    with pytest.raises(ValueError, match="expected"):
        fn(bad)
