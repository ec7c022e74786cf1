"""Neural networks: the grasping Q-network, and the generators, discriminators and image pool of the CycleGAN part."""

from rlcyclegan.nets.discriminators import (
    DISCRIMINATOR_PRESETS,
    DiscriminatorConfig,
    MultiScaleDiscriminator,
    PatchGANDiscriminator,
    make_discriminator,
)
from rlcyclegan.nets.generators import (
    GENERATOR_PRESETS,
    GeneratorConfig,
    ResNetGenerator,
    UNetGenerator,
    from_gan_output,
    make_generator,
    to_gan_input,
)
from rlcyclegan.nets.image_pool import ImagePool
from rlcyclegan.nets.qnet import QNET_PRESETS, GraspQNet, QNetConfig, make_qnet

__all__ = [
    "DISCRIMINATOR_PRESETS",
    "GENERATOR_PRESETS",
    "QNET_PRESETS",
    "DiscriminatorConfig",
    "GeneratorConfig",
    "GraspQNet",
    "ImagePool",
    "MultiScaleDiscriminator",
    "PatchGANDiscriminator",
    "QNetConfig",
    "ResNetGenerator",
    "UNetGenerator",
    "from_gan_output",
    "make_discriminator",
    "make_generator",
    "make_qnet",
    "to_gan_input",
]
