"""Training: what our stack costs. Images/s of the same training step three ways, per family:

  plain        a plain PyTorch loop in this process: the family's nets, optimisers and train_step
               (the same step function, channels-last, the same EMA update), loss.backward(), no
               Accelerate, no Ray, no logging or checkpoints (the baseline)
  accelerate   synth's training loop (synth.train.loop.train) in this process: Accelerate, the
               loss log, checkpoints; no Ray
  ray train    `synth train` through the CLI: the same loop in a 1-worker Ray Train TorchTrainer on
               an embedded Ray, given the machine's CPUs (what a user runs)

Each rate counts the steps after the first logged interval (start-up excluded), on the MNIST subset
at 28x28 with each member's job sizes, torch on all cores. The overhead target is 10%.

--threads N trains on N torch threads in every path (Ray Train: resources.train_cpus=N). With fewer
threads than cores, Ray's own processes (its daemons, the dashboard, Ray Train's controller and
helper actors) get a core of their own instead of interrupting the training threads, which splits
the overhead into what our stack costs per step and what sharing the cores with Ray costs.

Usage: scripts/loopback.sh .venv/bin/python bench/train_overhead.py [--members dcgan_cond,cvae,ddpm_cond,wgan_gp]
       [--repeats N] [--skip-accelerate] [--threads N]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = {  # name: (job file, steps)
    "dcgan_cond": ("quickstart.yaml", 240),
    "cvae": ("mnist-cvae.yaml", 480),
    "ddpm_cond": ("mnist-ddpm-cond.yaml", 120),
    "wgan_gp": ("mnist-wgan-gp.yaml", 48),
}


def log_rate(path: Path, batch: int) -> float:
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    first, last = rows[0], rows[-1]
    return (int(last["step"]) - int(first["step"])) * batch / (float(last["elapsed_s"]) - float(first["elapsed_s"]))


def plain(job, steps: int, skip: int) -> float:
    from synth.data import load_dataset
    from synth.models import family_for
    from synth.models.common import EMA, from_uint8
    from synth.models.family import ImageShape, StepData
    from synth.train.loop import step_generator, step_indices

    data = load_dataset(job.data, job.seed)
    family = family_for(job.model.name)
    torch.manual_seed(job.seed)
    nets = family.build(job.model, ImageShape(job.data.resolution, job.data.channels, data.num_classes))
    nets = {k: v.to(memory_format=torch.channels_last) for k, v in nets.items()}
    opts = family.optimizers(nets, job.train)
    ema = EMA(nets[family.export_net], job.train.ema_decay, job.train.ema_start)
    labels = torch.from_numpy(data.labels)
    batch = job.train.batch_size
    for step in range(steps):
        if step == skip:
            t0 = time.perf_counter()

        def real(sub: int, step=step):
            idx = step_indices(job.seed, step, len(data), batch, sub)
            return from_uint8(data.images[idx]).contiguous(memory_format=torch.channels_last), labels[idx]

        family.train_step(
            nets,
            opts,
            StepData(real, step_generator(job.seed, step, 0, "cpu"), batch, data.num_classes, job.model),
            lambda loss: loss.backward(),
        )
        ema.update(nets[family.export_net], step)
    return (steps - skip) * batch / (time.perf_counter() - t0)


def accelerate_loop(job, tmp: Path) -> float:
    from synth.train.loop import train

    train(job, tmp, log_lines=False, use_gpu=False)
    return log_rate(tmp / "train_log.csv", job.train.batch_size)


def ray_train(job_file: Path, sets: list[str], tmp: Path, batch: int) -> float:
    cmd = [sys.executable, "-m", "synth.cli", "train", str(job_file), "--out", str(tmp)]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"synth train failed:\n{proc.stderr[-3000:]}")
    return log_rate(tmp / "train_log.csv", batch)


def main() -> None:
    from synth.spec import load_job

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", default=",".join(MEMBERS))
    ap.add_argument("--repeats", type=int, default=1, help="rounds of every path, alternated; medians are shown")
    ap.add_argument("--skip-accelerate", action="store_true", help="only the plain loop and Ray Train")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in every path (default: all cores)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    results = {}
    for name in args.members.split(","):
        job_file, steps = MEMBERS[name]
        log_every = steps // 6
        sets = [
            f"train.steps={steps}",
            f"train.log_every={log_every}",
            f"train.checkpoint_every={steps}",
            "train.num_workers=1",
        ] + ([f"resources.train_cpus={args.threads}"] if args.threads else [])
        job = load_job(ROOT / "jobs" / job_file, sets)
        runs: dict[str, list[float]] = {}
        for _ in range(args.repeats):  # alternated, so a slow minute of the machine hits every path
            runs.setdefault("plain", []).append(plain(job, steps, log_every))
            if not args.skip_accelerate:
                with tempfile.TemporaryDirectory() as tmp:
                    runs.setdefault("accelerate", []).append(accelerate_loop(job, Path(tmp)))
            with tempfile.TemporaryDirectory() as tmp:
                runs.setdefault("ray train", []).append(
                    ray_train(ROOT / "jobs" / job_file, sets, Path(tmp) / "out", job.train.batch_size)
                )
            print(f"{name}: " + ", ".join(f"{k} {v[-1]:,.0f} img/s" for k, v in runs.items()), flush=True)
        results[name] = rates = {k: statistics.median(v) for k, v in runs.items()}
        rates.setdefault("accelerate", float("nan"))
    print(
        f"\n{'model':12s} {'plain':>8s} {'accelerate':>11s} {'ray train':>10s} {'accel/plain':>12s} {'ray/plain':>10s} "
        f"{'overhead':>9s}"
    )
    for name, r in results.items():
        print(
            f"{name:12s} {r['plain']:8,.0f} {r['accelerate']:11,.0f} {r['ray train']:10,.0f} "
            f"{r['accelerate'] / r['plain']:12.2f} {r['ray train'] / r['plain']:10.2f} "
            f"{1 - r['ray train'] / r['plain']:9.1%}"
        )


if __name__ == "__main__":
    main()
