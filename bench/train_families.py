"""Training speed of every model family: images/s of synth's training loop, one plain process, no Ray.

Each member trains on the MNIST subset at 28x28, batch 64, with its job's sizes (width 64; the
diffusion job's width 32 too), for a few logged intervals; the rate counts the steps after the
first interval (start-up excluded). One process, so the members share the machine's state; the
ratio column is against dcgan_cond, the quickstart's model.

Usage: .venv/bin/python bench/train_families.py [--steps 60] [--members dcgan_cond,cvae]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from train_overhead import log_rate  # bench/ is on sys.path when a bench script runs

from synth.spec import load_job
from synth.train.loop import train

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = {  # name: (job file, extra overrides)
    "dcgan_cond": ("quickstart.yaml", []),
    "dcgan": ("quickstart.yaml", ["model.name=dcgan"]),
    "wgan_gp (n_critic 5)": ("mnist-wgan-gp.yaml", []),
    "cvae": ("mnist-cvae.yaml", []),
    "ddpm_cond width 32": ("mnist-ddpm-cond.yaml", []),
    "ddpm_cond width 64": ("mnist-ddpm-cond.yaml", ["model.width=64"]),
}


def rate(job_file: str, extra: list[str], steps: int, log_every: int) -> float:
    sets = [f"train.steps={steps}", f"train.log_every={log_every}", f"train.checkpoint_every={steps}", *extra]
    job = load_job(ROOT / "jobs" / job_file, sets)
    with tempfile.TemporaryDirectory() as tmp:
        train(job, tmp, log_lines=False)
        return log_rate(Path(tmp) / "train_log.csv", job.train.batch_size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--members", default=",".join(MEMBERS))
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rates = {}
    for name in args.members.split(","):
        job_file, extra = MEMBERS[name]
        steps = max(12, args.steps // 5) if name.startswith("ddpm_cond width 64") else args.steps
        rates[name] = rate(job_file, extra, steps, max(2, steps // 4))
        print(f"{name:24s} {rates[name]:8.0f} images/s", flush=True)
    base = rates.get("dcgan_cond")
    print(f"\n{'model':24s} {'images/s':>9s} {'x dcgan_cond':>13s}")
    for name, value in rates.items():
        print(f"{name:24s} {value:9.0f} {value / base if base else float('nan'):13.2f}")


if __name__ == "__main__":
    main()
