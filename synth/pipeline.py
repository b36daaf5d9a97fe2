"""The stages of a job, each reading only the previous stage's files.

``run_train``, ``run_generate`` and ``run_evaluate`` are what the CLI calls;
they check inputs before writing anything, then hand the heavy work to
``engine`` (Ray) and the plain modules below it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, NamedTuple

from synth.errors import SynthError
from synth.fsutil import data_digest
from synth.layout import DATASET_FILE, INTERPOLATION, JOB_FILE, JOB_YAML, SHARD_NODES, checkpoints, dataset_store
from synth.progress import note
from synth.spec import Job, digest


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


def run_train(job: Job, out: Path, data=None) -> dict:
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
    placed = engine.placement(job, "train")  # a request Ray cannot meet fails here, before --out is claimed
    claim_out_dir(out, job)
    start = int(state["step"]) if state else 0
    trained_on = {"source": job.data.source, "images": len(data), "classes": data.num_classes}
    if start >= job.train.steps and (checkpoints(out) / ckpt.GENERATOR_FILE).is_file():
        return {"step": start, "skipped": True, "data": trained_on}
    t0 = time.perf_counter()
    with Progress("train", job.train.steps, "steps") as bar:
        bar.done = start
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_train_log, args=(out / "train_log.csv", bar, stop), daemon=True)
        watcher.start()
        try:
            metrics = engine.train_on_ray(job, out, log_lines=not on_terminal(), placed=placed)
        finally:
            stop.set()
            watcher.join()
        bar.update(completed=int(metrics.get("step", job.train.steps)))
    metrics["seconds"] = time.perf_counter() - t0
    metrics["data"] = trained_on  # for the dataset card: what the model learnt from
    return metrics


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


def class_counts(job: Job, class_names: list[str], data=None) -> tuple[int, ...]:
    """The exact per-class sample counts that ``generate.classes`` asks for (SynthError naming the field).

    An unconditional model makes an unlabelled dataset: one pool of ``generate.count`` samples.
    """
    from synth.generate.plan import resolve_class_counts

    g = job.generate
    if not job.model.conditional:
        if "classes" in g.model_fields_set and g.classes != "balanced":
            raise SynthError(
                f"generate.classes: {job.model.name} is unconditional, so it cannot be asked for classes; "
                "remove generate.classes, or use a conditional model (dcgan_cond, cvae, ddpm_cond, conditional: true)"
            )
        return resolve_class_counts("balanced", g.count, True, job.augment.copies, ["unlabelled"])
    real = None
    if g.classes == "match_real":
        if data is None:
            from synth.data import load_dataset

            data = load_dataset(job.data, job.seed)
        real = data.class_counts().tolist()
    return resolve_class_counts(
        g.classes, g.count, "count" in g.model_fields_set, job.augment.copies, list(class_names), real
    )


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


def sampling_of(job: Job):
    """The job's generation-time sampling settings (synth.models.family.Sampling)."""
    from synth.models.family import Sampling

    g = job.generate
    return Sampling(g.truncation, g.sampler, g.steps, g.eta, g.guidance)


class GenerationPlan(NamedTuple):
    """What ``synth generate`` runs: the plan, one ShardWork per shard (lazily), what the workers share
    (``write_one_shard``'s arguments after the work), the class names, the plan's digest and what the
    filter's classifier is (None without a filter)."""

    plan: Any
    works: Iterator
    shared: tuple
    names: list[str]
    digest: str
    judge: str | None


