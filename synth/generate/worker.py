"""The shard worker: sample -> resize -> augment -> encode -> write one shard and its manifest part.

``write_one_shard`` is a plain, picklable function of plain data: Ray maps it
over shards (engine.py), tests call it directly. It streams: the generator
makes one batch of source images at a time, and their samples go straight
into the tar, so a worker's memory does not depend on the shard size or the
count. A shard counts as done only when its tar and its manifest part both
exist and agree; the part is written after the tar is in place, so a worker
killed at any point leaves the shard either done or absent (plus, at worst,
a hidden temporary file that the next attempt removes).
"""

from __future__ import annotations

import io
import json
import platform
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from synth.augment import AugmentSpec, augment, sample_rng
from synth.errors import SynthError
from synth.generate.filter import FilterLog, Picks, filtered_batches, judge_probs, load_judge
from synth.generate.plan import Plan, ShardTask, sample_key
from synth.layout import PARTS_DIR, SHARDS_DIR, features_rel, filter_rel, part_rel, shard_rel
from synth.metrics.features import FeatureTarget, shard_features
from synth.models.common import to_uint8
from synth.models.family import Family, SampleRequest, Sampling, per_sample
from synth.parts import read_part_meta
from synth.shards import write_shard
from synth.storage import Store

FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


@dataclass(frozen=True)
class GeneratorRef:
    """A trained generator as plain data: its config and safetensors bytes digest."""

    model_name: str
    model_config: dict
    digest: str

    @property
    def family(self) -> Family:
        """The family that builds and samples this generator."""
        from synth.models import family_for

        return family_for(self.model_config.get("name", self.model_name))


@dataclass(frozen=True)
class Encoding:
    """How a sample's image is stored: format and its settings, and the output size."""

    format: str = "png"
    png_compression: int = 6
    quality: int = 95
    lossless: bool = False
    resolution: int | None = None
    resize_filter: str = "bicubic"

    @property
    def ext(self) -> str:
        return self.format

    def resize(self, image: np.ndarray) -> np.ndarray:
        """uint8 H x W x C at the model's size -> at ``resolution`` (PIL, ``resize_filter``)."""
        if self.resolution is None or image.shape[0] == self.resolution == image.shape[1]:
            return image
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        pil = pil.resize((self.resolution, self.resolution), FILTERS[self.resize_filter])
        out = np.asarray(pil)
        return out[..., None] if out.ndim == 2 else out

    def encode(self, image: np.ndarray) -> bytes:
        """uint8 H x W x C (C = 1 or 3) -> file bytes. Same pixels, same bytes (no timestamps)."""
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        buf = io.BytesIO()
        if self.format == "png":
            pil.save(buf, format="PNG", compress_level=self.png_compression)
        elif self.format == "jpg":
            pil.save(buf, format="JPEG", quality=self.quality)
        elif self.format == "webp":
            pil.save(buf, format="WEBP", quality=self.quality, lossless=self.lossless, method=4)
        else:
            raise ValueError(f"unknown image format {self.format!r}")
        return buf.getvalue()


@dataclass(frozen=True)
class ShardWork:
    """Everything one shard task needs, besides the generator weights."""

    store: Store
    plan: Plan
    shard: ShardTask
    batch_size: int
    plan_digest: str
    generator: GeneratorRef
    class_names: tuple[str, ...]
    encoding: Encoding = Encoding()
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    prefetch: int = 0
    sampling: Sampling = Sampling()
    features: FeatureTarget | None = None  # Inception features of the shard's first samples, for evaluation
    device: str = "cpu"  # where the generator runs: cpu, or cuda in a task Ray gave a GPU
    compile: bool = False  # generate.compile: torch.compile the sampling net
    filter: Any = None  # generate.filter (a spec.FilterSpec): the classifier comes as write_one_shard's ``judge``

    @property
    def labelled(self) -> bool:
        """False for an unconditional model's samples: no .cls, no class in .json, a null class in the manifest."""
        return bool(self.class_names)


@dataclass(frozen=True)
class ShardResult:
    index: int
    name: str
    num_samples: int
    num_bytes: int
    md5: str
    seconds: float
    skipped: bool = False
    peak_rss_mb: float = 0.0
    features: int = 0  # samples whose Inception features were computed for the report


@dataclass(frozen=True)
class LoadedModel:
    """A trained model's exported net, ready to sample, and the family that knows how to sample it."""

    family: Family
    net: torch.nn.Module


_GENERATORS: dict[str, LoadedModel] = {}


