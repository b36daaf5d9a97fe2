"""The Parquet manifest: one row per sample, gathered from the per-shard parts."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from synth.errors import SynthError
from synth.generate.plan import Plan
from synth.generate.worker import part_path

MANIFEST_FILE = "manifest.parquet"


def write_manifest(out_dir: str | Path, plan: Plan) -> Path:
    """Concatenate the shards' parts in shard order into ``manifest.parquet``.

    Checks that every shard has its part and the total is exactly plan.count.
    """
    out_dir = Path(out_dir)
    tables = []
    for shard in plan.shards():
        part = part_path(out_dir, shard.name)
        if not part.is_file():
            raise SynthError(f"{shard.name}: shard has no manifest part; rerun 'synth generate' to finish it")
        tables.append(pq.read_table(part).replace_schema_metadata(None))
    table = pa.concat_tables(tables) if tables else pa.table({})
    if table.num_rows != plan.count:
        raise SynthError(f"{MANIFEST_FILE}: {table.num_rows} rows for {plan.count} planned samples")
    path = out_dir / MANIFEST_FILE
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def read_manifest(out_dir: str | Path) -> pa.Table:
    path = Path(out_dir) / MANIFEST_FILE
    if not path.is_file():
        raise SynthError(f"{path}: no manifest; run 'synth generate' with this --out first")
    return pq.read_table(path)
