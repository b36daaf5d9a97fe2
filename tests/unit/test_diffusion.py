"""The diffusion family: U-Net shapes, schedules, learning, and samplers that depend on the seed alone."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from sklearn.datasets import load_digits

from synth.errors import SynthError
from synth.models.common import sample_seeds, to_uint8
from synth.models.diffusion import (
    DiffusionConfig,
    Schedule,
    UNet,
    ddim_timesteps,
    denoise,
    diffusion_loss,
    draw_noise,
    predict_noise,
    sample_ddim,
    sample_ddpm,
    seed_generators,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine every
    forward then waits at OpenMP barriers for a descheduled thread (4x slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config(resolution=8, conditional=True, channels=1, timesteps=100, **kw):
    return DiffusionConfig(resolution, channels, 10, width=16, conditional=conditional, timesteps=timesteps, **kw)


def random_unet(cfg, seed=0):
    """A U-Net with every weight perturbed. A fresh one predicts exactly zero
    noise (zero-initialised output conv), which would make sampling tests vacuous."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet(cfg)
        with torch.no_grad():
            for p in unet.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return unet.eval()


@pytest.mark.parametrize("conditional", [True, False])
@pytest.mark.parametrize("resolution,channels", [(8, 1), (28, 1), (32, 3), (64, 3)])
def test_unet_output_shape_equals_input(resolution, channels, conditional):
    unet = random_unet(config(resolution, conditional, channels))
    x = torch.randn(3, channels, resolution, resolution)
    eps = unet(x, torch.tensor([0, 50, 99]), torch.tensor([0, 3, 10]))  # 10: the null class
    assert eps.shape == x.shape and eps.dtype == torch.float32
    assert eps.abs().sum() > 0


def test_unsuitable_resolution_is_a_clear_error():
    with pytest.raises(SynthError, match="data.resolution: 9"):
        UNet(config(9))


@pytest.mark.parametrize("name", ["cosine", "linear"])
def test_schedule_is_sane(name):
    abar = Schedule.from_config(config(schedule=name)).alphas_cumprod
    assert abar.shape == (100,)
    assert (abar > 0).all() and (abar < 1).all()
    assert (abar.diff() < 0).all()
    assert abar[0] > 0.99 and abar[-1] < 0.01  # starts near the data, ends near pure noise


def test_unknown_schedule_is_a_clear_error():
    with pytest.raises(SynthError, match="model.schedule"):
        Schedule.from_config(config(schedule="quadratic"))


def test_loss_goes_down_on_digits():
    digits = load_digits()
    images = torch.from_numpy(digits.images).float()[:, None] / 8.0 - 1.0  # 0..16 -> [-1, 1], N x 1 x 8 x 8
    labels = torch.from_numpy(digits.target).long()
    cfg = config(8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet(cfg)
    schedule = Schedule.from_config(cfg)
    opt = torch.optim.Adam(unet.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    order = np.random.default_rng(0)
    losses = []
    for _ in range(40):
        idx = torch.from_numpy(order.choice(len(images), 64, replace=False))
        global_rng = torch.get_rng_state()
        loss, figures = diffusion_loss(unet, schedule, images[idx], labels[idx], gen)
        assert torch.equal(torch.get_rng_state(), global_rng)  # drew from gen only
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(figures["loss"].item())
    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    assert last < 0.6 * first, (first, last)


SAMPLERS = {  # together they cover per-step noise, guidance's doubled rows and padded forward batches
    "ddpm": lambda unet, s, seeds, labels: sample_ddpm(unet, s, seeds, labels, forward_batch=4),
    "ddim_guided": lambda unet, s, seeds, labels: sample_ddim(unet, s, seeds, labels, 20, guidance=2, forward_batch=4),
    "ddim_eta": lambda unet, s, seeds, labels: sample_ddim(unet, s, seeds, labels, 20, eta=1.0, forward_batch=4),
}


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_sampling_is_per_seed_and_batch_independent(sampler):
    cfg = config(8, timesteps=50)  # DDPM runs every step; 50 keeps this test a few seconds
    unet, schedule, sample = random_unet(cfg), Schedule.from_config(cfg), SAMPLERS[sampler]
    seeds = sample_seeds(123, np.arange(8))
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    whole = sample(unet, schedule, seeds, labels)
    singles = torch.cat([sample(unet, schedule, seeds[i : i + 1], labels[i : i + 1]) for i in range(8)])
    perm = np.random.default_rng(1).permutation(8)
    shuffled = torch.empty_like(whole)
    parts = [perm[i : i + 3] for i in range(0, 8, 3)]
    shuffled[perm] = torch.cat([sample(unet, schedule, seeds[part], labels[part]) for part in parts])
    a, b, c = to_uint8(whole), to_uint8(singles), to_uint8(shuffled)
    assert a.dtype == np.uint8 and a.shape == (8, 8, 8, 1)
    assert np.array_equal(a, b) and np.array_equal(a, c)
    # Stronger than the uint8 check: the fixed forward batch makes floats bit-identical too.
    assert torch.equal(whole, singles) and torch.equal(whole, shuffled)
    assert whole.min() >= -1 and whole.max() <= 1
    assert not np.array_equal(a[0], a[4])  # same class, other seed


def test_ddim_eta0_is_a_function_of_x_T_alone():
    cfg = config(8)
    unet, schedule = random_unet(cfg), Schedule.from_config(cfg)
    seeds, labels = sample_seeds(7, np.arange(4)), np.array([0, 1, 2, 3])
    x_T = draw_noise(seed_generators(seeds), (1, 8, 8))
    y = torch.from_numpy(labels)
    steps = ddim_timesteps(100, 10)
    global_rng = torch.get_rng_state()
    a = denoise(unet, schedule, x_T, y, steps, eta=0.0)  # no generators: nothing random left
    b = denoise(unet, schedule, x_T.clone(), y, steps, eta=0.0)
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), global_rng)
    assert torch.equal(a, sample_ddim(unet, schedule, seeds, labels, steps=10, eta=0.0))
    assert not torch.equal(a, sample_ddim(unet, schedule, seeds, labels, steps=10, eta=1.0))
    with pytest.raises(ValueError, match="generator"):
        denoise(unet, schedule, x_T, y, steps, eta=0.5)


