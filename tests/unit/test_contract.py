"""The family contract: the registry, capabilities checked at load, the sample request with inputs,
several nets in one export, the pixel form a family trains on, and the move to generate.sampling."""

import csv
import json
import logging
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from synth.errors import SynthError
from synth.generate.worker import GeneratorRef, load_generator, sample_images
from synth.models import registry
from synth.models.family import Family, SampleRequest
from synth.models.section import Capabilities, Member, ModelSection
from synth.spec import job_from_dict
from synth.train import checkpoint as ckpt
from synth.train.loop import export_fixed, train
from tests.plugins.mirror import MirrorModel  # registers the plugin member `mirror`

ROOT = Path(__file__).resolve().parents[2]
BUILTIN_MEMBERS = {
    "dcgan_cond": "gan",
    "dcgan": "gan",
    "sngan": "gan",
    "wgan_gp": "gan",
    "vae": "vae",
    "beta_vae": "vae",
    "cvae": "vae",
    "ddpm": "diffusion",
    "ddpm_cond": "diffusion",
}


def test_the_registry_lists_every_member_and_its_family():
    found = registry.members()
    assert {name: found[name] for name in BUILTIN_MEMBERS} == BUILTIN_MEMBERS
    for name, family in BUILTIN_MEMBERS.items():
        assert isinstance(registry.family_for(name), Family) and registry.family_for(name).name == family
    assert found["mirror"] == "mirror" and registry.sections()["mirror"] is MirrorModel  # a plugin's member
    with pytest.raises(SynthError, match="model.name: unknown model 'nope'; choose from dcgan_cond, "):
        registry.family_for("nope")


def test_the_readme_model_table_is_the_registry():
    table = registry.models_table(builtin_only=True)
    assert len(table.splitlines()) == 2 + len(BUILTIN_MEMBERS)
    assert table in (ROOT / "README.md").read_text(), "README's model table differs: paste `synth models`"


def test_a_member_cannot_be_registered_twice():
    class Clash(ModelSection):
        FAMILY: ClassVar[str] = "clash"
        MEMBERS: ClassVar[dict[str, Member]] = {"dcgan": Member({})}
        name: Literal["dcgan"]

    with pytest.raises(ValueError, match="model 'dcgan' of family 'clash' is already a member of 'gan'"):
        registry.register(Clash)


def test_a_family_that_leaves_out_a_method_cannot_be_made():
    class Half(Family):
        def build(self, spec, shape):
            return {}

    with pytest.raises(TypeError, match="abstract"):
        Half()


