"""Every path of a job's output, named once: the --out folder and the dataset store.

The --out folder (``out``, a local path every node sees) holds the job and what only this job's
stages read: the checkpoints, the training log, the report, provenance. The dataset store
(``dataset_store``: ``output.url``, or --out itself) holds what a user of the dataset reads: the
shards, the manifest and indexes, the card, and the generation's per-shard side files.

Paths are relative strings (``/``-separated, as a Store takes them); ``out / REL`` for the folder.
No heavy imports here: the readers of a dataset import this module without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synth.spec import Job
    from synth.storage import Store

# --out: the job that owns the folder
SYNTH_DIR = ".synth"
JOB_FILE = f"{SYNTH_DIR}/job.json"  # {"identity", "job"}: who owns --out
JOB_YAML = f"{SYNTH_DIR}/job.yaml"  # the same job, for a person
SUMMARIES = {"train": f"{SYNTH_DIR}/train_summary.json", "generate": f"{SYNTH_DIR}/generate_summary.json"}

# --out: training
CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "state.json"  # under CHECKPOINTS_DIR
GENERATOR_FILE = "generator.safetensors"  # under CHECKPOINTS_DIR
GENERATOR_META = "generator.json"  # under CHECKPOINTS_DIR
TRAIN_LOG = "train_log.csv"
RAY_TRAIN_DIR = f"{SYNTH_DIR}/ray_train"  # Ray Train's storage_path

# --out: which Ray node ran what (provenance; not part of the reproducible output)
NODES_DIR = f"{SYNTH_DIR}/nodes"
SHARD_NODES = f"{NODES_DIR}/shards.json"

# --out: the report and the tools' pictures
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
REPORT_GRID = "report_grid.png"
REPORT_RECONSTRUCTIONS = "report_reconstructions.png"
REPORT_REJECTED = "report_rejected.png"
INTERPOLATION = "interpolation.png"

# the dataset store
DATASET_FILE = f"{SYNTH_DIR}/dataset.json"  # {"identity", "name"}: who owns output.url
SHARDS_DIR = "shards"
PARTS_DIR = f"{SYNTH_DIR}/parts"  # a manifest part per shard: marks the shard done
FEATURES_DIR = f"{SYNTH_DIR}/features"  # the evaluation's Inception features, per shard
FILTER_DIR = f"{SYNTH_DIR}/filter"  # the quality filter's log, per shard
MANIFEST_FILE = "manifest.parquet"
WIDS_INDEX = "shardindex.json"
INFO_FILE = "_info.json"
CARD_JSON = "datacard.json"
CARD_MD = "DATASET_CARD.md"


def checkpoints(out: Path) -> Path:
    """The folder of the checkpoints and the exported generator under --out."""
    return out / CHECKPOINTS_DIR


def shard_rel(shard_name: str) -> str:
    return f"{SHARDS_DIR}/{shard_name}"


def part_rel(shard_name: str) -> str:
    return f"{PARTS_DIR}/{shard_name.removesuffix('.tar')}.parquet"


def features_rel(shard_name: str) -> str:
    return f"{FEATURES_DIR}/{shard_name.removesuffix('.tar')}.npz"


def filter_rel(shard_name: str) -> str:
    """Where a shard's filter log goes in the dataset store."""
    return f"{FILTER_DIR}/{shard_name.removesuffix('.tar')}.npz"


def dataset_store(job: Job, out: Path) -> Store:
    """Where the dataset (shards, manifest, indexes) goes: ``output.url``, or --out itself."""
    from synth.storage import Store

    return Store(job.output.url) if job.output.url else Store(out)
