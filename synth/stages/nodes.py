"""Which Ray node wrote each shard: provenance under --out (``layout.SHARD_NODES``)."""

from __future__ import annotations

import json
from pathlib import Path

from synth.layout import SHARD_NODES


def read_shard_nodes(out: Path) -> dict[str, str]:
    """Which Ray node wrote each shard (of runs so far: a resumed run keeps the earlier shards' nodes)."""
    try:
        return dict(json.loads((out / SHARD_NODES).read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def write_shard_nodes(out: Path, nodes: dict[str, str]) -> None:
    """Provenance beside the dataset, not in manifest.parquet: node ids change with every Ray session,
    and the manifest is the same bytes on every run of the job."""
    from synth.fsutil import atomic_write_bytes

    (out / SHARD_NODES).parent.mkdir(parents=True, exist_ok=True)  # absent when --out was not trained on Ray
    atomic_write_bytes(out / SHARD_NODES, json.dumps(dict(sorted(nodes.items())), indent=1).encode())
