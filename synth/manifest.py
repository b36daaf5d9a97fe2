"""The dataset's index files, and checking a dataset against them.

Next to ``shards/`` a finished generation holds:
- ``manifest.parquet``: one row per sample (key, shard, index, source, copy, class, seed), one
  row group per shard, in shard order;
- ``shardindex.json``: the wids shard index (url, nsamples, filesize, md5sum per shard);
- ``_info.json``: timm's WebDataset info (per-split file names and shard lengths).
They are built by streaming the shards' manifest parts, one at a time, so
memory does not grow with the number of samples.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from synth.errors import SynthError
from synth.layout import INFO_FILE, MANIFEST_FILE, WIDS_INDEX, part_rel, shard_rel
from synth.parts import read_part_meta
from synth.shards import IMAGE_EXTS, read_shard
from synth.storage import Store

if TYPE_CHECKING:
    from synth.generate.plan import Plan


def write_manifest(store: Store, plan: Plan, class_names: list[str], name: str = "synth") -> dict:
    """Concatenate the shards' parts in shard order into the manifest, and write the indexes.

    Checks that every shard has its part and that the total is exactly
    ``plan.count``. Returns a small summary (samples, shards, bytes).
    """
    shardlist = []
    rows = total_bytes = 0
    schema = None
    meta = {"class_names": json.dumps(list(class_names)), "num_classes": str(len(class_names))}
    with store.atomic(MANIFEST_FILE) as fh:
        writer = None
        try:
            for shard in plan.shards():
                part_meta = read_part_meta(store, shard.name)
                if part_meta is None:
                    raise SynthError(f"{shard.name}: shard has no manifest part; rerun 'synth generate' to finish it")
                with store.open(part_rel(shard.name)) as part:
                    table = pq.read_table(part).replace_schema_metadata(None)
                if table.num_rows != shard.size:
                    raise SynthError(f"{shard.name}: manifest part has {table.num_rows} rows, the plan {shard.size}")
                if writer is None:
                    schema = table.schema.with_metadata(meta)
                    writer = pq.ParquetWriter(fh, schema)
                writer.write_table(table.cast(schema))
                rows += table.num_rows
                total_bytes += int(part_meta["tar_bytes"])
                shardlist.append(
                    {
                        "url": shard_rel(shard.name),
                        "nsamples": table.num_rows,
                        "filesize": int(part_meta["tar_bytes"]),
                        "md5sum": part_meta["md5"],
                    }
                )
        finally:
            if writer is not None:
                writer.close()
    if rows != plan.count:
        raise SynthError(f"{MANIFEST_FILE}: {rows} rows for {plan.count} planned samples")
    wids = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": name, "shardlist": shardlist}
    store.write_bytes(WIDS_INDEX, (json.dumps(wids, indent=1) + "\n").encode())
    info = {
        "name": name,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "splits": {
            "train": {
                "name": "train",
                "num_samples": rows,
                "filenames": [s["url"] for s in shardlist],
                "shard_lengths": [s["nsamples"] for s in shardlist],
            }
        },
    }
    store.write_bytes(INFO_FILE, (json.dumps(info, indent=1) + "\n").encode())
    return {"samples": rows, "shards": len(shardlist), "bytes": total_bytes}


def read_manifest(store: Store) -> pa.Table:
    if not store.exists(MANIFEST_FILE):
        raise SynthError(f"{store.where(MANIFEST_FILE)}: no manifest; run 'synth generate' for this dataset first")
    with store.open(MANIFEST_FILE) as fh:
        return pq.read_table(fh)


def read_info(store: Store) -> dict:
    """The dataset's ``_info.json`` (written with the manifest)."""
    if not store.exists(INFO_FILE):
        raise SynthError(f"{store.where()}: no {INFO_FILE}; is this a synth dataset whose generation finished?")
    try:
        return json.loads(store.read_bytes(INFO_FILE))
    except json.JSONDecodeError:
        raise SynthError(f"{store.where(INFO_FILE)}: not valid JSON") from None


def read_shard_index(store: Store) -> dict:
    """The dataset's wids ``shardindex.json`` (written with the manifest)."""
    if not store.exists(WIDS_INDEX):
        raise SynthError(f"{store.where()}: no {WIDS_INDEX}; is this a synth dataset whose generation finished?")
    try:
        return json.loads(store.read_bytes(WIDS_INDEX))
    except json.JSONDecodeError as exc:
        raise SynthError(f"{store.where(WIDS_INDEX)}: not valid JSON ({exc})") from None


@dataclass
class ShardCheck:
    name: str
    samples: int
    problems: list[str]


