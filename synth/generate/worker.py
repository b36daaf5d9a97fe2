"""The shard worker: sample -> encode -> write one shard and its manifest part.

``write_one_shard`` is a plain, picklable function of plain data: Ray maps it
over shards (engine.py), tests call it directly. A shard counts as done only
when both its tar and its manifest part exist; the part is written after the
tar is renamed into place, so a worker killed at any point leaves the shard
either done or absent.
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from synth.generate.plan import Plan, ShardTask, sample_key
from synth.models.common import latents_for_seeds, to_uint8
from synth.shards import write_shard

PARTS_DIR = ".synth/parts"


@dataclass(frozen=True)
class GeneratorRef:
    """A trained generator as plain data: its config and safetensors bytes digest."""

    model_name: str
    model_config: dict
    digest: str


@dataclass(frozen=True)
class ShardWork:
    """Everything one shard task needs, besides the generator weights."""

    out_dir: str
    plan: Plan
    shard: ShardTask
    batch_size: int
    plan_digest: str
    generator: GeneratorRef
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class ShardResult:
    index: int
    name: str
    num_samples: int
    num_bytes: int
    md5: str
    seconds: float
    skipped: bool = False


_GENERATORS: dict[str, torch.nn.Module] = {}


def load_generator(ref: GeneratorRef, weights: bytes) -> torch.nn.Module:
    """Build the generator once per process (cached by digest)."""
    cached = _GENERATORS.get(ref.digest)
    if cached is not None:
        return cached
    from safetensors.torch import load as load_safetensors

    from synth.models.gan import GanConfig, Generator

    cfg = ref.model_config
    G = Generator(GanConfig(cfg["resolution"], cfg["channels"], cfg["num_classes"], cfg["latent_dim"], cfg["width"]))
    G.load_state_dict(load_safetensors(weights))
    G.eval().requires_grad_(False)
    _GENERATORS.clear()
    _GENERATORS[ref.digest] = G
    return G


@torch.inference_mode()
def sample_images(G: torch.nn.Module, seeds: np.ndarray, labels: np.ndarray, batch_size: int) -> np.ndarray:
    """uint8 NHWC images, one per (seed, label); each depends on its own seed only."""
    latent_dim = G.cfg.latent_dim
    out = []
    for i in range(0, len(seeds), batch_size):
        z = latents_for_seeds(seeds[i : i + batch_size], latent_dim)
        y = torch.from_numpy(labels[i : i + batch_size])
        out.append(to_uint8(G(z, y)))
    return np.concatenate(out) if out else np.empty((0,), np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """uint8 HWC (C = 1 or 3) -> PNG bytes (zlib level 6, no timestamps: deterministic)."""
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def part_path(out_dir: str | Path, shard_name: str) -> Path:
    return Path(out_dir) / PARTS_DIR / (shard_name.removesuffix(".tar") + ".parquet")


def shard_is_done(work: ShardWork) -> bool:
    """True if the shard's tar and part exist and the part matches this plan."""
    part = part_path(work.out_dir, work.shard.name)
    tar = Path(work.out_dir) / "shards" / work.shard.name
    if not (part.is_file() and tar.is_file()):
        return False
    try:
        meta = pq.read_schema(part).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return False
    return (
        meta.get(b"plan_digest", b"").decode() == work.plan_digest
        and int(meta.get(b"tar_bytes", b"-1")) == tar.stat().st_size
    )


def write_one_shard(work: ShardWork, weights: bytes) -> ShardResult:
    """Generate, encode and write one shard, then its manifest part. Idempotent."""
    t0 = time.perf_counter()
    shard, plan = work.shard, work.plan
    if shard_is_done(work):
        meta = pq.read_schema(part_path(work.out_dir, shard.name)).metadata
        return ShardResult(shard.index, shard.name, shard.size, int(meta[b"tar_bytes"]), meta[b"md5"].decode(), 0.0, True)
    G = load_generator(work.generator, weights)
    seeds = plan.seeds(shard.start, shard.stop)
    labels = plan.labels(shard.start, shard.stop)
    images = sample_images(G, seeds, labels, work.batch_size)
    keys = [sample_key(i) for i in range(shard.start, shard.stop)]

    def samples():
        for j, key in enumerate(keys):
            meta = {
                "key": key,
                "index": shard.start + j,
                "seed": int(seeds[j]),
                "class": int(labels[j]),
                "class_name": work.class_names[labels[j]],
                "model": work.generator.model_name,
                "model_digest": work.generator.digest,
                "job_seed": plan.job_seed,
            }
            yield key, {
                "cls": str(int(labels[j])).encode(),
                "json": json.dumps(meta, sort_keys=True, separators=(",", ":")).encode(),
                "png": encode_png(images[j]),
            }

    written = write_shard(Path(work.out_dir) / "shards" / shard.name, samples())
    write_part(work, keys, seeds, labels, written.num_bytes, written.md5)
    return ShardResult(shard.index, shard.name, written.num_samples, written.num_bytes, written.md5,
                       time.perf_counter() - t0)  # fmt: skip


def write_part(work: ShardWork, keys: list[str], seeds: np.ndarray, labels: np.ndarray, tar_bytes: int, md5: str):
    """The shard's manifest rows, as a small Parquet file (atomic)."""
    table = pa.table(
        {
            "key": pa.array(keys, pa.string()),
            "shard": pa.array([work.shard.name] * len(keys), pa.string()),
            "index": pa.array(np.arange(work.shard.start, work.shard.stop), pa.int64()),
            "class": pa.array(labels, pa.int32()),
            "seed": pa.array(seeds, pa.uint64()),
        }
    ).replace_schema_metadata(
        {"plan_digest": work.plan_digest, "tar_bytes": str(tar_bytes), "md5": md5}
    )
    path = part_path(work.out_dir, work.shard.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
