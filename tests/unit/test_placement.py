"""The resources section against what a cluster has: what each worker and task asks Ray for."""

import pytest

from synth.errors import SynthError
from synth.placement import place
from synth.spec import job_from_dict


def job(workers=1, mixed_precision="no", **resources):
    return job_from_dict(
        {
            "train": {"num_workers": workers, "batch_size": 64, "mixed_precision": mixed_precision},
            "resources": resources,
        }
    )


def test_cpu_cluster_splits_its_cpus_between_training_workers():
    placed, warnings = place(job(workers=2), cpus=8, gpus=0, can_grow=False, stage="train")
    assert not placed.gpu and placed.train_cpus == 4 and placed.train_gpus == 0
    assert placed.generate_gpus == 0 and placed.generate_device == "cpu"
    assert placed.generate_tasks == 8  # by default as many shard tasks as the CPUs hold
    assert warnings == []
    assert place(job(generate_cpus=3), cpus=8, gpus=0, can_grow=False, stage="generate")[0].generate_tasks == 2
    assert place(job(generate_tasks=5), cpus=8, gpus=0, can_grow=False, stage="generate")[0].generate_tasks == 5


def test_a_training_worker_fits_on_one_node():
    placed, _ = place(job(workers=2), cpus=32, gpus=0, can_grow=True, stage="train", node_cpus=4)
    assert placed.train_cpus == 4  # not 16: a worker cannot span nodes
    _, warnings = place(job(train_cpus=8), cpus=32, gpus=0, can_grow=True, stage="train", node_cpus=4)
    assert warnings == [
        ("resources.train_cpus: 8 per worker, but the largest node has 4 CPUs; waiting for the cluster to add nodes")
    ]


def test_auto_uses_the_gpus_a_cluster_has():
    placed, _ = place(job(workers=4), cpus=32, gpus=4, can_grow=True, stage="train")
    assert placed.gpu and placed.train_gpus == 1 and placed.train_cpus == 1
    assert placed.generate_gpus == 1 and placed.generate_device == "cuda" and placed.generate_tasks == 4
    with pytest.raises(SynthError, match=r"^train.num_workers: 8 training workers x 1 GPU, but the cluster has 4 GPUs"):
        place(job(workers=8), cpus=32, gpus=4, can_grow=False, stage="train")


def test_fractional_generation_gpus_and_explicit_cpus():
    placed, _ = place(
        job(generate_gpus=0.25, generate_cpus=2, generate_tasks=8, train_cpus=6),
        cpus=32,
        gpus=2,
        can_grow=False,
        stage="generate",
    )
    assert (placed.generate_gpus, placed.generate_cpus, placed.generate_tasks, placed.train_cpus) == (0.25, 2, 8, 6)
    auto, _ = place(job(generate_gpus=0.25), cpus=32, gpus=2, can_grow=False, stage="generate")
    assert auto.generate_tasks == 8  # 4 tasks a GPU


def test_use_gpu_false_keeps_a_gpu_cluster_on_cpu():
    placed, _ = place(job(use_gpu=False), cpus=8, gpus=4, can_grow=True, stage="train")
    assert not placed.gpu and placed.train_gpus == 0 and placed.generate_device == "cpu"


def test_gpus_asked_of_an_embedded_ray_without_them_is_one_line():
    with pytest.raises(SynthError, match=r"^resources.use_gpu: true, but the cluster has no GPUs \(an embedded"):
        place(job(use_gpu=True), cpus=2, gpus=0, can_grow=False, stage="train")


def test_a_cluster_that_can_grow_waits_with_a_warning():
    placed, warnings = place(job(use_gpu=True), cpus=2, gpus=0, can_grow=True, stage="generate")
    assert placed.gpu and placed.generate_device == "cuda"
    assert warnings == ["resources.use_gpu: true, but the cluster has no GPUs; waiting for the cluster to add nodes"]


def test_generation_gpus_on_a_cpu_job_is_refused():
    with pytest.raises(
        SynthError,
        match=r"resources.generate_gpus: 1 per task, but the job runs on CPU \(the "
        r"cluster has no GPUs\)",
    ):
        place(job(generate_gpus=1), cpus=2, gpus=0, can_grow=True, stage="generate")


def test_more_training_cpus_than_the_cluster_names_the_field():
    with pytest.raises(SynthError, match=r"^train.num_workers: 4 training workers x 1 CPU, but the cluster has 2 CPUs"):
        place(job(workers=4), cpus=2, gpus=0, can_grow=False, stage="train")
    with pytest.raises(SynthError, match=r"^resources.train_cpus: 2 training workers x 3 CPUs, but the cluster"):
        place(job(workers=2, train_cpus=3), cpus=2, gpus=0, can_grow=False, stage="train")
    place(job(workers=4), cpus=2, gpus=0, can_grow=False, stage="generate")  # generation does not train


def test_generation_cpus_beyond_the_cluster():
    with pytest.raises(SynthError, match=r"^resources.generate_cpus: 4 per task, but the cluster has 2 CPUs"):
        place(job(generate_cpus=4), cpus=2, gpus=0, can_grow=False, stage="generate")


def test_fp16_needs_a_gpu_to_train():
    with pytest.raises(SynthError, match=r"^train.mixed_precision: fp16 needs a GPU"):
        place(job(mixed_precision="fp16"), cpus=2, gpus=0, can_grow=True, stage="train")
    placed, _ = place(job(mixed_precision="fp16"), cpus=2, gpus=1, can_grow=False, stage="train")
    assert placed.gpu