def generation_plan(job: Job, out: Path, data=None, device: str = "cpu") -> GenerationPlan:
    """The job's GenerationPlan. Shared with the workers: the generator's weights, Inception's if they
    compute features, the filter's classifier if there is one. ``device``: where the workers run the
    generator (engine.placement)."""
    from synth.generate.plan import Plan
    from synth.generate.worker import Encoding, GeneratorRef, ShardWork
    from synth.train import checkpoint as ckpt

    meta, weights = ckpt.load_generator_files(checkpoints(out))
    mcfg = meta["model_config"]
    names = list(meta["class_names"]) if job.model.conditional else []  # [] : unlabelled samples, no .cls
    g = job.generate
    plan = Plan(class_counts(job, names, data), g.shard_size, job.seed, job.output.name, job.augment.copies)
    encoding = Encoding(g.format, g.png_compression, g.quality, g.lossless, g.resolution, g.resize_filter)
    ref = GeneratorRef(job.model.name, mcfg, meta["digest"])
    sampling = sampling_of(job)
    record = ref.family.sampling_record(sampling)
    judge = judge_file(job, names, data) if g.filter is not None else None
    plan_digest = digest(
        {
            "plan": asdict(plan),
            "generator": meta["digest"],
            "encoding": asdict(encoding),
            "augment": job.augment.model_dump(mode="json"),
            **({"sampling": record} if record else {}),
            **({"compile": True} if g.compile else {}),  # compiled kernels may round otherwise
            **({"filter": {**g.filter.model_dump(mode="json"), "classifier": judge.digest}} if judge else {}),
        }
    )
    store = dataset_store(job, out)
    target, takes, inception = feature_target(job, plan)
    works = (
        ShardWork(
            store,
            plan,
            s,
            g.batch_size,
            plan_digest,
            ref,
            tuple(names),
            encoding,
            job.augment,
            g.prefetch,
            sampling,
            replace(target, take=takes[s.index]) if target else None,
            device,
            g.compile,
            g.filter,
        )
        for s in plan.shards()
    )
    # what every worker gets once, through the object store: the generator's weights, Inception's (for the
    # report's features) and the filter's classifier, where the job asks for them
    shared = (weights, inception, judge.data if judge else None)
    while shared[-1] is None and len(shared) > 1:
        shared = shared[:-1]
    return GenerationPlan(plan, works, shared, names, plan_digest, judge.description if judge else None)


def check_filter_file(job: Job, class_names: list[str]) -> None:
    """A user's classifier for generate.filter, checked before anything runs (the domain one is made later)."""
    if job.generate.filter is not None and job.generate.filter.classifier not in ("fast", "domain"):
        judge_file(job, class_names)


def judge_file(job: Job, class_names: list[str], data=None):
    """The classifier of ``generate.filter`` as a JudgeFile: the domain classifier (from the evaluation
    cache, or trained now on the real training split and cached), or the user's file, checked to give
    one score per class of the job. SynthError (one line) for a file that cannot serve."""
    from synth.fsutil import data_digest
    from synth.generate.filter import JudgeFile, check_judge, judge_kind

    spec = job.generate.filter
    if spec.classifier in ("fast", "domain"):
        from synth.metrics.classifier import export_classifier
        from synth.metrics.evaluate import DOMAIN_NAME, domain_classifier

        if data is None:
            from synth.data import load_dataset

            data = load_dataset(job.data, job.seed)
        network = "cnn" if spec.classifier == "domain" else "fast"
        clf = domain_classifier(data, job.evaluate.classifier_epochs, job.seed, network)
        blob = export_classifier(clf.model, network, list(data.class_names), job.data.channels)
        name = (
            f"the domain classifier: {DOMAIN_NAME}"
            if network == "cnn"
            else "a small fast CNN (3 stride-2 convolutions) trained on the real data"
        )
        what = f"{name}, {clf.held_out_accuracy:.2%} on {clf.held_out_size:,} held-out real images"
        return JudgeFile(blob, "safetensors", data_digest(blob), what)
    path = Path(spec.classifier).expanduser()
    if not path.is_file():
        raise SynthError(
            f"generate.filter.classifier: {path}: no such file (give 'domain', or a TorchScript or "
            "safetensors classifier)"
        )
    blob = path.read_bytes()
    check_judge(blob, str(path), class_names, job.data.resolution, job.data.channels)
    return JudgeFile(blob, judge_kind(blob), data_digest(blob), f"{path.name} ({judge_kind(blob)})")