def verify(store: Store, on_shard=None) -> list[ShardCheck]:
    """Check every shard against the manifest and the shard index.

    Per shard: the file exists, its size and md5 match the index, it is a
    readable tar whose samples are exactly the manifest's keys in order, every
    sample has its class, metadata and image, every image decodes, and every
    class is in range and agrees with the manifest. Shards on disk that the
    index does not list are reported too.
    """
    index = read_shard_index(store)
    manifest_file = pq.ParquetFile(store.open(MANIFEST_FILE)) if store.exists(MANIFEST_FILE) else None
    if manifest_file is None:
        raise SynthError(f"{store.where(MANIFEST_FILE)}: missing")
    meta = manifest_file.schema_arrow.metadata or {}
    num_classes = int(meta.get(b"num_classes", b"0")) or None  # None: unlabelled (an unconditional model's)
    expected = _manifest_by_shard(manifest_file)
    checks = []
    listed = set()
    for entry in index["shardlist"]:
        rel = entry["url"]
        name = rel.rsplit("/", 1)[-1]
        listed.add(name)
        keys, classes = expected.get(name, ([], []))
        problems = _check_shard(store, rel, entry, keys, classes, num_classes)
        checks.append(ShardCheck(name, len(keys), problems))
        if on_shard is not None:
            on_shard(checks[-1])
    unknown = sorted(set(expected) - listed)
    for name in unknown:
        checks.append(ShardCheck(name, len(expected[name][0]), [f"in {MANIFEST_FILE} but not in {WIDS_INDEX}"]))
    on_disk = {n for n in store.listdir("shards") if n.endswith(".tar") and not n.startswith(".")}
    for name in sorted(on_disk - listed):
        checks.append(ShardCheck(name, 0, [f"not listed in {WIDS_INDEX} (left over from another plan?)"]))
    return checks


def _manifest_by_shard(manifest_file: pq.ParquetFile) -> dict[str, tuple[list[str], list[int]]]:
    out: dict[str, tuple[list[str], list[int]]] = {}
    for batch in manifest_file.iter_batches(columns=["key", "shard", "class"], batch_size=65536):
        for key, shard, cls in zip(*(batch.column(c).to_pylist() for c in ("key", "shard", "class"))):
            keys, classes = out.setdefault(shard, ([], []))
            keys.append(key)
            classes.append(cls)
    return out


def _check_shard(store: Store, rel: str, entry: dict, keys: list[str], classes: list[int], num_classes) -> list[str]:
    size = store.size(rel)
    if size is None:
        return ["missing"]
    problems = []
    if size != entry["filesize"]:
        problems.append(f"size {size} bytes, the index says {entry['filesize']} (truncated or replaced?)")
    if entry["nsamples"] != len(keys):
        problems.append(f"index lists {entry['nsamples']} samples, the manifest {len(keys)}")
    from synth.shards import md5_file

    md5 = md5_file(store.open(rel))
    if md5 != entry["md5sum"]:
        problems.append(f"md5 {md5}, the index says {entry['md5sum']}")
    seen = []
    try:
        with store.open(rel) as fh:
            for j, (key, fields) in enumerate(read_shard(fh)):
                seen.append(key)
                problem = _check_sample(key, fields, classes[j] if j < len(classes) else None, num_classes)
                if problem:
                    problems.append(problem)
    except Exception as exc:  # noqa: BLE001 -- a damaged tar raises many kinds of errors: each is this shard's problem
        problems.append(f"unreadable tar after {len(seen)} samples ({type(exc).__name__}: {exc})")
        return problems
    if seen != keys:
        missing = len(set(keys) - set(seen))
        extra = len(set(seen) - set(keys))
        problems.append(
            f"samples differ from the manifest ({len(seen)} in tar, {len(keys)} in manifest, "
            f"{missing} missing, {extra} unexpected, or out of order)"
        )
    return problems[:20]


def _check_sample(key: str, fields: dict[str, bytes], expected_class, num_classes) -> str | None:
    """``num_classes`` None: an unlabelled dataset, whose samples must have no class."""
    images = [ext for ext in IMAGE_EXTS if ext in fields]
    if not images:
        return f"sample {key}: missing image"
    label = None
    if num_classes is None:
        if "cls" in fields:
            return f"sample {key}: has a .cls but the dataset is unlabelled"
    elif "cls" not in fields:
        return f"sample {key}: missing cls"
    else:
        try:
            label = int(fields["cls"])
        except ValueError:
            return f"sample {key}: class {fields['cls'][:20]!r} is not an integer"
        if not 0 <= label < num_classes:
            return f"sample {key}: class {label} out of range 0-{num_classes - 1}"
        if expected_class is not None and label != expected_class:
            return f"sample {key}: class {label}, the manifest says {expected_class}"
    try:
        with Image.open(io.BytesIO(fields[images[0]])) as img:
            img.load()
            np.asarray(img)
    except Exception as exc:  # noqa: BLE001 -- PIL raises several types for broken images
        return f"sample {key}: image does not decode ({type(exc).__name__})"
    if "json" in fields:
        try:
            if json.loads(fields["json"]).get("class") != label:
                return f"sample {key}: .json class differs from .cls"
        except json.JSONDecodeError:
            return f"sample {key}: .json is not valid JSON"
    return None
