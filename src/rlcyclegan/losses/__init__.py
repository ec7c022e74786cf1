"""Losses of RL-CycleGAN: adversarial, cycle, identity and RL-scene consistency terms, and their weighting."""

from rlcyclegan.losses.cyclegan import (
    ADVERSARIAL_MODES,
    DISTANCES,
    GENERATOR_TERMS,
    RL_SCENE_TERMS,
    LossWeights,
    adversarial_loss,
    cycle_loss,
    discriminator_loss,
    generator_adversarial_loss,
    identity_loss,
    rl_scene_consistency_loss,
    rl_scene_terms,
    total_generator_loss,
)

__all__ = [
    "ADVERSARIAL_MODES",
    "DISTANCES",
    "GENERATOR_TERMS",
    "RL_SCENE_TERMS",
    "LossWeights",
    "adversarial_loss",
    "cycle_loss",
    "discriminator_loss",
    "generator_adversarial_loss",
    "identity_loss",
    "rl_scene_consistency_loss",
    "rl_scene_terms",
    "total_generator_loss",
]