def load_generator(ref: GeneratorRef, weights: bytes, device: str = "cpu", compile: bool = False) -> LoadedModel:
    """Build the sampling net once per process (cached by digest, device and ``compile``), on ``device``;
    ``compile``: wrapped in torch.compile (generate.compile), which compiles at the first forward."""
    if compile:
        _check_compiler(device)
    key = f"{ref.digest}@{device}{'+compiled' if compile else ''}"
    cached = _GENERATORS.get(key)
    if cached is not None:
        return cached
    from safetensors.torch import load as load_safetensors

    family = ref.family
    net = family.build_export(ref.model_config)
    net.load_state_dict(load_safetensors(weights))
    if device != "cpu":  # the same bytes when Ray retries a shard on another GPU of the same kind
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    # channels-last: oneDNN's and cuDNN's preferred conv layout. Sampling on CPU here, 64 rows a forward
    # (bench/sampling.py): DCGAN 1.34x at 64x64, the VAE decoder 1.03-1.25x, the diffusion U-Net 1.50x
    net.eval().requires_grad_(False).to(device, memory_format=torch.channels_last)
    if compile:
        # Every forward has FORWARD_ROWS rows, so one static-shape compilation serves the whole process.
        net = torch.compile(net, dynamic=False)
    _GENERATORS.clear()
    _GENERATORS[key] = LoadedModel(family, net)
    return _GENERATORS[key]


def _check_compiler(device: str) -> None:
    """torch.compile builds C++ kernels on CPU and Triton ones on GPU: one clear line where this node
    cannot build them."""
    if device != "cpu":
        try:
            from torch.utils._triton import has_triton
        except ImportError:  # another torch: its first compiled forward says what is missing
            return
        if not has_triton():
            raise SynthError(
                f"generate.compile: node {platform.node()} has no Triton for torch.compile on "
                f"{device}; install triton, or set generate.compile: false"
            )
        return
    try:
        from torch._inductor import config
        from torch._inductor.cpp_builder import get_cpp_compiler
        from torch._inductor.exc import InvalidCxxCompiler
    except ImportError:  # another torch: its first compiled forward says what is missing
        return
    try:
        get_cpp_compiler()
    except InvalidCxxCompiler:
        tried = ", ".join(c for c in config.cpp.cxx if c)  # g++, or the CXX environment variable
        raise SynthError(
            f"generate.compile: node {platform.node()} has no C++ compiler for torch.compile (tried "
            f"{tried}); install one or point CXX at one, or set generate.compile: false"
        ) from None


