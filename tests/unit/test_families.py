"""Every model family through the real training loop (one plain process, no Ray), on real digits.

For each member: the loss falls, a checkpoint round-trips (a run split in two and resumed ends with
the same weights as an uninterrupted one), and the exported sampler gives the same bytes per seed
at any batch size. A slower test checks that conditional members make the class asked for.
"""

import csv

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from synth.generate.worker import GeneratorRef, load_generator, sample_images
from synth.models.common import sample_seeds
from synth.models.family import Sampling
from synth.spec import job_from_dict
from synth.train.loop import train

MEMBERS = {
    "dcgan": {},
    "sngan": {},
    "dcgan_cond": {},
    "dcgan_cond+diffaugment": {"diffaugment": ["color", "translation", "cutout"]},
    "wgan_gp": {},
    "vae": {},
    "beta_vae": {},
    "cvae": {},
    "ddpm": {"timesteps": 50},
    "ddpm_cond": {"timesteps": 50},
}


def job(member: str, steps: int, **train):
    name = member.split("+")[0]
    model = {"name": name, "width": 16, **MEMBERS[member]}
    if "latent_dim" in type(job_from_dict({"model": {"name": name}}).model).model_fields:
        model["latent_dim"] = 16
    return job_from_dict(
        {
            "seed": 3,
            "data": {"source": "digits", "resolution": 8},
            "model": model,
            "train": {
                "steps": steps,
                "batch_size": 32,
                "log_every": 2,
                "checkpoint_every": 1000,
                "ema_start": 0,
                **train,
            },
        }
    )


def losses(out, field: str) -> list[float]:
    with open(out / "train_log.csv") as fh:
        return [float(row[field]) for row in csv.DictReader(fh)]


def first_loss_field(out) -> str:
    with open(out / "train_log.csv") as fh:
        return next(k for k in next(csv.reader(fh)) if k.startswith("loss"))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny nets: one thread is faster, and keeps the suite off the other core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("member", list(MEMBERS))
def test_loss_falls(tmp_path, member):
    train(job(member, 40), tmp_path, log_lines=False)
    field = first_loss_field(tmp_path)  # loss_d for GANs (the critic's loss for wgan_gp), loss otherwise
    values = losses(tmp_path, field)
    assert len(values) == 20 and all(np.isfinite(values))
    assert np.mean(values[-5:]) < np.mean(values[:2]) - 0.1 * abs(np.mean(values[:2])), values


