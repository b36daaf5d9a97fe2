"""``synth evaluate``: judge the job's shards (or any images) against the real data, write the report."""

from __future__ import annotations

from pathlib import Path

from synth.layout import REPORT_HTML, dataset_store
from synth.spec import Job
from synth.stages.outdir import check_out_dir, check_report_dir
from synth.stages.results import EvaluateResult


def run_evaluate(job: Job, out: Path, generated: Path | None = None, ray_ready=None) -> EvaluateResult:
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
    return EvaluateResult(figures, out / REPORT_HTML)


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
