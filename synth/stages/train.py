"""``synth train``: check the inputs, claim --out, train (or resume) through Ray Train."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from synth.errors import SynthError
from synth.layout import TRAIN_LOG, checkpoints
from synth.spec import Job
from synth.stages.generate import check_filter_file, class_counts
from synth.stages.outdir import claim_out_dir
from synth.stages.results import TrainResult


def preflight(job: Job):
    """Everything that can fail on bad input, checked before any file is written. Returns the dataset."""
    from synth.data import load_dataset
    from synth.models import build_nets

    data = load_dataset(job.data, job.seed)
    if data.num_classes < 1 or len(data) == 0:
        raise SynthError(f"data: {job.data.source} gave no images")
    build_nets(job.model, job.data.resolution, job.data.channels, data.num_classes)
    class_counts(job, list(data.class_names), data)
    check_filter_file(job, list(data.class_names))
    if job.output.url:
        from synth.storage import Store

        Store(job.output.url).fs  # noqa: B018 - fails now, with the package to install, if the protocol is unknown
    if job.train.batch_size % job.train.num_workers:
        raise SynthError(
            f"train.batch_size: {job.train.batch_size} does not split evenly across {job.train.num_workers} workers"
        )
    return data


def run_train(job: Job, out: Path, data=None) -> TrainResult:
    """Train (or resume) the job's model through Ray Train; return the final figures.

    ``data``: the dataset if the caller already ran ``preflight``.
    """
    from synth import engine
    from synth.progress import Progress, on_terminal
    from synth.train import checkpoint as ckpt
    from synth.train.loop import model_config

    data = data if data is not None else preflight(job)
    state = ckpt.read_state(checkpoints(out))
    if state is not None:
        ckpt.check_same_model(state, model_config(job, data.num_classes), checkpoints(out))
    trained_on = {"source": job.data.source, "images": len(data), "classes": data.num_classes}
    if not job.model.capabilities().trained:  # nothing to learn: export the fixed nets, no Ray
        from synth.train.loop import export_fixed

        claim_out_dir(out, job)
        t0 = time.perf_counter()
        export_fixed(job, out)
        return TrainResult(step=0, data=trained_on, fixed=True, world_size=1, seconds=time.perf_counter() - t0)
    placed = engine.placement(job, "train")  # a request Ray cannot meet fails here, before --out is claimed
    claim_out_dir(out, job)
    start = int(state["step"]) if state else 0
    if start >= job.train.steps and (checkpoints(out) / ckpt.GENERATOR_FILE).is_file():
        return TrainResult(step=start, data=trained_on, skipped=True)
    t0 = time.perf_counter()
    with Progress("train", job.train.steps, "steps") as bar:
        bar.done = start
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_train_log, args=(out / TRAIN_LOG, bar, stop), daemon=True)
        watcher.start()
        try:
            metrics = engine.train_on_ray(job, out, log_lines=not on_terminal(), placed=placed)
        finally:
            stop.set()
            watcher.join()
        bar.update(completed=int(metrics.get("step", job.train.steps)))
    seconds = time.perf_counter() - t0
    # step: None only if rank 0 left no state; data: for the dataset card (what the model learnt from)
    return TrainResult(**{"step": None, **metrics}, seconds=seconds, data=trained_on)


def _watch_train_log(path: Path, bar, stop: threading.Event) -> None:
    """Move the bar as rank 0 appends to train_log.csv."""
    while not stop.wait(1.0):
        try:
            lines = path.read_text().strip().splitlines()
            row = dict(zip(lines[0].split(","), lines[-1].split(",")))
            step = int(row["step"])
            losses = " ".join(f"{k} {float(v):.3f}" for k, v in row.items() if k.startswith("loss"))
        except (OSError, IndexError, ValueError, KeyError):
            continue
        if len(lines) > 1:
            bar.update(completed=step, extra=losses)
