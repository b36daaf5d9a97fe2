"""Model families by name: a job's ``model.name`` picks a member, its family trains and samples it.

| family    | members (``model.name``)                 | file          |
|-----------|------------------------------------------|---------------|
| gan       | dcgan_cond, dcgan, sngan, wgan_gp        | gan.py        |
| vae       | vae, beta_vae, cvae                      | vae.py        |
| diffusion | ddpm, ddpm_cond                          | diffusion.py  |

The names and each member's preset live in ``synth.spec`` (no torch import);
``family_for`` imports the family's module only when it is needed.
"""

from __future__ import annotations

import importlib

from synth.errors import SynthError


def family_for(name: str):
    """The ``Family`` that trains and samples model ``name`` (SynthError naming the choices if unknown)."""
    from synth.spec import MODEL_NAMES

    family = MODEL_NAMES.get(name)
    if family is None:
        raise SynthError(f"model.name: unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    return importlib.import_module(f"synth.models.{family}").FAMILY


def build_nets(model_spec, resolution: int, channels: int, num_classes: int):
    """Every net of the job's model, by name (validates the resolution for the architecture)."""
    from synth.models.family import ImageShape

    return family_for(model_spec.name).build(model_spec, ImageShape(resolution, channels, num_classes))


def build_gan(model_spec, resolution: int, channels: int, num_classes: int):
    """(generator, discriminator, config) of a GAN-family model spec."""
    nets = build_nets(model_spec, resolution, channels, num_classes)
    return nets["G"], nets["D"], nets["G"].cfg
