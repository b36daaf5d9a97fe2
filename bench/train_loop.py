"""Images/s of synth's own training loop (synth.train.loop.train) in one plain process, no Ray.

Usage: python bench/train_loop.py [--steps 300]. Trains the quickstart model on the MNIST subset
into a temporary folder and prints the rate over the steps after the first log interval
(bench/train_families.py does the same for every model family).
"""

from __future__ import annotations

import argparse

from train_families import rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    print(f"plain loop, quickstart model: {rate('quickstart.yaml', [], args.steps, 100):.0f} img/s (batch 64)")


if __name__ == "__main__":
    main()
