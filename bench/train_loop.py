"""Images/s of synth's own training loop (synth.train.loop.train) in one plain process, no Ray.

Usage: python bench/train_loop.py [--steps 300]. Trains the quickstart model on the MNIST subset
into a temporary folder and prints the rate over the steps after the first log interval.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

from synth.spec import load_job
from synth.train.loop import train

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    job = load_job(ROOT / "jobs/quickstart.yaml", [f"train.steps={args.steps}", "train.log_every=100"])
    with tempfile.TemporaryDirectory() as tmp:
        train(job, tmp, log_lines=False)
        with open(Path(tmp) / "train_log.csv") as fh:
            rows = list(csv.DictReader(fh))
    first, last = rows[0], rows[-1]
    steps = int(last["step"]) - int(first["step"])
    seconds = float(last["elapsed_s"]) - float(first["elapsed_s"])
    print(f"plain loop: {steps} steps in {seconds:.1f} s, {steps * job.train.batch_size / seconds:.0f} img/s "
          f"(batch {job.train.batch_size})")


if __name__ == "__main__":
    main()
