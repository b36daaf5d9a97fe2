"""``synth generate``: plan the samples, write the shards on Ray (skipping those done), then the
manifest, the indexes and the dataset card."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, NamedTuple

from synth.errors import SynthError
from synth.fsutil import data_digest
from synth.layout import DATASET_FILE, MANIFEST_FILE, checkpoints, dataset_store
from synth.progress import note
from synth.spec import Job, digest
from synth.stages.nodes import read_shard_nodes, write_shard_nodes
from synth.stages.outdir import check_dataset_store, check_out_dir, claim_out_dir
from synth.stages.results import GenerateResult


def class_counts(job: Job, class_names: list[str], data=None) -> tuple[int, ...]:
    """The exact per-class sample counts that ``generate.classes`` asks for (SynthError naming the field).

    An unconditional model makes an unlabelled dataset: one pool of ``generate.count`` samples.
    """
    from synth.generate.plan import resolve_class_counts

    g = job.generate
    if g.inputs is not None:
        return job_inputs(job)[1]
    if not job.model.capabilities().takes_class:
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


def job_inputs(job: Job):
    """``generate.inputs`` of the job: (the InputSet, the per-class sample counts, the class names; [] for
    unlabelled inputs). Every input makes ``per_input`` samples of ``augment.copies`` copies each; an
    explicit ``generate.count`` takes the first inputs only."""
    from dataclasses import replace

    from synth.generate.inputs import open_inputs

    g = job.generate
    inputs = open_inputs(g.inputs, job.data.resolution, job.data.channels)
    each = g.inputs.per_input * job.augment.copies
    if "count" in g.model_fields_set:
        if g.count % each:
            raise SynthError(
                f"generate.count: {g.count:,} is not a multiple of generate.inputs.per_input x augment.copies ({each})"
            )
        if g.count > inputs.count * each:
            raise SynthError(
                f"generate.count: {g.count:,}, but the {inputs.count:,} inputs make at most {inputs.count * each:,} "
                "samples (generate.inputs.per_input x augment.copies each)"
            )
        inputs = replace(inputs, count=g.count // each)
    counts = inputs.class_counts()
    if inputs.class_names and int(counts.sum()) == inputs.count:
        return inputs, tuple(int(c) * each for c in counts), list(inputs.class_names)
    return inputs, (inputs.count * each,), []


def sampling_of(job: Job):
    """The job's generation-time sampling settings: its family's section (``generate.sampling``)."""
    return job.generate.sampling


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
    names = list(meta["class_names"]) if job.model.capabilities().takes_class else []  # []: unlabelled, no .cls
    g = job.generate
    if g.inputs is not None:  # each sample keeps its input's class
        inputs, counts, names = job_inputs(job)
        plan = Plan(counts, g.shard_size, job.seed, job.output.name, job.augment.copies, inputs, g.inputs.per_input)
    else:
        plan = Plan(class_counts(job, names, data), g.shard_size, job.seed, job.output.name, job.augment.copies)
    encoding = Encoding(g.format, g.png_compression, g.quality, g.lossless, g.resolution, g.resize_filter)
    ref = GeneratorRef(job.model.name, mcfg, meta["digest"])
    sampling = sampling_of(job)
    record = ref.family.sampling_record(sampling)
    judge = judge_file(job, names, data) if g.filter is not None else None
    plan_digest = digest(
        {
            "plan": plan.identity(),
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


def run_generate(job: Job, out: Path) -> GenerateResult:
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
    result = GenerateResult(
        count=plan.count,
        class_counts=list(plan.class_counts),
        copies=plan.copies,
        shards=plan.num_shards,
        bytes=summary["bytes"],
        generated=made,
        skipped_shards=done["skipped"],
        features_for_report=done["features"],
        nodes=len(this_run),  # the nodes that wrote shards in this run
        seconds=seconds,
        images_per_s=made / seconds if made else 0.0,
        location=store.where(),
        manifest=store.where(MANIFEST_FILE),
        worker_peak_rss_mb=round(done["worker_peak_rss_mb"], 1),
        driver_peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    )
    write_generation_card(job, out, store, result, made_by)
    return result


def write_generation_card(job: Job, out: Path, store, made: GenerateResult, planned: GenerationPlan) -> None:
    """The dataset card (synth.datacard) beside the shards, as generation leaves them (no figures yet)."""
    from synth.datacard import generation_card, read_card, write_card
    from synth.report import load_summaries
    from synth.train import checkpoint as ckpt

    meta = json.loads((checkpoints(out) / ckpt.GENERATOR_META).read_text())
    data = load_summaries(out).get("train", {}).get("data")
    card = generation_card(job, made.to_json(), meta, planned.digest, planned.names, data, planned.judge)
    before = read_card(store)
    if before and before.get("drawing", {}).get("plan_digest") == planned.digest:  # the same samples: still judged
        card.update(evaluation=before.get("evaluation"), limitations=before.get("limitations", []))
    write_card(store, card)


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
