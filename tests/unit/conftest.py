import pytest
import torch
from safetensors.torch import save

from synth.generate.worker import GeneratorRef
from synth.models import build_gan
from synth.models.gan import GanModel


@pytest.fixture(scope="module")
def generator():
    """A small untrained conditional DCGAN generator (8x8, 10 classes): its reference and safetensors bytes."""
    torch.manual_seed(0)
    G, _, _cfg = build_gan(GanModel(width=16, latent_dim=16), 8, 1, 10)
    config = {"name": "dcgan_cond", "resolution": 8, "channels": 1, "num_classes": 10, "latent_dim": 16, "width": 16}
    return GeneratorRef("dcgan_cond", config, "test-digest"), save(dict(G.state_dict()))
