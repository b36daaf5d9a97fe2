"""Model registry: job specs name a model, this maps the name to its family.

Only ``dcgan_cond`` exists so far; the VAE and diffusion families join here.
"""

from __future__ import annotations

from dataclasses import dataclass

from synth.errors import SynthError


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    conditional: bool
    summary: str


MODELS = {
    "dcgan_cond": ModelInfo(
        "dcgan_cond", "gan", True, "class-conditional DCGAN, projection discriminator, hinge loss, EMA"
    ),
}


def check_model_name(name: str, source: str = "job") -> ModelInfo:
    """Return the model's info, or fail with one line listing the known names."""
    info = MODELS.get(name)
    if info is None:
        raise SynthError(f"{source}: model.name: unknown model {name!r}; choose from {', '.join(sorted(MODELS))}")
    return info


def build_gan(model_spec, resolution: int, channels: int, num_classes: int):
    """Build (generator, discriminator, config) for a GAN-family model spec."""
    from synth.models.gan import Discriminator, GanConfig, Generator

    check_model_name(model_spec.name)
    cfg = GanConfig(resolution, channels, num_classes, model_spec.latent_dim, model_spec.width)
    return Generator(cfg), Discriminator(cfg), cfg
