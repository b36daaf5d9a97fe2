import pytest

from synth.errors import SynthError
from synth.spec import Job, apply_overrides, load_job

from ..conftest import QUICKSTART


def write(tmp_path, text, name="job.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_quickstart_loads_with_every_section():
    job = load_job(QUICKSTART)
    assert job.data.source == "mnist_subset"
    assert job.model.name == "dcgan_cond"
    assert job.generate.count == 10_000 and job.generate.shard_size == 1_000
    assert set(Job.model_fields) == {
        "seed",
        "data",
        "model",
        "train",
        "generate",
        "augment",
        "evaluate",
        "resources",
        "output",
    }


@pytest.mark.parametrize(
    "field",
    [
        "train.steps",
        "train.batch_size",
        "train.num_workers",
        "generate.count",
        "generate.shard_size",
        "generate.batch_size",
        "resources.generate_tasks",
        "resources.generate_cpus",
        "evaluate.num_samples",
    ],
)
def test_required_override_names_exist(field):
    job = load_job(QUICKSTART, [f"{field}=4"])
    section, name = field.split(".")
    assert getattr(getattr(job, section), name) == 4


def test_moved_fields_still_load_as_their_new_names(tmp_path, caplog):
    old = write(tmp_path, "train:\n  use_gpu: false\ngenerate:\n  num_workers: 3\n")
    job = load_job(old)
    assert job.resources.generate_tasks == 3 and job.resources.use_gpu is False
    assert "generate.num_workers is now resources.generate_tasks" in caplog.text
    assert load_job(old, ["train.use_gpu=null"]).resources.use_gpu == "auto"
    with pytest.raises(
        SynthError,
        match=r"generate.num_workers \(3\) moved to resources.generate_tasks, which the job "
        r"also sets \(4\); set resources.generate_tasks only$",
    ):
        load_job(old, ["resources.generate_tasks=4"])
    assert load_job(QUICKSTART, ["generate.num_workers=4"]).resources.generate_tasks == 4  # it leaves the field null


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("true", True), ("false", False)])
def test_use_gpu_takes_auto_true_false(value, expected):
    assert load_job(QUICKSTART, [f"resources.use_gpu={value}"]).resources.use_gpu == expected


def test_bad_resources_name_the_field():
    with pytest.raises(SynthError, match=r"resources.use_gpu: expected auto, true or false, got 'sometimes'$"):
        load_job(QUICKSTART, ["resources.use_gpu=sometimes"])
    with pytest.raises(SynthError, match=r"resources.train_gpus: 0.5 is a share of a GPU, but 2 training workers "):
        load_job(QUICKSTART, ["resources.train_gpus=0.5", "train.num_workers=2"])
    assert load_job(QUICKSTART, ["resources.train_gpus=0.5"]).resources.train_gpus == 0.5  # one worker may
    with pytest.raises(SynthError, match=r"resources.generate_cpus"):
        load_job(QUICKSTART, ["resources.generate_cpus=0"])
    with pytest.raises(SynthError, match=r"train.mixed_precision"):
        load_job(QUICKSTART, ["train.mixed_precision=fp8"])


def test_unknown_field_is_named(tmp_path):
    path = write(tmp_path, "train:\n  stepz: 10\n")
    with pytest.raises(SynthError) as err:
        load_job(path)
    assert "train.stepz: unknown field" in str(err.value)
    assert "\n" not in str(err.value)


def test_mistyped_value_is_named(tmp_path):
    path = write(tmp_path, "generate:\n  count: lots\n")
    with pytest.raises(SynthError, match=r"generate\.count: .*integer"):
        load_job(path)


def test_override_of_unknown_field_fails():
    with pytest.raises(SynthError, match=r"train\.no_such_thing: unknown field"):
        load_job(QUICKSTART, ["train.no_such_thing=1"])


def test_override_types_follow_yaml():
    job = load_job(QUICKSTART, ["evaluate.inception=false", "train.lr_g=0.001", "output.name=abc"])
    assert job.evaluate.inception is False and job.train.lr_g == 0.001 and job.output.name == "abc"