def feature_target(job: Job, plan):
    """What the generation workers compute for evaluation (evaluate.features_at_generation): the
    FeatureTarget, per shard how many of its first samples (plan.head_counts), and the Inception
    weights' bytes (read once: hashed here, shipped to the workers); or (None, None, None).

    Without Inception weights here the workers compute nothing (evaluation will say what is missing),
    unless the job names a weights file, which must then exist."""
    from synth.generate.plan import head_counts
    from synth.metrics.features import FeatureTarget
    from synth.metrics.fid import inception_weights_path

    e = job.evaluate
    if not (e.inception and e.features_at_generation):
        return None, None, None
    try:
        path = inception_weights_path(e.inception_weights)
    except SynthError:
        if e.inception_weights:
            raise
        note("no InceptionV3 weights here: the generation workers do not compute the evaluation's features")
        return None, None, None
    takes = head_counts((s.size for s in plan.shards()), e.num_samples)
    inception = path.read_bytes()
    target = FeatureTarget(0, job.data.resolution, job.data.channels, data_digest(inception))
    return target, takes, inception


def preflight_generate(job: Job, out: Path) -> None:
    """What `synth generate` can refuse, checked before Ray starts: --out, the generator, classes, output.url."""
    from synth.train import checkpoint as ckpt

    check_out_dir(out, job, must_exist=True)
    meta, _ = ckpt.load_generator_files(checkpoints(out))
    class_counts(job, list(meta["class_names"]))
    check_filter_file(job, list(meta["class_names"]))
    if job.output.url:
        from synth.storage import Store

        Store(job.output.url).fs  # noqa: B018 - fails now, naming the package to install, if the protocol is unknown
    check_dataset_store(job, out)


def run_generate(job: Job, out: Path) -> dict:
    """Write exactly the planned samples as shards (skipping shards already done), the manifest and indexes."""
    import resource

    from synth import engine
    from synth.generate.worker import shard_is_done, write_one_shard
    from synth.manifest import write_manifest
    from synth.progress import Progress

    check_out_dir(out, job, must_exist=True)
    check_dataset_store(job, out)
    placed = engine.placement(job, "generate")
    made_by = generation_plan(job, out, device=placed.generate_device)
    plan, works, shared, names = made_by.plan, made_by.works, made_by.shared, made_by.names
    claim_out_dir(out, job)  # records output.url, so `synth verify OUT` and `synth evaluate` find the dataset
    store = dataset_store(job, out)
    if job.output.url:
        store.write_bytes(DATASET_FILE, json.dumps({"identity": job.identity(), "name": job.output.name}).encode())
    remove_stale_shards(store, plan)
    t0 = time.perf_counter()
    done = {"shards": 0, "skipped": 0, "made": 0, "worker_peak_rss_mb": 0.0, "features": 0}
    with Progress("generate", plan.count, "img", extra=f"shards 0/{plan.num_shards}") as bar:

        def todo():
            for work in works:
                if shard_is_done(work):
                    done["shards"] += 1
                    done["skipped"] += 1
                    bar.update(work.shard.size, extra=f"shards {done['shards']}/{plan.num_shards}")
                else:
                    yield work

        def on_result(result) -> None:
            done["shards"] += 1
            done["made"] += result.num_samples
            done["features"] += result.features
            done["worker_peak_rss_mb"] = max(done["worker_peak_rss_mb"], result.peak_rss_mb)
            bar.update(result.num_samples, extra=f"shards {done['shards']}/{plan.num_shards}")

        nodes = read_shard_nodes(out)
        this_run: set[str] = set()

        def on_node(result, node: str) -> None:
            nodes[result.name] = node
            this_run.add(node)

        try:
            engine.map_shards(
                write_one_shard,
                todo(),
                shared,
                placed.generate_tasks,
                on_result,
                num_cpus=placed.generate_cpus,
                num_gpus=placed.generate_gpus,
                on_node=on_node,
            )
        finally:  # an interrupted run keeps the nodes of the shards it finished
            planned = {s.name for s in plan.shards()}
            write_shard_nodes(out, {shard: node for shard, node in nodes.items() if shard in planned})
    seconds = time.perf_counter() - t0
    summary = write_manifest(store, plan, names, job.output.name)
    made = done["made"]
    result = {
        "count": plan.count,
        "class_counts": list(plan.class_counts),
        "copies": plan.copies,
        "shards": plan.num_shards,
        "bytes": summary["bytes"],
        "generated": made,
        "skipped_shards": done["skipped"],
        "features_for_report": done["features"],
        "nodes": len(this_run),  # the nodes that wrote shards in this run
        "seconds": seconds,
        "images_per_s": made / seconds if made else 0.0,
        "location": store.where(),
        "manifest": store.where("manifest.parquet"),
        "worker_peak_rss_mb": round(done["worker_peak_rss_mb"], 1),
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }
    write_generation_card(job, out, store, result, made_by)
    return result