def test_ddim_timesteps_trail_from_the_last_step():
    assert ddim_timesteps(100, 4) == [99, 74, 49, 24]
    assert ddim_timesteps(10, 10) == list(range(9, -1, -1))


def test_guidance_mixes_the_conditional_and_null_predictions():
    cfg = config(8)
    unet, schedule = random_unet(cfg), Schedule.from_config(cfg)
    x, y = torch.randn(3, 1, 8, 8), torch.tensor([1, 2, 3])
    t = torch.full((3,), 40)
    with torch.no_grad():
        eps_c, eps_u = unet(x, t, y), unet(x, t, torch.full_like(y, 10))
        guided = predict_noise(unet, schedule, x, 40, y, guidance=3.0)
    assert torch.allclose(guided, eps_u + 3.0 * (eps_c - eps_u), atol=1e-5)


def test_guidance_changes_conditional_samples_only():
    seeds, labels = sample_seeds(5, np.arange(4)), np.array([0, 1, 2, 3])
    cfg = config(8)
    unet, schedule = random_unet(cfg), Schedule.from_config(cfg)
    plain = to_uint8(sample_ddim(unet, schedule, seeds, labels, steps=10, guidance=1.0))
    assert not np.array_equal(plain, to_uint8(sample_ddim(unet, schedule, seeds, labels, steps=10, guidance=3.0)))
    assert not np.array_equal(plain, to_uint8(sample_ddim(unet, schedule, seeds, labels[::-1].copy(), steps=10)))

    cfg = config(8, conditional=False)
    unet, schedule = random_unet(cfg), Schedule.from_config(cfg)
    plain = sample_ddim(unet, schedule, seeds, labels, steps=10, guidance=1.0)
    assert torch.equal(plain, sample_ddim(unet, schedule, seeds, labels, steps=10, guidance=3.0))


def test_safetensors_round_trip_gives_identical_samples(tmp_path):
    cfg = config(8)
    unet, schedule = random_unet(cfg), Schedule.from_config(cfg)
    save_file(unet.state_dict(), tmp_path / "unet.safetensors")
    loaded = UNet(cfg)
    loaded.load_state_dict(load_file(tmp_path / "unet.safetensors"))
    seeds, labels = sample_seeds(9, np.arange(4)), np.array([3, 1, 4, 1])
    before = sample_ddim(unet, schedule, seeds, labels, steps=10, eta=0.5, guidance=2.0)
    after = sample_ddim(loaded.eval(), schedule, seeds, labels, steps=10, eta=0.5, guidance=2.0)
    assert torch.equal(before, after)
