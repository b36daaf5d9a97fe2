"""Bad input: one clear line on stderr, a non-zero exit, and nothing written. No Ray is started."""

import numpy as np
import pytest
from PIL import Image

from ..conftest import QUICKSTART


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_help_lists_commands(cli):
    proc = cli("--help")
    assert proc.returncode == 0
    for command in ("run", "train", "generate", "evaluate"):
        assert command in proc.stdout
    run_help = cli("run", "--help")
    assert "Examples" in run_help.stdout and "--set" in run_help.stdout


def test_dry_run_prints_resolved_job(cli, tmp_path):
    proc = cli("run", str(QUICKSTART), "--out", str(tmp_path / "o"), "--set", "train.steps=7", "--dry-run")
    assert proc.returncode == 0
    assert "steps: 7" in proc.stdout and "source: mnist_subset" in proc.stdout
    assert not (tmp_path / "o").exists()


def test_missing_job_file(cli, tmp_path):
    proc = cli("run", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "missing.yaml: job file not found")
    assert not (tmp_path / "o").exists()


def test_invalid_yaml(cli, tmp_path):
    job = tmp_path / "bad.yaml"
    job.write_text("train: {steps: 3\n")
    proc = cli("run", str(job), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "bad.yaml: invalid YAML")
    assert not (tmp_path / "o").exists()


def test_unknown_model(cli, tmp_path):
    proc = cli("run", str(QUICKSTART), "--out", str(tmp_path / "o"), "--set", "model.name=nope")
    assert_one_line_error(proc, "model.name: unknown model 'nope'")
    assert not (tmp_path / "o").exists()


def test_unknown_field(cli, tmp_path):
    proc = cli("train", str(QUICKSTART), "--out", str(tmp_path / "o"), "--set", "train.stepz=5")
    assert_one_line_error(proc, "train.stepz: unknown field")


def test_empty_image_folder(cli, tmp_path):
    (tmp_path / "imgs").mkdir()
    proc = cli(
        "run",
        str(QUICKSTART),
        "--out",
        str(tmp_path / "o"),
        "--set",
        "data.source=folder",
        "--set",
        f"data.path={tmp_path / 'imgs'}",
    )
    assert_one_line_error(proc, "has no class sub-folders")
    assert not (tmp_path / "o").exists()


def test_unreadable_image(cli, tmp_path):
    cls = tmp_path / "imgs" / "a"
    cls.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(cls / "ok.png")
    (cls / "bad.jpg").write_bytes(b"\xff\xd8garbage")
    proc = cli(
        "run",
        str(QUICKSTART),
        "--out",
        str(tmp_path / "o"),
        "--set",
        "data.source=folder",
        "--set",
        f"data.path={tmp_path / 'imgs'}",
    )
    assert_one_line_error(proc, "cannot read image", "bad.jpg")
    assert not (tmp_path / "o").exists()


def test_out_dir_of_another_job(cli, tmp_path):
    out = tmp_path / "o"
    (out / ".synth").mkdir(parents=True)
    (out / ".synth" / "job.json").write_text('{"identity": "someone-else"}')
    before = sorted(p.name for p in out.rglob("*"))
    proc = cli("run", str(QUICKSTART), "--out", str(out))
    assert_one_line_error(proc, "holds the output of another job")
    assert sorted(p.name for p in out.rglob("*")) == before


def test_out_dir_with_unrelated_files(cli, tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "notes.txt").write_text("mine")
    proc = cli("run", str(QUICKSTART), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "holds no synth job")


def test_generate_before_train(cli, tmp_path):
    proc = cli("generate", str(QUICKSTART), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "no synth job here")


@pytest.mark.parametrize(
    "override,fragments",
    [
        ("generate.classes.counts.11=5", ["generate.classes.counts: unknown class '11'"]),
        ("output.url=nosuchproto://bucket/x", ["nosuchproto://bucket/x: cannot open this location"]),
        ("generate.count=10", ["generate.count: 10 is not a multiple of augment.copies=3"]),
    ],
)
def test_generate_refuses_before_ray_starts(cli, tmp_path, override, fragments):
    """`synth generate` checks classes, copies and the output URL before it starts Ray (one line, no Ray output)."""
    import json

    from synth.spec import load_job
    from synth.stages.outdir import claim_out_dir

    out = tmp_path / "out"
    sets = ["augment.copies=3", "generate.count=30"]
    claim_out_dir(out, load_job(QUICKSTART, sets))
    (out / "checkpoints").mkdir()
    meta = {
        "class_names": [str(i) for i in range(10)],
        "model_config": {
            "name": "dcgan_cond",
            "latent_dim": 64,
            "width": 64,
            "resolution": 28,
            "channels": 1,
            "num_classes": 10,
        },
    }
    (out / "checkpoints" / "generator.json").write_text(json.dumps(meta))
    (out / "checkpoints" / "generator.safetensors").write_bytes(b"")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    args = [a for s in sets + [override] for a in ("--set", s)]
    proc = cli("generate", str(QUICKSTART), "--out", str(out), *args)
    assert_one_line_error(proc, *fragments)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


@pytest.mark.parametrize("name", ["dcgan", "sngan", "wgan_gp", "vae"])
def test_unconditional_models_cannot_be_asked_for_classes(cli, tmp_path, name):
    """An unconditional model makes an unlabelled dataset: asking it for classes fails before anything is written."""
    sets = [f"model.name={name}", "generate.classes=match_real"]
    proc = cli("run", str(QUICKSTART), "--out", str(tmp_path / "o"), *[a for s in sets for a in ("--set", s)])
    assert_one_line_error(proc, f"generate.classes: {name} is unconditional")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--real", "mnist_subset"], ["give a JOB", "--generated"]),
        (["--generated", "{tmp}/nope", "--real", "mnist_subset"], ["--generated", "nope: no such file or folder"]),
        (["--generated", "{tmp}/empty", "--real", "mnist_subset"], ["empty: holds no images or shards"]),
        (["--generated", "{tmp}/empty", "--real", "cifar"], ["--real cifar: neither a data source", "nor a folder"]),
        (
            ["--generated", "{tmp}/bad.tar", "--real", "digits", "--set", "data.resolution=8"],
            ["bad.tar: not a readable WebDataset shard"],
        ),
    ],
)
def test_evaluate_other_images_bad_input(cli, tmp_path, args, fragments):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.tar").write_bytes(b"not a tar file")
    proc = cli("evaluate", *[a.format(tmp=tmp_path) for a in args], "--out", str(tmp_path / "rep"))
    assert_one_line_error(proc, *fragments)
    assert not (tmp_path / "rep").exists()


def test_evaluate_other_images_refuses_a_jobs_folder(cli, tmp_path):
    job_out = tmp_path / "job"
    (job_out / ".synth").mkdir(parents=True)
    (job_out / ".synth" / "job.json").write_text("{}")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(imgs / "a.png")
    proc = cli("evaluate", "--generated", str(imgs), "--real", "digits", "--out", str(job_out))
    assert_one_line_error(proc, "holds a synth job's output")
    assert sorted(p.name for p in job_out.rglob("*")) == [".synth", "job.json"]
