"""Where the work runs: the job's ``resources`` section set against what the cluster has.

Plain arithmetic, tested without Ray: engine.py asks Ray for the cluster's CPUs and GPUs and
hands them here. An embedded Ray cannot grow, so asking it for more than it has is an error
(one line naming the field) rather than a job that waits forever; a cluster may grow (an
autoscaler adds nodes), so there it is a warning and Ray waits.
"""

from __future__ import annotations

from dataclasses import dataclass

from synth.errors import SynthError
from synth.spec import Job


@dataclass(frozen=True)
class Placement:
    """What each training worker and generation task asks Ray for."""

    gpu: bool
    train_cpus: int
    train_gpus: float
    generate_tasks: int
    generate_cpus: int
    generate_gpus: float

    @property
    def generate_device(self) -> str:
        return "cuda" if self.generate_gpus > 0 else "cpu"


def _num(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


def _count(n: float, what: str) -> str:
    return f"{_num(n)} {what}" if n == 1 else f"{_num(n)} {what}s"


def check_precision(mixed_precision: str, gpu: bool) -> None:
    """fp16 needs a GPU (on CPU Accelerate would train in fp32 and say nothing)."""
    if mixed_precision == "fp16" and not gpu:
        raise SynthError("train.mixed_precision: fp16 needs a GPU and this job trains on CPU; use bf16 or no")


def place(
    job: Job, cpus: int, gpus: float, can_grow: bool, stage: str, node_cpus: int | None = None
) -> tuple[Placement, list[str]]:
    """The placement of ``job`` on a Ray with ``cpus`` CPUs and ``gpus`` GPUs, and warning lines.

    ``can_grow``: the cluster may gain nodes (anything but an embedded Ray); ``stage``: train or
    generate, whose requests are checked; ``node_cpus``: the CPUs of its largest node (a worker
    cannot span nodes), default ``cpus``. Raises SynthError when the job cannot run there.
    """
    res, workers = job.resources, job.train.num_workers
    node_cpus = node_cpus or cpus
    gpu = res.use_gpu if isinstance(res.use_gpu, bool) else gpus > 0
    problems: list[str] = []  # what this cluster cannot give now
    if gpu and gpus == 0:
        problems.append("resources.use_gpu: true, but the cluster has no GPUs")
    if not gpu and res.generate_gpus:
        why = "resources.use_gpu is false" if res.use_gpu is False else "the cluster has no GPUs"
        raise SynthError(
            f"resources.generate_gpus: {_num(res.generate_gpus)} per task, but the job runs on CPU ({why})"
        )
    if stage == "train":
        check_precision(job.train.mixed_precision, gpu)
    generate_gpus = (1.0 if res.generate_gpus is None else res.generate_gpus) if gpu else 0.0
    if res.generate_tasks:
        tasks = res.generate_tasks
    elif gpu:
        tasks = max(1, int(gpus // generate_gpus))
    else:
        tasks = max(1, cpus // res.generate_cpus)
    p = Placement(
        gpu=gpu,
        train_cpus=res.train_cpus or (1 if gpu else max(1, min(cpus // workers, node_cpus))),
        train_gpus=res.train_gpus if gpu else 0.0,
        generate_tasks=tasks,
        generate_cpus=res.generate_cpus,
        generate_gpus=generate_gpus,
    )
    if stage == "train" and workers * p.train_cpus > cpus:
        field = "resources.train_cpus" if res.train_cpus else "train.num_workers"
        problems.append(
            f"{field}: {_count(workers, 'training worker')} x {_count(p.train_cpus, 'CPU')}, "
            f"but the cluster has {_count(cpus, 'CPU')}"
        )
    elif stage == "train" and p.train_cpus > node_cpus:
        problems.append(
            f"resources.train_cpus: {p.train_cpus} per worker, but the largest node has {_count(node_cpus, 'CPU')}"
        )
    if stage == "train" and gpu and gpus and workers * p.train_gpus > gpus:
        field = "train.num_workers" if p.train_gpus == 1 else "resources.train_gpus"
        problems.append(
            f"{field}: {_count(workers, 'training worker')} x {_count(p.train_gpus, 'GPU')}, "
            f"but the cluster has {_count(gpus, 'GPU')}"
        )
    if stage == "generate" and p.generate_cpus > node_cpus:
        problems.append(
            f"resources.generate_cpus: {p.generate_cpus} per task, but the "
            f"{'largest node' if node_cpus < cpus else 'cluster'} has {_count(node_cpus, 'CPU')}"
        )
    if problems and not can_grow:
        raise SynthError(f"{problems[0]} (an embedded Ray cannot add nodes)")
    return p, [f"{line}; waiting for the cluster to add nodes" for line in problems]
