"""The Accelerate training loop in one plain process (no Ray): loss, checkpoints, resume."""

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from synth.errors import SynthError
from synth.spec import job_from_dict
from synth.train.loop import train


def tiny_job(**train_overrides):
    return job_from_dict(
        {
            "seed": 1,
            "data": {"source": "digits", "resolution": 8},
            "model": {"width": 16, "latent_dim": 16},
            "train": {
                "steps": 12,
                "batch_size": 32,
                "log_every": 4,
                "checkpoint_every": 8,
                "ema_start": 0,
                **train_overrides,
            },
        }
    )


def read_log(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_trains_checkpoints_and_exports(tmp_path):
    result = train(tiny_job(), tmp_path, log_lines=False)
    assert result.step == 12 and result.world_size == 1
    ck = tmp_path / "checkpoints"
    state = json.loads((ck / "state.json").read_text())
    assert state["step"] == 12 and (ck / state["weights"]).is_file()
    assert state["model_config"]["width"] == 16 and "torch" in state["versions"]
    assert len(list(ck.glob("train-*.safetensors"))) == 1  # older checkpoints dropped
    meta = json.loads((ck / "generator.json").read_text())
    assert meta["class_names"] == [str(d) for d in range(10)]
    assert set(load_file(str(ck / "generator.safetensors"))) >= {"fc.weight", "out.weight"}
    rows = read_log(tmp_path / "train_log.csv")
    assert [int(r["step"]) for r in rows] == [4, 8, 12]


def test_resume_equals_uninterrupted(tmp_path):
    train(tiny_job(steps=12), tmp_path / "whole", log_lines=False)
    train(tiny_job(steps=8), tmp_path / "split", log_lines=False)
    train(tiny_job(steps=12), tmp_path / "split", log_lines=False)
    a = load_file(str(tmp_path / "whole/checkpoints/generator.safetensors"))
    b = load_file(str(tmp_path / "split/checkpoints/generator.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    rows = read_log(tmp_path / "split/train_log.csv")
    assert [int(r["step"]) for r in rows] == [4, 8, 12]


def test_refuses_resume_with_changed_model(tmp_path):
    train(tiny_job(steps=4), tmp_path, log_lines=False)
    changed = job_from_dict({**tiny_job(steps=8).model_dump(), "model": {"width": 32, "latent_dim": 16}})
    with pytest.raises(SynthError, match=r"model config changed .*width: 16 -> 32"):
        train(changed, tmp_path, log_lines=False)


def test_discriminator_learns(tmp_path):
    """Over the first steps the discriminator's hinge loss falls from its starting value of ~2."""
    train(tiny_job(steps=40, log_every=2, lr_d=1e-3), tmp_path, log_lines=False)
    losses = [float(r["loss_d"]) for r in read_log(tmp_path / "train_log.csv")]
    assert losses[0] > 1.5 and min(losses[1:10]) < 0.75 * losses[0]


@pytest.fixture
def fresh_accelerate():
    """Accelerate keeps one process-wide state; a test that changes mixed precision starts and ends clean."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield AcceleratorState
    AcceleratorState._reset_state(True)


def test_bf16_mixed_precision_trains_on_cpu(tmp_path, fresh_accelerate):
    train(tiny_job(steps=12), tmp_path / "fp32", log_lines=False, use_gpu=False)
    fresh_accelerate._reset_state(True)
    train(tiny_job(steps=12, mixed_precision="bf16"), tmp_path / "bf16", log_lines=False, use_gpu=False)
    a = load_file(str(tmp_path / "fp32/checkpoints/generator.safetensors"))
    b = load_file(str(tmp_path / "bf16/checkpoints/generator.safetensors"))
    assert {k: v.dtype for k, v in a.items()} == {k: v.dtype for k, v in b.items()}  # fp32 weights either way
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    assert 0 < diff < 1e-2  # autocast ran the forward passes in bf16: close to fp32, not equal
    rows = read_log(tmp_path / "bf16/train_log.csv")
    assert all(torch.isfinite(torch.tensor(float(r["loss_d"]))) for r in rows)


def test_fp16_on_cpu_is_one_line(tmp_path, fresh_accelerate):
    with pytest.raises(SynthError, match=r"^train.mixed_precision: fp16 needs a GPU and this job trains on CPU"):
        train(tiny_job(steps=2, mixed_precision="fp16"), tmp_path, log_lines=False, use_gpu=False)