def write_generation_card(job: Job, out: Path, store, made: dict, planned: GenerationPlan) -> None:
    """The dataset card (synth.datacard) beside the shards, as generation leaves them (no figures yet)."""
    from synth.datacard import generation_card, read_card, write_card
    from synth.report import load_summaries
    from synth.train import checkpoint as ckpt

    meta = json.loads((checkpoints(out) / ckpt.GENERATOR_META).read_text())
    data = load_summaries(out).get("train", {}).get("data")
    card = generation_card(job, made, meta, planned.digest, planned.names, data, planned.judge)
    before = read_card(store)
    if before and before.get("drawing", {}).get("plan_digest") == planned.digest:  # the same samples: still judged
        card.update(evaluation=before.get("evaluation"), limitations=before.get("limitations", []))
    write_card(store, card)


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


def remove_stale_shards(store, plan) -> None:
    """Delete shards and parts the current plan does not have, and temporaries left by killed attempts."""
    import re

    from synth.layout import FEATURES_DIR, FILTER_DIR, PARTS_DIR, SHARDS_DIR

    pattern = re.compile(rf"^{re.escape(plan.prefix)}-(\d{{6,}})\.(tar|parquet|npz)$")
    for folder in (SHARDS_DIR, PARTS_DIR, FEATURES_DIR, FILTER_DIR):
        for name in store.listdir(folder):
            m = pattern.match(name)
            if (
                name.startswith(".")
                or (m and int(m.group(1)) >= plan.num_shards)
                or (not m and name.endswith((".tar", ".parquet", ".npz")))
            ):
                store.remove(f"{folder}/{name}")


def run_evaluate(job: Job, out: Path, generated: Path | None = None, ray_ready=None) -> dict:
    """Judge the job's shards (or the images at ``generated``) against the real data; write
    report.json and report.html under ``out``. ``ray_ready``: the Inception pass runs as Ray tasks,
    in the session this function opens (engine.ray_on_demand) or makes sure of; None: in this process."""
    from synth.metrics.evaluate import evaluate
    from synth.metrics.features import local_pass
    from synth.report import write_report

    if generated is None:
        check_out_dir(out, job, must_exist=True)
    else:
        check_report_dir(out)
    feature_pass = local_pass if ray_ready is None else (lambda net: ray_feature_pass(net, ready=ray_ready))
    figures = evaluate(job, out, generated, feature_pass)
    out.mkdir(parents=True, exist_ok=True)
    write_report(out, job, figures)
    if generated is None:
        from synth.datacard import complete_card

        complete_card(dataset_store(job, out), figures)
    return figures


def ray_feature_pass(net, chunk: int | None = None, ready=None):
    """The Inception pass over images as Ray tasks of ``chunk`` (default ``features.CHUNK``) images, as many at once as
    the cluster has CPUs (GPUs when it has them); one chunk or less runs here, saving the workers'
    load of the network. The weights go to the object store once per pass, not read from the
    workers' disks. ``ready``: called before the first task (engine.ray_on_demand starts Ray there)."""
    import numpy as np

    from synth import engine
    from synth.metrics.features import CHUNK, Chunk, chunk_features, local_pass

    here = local_pass(net)
    chunk = chunk or CHUNK

    def run(images, progress=None):
        if len(images) <= chunk:
            return here(images, progress)
        if ready is not None:
            ready()
        out = np.empty((len(images), 2048))

        def on_result(result) -> None:
            offset, features = result
            out[offset : offset + len(features)] = features
            if progress is not None:
                progress(len(features))

        chunks = (Chunk(i, images[i : i + chunk], net.weights_digest) for i in range(0, len(images), chunk))
        gpus = engine.cluster_gpus()
        engine.map_shards(
            chunk_features,
            chunks,
            (net.weights_path.read_bytes(),),
            gpus or engine.cluster_cpus(),
            on_result,
            num_gpus=1 if gpus else 0,
        )
        return out

    return run


