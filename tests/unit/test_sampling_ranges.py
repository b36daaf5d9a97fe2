"""Sampling settings drawn per sample from a range (generate.sampling.truncation, generate.sampling.guidance): each image
is the one its drawn value makes, whatever the batch, and its .json records the value."""

import json

import numpy as np
import pytest
import torch

from synth.generate.worker import GeneratorRef, load_generator, sample_images, write_one_shard
from synth.models.common import sample_seeds
from synth.models.family import Sampling, central, per_sample

from .test_families import job, train
from .test_worker import works


def test_a_range_draws_each_seed_its_own_value():
    seeds = sample_seeds(3, np.arange(200))
    values = per_sample((0.8, 1.6), seeds, "truncation")
    assert values.shape == (200,) and values.min() >= 0.8 and values.max() <= 1.6 and values.std() > 0.15
    assert np.array_equal(per_sample((0.8, 1.6), seeds[::-1], "truncation"), values[::-1])  # a function of the seed
    assert not np.array_equal(per_sample((0.8, 1.6), seeds, "guidance"), values)  # each setting its own stream
    assert per_sample(1.3, seeds, "truncation") == 1.3 and central((1.0, 2.0)) == 1.5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """dcgan_cond, cvae and ddpm_cond after 4 steps on the 8x8 digits."""
    found = {}
    for member in ("dcgan_cond", "cvae", "ddpm_cond"):
        out = tmp_path_factory.mktemp(member)
        train(job(member, 4), out, log_lines=False)
        meta = json.loads((out / "checkpoints/generator.json").read_text())
        weights = (out / "checkpoints/generator.safetensors").read_bytes()
        found[member] = load_generator(GeneratorRef(member, meta["model_config"], meta["digest"]), weights)
    return found


@pytest.mark.parametrize(
    "member,setting", [("dcgan_cond", "truncation"), ("cvae", "truncation"), ("ddpm_cond", "guidance")]
)
def test_each_image_is_the_one_its_drawn_value_makes(trained, member, setting):
    G = trained[member]
    seeds, labels = sample_seeds(4, np.arange(20)), np.arange(20) % 10
    base = {"steps": 4}
    ranged = Sampling(**base, **{setting: (0.5, 3.0 if setting == "guidance" else 1.9)})
    images = sample_images(G, seeds, labels, 20, ranged)
    assert np.array_equal(sample_images(G, seeds, labels, 3, ranged), images)  # any batch
    values = per_sample(getattr(ranged, setting), seeds, setting)
    for k in (0, 7, 19):  # the same image as a job with this sample's value for everyone
        alone = sample_images(G, seeds[k : k + 1], labels[k : k + 1], 1, Sampling(**base, **{setting: values[k]}))
        assert np.abs(alone[0].astype(int) - images[k].astype(int)).max() <= 1, k
    fixed = sample_images(G, seeds, labels, 20, Sampling(**base, **{setting: float(central(getattr(ranged, setting)))}))
    if setting == "truncation":
        assert not np.array_equal(fixed, images)


def test_each_row_is_guided_by_its_own_weight(trained):
    """A 4-step diffusion net's images clip to 0 and 255 whatever the guidance, so look at the guided
    noise prediction itself: row k with weights w equals the prediction at the single weight w[k]."""
    import copy

    from synth.models.diffusion import predict_noise

    G = trained["ddpm_cond"]
    net = copy.deepcopy(G.net)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # 4 steps leave the zero-initialised output layer near zero: move every weight
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    schedule = G.family.schedule(net.cfg)
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(6)
    weights = torch.tensor([0.0, 0.5, 1.0, 2.0, 3.5, 7.0])
    with torch.inference_mode():
        rows = predict_noise(net, schedule, x, 500, y, weights, forward_batch=12)
        for k in range(6):
            alone = predict_noise(net, schedule, x, 500, y, float(weights[k]), forward_batch=12)
            torch.testing.assert_close(rows[k], alone[k], rtol=1e-5, atol=1e-6)
        assert (rows[5] - predict_noise(net, schedule, x, 500, y, 1.0, forward_batch=12)[5]).abs().max() > 1e-3


def test_the_json_records_each_samples_value(tmp_path, generator):
    ref, weights = generator
    _, ws = works(tmp_path, ref, sampling=Sampling(truncation=(0.7, 1.4)))
    write_one_shard(ws[0], weights)
    import tarfile

    with tarfile.open(tmp_path / "shards" / ws[0].shard.name) as tar:
        metas = [json.loads(tar.extractfile(m).read()) for m in tar.getmembers() if m.name.endswith(".json")]
    drawn = [m["sampling"]["truncation"] for m in metas]
    expected = per_sample((0.7, 1.4), np.asarray([m["seed"] for m in metas], dtype=np.uint64), "truncation")
    assert drawn == expected.tolist() and len(set(drawn)) == len(drawn)
    assert all(m["sampling"]["truncation_range"] == [0.7, 1.4] for m in metas)