@pytest.mark.parametrize(
    "raw,message",
    [
        (
            {"generate": {"sampling": {"guidance": 2.0}}},
            "generate.sampling.guidance: not a sampling setting of dcgan_cond (gan family; its settings: truncation)",
        ),
        ({"generate": {"sampling": {"truncation": 3}}}, "generate.sampling.truncation: expected a number in (0, 2]"),
        (
            {"model": {"name": "ddpm_cond", "timesteps": 20}, "generate": {"sampling": {"steps": 30}}},
            "generate.sampling.steps: 30 DDIM steps, but the model has 20 timesteps",
        ),
        ({"model": {"name": "mirror"}}, "generate.inputs: mirror makes each image from an input image"),
        (
            {"generate": {"inputs": {"source": "digits"}}},
            "generate.inputs: dcgan_cond does not take an input image (it is conditioned on class)",
        ),
        (
            {"model": {"name": "dcgan"}, "generate": {"filter": {}}},
            "generate.filter: dcgan is unconditional, so no class is asked for",
        ),
        (
            {"model": {"name": "mirror"}, "generate": {"inputs": {"source": "digits", "dataset": "x"}}},
            "generate.inputs: give one of source (a real data source) or dataset",
        ),
        (
            {"model": {"name": "mirror"}, "generate": {"inputs": {"source": "digits"}, "classes": {"counts": {0: 5}}}},
            "generate.classes: with generate.inputs each sample keeps its input's class",
        ),
    ],
)
def test_a_job_asking_what_its_member_cannot_do_is_one_line(raw, message):
    with pytest.raises(SynthError) as err:
        job_from_dict(raw, source="job.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_flat_sampling_fields_load_in_their_new_place_with_a_warning(caplog):
    nested = job_from_dict({"generate": {"sampling": {"truncation": [1.0, 1.5]}}})
    with caplog.at_level(logging.WARNING, logger="synth"):
        flat = job_from_dict({"generate": {"truncation": [1.0, 1.5]}}, source="old.yaml")
    assert flat == nested and flat.generate.sampling.truncation == (1.0, 1.5)
    assert "old.yaml: generate.truncation is now generate.sampling.truncation (read as such)" in caplog.text
    # a job.yaml an older synth stored lists every flat setting: those its family lacks are dropped
    stored = {"truncation": 1.0, "sampler": "ddim", "steps": 50, "eta": 0.0, "guidance": 1.0}
    assert job_from_dict({"generate": stored}).generate.sampling == nested.generate.sampling.model_copy(
        update={"truncation": 1.0}
    )
    diffusion = job_from_dict({"model": {"name": "ddpm_cond"}, "generate": {**stored, "steps": 25}})
    assert diffusion.generate.sampling.steps == 25
    with pytest.raises(SynthError, match="generate.truncation .* moved to generate.sampling.truncation, which the"):
        job_from_dict({"generate": {"truncation": 1.2, "sampling": {"truncation": 1.3}}})


def test_a_sample_request_pads_with_zero_rows_and_slices_every_column():
    request = SampleRequest(
        np.array([5, 6, 7], np.uint64),
        np.array([1, 2, 3]),
        None,
        np.full((3, 1, 2, 2), 9, np.uint8),
        np.array([0, 1, 0]),
    )
    padded = request.padded(5)
    assert padded.seeds.tolist() == [5, 6, 7, 0, 0] and padded.labels.tolist() == [1, 2, 3, 0, 0]
    assert padded.inputs[:3].min() == 9 and padded.inputs[3:].max() == 0 and padded.domains.tolist() == [0, 1, 0, 0, 0]
    rows = request.rows(1, 3)
    assert rows.seeds.tolist() == [6, 7] and rows.inputs.shape == (2, 1, 2, 2) and rows.domains.tolist() == [1, 0]


def mirror_job(**generate):
    return job_from_dict(
        {
            "seed": 4,
            "data": {"source": "digits", "resolution": 8},
            "model": {"name": "mirror"},
            "generate": {"inputs": {"source": "digits", "split": "train"}, **generate},
        }
    )


def test_several_nets_in_one_export_load_without_pickle_and_sample_from_input_images(tmp_path):
    export_fixed(mirror_job(), tmp_path)
    folder = tmp_path / "checkpoints"
    weights = load_file(str(folder / "generator.safetensors"))
    assert set(weights) == {"there.weight", "there.bias", "back.weight", "back.bias"}  # two nets, one file
    meta, data = ckpt.load_generator_files(folder)
    model = load_generator(GeneratorRef("mirror", meta["model_config"], meta["digest"]), data)
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 256, (70, 1, 8, 8), dtype=np.uint8)
    seeds, labels = rng.integers(0, 2**63, 70).astype(np.uint64), np.zeros(70, np.int64)
    sampling = mirror_job().generate.sampling
    images = sample_images(model, seeds, labels, 70, sampling, inputs)
    assert images.shape == (70, 8, 8, 1) and images.dtype == np.uint8
    mirrored = inputs[:, 0, :, ::-1].astype(int)
    assert 0 < np.abs(images[..., 0].astype(int) - mirrored).mean() < 8  # the input, mirrored, plus noise
    for batch in (1, 7, 64):  # image i depends on row i only, at any batch size
        assert np.array_equal(sample_images(model, seeds, labels, batch, sampling, inputs), images)
    flipped = sample_images(model, seeds[::-1], labels, 70, sampling, inputs[::-1])
    assert np.array_equal(flipped, images[::-1])
    other_seed = sample_images(model, seeds[:1] + np.uint64(1), labels[:1], 1, sampling, inputs[:1])
    assert not np.array_equal(other_seed, images[:1])


class LevelsModel(ModelSection):
    """A family trained on integer pixels: its step logs what it received."""

    FAMILY: ClassVar[str] = "levels_probe"
    MEMBERS: ClassVar[dict[str, Member]] = {"levels_probe": Member({}, "a test member")}
    name: Literal["levels_probe"]

    def capabilities(self) -> Capabilities:
        return Capabilities(conditioning="none", pixels="levels")


class LevelsFamily(Family):
    name = "levels_probe"
    export_net = "mean"
    log_fields = ("loss", "low", "high", "integer")

    def build(self, spec, shape):
        return {"mean": nn.Linear(1, 1)}

    def optimizers(self, nets, train):
        return {"opt": torch.optim.SGD(nets["mean"].parameters(), lr=1e-4)}

    def train_step(self, nets, opts, data, backward):
        x, _ = data.real(0)
        loss = (nets["mean"].bias - x.float().mean()).pow(2).sum()
        opts["opt"].zero_grad()
        backward(loss)
        opts["opt"].step()
        integer = torch.tensor(float(x.dtype == torch.int64))
        return {"loss": loss.detach(), "low": x.min().float(), "high": x.max().float(), "integer": integer}

    def build_export(self, model_config):
        return nn.Linear(1, 1)

    def sample(self, net, request):
        return torch.zeros(len(request), 1, 8, 8)


def test_a_family_that_asks_for_integer_pixels_trains_on_levels_0_to_255(tmp_path, monkeypatch):
    import sys
    import types

    module = types.ModuleType("levels_probe_family")
    module.FAMILY = LevelsFamily()
    monkeypatch.setitem(sys.modules, "levels_probe_family", module)
    LevelsModel.__module__ = "levels_probe_family"
    registry.register(LevelsModel)
    job = job_from_dict(
        {
            "data": {"source": "digits", "resolution": 8},
            "model": {"name": "levels_probe"},
            "train": {"steps": 4, "batch_size": 16, "log_every": 1, "checkpoint_every": 100},
        }
    )
    train(job, tmp_path, log_lines=False)
    with open(tmp_path / "train_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    assert all(float(r["integer"]) == 1.0 for r in rows)
    assert min(float(r["low"]) for r in rows) == 0.0 and 200 <= max(float(r["high"]) for r in rows) <= 255
    assert json.loads((tmp_path / "checkpoints/generator.json").read_text())["family"] == "levels_probe"