def test_override_without_equals_fails():
    with pytest.raises(SynthError, match="section.field=value"):
        apply_overrides({}, ["train.steps"])


def test_invalid_yaml_names_line(tmp_path):
    path = write(tmp_path, "train:\n  steps: [1, 2\n")
    with pytest.raises(SynthError, match=r"invalid YAML \(line \d+"):
        load_job(path)


def test_missing_file(tmp_path):
    with pytest.raises(SynthError, match="job file not found"):
        load_job(tmp_path / "nope.yaml")


def test_unknown_model(tmp_path):
    path = write(tmp_path, "model:\n  name: stylegan9\n")
    with pytest.raises(SynthError, match=r"model\.name: unknown model 'stylegan9'; choose from dcgan_cond"):
        load_job(path)


def test_folder_source_needs_path(tmp_path):
    path = write(tmp_path, "data:\n  source: folder\n")
    with pytest.raises(SynthError, match="data.path is required"):
        load_job(path)


def test_identity_ignores_scale_but_not_model():
    a = load_job(QUICKSTART)
    assert a.identity() == load_job(QUICKSTART, ["generate.count=5", "train.num_workers=2"]).identity()
    assert a.identity() != load_job(QUICKSTART, ["model.width=32"]).identity()
    assert a.identity() != load_job(QUICKSTART, ["seed=1"]).identity()


def test_model_identity_is_name_size_and_changes_from_the_preset():
    """Spelling out a preset's values changes nothing; changing one does. Old outputs (name, latent_dim,
    width only) keep their identity when a release adds fields."""
    from synth.spec import job_from_dict

    plain = job_from_dict({"model": {"name": "dcgan_cond"}})
    spelled = job_from_dict({"model": {"name": "dcgan_cond", "loss": "hinge", "conditional": True, "n_critic": 1}})
    changed = job_from_dict({"model": {"name": "dcgan_cond", "loss": "nonsaturating"}})
    assert plain.model.canonical() == {"name": "dcgan_cond", "latent_dim": 64, "width": 64}
    assert plain.identity() == spelled.identity() != changed.identity()
    assert changed.model.canonical()["loss"] == "nonsaturating"
    vae = job_from_dict({"model": {"name": "beta_vae"}})
    assert vae.model.beta == 4.0 and vae.train.lr_g == 1e-3 and vae.train.beta2 == 0.999


def test_a_preset_that_changed_gives_its_jobs_a_new_identity():
    """wgan_gp's generator moved from transposed convs to nearest upsampling: its jobs (and checkpoints)
    are not the old ones, and the old generator stays reachable by naming it."""
    from synth.spec import job_from_dict

    new = job_from_dict({"model": {"name": "wgan_gp"}})
    old = job_from_dict({"model": {"name": "wgan_gp", "upsample": "transposed"}})
    assert new.model.upsample == "nearest" and new.model.canonical()["upsample"] == "nearest"
    assert old.model.canonical() == {"name": "wgan_gp", "latent_dim": 64, "width": 64}  # what old jobs hashed
    assert new.identity() != old.identity()
    assert "upsample" not in job_from_dict({"model": {"name": "sngan"}}).model.canonical()


@pytest.mark.parametrize(
    "raw,message",
    [
        (
            {"model": {"name": "ddpm_cond", "timesteps": 20}},
            "generate.sampling.steps: 50 DDIM steps, but the model has 20",
        ),
        ({"model": "dcgan"}, "model: expected a section with a name"),
        ({"model": {"name": ["x"]}}, "model.name: unknown model ['x']"),
    ],
)
def test_model_section_errors_are_one_line(raw, message):
    from synth.errors import SynthError
    from synth.spec import job_from_dict

    with pytest.raises(SynthError) as err:
        job_from_dict(raw)
    assert message in str(err.value) and "\n" not in str(err.value)
