"""Classification Accuracy Score of a finished run: does its synthetic dataset train a classifier?

Trains the same classifier (synth.metrics.cas: ResNet-8 by default, or the 4-layer SmallCNN with
--network cnn; AdamW one-cycle, random 2-pixel shifts, same seed and epochs) three times: on the
run's generated images, on as many real training images, and on both; tests each on the source's
real test split (Fashion-MNIST: its 10,000 test images, never seen by the generative model).
Prints the accuracies, the gap and the ratio. The report (synth evaluate) runs the same protocol
on ``evaluate.cas_samples`` images; this script runs it on all of them, with more epochs.

Usage: .venv/bin/python bench/cas.py JOB.yaml --out RUN_DIR [--epochs 10] [--network cnn] [--no-mixed] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from synth.data import load_dataset, load_test_dataset
from synth.metrics.cas import NETWORKS, cas_images_seen, classification_accuracy_score
from synth.metrics.evaluate import read_generated
from synth.pipeline import dataset_store
from synth.progress import Progress
from synth.spec import load_job


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("job", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="the run's --out folder")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--limit", type=int, default=None, help="use N generated images, as many from the head of every shard (default: all)")
    ap.add_argument("--seed", type=int, default=None, help="the classifiers' seed (default: the job's)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--network", choices=sorted(NETWORKS), default="resnet", help="the classifier (default: resnet)")
    ap.add_argument("--no-mixed", action="store_true", help="skip the classifier trained on real plus generated images")
    args = ap.parse_args()
    job = load_job(args.job, [])
    test = load_test_dataset(job.data)
    if test is None:
        raise SystemExit(f"data.source {job.data.source!r} has no real test split to score on")
    real = load_dataset(job.data, job.seed)
    made = read_generated(dataset_store(job, args.out), args.limit or job.generate.count)
    fake = (made.images, made.labels)
    n = len(fake[1])
    if n < len(real):  # the baseline trains on as many real images as there are generated ones
        keep = np.sort(np.random.default_rng(job.seed).permutation(len(real))[:n])
        real_xy = (real.images[keep], real.labels[keep])
    else:
        real_xy = (real.images, real.labels)
    seed = job.seed if args.seed is None else args.seed
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {n:,} generated, "
          f"{len(real_xy[1]):,} real training, {len(test):,} real test images; "
          f"{args.epochs} epochs, seed {seed}")  # fmt: skip
    t0 = time.perf_counter()
    total = cas_images_seen(n, len(real_xy[1]), args.epochs, mixed=not args.no_mixed)
    with Progress("CAS classifiers", total, "img") as bar:
        result = classification_accuracy_score(
            fake, real_xy, (test.images, test.labels), test.num_classes, args.epochs, seed, bar.update,
            network=args.network, mixed=not args.no_mixed,
        )
    seconds = time.perf_counter() - t0
    print(f"\n{'trained on':22s} {'test accuracy':>14s}")
    print(f"{'generated (CAS)':22s} {100 * result.synthetic.accuracy:13.2f}%")
    print(f"{'real (baseline)':22s} {100 * result.real.accuracy:13.2f}%")
    if result.real_plus_synthetic is not None:
        print(f"{'real + generated':22s} {100 * result.real_plus_synthetic.accuracy:13.2f}%")
    print(f"gap {100 * result.gap:.2f} points; CAS / baseline = {result.synthetic.accuracy / result.real.accuracy:.3f}; "
          f"{seconds:.0f} s")  # fmt: skip
    print("per class (generated / real):")
    for name, s, r in zip(test.class_names, result.synthetic.per_class, result.real.per_class):
        print(f"  {name:12s} {100 * s:6.1f}% {100 * r:6.1f}%")
    if args.json:
        figures = {**result.to_dict(), "run": str(args.out), "seed": seed, "seconds": seconds}
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