@pytest.mark.parametrize("member", list(MEMBERS))
def test_resume_round_trip_and_sampling(tmp_path, member):
    train(job(member, 6), tmp_path / "whole", log_lines=False)
    train(job(member, 3), tmp_path / "split", log_lines=False)
    train(job(member, 6), tmp_path / "split", log_lines=False)
    a = load_file(str(tmp_path / "whole/checkpoints/generator.safetensors"))
    b = load_file(str(tmp_path / "split/checkpoints/generator.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), member

    import json

    meta = json.loads((tmp_path / "whole/checkpoints/generator.json").read_text())
    weights = (tmp_path / "whole/checkpoints/generator.safetensors").read_bytes()
    G = load_generator(GeneratorRef(meta["model_config"]["name"], meta["model_config"], meta["digest"]), weights)
    seeds, labels = sample_seeds(9, np.arange(70)), np.arange(70) % 10
    reference = sample_images(G, seeds, labels, 70)
    assert reference.shape == (70, 8, 8, 1) and reference.dtype == np.uint8 and reference.std() > 0
    for batch_size in (1, 13):
        assert np.array_equal(sample_images(G, seeds, labels, batch_size), reference)
    assert np.array_equal(sample_images(G, seeds[::-1], labels[::-1], 70), reference[::-1])
    if not member.startswith("ddpm"):  # a 6-step diffusion net clips to 0/255 whatever the sampler (see test_diffusion)
        assert not np.array_equal(sample_images(G, seeds, labels, 70, Sampling(truncation=0.5)), reference)


@pytest.mark.parametrize("member", ["dcgan_cond", "cvae", "ddpm_cond"])
def test_interpolation_runs_from_seed_to_seed(tmp_path, member):
    """The path's ends are the two seeds' own samples (within a grey level: other forward shapes)."""
    import json

    train(job(member, 4), tmp_path, log_lines=False)
    meta = json.loads((tmp_path / "checkpoints/generator.json").read_text())
    G = load_generator(
        GeneratorRef(member, meta["model_config"], meta["digest"]),
        (tmp_path / "checkpoints/generator.safetensors").read_bytes(),
    )
    seeds, sampling = np.array([11, 22], dtype=np.uint64), Sampling(steps=10)
    with torch.inference_mode():
        from synth.models.common import to_uint8

        path = to_uint8(G.family.interpolate(G.net, seeds, 3, 6, sampling))
    ends = sample_images(G, seeds, np.array([3, 3]), 2, sampling)
    assert path.shape == (6, 8, 8, 1)
    assert np.abs(path[[0, -1]].astype(int) - ends.astype(int)).max() <= 1
    assert not np.array_equal(path[2], path[0]) and not np.array_equal(path[2], path[-1])


def test_wgan_gp_takes_five_critic_steps(tmp_path):
    """n_critic = 5 critic updates per generator update: the critic's Adam has taken 5x the steps."""
    train(job("wgan_gp", 2), tmp_path, log_lines=False)
    state = load_file(str(next((tmp_path / "checkpoints").glob("train-*.safetensors"))))
    steps = {k.split("/")[0]: float(v.flatten()[0]) for k, v in state.items() if k.endswith("/step")}
    assert steps["opt_d"] == 10 * 1 and steps["opt_g"] == 2, steps


def digit_classifier():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    x = (digits.images * (255.0 / 16.0)).reshape(len(digits.images), -1)
    return LogisticRegression(max_iter=2000).fit(x / 255.0, digits.target)


@pytest.mark.slow
@pytest.mark.parametrize("member,steps", [("dcgan_cond", 1500), ("cvae", 600), ("ddpm_cond", 800)])
def test_conditional_members_make_the_class_asked_for(tmp_path, member, steps):
    """After a short training on the 8x8 digits, a classifier trained on the real digits sees the class
    asked for in well over half of the generated images (chance: 10%)."""
    # a short run wants a short EMA: decay 0.999 would average over about the whole run, early steps included
    train(job(member, steps, ema_decay=0.98), tmp_path, log_lines=False)
    import json

    meta = json.loads((tmp_path / "checkpoints/generator.json").read_text())
    weights = (tmp_path / "checkpoints/generator.safetensors").read_bytes()
    G = load_generator(GeneratorRef(member, meta["model_config"], meta["digest"]), weights)
    labels = np.arange(500) % 10
    sampling = Sampling(steps=20, guidance=2.0)  # used by diffusion only
    images = sample_images(G, sample_seeds(1, np.arange(500)), labels, 100, sampling)
    accuracy = float((digit_classifier().predict(images.reshape(500, -1) / 255.0) == labels).mean())
    print(f"{member}: {accuracy:.3f} of generated digits classified as asked")
    assert accuracy > 0.5, accuracy


@pytest.mark.slow
def test_unconditional_gan_samples_vary_with_the_latent(tmp_path):
    """The unconditional DCGAN (width 32) on the 28x28 MNIST subset: after 300 steps its
    samples differ from latent to latent about as much as real digits differ from each other. (With a
    learned constant beside the latent, it had collapsed by then onto one image, and this test failed.)"""
    from synth.data import load_dataset
    from synth.models.common import from_uint8

    spec = job_from_dict(
        {
            "seed": 0,
            "data": {"source": "mnist_subset"},
            "model": {"name": "dcgan", "latent_dim": 64, "width": 32},
            "train": {"steps": 300, "batch_size": 64, "log_every": 100, "checkpoint_every": 1000, "ema_decay": 0.98},
        }
    )
    train(spec, tmp_path, log_lines=False)
    import json

    meta = json.loads((tmp_path / "checkpoints/generator.json").read_text())
    weights = (tmp_path / "checkpoints/generator.safetensors").read_bytes()
    G = load_generator(GeneratorRef("dcgan", meta["model_config"], meta["digest"]), weights)
    fake = sample_images(G, sample_seeds(1, np.arange(256)), np.zeros(256, dtype=np.int64), 128, Sampling())
    real = load_dataset(spec.data, 0).images[:256]
    spread_fake, spread_real = (float(from_uint8(x).std(0).mean()) for x in (fake, real))
    print(f"per-pixel spread across samples: generated {spread_fake:.3f}, real {spread_real:.3f}")
    assert spread_fake > 0.4 * spread_real, (spread_fake, spread_real)


@pytest.mark.parametrize("member,rows", [("dcgan", 1), ("cvae", 10)])
def test_interpolate_grid_has_a_row_per_class_of_conditional_models(tmp_path, member, rows):
    from PIL import Image

    from synth.stages.interpolate import run_interpolate
    from synth.stages.outdir import claim_out_dir

    spec = job(member, 2)
    train(spec, tmp_path, log_lines=False)
    claim_out_dir(tmp_path, spec)
    grid = Image.open(run_interpolate(spec, tmp_path, [1, 2], 3, None))
    assert grid.size == (3 * 64, rows * 64)  # 8 px images drawn 8x
