"""The Inception feature pass: in one process, as Ray tasks, and inside the generation workers.

All in one process on one embedded Ray (2 CPUs here), one stage after the other:

  local        the evaluating process runs InceptionFeatures over N images (torch on every core):
               what `synth evaluate` did before the pass was sharded, and the baseline of the ratios
  ray          synth.stages.evaluate.ray_feature_pass: tasks of --chunk images, as many at once as Ray has
               CPUs, the weights through the object store. Timed twice: cold (the workers load the
               network) and warm
  generation   `synth generate` (synth.stages.generate.run_generate) on a trained generator, with and
               without evaluate.features_at_generation: the difference is what computing the judged
               samples' features in the generation workers costs there; evaluation then reads them
               (timed: synth.metrics.features.stored_features) instead of running the network

Prints images/s of each, the ratio against local, and checks the sharded features equal the local ones.

Usage (the generation part needs a trained generator, e.g. the quickstart's):
  scripts/loopback.sh .venv/bin/python bench/features.py --n 1000 --run runs/quickstart
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="images in each pass (and judged samples at generation)")
    ap.add_argument("--chunk", type=int, default=None, help="images per Ray task (default: features.CHUNK)")
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "quickstart", help="a job output with checkpoints/")
    ap.add_argument("--count", type=int, default=10_000, help="images generated in the generation stage")
    ap.add_argument("--shard-size", type=int, default=1_000)
    ap.add_argument("--skip-generation", action="store_true")
    args = ap.parse_args()

    import torch

    from synth import engine
    from synth.data import load_dataset
    from synth.metrics.features import CHUNK, extractor
    from synth.spec import DataSpec
    from synth.stages.evaluate import ray_feature_pass

    images = load_dataset(DataSpec(source="mnist_subset"), 0).images[: args.n]
    net = extractor()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads here; {len(images):,} images "
        f"{images.shape[1]}x{images.shape[2]}, chunk {args.chunk or CHUNK}"
    )
    rows: dict[str, float] = {}
    t0 = time.perf_counter()
    local = net(images)
    rows["local (this process)"] = len(images) / (time.perf_counter() - t0)
    print(f"local: {rows['local (this process)']:.2f} images/s", flush=True)
    with engine.ray_session(None):
        run = ray_feature_pass(net, chunk=args.chunk)
        print(f"Ray: {engine.cluster_cpus()} CPUs")
        for label in ("ray tasks, cold (workers load the network)", "ray tasks, warm"):
            t0 = time.perf_counter()
            sharded = run(images)
            rows[label] = len(images) / (time.perf_counter() - t0)
            print(f"{label}: {rows[label]:.2f} images/s", flush=True)
        diff = float(np.abs(sharded - local).max() / np.abs(local).max())
        print(f"sharded vs local features: max difference {diff:.1e} of the largest feature")
        if not args.skip_generation:
            rows.update(generation(args))
    base = rows["local (this process)"]
    for label, value in rows.items():
        print(f"  {label:<58} {value:10.2f} images/s   x{value / base:.2f} local" if value else f"  {label}")


def generation(args) -> dict[str, float]:
    """`synth generate` with and without the judged samples' features, and evaluation's read of them."""
    from synth.layout import dataset_store
    from synth.metrics.evaluate import read_generated
    from synth.metrics.features import extractor, feature_key, stored_features
    from synth.spec import load_job
    from synth.stages.generate import run_generate
    from synth.stages.outdir import claim_out_dir

    src = args.run / "checkpoints"
    if not (src / "generator.safetensors").is_file():
        raise SystemExit(f"{src}: no generator.safetensors; run the quickstart first (or pass --run)")
    saved = json.loads((args.run / ".synth" / "job.json").read_text())["job"]
    tmp = Path(tempfile.mkdtemp(prefix="synth-bench-features-"))
    rows, seconds = {}, {}
    for features in (False, True):
        out = tmp / f"out-{features}"
        (out / "checkpoints").mkdir(parents=True)
        for name in ("generator.safetensors", "generator.json"):
            shutil.copy(src / name, out / "checkpoints" / name)
        sets = [
            f"seed={saved['seed']}",
            f"output.name={saved['output']['name']}",
            f"model.latent_dim={saved['model']['latent_dim']}",
            f"model.width={saved['model']['width']}",
            f"generate.count={args.count}",
            f"generate.shard_size={args.shard_size}",
            f"evaluate.num_samples={args.n}",
            f"evaluate.features_at_generation={str(features).lower()}",
        ]
        job = load_job(ROOT / "jobs" / "quickstart.yaml", sets)
        claim_out_dir(out, job)
        t0 = time.perf_counter()
        run_generate(job, out)
        seconds[features] = time.perf_counter() - t0
        print(
            f"synth generate, {args.count:,} images, features of {args.n:,} at generation {features}: "
            f"{seconds[features]:.1f} s"
        )
    store = dataset_store(job, out)
    t0 = time.perf_counter()
    gen = read_generated(store, args.n)
    per_shard, _ = stored_features(store, gen.shards, feature_key(extractor(), 28, 1))
    found = np.concatenate(list(per_shard.values()))
    read_s = time.perf_counter() - t0
    assert not np.isnan(found).any(), "some judged samples have no stored features"
    extra = seconds[True] - seconds[False]
    print(f"evaluation's read of {args.n:,} samples and their stored features: {read_s:.2f} s")
    rows[f"features in the generation workers (extra generate time, {args.n:,} images)"] = args.n / extra
    shutil.rmtree(tmp, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main()
