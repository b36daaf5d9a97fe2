"""--out's ownership: a folder belongs to one job (``.synth/job.json``), and ``output.url`` to one dataset.

The checks write nothing, so a refused command leaves --out as it was; ``claim_out_dir`` records the owner.
"""

from __future__ import annotations

import json
from pathlib import Path

from synth.errors import SynthError
from synth.layout import DATASET_FILE, JOB_FILE, JOB_YAML, dataset_store
from synth.spec import Job


def check_out_dir(out: Path, job: Job, must_exist: bool = False) -> None:
    """Refuse an --out that holds something other than this job's output. Writes nothing."""
    if ":/" in str(out):
        raise SynthError(
            f"--out {out}: must be a folder (shared by the nodes on a cluster); "
            "to write the shards to a URL, set output.url"
        )
    if out.exists() and not out.is_dir():
        raise SynthError(f"--out {out}: exists and is not a folder")
    job_file = out / JOB_FILE
    if must_exist and not job_file.is_file():
        raise SynthError(f"--out {out}: no synth job here; run 'synth run' or 'synth train' with this --out first")
    if not out.exists() or not any(out.iterdir()):
        return
    if not job_file.is_file():
        raise SynthError(f"--out {out}: folder is not empty and holds no synth job; choose a new or empty folder")
    try:
        saved = json.loads(job_file.read_text())
    except json.JSONDecodeError:
        raise SynthError(f"{job_file}: unreadable; choose a new --out") from None
    if saved.get("identity") != job.identity():
        raise SynthError(
            f"--out {out}: holds the output of another job (its data, model, seed or output name differ: "
            f"see {out / JOB_YAML}); choose a new --out"
        )


def claim_out_dir(out: Path, job: Job) -> None:
    """Record this job as the owner of --out (after check_out_dir passed)."""
    from synth.fsutil import atomic_write_bytes, atomic_write_json

    (out / JOB_FILE).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / JOB_FILE, {"identity": job.identity(), "job": job.model_dump(mode="json")})
    atomic_write_bytes(out / JOB_YAML, job.to_yaml().encode())


def check_dataset_store(job: Job, out: Path) -> None:
    """Refuse an ``output.url`` that holds something other than this job's dataset. Writes nothing."""
    store = dataset_store(job, out)
    if not job.output.url:
        return
    if store.exists(DATASET_FILE):
        saved = json.loads(store.read_bytes(DATASET_FILE))
        if saved.get("identity") != job.identity():
            raise SynthError(f"output.url {job.output.url}: holds the dataset of another job; choose another URL")
    elif any(not name.startswith(".") for name in store.listdir("")):
        raise SynthError(f"output.url {job.output.url}: not empty and holds no synth dataset; choose another URL")


def check_report_dir(out: Path) -> None:
    """--out for a report on images synth did not make: any folder but a synth job's (whose report it would replace)."""
    if out.exists() and not out.is_dir():
        raise SynthError(f"--out {out}: exists and is not a folder")
    if (out / JOB_FILE).is_file():
        raise SynthError(
            f"--out {out}: holds a synth job's output, whose report this would replace; "
            "choose another --out (or drop --generated to judge that job)"
        )
