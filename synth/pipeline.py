"""The stages of a job, each reading only the previous stage's files.

``run_train``, ``run_generate`` and ``run_evaluate`` are what the CLI calls;
they check inputs before writing anything, then hand the heavy work to
``engine`` (Ray) and the plain modules below it.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import asdict
from pathlib import Path

from synth.errors import SynthError
from synth.spec import Job, digest

JOB_FILE = ".synth/job.json"


def check_out_dir(out: Path, job: Job, must_exist: bool = False) -> None:
    """Refuse an --out that holds something other than this job's output. Writes nothing."""
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
            f"see {out / '.synth/job.yaml'}); choose a new --out"
        )


def claim_out_dir(out: Path, job: Job) -> None:
    """Record this job as the owner of --out (after check_out_dir passed)."""
    from synth.train.checkpoint import atomic_write_bytes, atomic_write_json

    (out / ".synth").mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / JOB_FILE, {"identity": job.identity(), "job": job.model_dump(mode="json")})
    atomic_write_bytes(out / ".synth/job.yaml", job.to_yaml().encode())


def preflight(job: Job):
    """Everything that can fail on bad input, checked before any file is written. Returns the dataset."""
    from synth.data import load_dataset
    from synth.models import build_gan

    data = load_dataset(job.data, job.seed)
    if data.num_classes < 1 or len(data) == 0:
        raise SynthError(f"data: {job.data.source} gave no images")
    build_gan(job.model, job.data.resolution, job.data.channels, data.num_classes)
    if job.train.batch_size % job.train.num_workers:
        raise SynthError(
            f"train.batch_size: {job.train.batch_size} does not split evenly across {job.train.num_workers} workers"
        )
    return data


def run_train(job: Job, out: Path, data=None) -> dict:
    """Train (or resume) the job's model through Ray Train; return the final figures.

    ``data``: the dataset if the caller already ran ``preflight``.
    """
    from synth import engine
    from synth.progress import Progress, on_terminal
    from synth.train import checkpoint as ckpt
    from synth.train.loop import model_config

    data = data if data is not None else preflight(job)
    state = ckpt.read_state(out / "checkpoints")
    if state is not None:
        ckpt.check_same_model(state, model_config(job, data.num_classes), out / "checkpoints")
    claim_out_dir(out, job)
    start = int(state["step"]) if state else 0
    if start >= job.train.steps and (out / "checkpoints" / ckpt.GENERATOR_FILE).is_file():
        return {"step": start, "skipped": True}
    t0 = time.perf_counter()
    with Progress("train", job.train.steps, "steps") as bar:
        bar.done = start
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_train_log, args=(out / "train_log.csv", bar, stop), daemon=True)
        watcher.start()
        try:
            metrics = engine.train_on_ray(job, out, log_lines=not on_terminal())
        finally:
            stop.set()
            watcher.join()
        bar.update(completed=int(metrics.get("step", job.train.steps)))
    metrics["seconds"] = time.perf_counter() - t0
    return metrics


def _watch_train_log(path: Path, bar, stop: threading.Event) -> None:
    """Move the bar as rank 0 appends to train_log.csv."""
    while not stop.wait(1.0):
        try:
            last = path.read_text().strip().splitlines()[-1].split(",")
            step, loss_d, loss_g = int(last[0]), float(last[1]), float(last[2])
        except (OSError, IndexError, ValueError):
            continue
        bar.update(completed=step, extra=f"loss_d {loss_d:.3f} loss_g {loss_g:.3f}")


def shard_works(job: Job, out: Path):
    """The plan and one ShardWork per shard, tied to the trained generator."""
    from synth.generate.plan import Plan
    from synth.generate.worker import GeneratorRef, ShardWork
    from synth.train import checkpoint as ckpt

    meta, weights = ckpt.load_generator_files(out / "checkpoints")
    mcfg, names = meta["model_config"], meta["class_names"]
    g = job.generate
    plan = Plan(g.count, g.shard_size, mcfg["num_classes"], job.seed, job.output.name)
    ref = GeneratorRef(job.model.name, mcfg, meta["digest"])
    plan_digest = digest({"plan": asdict(plan), "generator": meta["digest"], "format": g.format})
    works = [ShardWork(str(out.resolve()), plan, s, g.batch_size, plan_digest, ref, tuple(names)) for s in plan.shards()]
    return plan, works, weights


def run_generate(job: Job, out: Path) -> dict:
    """Write ``generate.count`` samples as shards (skipping shards already done) and the manifest."""
    from synth import engine
    from synth.generate.worker import PARTS_DIR, shard_is_done, write_one_shard
    from synth.manifest import write_manifest
    from synth.progress import Progress

    check_out_dir(out, job, must_exist=True)
    plan, works, weights = shard_works(job, out)
    remove_stale_shards(out, {w.shard.name for w in works}, PARTS_DIR)
    todo = [w for w in works if not shard_is_done(w)]
    already = plan.count - sum(w.shard.size for w in todo)
    t0 = time.perf_counter()
    shards_done = len(works) - len(todo)
    with Progress("generate", plan.count, "img", extra=f"shards {shards_done}/{len(works)}") as bar:
        bar.done = already

        def on_result(result) -> None:
            nonlocal shards_done
            shards_done += 1
            bar.update(result.num_samples, extra=f"shards {shards_done}/{len(works)}")

        engine.map_shards(write_one_shard, todo, weights, job.generate.num_workers, on_result)
    seconds = time.perf_counter() - t0
    manifest = write_manifest(out, plan)
    made = plan.count - already
    return {
        "count": plan.count,
        "shards": plan.num_shards,
        "generated": made,
        "skipped_shards": len(works) - len(todo),
        "seconds": seconds,
        "images_per_s": made / seconds if made else 0.0,
        "manifest": str(manifest),
    }


def remove_stale_shards(out: Path, keep: set[str], parts_dir: str) -> None:
    """Delete shards (and parts, and leftover temporaries) that the current plan does not have."""
    shards = out / "shards"
    if shards.is_dir():
        for path in shards.iterdir():
            if path.name.startswith(".") or (path.suffix == ".tar" and path.name not in keep):
                path.unlink()
    parts = out / parts_dir
    if parts.is_dir():
        for path in parts.iterdir():
            if path.name.startswith(".") or path.name.removesuffix(".parquet") + ".tar" not in keep:
                path.unlink()


def run_evaluate(job: Job, out: Path) -> dict:
    """Judge the shards against the real data; write report.json and report.html."""
    from synth.metrics.evaluate import evaluate
    from synth.report import write_report

    check_out_dir(out, job, must_exist=True)
    figures = evaluate(job, out)
    write_report(out, job, figures)
    return figures


def clean_ray_train_dir(out: Path) -> None:
    shutil.rmtree(out / ".synth" / "ray_train", ignore_errors=True)