def sample_images(
    G: LoadedModel,
    seeds: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    sampling: Any = Sampling(),
    inputs: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 NHWC images, one per (seed, label[, input]); each depends on its own row only."""
    batches = list(iter_images(G, seeds, labels, batch_size, sampling, inputs))
    return np.concatenate(batches) if batches else np.empty((0,), np.uint8)


# Every forward pass of the generator has exactly this many rows (the last one padded). BLAS and
# conv kernels pick their code path by shape: a one-row forward differed from the same row in a
# batch of 250 in 5 of 500 images (one grey level) here. A fixed shape keeps image i a function of
# (seed, i) alone, whatever generate.batch_size, the shard layout or a shard's ragged tail.
# 32-500 rows sample at the same speed on CPU (bench, 2026-11-25).
FORWARD_ROWS = 64


def iter_images(
    G: LoadedModel,
    seeds: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    sampling: Any = Sampling(),
    inputs: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """The images of ``sample_images``, in batches of ``batch_size``.

    The generator runs on ``FORWARD_ROWS`` rows at a time whatever ``batch_size`` (only the last
    forward of the call is padded); ``batch_size`` sets how many images are handed on at once.
    ``inputs``: uint8 NCHW, one input image per row, for a family conditioned on an image.
    """
    request = SampleRequest(seeds, labels, sampling, inputs)
    pending: list[np.ndarray] = []
    held = 0
    for j in range(0, len(seeds), FORWARD_ROWS):
        pending.append(_forward_fixed(G, request.rows(j, j + FORWARD_ROWS)))
        held += len(pending[-1])
        last = j + FORWARD_ROWS >= len(seeds)
        while held >= batch_size or (last and held):
            images = np.concatenate(pending)
            yield images[:batch_size]
            pending = [images[batch_size:]]
            held = len(pending[0])


@torch.inference_mode()
def _forward_fixed(G: LoadedModel, request: SampleRequest) -> np.ndarray:
    """uint8 NHWC images of up to ``FORWARD_ROWS`` rows, from one forward of exactly ``FORWARD_ROWS`` rows
    (``SampleRequest.padded``: seed 0, class 0)."""
    n = len(request)
    padded = SampleRequest(
        np.ascontiguousarray(request.seeds, dtype=np.uint64),
        np.ascontiguousarray(request.labels, dtype=np.int64),
        request.sampling,
        None if request.inputs is None else np.ascontiguousarray(request.inputs),
        None if request.domains is None else np.ascontiguousarray(request.domains, dtype=np.int64),
    ).padded(FORWARD_ROWS)
    return to_uint8(G.family.sample(G.net, padded)[:n])


# One prefetch thread per process, reused by every shard: a new thread per shard would take a new
# malloc arena each time in a Ray worker (which runs dozens of threads), and the worker's memory
# then grew with the number of shards it had written (bench/generate_memory.py).
_PREFETCH_THREAD = None


def prefetch(batches: Iterator[np.ndarray], depth: int) -> Iterator[np.ndarray]:
    """Run ``batches`` in a background thread, up to ``depth`` batches ahead of the consumer.

    The generator's forward passes (torch releases the GIL) then overlap with
    encoding and writing in the caller's thread: on a machine with spare cores,
    and on a GPU once generation runs there (it runs on CPU for now).
    The order is unchanged, so are the bytes. An exception in the thread is
    raised in the caller; a consumer that stops early stops the producer.
    """
    import queue
    import threading

    global _PREFETCH_THREAD
    if _PREFETCH_THREAD is None:
        from concurrent.futures import ThreadPoolExecutor

        _PREFETCH_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-prefetch")
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(done)
        except BaseException as exc:  # noqa: BLE001 -- handed to the consumer, raised there
            put(exc)

    job = _PREFETCH_THREAD.submit(produce)
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        job.result()


def shard_is_done(work: ShardWork) -> bool:
    """True if the shard's tar and part exist and the part matches this plan and this tar's size."""
    meta = read_part_meta(work.store, work.shard.name)
    if meta is None or meta.get("plan_digest") != work.plan_digest:
        return False
    return work.store.size(shard_rel(work.shard.name)) == int(meta.get("tar_bytes", -1))


def remove_temporaries(store: Store, shard_name: str) -> None:
    """Delete what a killed attempt at this shard left behind (hidden temporary files)."""
    for folder, name in ((SHARDS_DIR, shard_name), (PARTS_DIR, shard_name.removesuffix(".tar") + ".parquet")):
        for path in store.fs.glob(store.path(f"{folder}/.{name}.tmp-*")):
            store.fs.rm(path)


def write_one_shard(
    work: ShardWork, weights: bytes, inception: bytes | None = None, judge: bytes | None = None
) -> ShardResult:
    """Generate, encode and write one shard, then its manifest part. Idempotent.

    ``inception``: the InceptionV3 weights, when the work asks for features (``work.features``);
    ``judge``: the classifier file of ``generate.filter`` (``work.filter``).
    """
    t0 = time.perf_counter()
    shard = work.shard
    if shard_is_done(work):
        meta = read_part_meta(work.store, shard.name)
        return ShardResult(
            shard.index, shard.name, shard.size, int(meta["tar_bytes"]), meta["md5"], 0.0, True, _peak_rss_mb()
        )
    remove_temporaries(work.store, shard.name)
    work.store.remove(features_rel(shard.name))  # an earlier plan's, or a killed attempt's
    work.store.remove(filter_rel(shard.name))
    G = load_generator(work.generator, weights, work.device, work.compile)
    samples = work.plan.samples(shard.start, shard.stop)
    log = FilterLog(len(work.class_names)) if work.filter is not None else None
    batches = source_images(work, G, samples, judge, log)
    if work.prefetch:
        batches = prefetch(batches, depth=work.prefetch)
    taken: list[tuple[int, np.ndarray]] = []
    stream = encoded_samples(work, batches, samples)
    if work.features is not None and work.features.take and inception is not None:
        stream = _tap(stream, work.features.take, taken, work.shard.name)
    try:
        written = write_shard(work.store, shard_rel(shard.name), stream)
    finally:
        batches.close()  # stops the sampler thread now, even if the error (and this frame) is kept alive
    if taken:  # before the part: a shard is done only with its features
        indices, images = zip(*taken)
        stored = shard_features(work.features, list(indices), list(images), inception, written.md5, work.device)
        work.store.write_bytes(features_rel(shard.name), stored)
    if log is not None:  # before the part, like the features
        work.store.write_bytes(filter_rel(shard.name), log.to_bytes())
    write_part(work, samples, written.num_bytes, written.md5, log.kept() if log is not None else None)
    return ShardResult(
        shard.index,
        shard.name,
        written.num_samples,
        written.num_bytes,
        written.md5,
        time.perf_counter() - t0,
        peak_rss_mb=_peak_rss_mb(),
        features=len(taken),
    )


def _tap(stream, take: int, taken: list, shard: str):
    """Pass ``stream`` on, keeping the first ``take`` samples' (index, image decoded from its bytes):
    the pixels evaluation will read back from the shard, lossy formats included."""
    from synth.shards import sample_image

    for key, fields in stream:
        if len(taken) < take:
            taken.append((int(key), sample_image(fields, f"{shard}: sample {key}")))
        yield key, fields


@dataclass(frozen=True)
class ShardInputs:
    """The inputs a shard's samples are made from: inputs [first, first + len) of the plan's InputSet."""

    first: int
    keys: list[str]
    classes: np.ndarray
    images: np.ndarray


_SHARD_INPUTS: dict[tuple, ShardInputs] = {}


def shard_inputs(plan: Plan, samples) -> ShardInputs:
    """Read the inputs of ``samples`` (a shard's), once per shard and process: only these inputs."""
    made_from = plan.input_of(samples.source)
    first, last = int(made_from.min()), int(made_from.max()) + 1
    key = (plan.inputs.identity, first, last)
    if key not in _SHARD_INPUTS:
        read = plan.inputs.read(first, last)
        _SHARD_INPUTS.clear()
        _SHARD_INPUTS[key] = ShardInputs(first, read.keys, read.classes, read.images)
    return _SHARD_INPUTS[key]


def source_images(
    work: ShardWork, G, samples=None, judge: bytes | None = None, log: FilterLog | None = None
) -> Iterator[tuple[np.ndarray, Picks | None]]:
    """The shard's source images (uint8 NHWC), one generator batch of ``work.batch_size`` at a time,
    each with what the filter kept (``Picks``; None without ``work.filter``).

    ``samples``: the shard's ``plan.samples``, if the caller has them (saves deriving the seeds again);
    ``judge``, ``log``: the filter's classifier file and the log of what it rejects (``work.filter``).
    """
    samples = samples if samples is not None else work.plan.samples(work.shard.start, work.shard.stop)
    first_of_source = np.flatnonzero(np.r_[True, np.diff(samples.source) != 0])
    seeds, labels = samples.seed[first_of_source], samples.label[first_of_source]
    if work.plan.inputs is not None:  # each source's input image, NCHW as the family takes it
        read = shard_inputs(work.plan, samples)
        inputs = read.images[work.plan.input_of(samples.source[first_of_source]) - read.first].transpose(0, 3, 1, 2)
        batches = iter_images(G, seeds, labels, work.batch_size, work.sampling, np.ascontiguousarray(inputs))
        return ((images, None) for images in batches)
    if work.filter is None:
        return ((images, None) for images in iter_images(G, seeds, labels, work.batch_size, work.sampling))
    if judge is None or log is None:
        raise ValueError("a filtered shard needs the filter's classifier and a FilterLog")
    model = _load_judge(judge, work.device)

    def draw(cand_seeds: np.ndarray, cand_labels: np.ndarray) -> np.ndarray:
        return sample_images(G, cand_seeds, cand_labels, len(cand_seeds), work.sampling)

    return filtered_batches(
        draw,
        lambda images: judge_probs(model, images, work.device),
        work.filter,
        work.plan.job_seed,
        samples.source[first_of_source],
        seeds,
        labels,
        work.batch_size,
        log,
        work.class_names,
        work.shard.name,
    )


_JUDGES: dict[str, torch.nn.Module] = {}


def _load_judge(data: bytes, device: str) -> torch.nn.Module:
    """The filter's classifier, loaded once per process (cached by the file's digest and the device)."""
    import hashlib

    key = f"{hashlib.sha256(data).hexdigest()}@{device}"
    if key not in _JUDGES:
        _JUDGES.clear()
        _JUDGES[key] = load_judge(data, device)[0]
    return _JUDGES[key]


def encoded_samples(
    work: ShardWork, batches: Iterator[tuple[np.ndarray, Picks | None]], samples
) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {cls, json, image})`` for each sample (no cls if unlabelled): resize, augment, encode.

    ``batches`` are the shard's source images in order, in batches of ``work.batch_size``, each with
    the filter's picks or None (``source_images``). Each source yields ``copies`` samples.
    """
    plan, enc, aug = work.plan, work.encoding, work.augment
    first_source = int(samples.source[0])
    base = {
        "model": work.generator.model_name,
        "model_digest": work.generator.digest,
        "job_seed": plan.job_seed,
        "format": enc.format,
    }
    sampling = work.generator.family.sampling_record(work.sampling)
    if sampling:
        base["sampling"] = sampling
    ranged = [name for name, value in sampling.items() if isinstance(value, tuple)]  # drawn per sample
    resolution = work.generator.model_config["resolution"]
    inputs = shard_inputs(plan, samples) if plan.inputs is not None else None
    j = 0  # position in samples
    for b, (images, picks) in enumerate(batches):
        for image_in_batch, image in enumerate(images):
            source = first_source + b * work.batch_size + image_in_batch
            image = enc.resize(image)
            while j < len(samples.index) and samples.source[j] == source:
                index, copy, label = int(samples.index[j]), int(samples.copy[j]), int(samples.label[j])
                meta = {
                    **base,
                    "key": sample_key(index),
                    "index": index,
                    "source": source,
                    "copy": copy,
                    "seed": int(samples.seed[j]),
                    "size": [int(image.shape[0]), int(image.shape[1])],
                }
                if work.labelled:
                    meta.update({"class": label, "class_name": work.class_names[label]})
                if inputs is not None:
                    at = int(work.plan.input_of(source)) - inputs.first
                    meta["input_key"], meta["input_class"] = inputs.keys[at], int(inputs.classes[at])
                if enc.resolution is not None:
                    meta["resize"] = {"from": int(resolution), "filter": enc.resize_filter}
                if picks is not None:
                    meta["filter"] = picks.record(image_in_batch)
                if ranged:  # the value this sample drew, from the seed its image came from
                    seed = np.asarray([picks.seed[image_in_batch] if picks is not None else samples.seed[j]])
                    meta["sampling"] = {
                        **sampling,
                        **{f"{name}_range": list(sampling[name]) for name in ranged},
                        **{name: float(per_sample(getattr(work.sampling, name), seed, name)[0]) for name in ranged},
                    }
                out = image
                if aug.enabled:
                    out, record = augment(aug.ops, image, sample_rng(int(samples.seed[j]), copy))
                    meta["augment"] = record
                fields = {"cls": str(label).encode()} if work.labelled else {}
                fields["json"] = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
                fields[enc.ext] = enc.encode(out)
                yield meta["key"], fields
                j += 1


def write_part(work: ShardWork, samples, tar_bytes: int, md5: str, picks: Picks | None = None) -> None:
    """The shard's manifest rows, as a small Parquet file (atomic). Its metadata marks the shard done.

    ``picks``: the filter's, one per source of the shard; they add the columns ``filter_score``,
    ``filter_drawn`` and ``filter_candidate`` (a job without a filter keeps the manifest it had).
    """
    n = len(samples.index)
    columns = {
        "key": pa.array([sample_key(int(i)) for i in samples.index], pa.string()),
        "shard": pa.array([work.shard.name] * n, pa.string()),
        "index": pa.array(samples.index, pa.int64()),
        "source": pa.array(samples.source, pa.int64()),
        "copy": pa.array(samples.copy, pa.int32()),
        "class": pa.array(samples.label, pa.int32()) if work.labelled else pa.nulls(n, pa.int32()),
        "seed": pa.array(samples.seed, pa.uint64()),
    }
    if work.plan.inputs is not None:  # what each sample was made from (a job without inputs keeps its manifest)
        inputs = shard_inputs(work.plan, samples)
        at = work.plan.input_of(samples.source) - inputs.first
        columns["input_key"] = pa.array([inputs.keys[k] for k in at], pa.string())
        columns["input_class"] = pa.array(inputs.classes[at], pa.int32())
    if picks is not None:
        at = samples.source - samples.source[0]  # each sample's source, within the shard
        columns.update(
            {
                "filter_score": pa.array(picks.score[at], pa.float32()),
                "filter_drawn": pa.array(picks.drawn[at], pa.int32()),
                "filter_candidate": pa.array(picks.candidate[at], pa.int32()),
            }
        )
    table = pa.table(columns).replace_schema_metadata(
        {"plan_digest": work.plan_digest, "tar_bytes": str(tar_bytes), "md5": md5}
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    work.store.write_bytes(part_rel(work.shard.name), buf.getvalue())


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
