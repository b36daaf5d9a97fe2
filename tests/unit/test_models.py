import numpy as np
import pytest
import torch

from synth.generate.worker import LoadedModel, sample_images
from synth.models import build_gan
from synth.models.common import EMA, latents_for_seeds, sample_seeds
from synth.models.gan import FAMILY as GAN
from synth.models.gan import GanModel


def gan(resolution=28, channels=1, classes=10, width=16, name="dcgan_cond"):
    return build_gan(GanModel(name=name, width=width, latent_dim=16), resolution, channels, classes)


@pytest.mark.parametrize("name", ["dcgan_cond", "wgan_gp"])  # transposed convs; nearest upsampling + conv
@pytest.mark.parametrize("resolution,channels", [(28, 1), (32, 3), (64, 3), (8, 1)])
def test_shapes_and_range(resolution, channels, name):
    G, D, cfg = gan(resolution, channels, name=name)
    transposed = any(isinstance(m, torch.nn.ConvTranspose2d) for m in G.modules())
    assert transposed == (name == "dcgan_cond")
    z, y = torch.randn(4, cfg.latent_dim), torch.tensor([0, 1, 2, 3])
    x = G(z, y)
    assert x.shape == (4, channels, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x, y).shape == (4,)


def test_bad_resolution_is_a_clear_error():
    from synth.errors import SynthError

    with pytest.raises(SynthError, match="data.resolution: 100"):
        gan(resolution=100)


def test_sampling_is_per_seed_and_batch_independent():
    torch.manual_seed(0)
    G, _, _ = gan()
    G.eval()
    seeds = sample_seeds(123, np.arange(40))
    labels = np.arange(40) % 10
    G = LoadedModel(GAN, G)
    a = sample_images(G, seeds, labels, batch_size=40)
    b = sample_images(G, seeds, labels, batch_size=7)
    c = sample_images(G, seeds[5:9], labels[5:9], batch_size=1)
    assert a.dtype == np.uint8 and a.shape == (40, 28, 28, 1)
    assert np.array_equal(a, b) and np.array_equal(a[5:9], c)
    assert not np.array_equal(a[0], a[10])  # same class, other seed


def test_latents_depend_on_seed_only():
    a = latents_for_seeds(np.array([1, 2, 3], dtype=np.uint64), 8)
    b = latents_for_seeds(np.array([3], dtype=np.uint64), 8)
    assert torch.equal(a[2], b[0]) and not torch.equal(a[0], a[1])


def test_ema_follows_slowly():
    lin = torch.nn.Linear(2, 2)
    ema = EMA(lin, decay=0.9, start_step=1)
    with torch.no_grad():
        lin.weight.add_(1.0)
    ema.update(lin, step=0)  # before start: copies
    assert torch.equal(ema.shadow.weight, lin.weight)
    before = ema.shadow.weight.clone()
    with torch.no_grad():
        lin.weight.add_(10.0)
    ema.update(lin, step=5)
    assert torch.allclose(ema.shadow.weight, before + 1.0)
