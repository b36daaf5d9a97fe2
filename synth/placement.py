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
    train_workers: int
    train_cpus: int
    train_gpus: float
    generate_tasks: int
    generate_cpus: int
    generate_gpus: float

    @property
    def generate_device(self) -> str:
        return "cuda" if self.generate_gpus > 0 else "cpu"


def _plural(n: float, what: str) -> str:
    n = int(n) if float(n).is_integer() else n
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def place(job: Job, cpus: int, gpus: float, can_grow: bool, stage: str) -> tuple[Placement, list[str]]:
    """The placement of ``job`` on a Ray with ``cpus`` CPUs and ``gpus`` GPUs, and warning lines.

    ``can_grow``: the cluster may gain nodes (anything but an embedded Ray); ``stage``: train or
    generate, whose requests are checked. Raises SynthError when the job cannot run there.
    """
    res, workers = job.resources, job.train.num_workers
    gpu = res.use_gpu if isinstance(res.use_gpu, bool) else gpus > 0
    problems: list[str] = []  # what this cluster cannot give now
    if gpu and gpus == 0:
        problems.append("resources.use_gpu: true, but the cluster has no GPUs")
    if not gpu and res.generate_gpus:
        why = "resources.use_gpu is false" if res.use_gpu is False else "the cluster has no GPUs"
        raise SynthError(f"resources.generate_gpus: {res.generate_gpus} per task, but the job runs on CPU ({why})")
    if stage == "train" and not gpu and job.train.mixed_precision == "fp16":
        raise SynthError("train.mixed_precision: fp16 needs a GPU and this job trains on CPU; use bf16 or no")
    placement = Placement(
        gpu=gpu,
        train_workers=workers,
        train_cpus=res.train_cpus or (1 if gpu else max(1, cpus // workers)),
        train_gpus=res.train_gpus if gpu else 0,
        generate_tasks=res.generate_tasks,
        generate_cpus=res.generate_cpus,
        generate_gpus=(1.0 if res.generate_gpus is None else res.generate_gpus) if gpu else 0,
    )
    p = placement
    if stage == "train" and workers * p.train_cpus > cpus:
        field = "resources.train_cpus" if res.train_cpus else "train.num_workers"
        problems.append(f"{field}: {_plural(workers, 'training worker')} x {_plural(p.train_cpus, 'CPU')}, "
                        f"but the cluster has {_plural(cpus, 'CPU')}")  # fmt: skip
    if stage == "train" and gpu and gpus and workers * p.train_gpus > gpus:
        problems.append(f"resources.train_gpus: {_plural(workers, 'training worker')} x {_plural(p.train_gpus, 'GPU')}, "
                        f"but the cluster has {_plural(gpus, 'GPU')}")  # fmt: skip
    if stage == "generate" and p.generate_cpus > cpus:
        problems.append(f"resources.generate_cpus: {p.generate_cpus} per task, but the cluster has {_plural(cpus, 'CPU')}")
    if stage == "generate" and gpu and gpus and p.generate_gpus > gpus:
        problems.append(f"resources.generate_gpus: {p.generate_gpus} per task, but the cluster has "
                        f"{_plural(gpus, 'GPU')}")  # fmt: skip
    if problems and not can_grow:
        raise SynthError(f"{problems[0]} (an embedded Ray cannot add nodes)")
    return placement, [f"{line}; waiting for the cluster to add nodes" for line in problems]
