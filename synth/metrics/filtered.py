"""What generate.filter did, for the report: per class how many candidates were drawn per kept
image, the scores of the kept and the rejected candidates, and a grid of rejected images.

Read from the manifest (every kept sample's score and candidates drawn) and the shards' filter logs
(``.synth/filter/*.npz``: every rejected candidate's score, and a few rejected images per class).
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from synth.generate.filter import read_filter_log
from synth.layout import MANIFEST_FILE, filter_rel
from synth.storage import Store

BINS = np.linspace(0.0, 1.0, 11)  # score histograms: tenths of the asked class's probability


def filter_figures(store: Store, class_names: list[str], per_class: int) -> dict:
    """The report's filter figures; {} for a dataset made without a filter.

    ``per_class``: rejected images shown per class (the grid's columns).
    """
    with store.open(MANIFEST_FILE) as fh:
        manifest = pq.ParquetFile(fh)
        if "filter_score" not in manifest.schema_arrow.names:
            return {}
        table = manifest.read(columns=["shard", "copy", "class", "filter_score", "filter_drawn"])
    sources = table.filter(np.asarray(table.column("copy")) == 0)  # one row per source image, not per copy
    labels = np.asarray(sources.column("class"), dtype=np.int64)
    scores = np.asarray(sources.column("filter_score"), dtype=np.float64)
    drawn = np.asarray(sources.column("filter_drawn"), dtype=np.int64)
    k = len(class_names)
    rejected_scores, rejected_asked, rejected_seen, outranked = [], [], [], []
    images: list[list[np.ndarray]] = [[] for _ in range(k)]
    for shard in dict.fromkeys(table.column("shard").to_pylist()):
        rel = filter_rel(shard)
        if not store.exists(rel):
            continue
        log = read_filter_log(store.read_bytes(rel))
        rejected_scores.append(log["rejected_score"])
        rejected_asked.append(log["rejected_asked"].astype(np.int64))
        rejected_seen.append(log["rejected_seen"].astype(np.int64))
        outranked.append(log["rejected_accepted"].astype(bool))
        for image, c in zip(log.get("images", []), log["image_asked"]):
            if len(images[c]) < per_class:
                images[int(c)].append(image)
    r_scores = np.concatenate(rejected_scores) if rejected_scores else np.zeros(0)
    r_asked = np.concatenate(rejected_asked) if rejected_asked else np.zeros(0, np.int64)
    r_seen = np.concatenate(rejected_seen) if rejected_seen else np.zeros(0, np.int64)
    r_won = np.concatenate(outranked) if outranked else np.zeros(0, bool)  # accepted, but less confident
    turned_down = ~r_won
    rows = []
    for c, name in enumerate(class_names):
        mine = labels == c
        n = int(mine.sum())
        rows.append(
            {
                "class": name,
                "kept": n,
                "drawn": int(drawn[mine].sum()),
                "drawn_per_kept": float(drawn[mine].mean()) if n else None,
                "kept_score_median": float(np.median(scores[mine])) if n else None,
                "rejected": int(((r_asked == c) & turned_down).sum()),  # not accepted by the classifier
                "outranked": int(((r_asked == c) & r_won).sum()),  # accepted, less confident than the one kept
                # what the classifier saw in the candidates of this class it did not accept: the class they drift to
                "rejected_seen_as": np.bincount(r_seen[(r_asked == c) & turned_down], minlength=k).tolist(),
            }
        )
    return {
        "filter": {
            "kept": len(labels),
            "drawn": int(drawn.sum()),
            "drawn_per_kept": float(drawn.mean()) if len(drawn) else None,
            "per_class": rows,
            "bins": BINS.tolist(),
            "kept_histogram": np.histogram(scores, BINS)[0].tolist(),
            "rejected_histogram": np.histogram(r_scores[turned_down], BINS)[0].tolist(),
            "outranked_histogram": np.histogram(r_scores[r_won], BINS)[0].tolist(),
            "logs_found": len(rejected_scores),
        },
        # a few rejected candidates per class asked for, for the report's grid: uint8 NHWC, and their classes
        "filter_rejected": (
            np.stack([im for row in images for im in row]) if any(images) else None,
            np.asarray([c for c, row in enumerate(images) for _ in row], dtype=np.int64),
        ),
    }
