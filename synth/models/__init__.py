"""Model families by name: a job's ``model.name`` picks a member, its family trains and samples it.

Each family is one file (gan.py, vae.py, diffusion.py) holding its job section, its nets, its
training step and its sampling, registered in ``synth.models.registry``; README's model table
is ``registry.models_table()``.
"""

from __future__ import annotations

from synth.models.registry import family_for


def build_nets(model_spec, resolution: int, channels: int, num_classes: int):
    """Every net of the job's model, by name (validates the resolution for the architecture)."""
    from synth.models.family import ImageShape

    return family_for(model_spec.name).build(model_spec, ImageShape(resolution, channels, num_classes))


def build_gan(model_spec, resolution: int, channels: int, num_classes: int):
    """(generator, discriminator, config) of a GAN-family model spec."""
    nets = build_nets(model_spec, resolution, channels, num_classes)
    return nets["G"], nets["D"], nets["G"].cfg


__all__ = ["build_gan", "build_nets", "family_for"]
