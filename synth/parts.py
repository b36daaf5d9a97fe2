"""A shard's manifest part (``.synth/parts/<shard>.parquet``): its rows of the manifest, and in the
file's metadata what marks the shard done (plan_digest, tar_bytes, md5, ...).

The shard worker writes parts (synth.generate.worker); the manifest and `synth verify` read them.
Reading needs pyarrow only, not torch.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from synth.layout import part_rel
from synth.storage import Store


def read_part_meta(store: Store, shard_name: str) -> dict[str, str] | None:
    """The part's metadata (plan_digest, tar_bytes, md5, ...) or None if it is missing or unreadable."""
    try:
        with store.open(part_rel(shard_name)) as fh:
            meta = pq.read_schema(fh).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    return {k.decode(): v.decode() for k, v in meta.items()}
