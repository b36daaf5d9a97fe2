"""The job spec: pydantic models of one job, and the only YAML reader.

A job is validated once, at the edge (``load_job``); below it everything takes
typed objects. Every model forbids unknown fields so a typo fails at load time
with a message naming the field.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from synth.errors import SynthError

DataSource = Literal["digits", "mnist_subset", "fashion_mnist", "folder"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Section):
    """Where the real images come from, and the resolution the job works at."""

    source: DataSource = "mnist_subset"
    path: str | None = Field(
        None, description="folder: image folder, one sub-folder per class; fashion_mnist: folder of its IDX .gz files"
    )
    resolution: int = Field(28, ge=8, le=512)
    channels: Literal[1, 3] = 1
    limit: int | None = Field(None, ge=1, description="use only the first N images (after a seeded shuffle)")

    @model_validator(mode="after")
    def _folder_needs_path(self) -> "DataSpec":
        if self.source == "folder" and not self.path:
            raise ValueError("data.path is required when data.source is 'folder'")
        return self


class ModelSpec(_Section):
    """Which generative model, and its size."""

    name: str = "dcgan_cond"
    latent_dim: int = Field(64, ge=1)
    width: int = Field(64, ge=8, description="channel width of the first conv layers")


class TrainSpec(_Section):
    """The training loop: steps, batch, optimiser, workers, checkpoints."""

    steps: int = Field(3000, ge=1)
    batch_size: int = Field(64, ge=1, description="global batch: split across workers")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (processes, one per GPU on a GPU cluster)")
    use_gpu: bool | None = Field(None, description="null: use GPUs when the cluster has them")
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    beta1: float = Field(0.0, ge=0, lt=1)
    beta2: float = Field(0.9, ge=0, lt=1)
    ema_decay: float = Field(0.999, ge=0, lt=1)
    ema_start: int = Field(500, ge=0, description="step at which the EMA starts averaging")
    checkpoint_every: int = Field(500, ge=1)
    log_every: int = Field(50, ge=1)


class GenerateSpec(_Section):
    """How many images to make and how they are cut into shards."""

    count: int = Field(10_000, ge=1)
    shard_size: int = Field(1_000, ge=1)
    batch_size: int = Field(250, ge=1)
    num_workers: int = Field(2, ge=1, description="shard tasks running at once")
    format: Literal["png"] = "png"


class EvaluateSpec(_Section):
    """Which figures the report holds, on how many samples."""

    num_samples: int = Field(1_000, ge=2, description="generated and real images each, for every figure")
    inception: bool = Field(True, description="standard InceptionV3 FID (slow on CPU: ~10 images/s)")
    classifier_epochs: int = Field(8, ge=1)
    grid_per_class: int = Field(10, ge=1, le=32)


class OutputSpec(_Section):
    """How outputs are named."""

    name: str = Field("synth", pattern=r"^[A-Za-z0-9_-]+$")


class Job(_Section):
    """One job: what to learn from, what to train, what to make, how to judge."""

    seed: int = Field(0, ge=0)
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    generate: GenerateSpec = GenerateSpec()
    evaluate: EvaluateSpec = EvaluateSpec()
    output: OutputSpec = OutputSpec()

    def identity(self) -> str:
        """Digest of what defines this job's outputs as *the same job*.

        Data, model, seed and output name. Changing steps, counts, workers
        or metrics settings continues the same job; changing these does not.
        """
        core = {
            "seed": self.seed,
            "data": self.data.model_dump(),
            "model": self.model.model_dump(),
            "output": self.output.model_dump(),
        }
        return digest(core)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def digest(obj: Any) -> str:
    """Short stable hex digest of a JSON-able object."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``section.field=value`` into a key path and a YAML-typed value."""
    if "=" not in text:
        raise SynthError(f"--set {text!r}: expected section.field=value")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise SynthError(f"--set {text!r}: empty field name")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``section.field=value`` set."""
    merged = json.loads(json.dumps(raw))
    for text in overrides:
        path, value = parse_override(text)
        node = merged
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SynthError(f"--set {text!r}: {part} is not a section")
            node = child
        node[path[-1]] = value
    return merged


def format_validation_error(source: str, err: ValidationError) -> str:
    """One line naming each bad field: ``job.yaml: train.stepz: unknown field``."""
    parts = []
    for item in err.errors():
        loc = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            msg = "unknown field"
        else:
            msg = item["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return f"{source}: " + "; ".join(parts)


def load_job(path: str | Path, overrides: list[str] | None = None) -> Job:
    """Read, merge overrides into, and validate a job spec.

    Raises SynthError (one line) for a missing file, bad YAML or a bad field.
    """
    path = Path(path)
    if not path.is_file():
        raise SynthError(f"{path}: job file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise SynthError(f"{path}: invalid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise SynthError(f"{path}: a job must be a mapping of sections, got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides or [])
    return job_from_dict(raw, source=str(path))


def job_from_dict(raw: dict[str, Any], source: str = "job") -> Job:
    """Validate a plain dict as a Job, with the one-line error of load_job."""
    try:
        job = Job.model_validate(raw)
    except ValidationError as err:
        raise SynthError(format_validation_error(source, err)) from None
    from synth.models import check_model_name

    check_model_name(job.model.name, source)
    return job