def check_report_dir(out: Path) -> None:
    """--out for a report on images synth did not make: any folder but a synth job's (whose report it would replace)."""
    if out.exists() and not out.is_dir():
        raise SynthError(f"--out {out}: exists and is not a folder")
    if (out / JOB_FILE).is_file():
        raise SynthError(
            f"--out {out}: holds a synth job's output, whose report this would replace; "
            "choose another --out (or drop --generated to judge that job)"
        )


def run_interpolate(job: Job, out: Path, seeds: list[int], steps: int, classes: list[str] | None) -> Path:
    """A PNG grid of images along a path through the seeds' latents: a row per class, ``steps`` per segment.

    Seeds are sample seeds as the shards' ``.json`` records them. Writes ``out/interpolation.png``.
    """
    import io

    import numpy as np
    import torch
    from PIL import Image

    from synth.fsutil import atomic_write_bytes
    from synth.generate.plan import _class_index
    from synth.generate.worker import GeneratorRef, load_generator
    from synth.models.common import to_uint8
    from synth.train import checkpoint as ckpt

    check_out_dir(out, job, must_exist=True)  # so job.model is the model the checkpoint holds
    if len(seeds) < 2 or steps < 2:
        raise SynthError("interpolate: give at least 2 seeds (--seeds 1,2) and --steps of at least 2")
    meta, weights = ckpt.load_generator_files(checkpoints(out))
    names = list(meta["class_names"])
    rows = list(range(len(names))) if job.model.conditional else [0]
    if classes:
        rows = [_class_index(c, names, "--classes") for c in classes]
    sampler = load_generator(GeneratorRef(job.model.name, meta["model_config"], meta["digest"]), weights)
    sampling = sampling_of(job)
    seed_array = np.asarray(seeds, dtype=np.uint64)
    with torch.inference_mode():
        grid = [to_uint8(sampler.family.interpolate(sampler.net, seed_array, k, steps, sampling)) for k in rows]
    images = np.stack(grid)  # rows, cols, H, W, C
    r, c, h, w, ch = images.shape
    canvas = images.transpose(0, 2, 1, 3, 4).reshape(r * h, c * w, ch)
    picture = Image.fromarray(canvas[..., 0] if ch == 1 else canvas)
    scale = max(1, 64 // h)  # small images drawn larger, pixels kept sharp
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    path = out / INTERPOLATION
    atomic_write_bytes(path, buf.getvalue())
    return path


def submission(job: Job, job_path: Path, out: Path, address: str, python: str | None = None) -> tuple[str, dict, dict]:
    """What `synth submit` sends: (entrypoint, runtime_env, metadata).

    The resolved job (its --set applied, so the cluster runs what was checked here) travels in an
    environment variable that the entrypoint writes to a temporary file on the head node (a Ray
    working_dir would do, but Ray reclaims it when the job's Ray Train workers end, under the
    driver's feet); synth's own code travels as a py_module, so the cluster runs this version of
    it; the rest of the environment (torch, ray, ...) must be on the cluster. The job's driver runs
    `synth run` against the cluster it is on, writing to ``out``: a path every node sees the same
    (or set output.url to an fsspec URL for the dataset).
    """
    import shlex
    import sys
    from urllib.parse import urlparse

    import synth

    host = urlparse(address).hostname or ""
    python = python or (sys.executable if host in ("127.0.0.1", "localhost", "::1") else "python")
    run = (
        shlex.join([python, "-m", "synth.cli", "run"]) + ' "$f" ' + shlex.join(["--out", str(out), "--address", "auto"])
    )
    entrypoint = (
        f'f=$(mktemp -t synth-job.XXXXXX) && printf "%s" "$SYNTH_JOB_YAML" > "$f" && {{ {run}; s=$?; '
        'rm -f "$f"; exit $s; }'
    )
    runtime_env = {
        "py_modules": [str(Path(synth.__file__).parent)],
        "env_vars": {"SYNTH_JOB_YAML": job.to_yaml(), "RAY_DEDUP_LOGS": "0", "PYTHONUNBUFFERED": "1"},
    }
    metadata = {"synth_job": str(job_path), "synth_out": str(out), "synth_name": job.output.name}
    return entrypoint, runtime_env, metadata
