"""Generation speed for each model family at 28x28 and 64x64: bench/generate.py once per case.

For each family (the GAN of jobs/quickstart.yaml, the VAE of jobs/mnist-cvae.yaml, the diffusion
model of jobs/mnist-ddpm-cond.yaml, each with its job's sampling settings: DDIM 25 steps at guidance
2 for diffusion) and each resolution, it trains the job's model briefly in this process (speed does
not depend on how well a model is trained; PNG sizes do a little, since a half-trained model draws
blurrier images), then runs bench/generate.py on it in a child process: raw sampling, raw
encode+write, `synth generate` with 1 and 2 tasks, Ray Data, and the two naive loops, all in that
child's one run, so each row's ratios compare like with like. Counts are sized per family so each
case takes a few minutes on 2 cores (diffusion costs 50 U-Net passes an image).

Usage: scripts/loopback.sh .venv/bin/python bench/generate_families.py [--families gan,vae,diffusion]
       [--resolutions 28,64] [--steps 100] [--compile]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOBS = {"gan": "quickstart.yaml", "vae": "mnist-cvae.yaml", "diffusion": "mnist-ddpm-cond.yaml"}
# (count, shard size, naive count) per family and resolution: a few minutes a case on 2 cores. Shards
# are multiples of 64 images: the generator runs on 64 rows at a time (worker.FORWARD_ROWS, for
# bytes that do not depend on the batching) and pads a shard's last forward, which for a
# diffusion model costs as much as real rows (shards of 40 ran at 40/64 of the speed).
SIZES = {
    ("gan", 28): (20_000, 2_048, 2_000),
    ("gan", 64): (5_120, 512, 512),
    ("vae", 28): (20_000, 2_048, 2_000),
    ("vae", 64): (5_120, 512, 512),
    ("diffusion", 28): (384, 64, 64),
    ("diffusion", 64): (128, 64, 16),
}
ROW = re.compile(r"^(.+?)\s{2,}([\d,.]+)\s+([\d.]+)\s+([\d.]+)$")


def train_case(family: str, res: int, steps: int, out: Path) -> None:
    from synth.spec import load_job
    from synth.stages.outdir import claim_out_dir
    from synth.train.loop import train

    job = load_job(
        ROOT / "jobs" / JOBS[family],
        [
            f"data.resolution={res}",
            f"train.steps={steps}",
            "train.ema_start=0",
            f"train.checkpoint_every={steps}",
            "data.limit=2000",
        ],
    )
    t0 = time.perf_counter()
    train(job, out, log_lines=False, use_gpu=False)
    claim_out_dir(out, job)
    print(f"[{family} {res}x{res}] trained {steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)


def measure(family: str, res: int, run: Path, compile: bool = False) -> dict[str, float]:
    count, shard, naive = SIZES[(family, res)]
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "generate.py"),
        "--run",
        str(run),
        "--job",
        str(ROOT / "jobs" / JOBS[family]),
        "--count",
        str(count),
        "--shard-size",
        str(shard),
        "--batch-size",
        str(min(256, shard)),
        "--naive-count",
        str(naive),
    ] + (["--compile"] if compile else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{family} {res}: bench/generate.py failed:\n{proc.stderr[-3000:]}")
    rows = {}
    for line in proc.stdout.splitlines():
        m = ROW.match(line.strip())
        if m:
            rows[m.group(1).strip()] = float(m.group(2).replace(",", ""))
    print(f"[{family} {res}x{res}] {count:,} images, {time.perf_counter() - t0:.0f} s\n{proc.stdout}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", default="gan,vae,diffusion")
    ap.add_argument("--resolutions", default="28,64")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument(
        "--compile", action="store_true", help="generate.compile in every path (bench/generate.py --compile)"
    )
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="synth-bench-families-") as tmp:
        for family in args.families.split(","):
            for res in (int(r) for r in args.resolutions.split(",")):
                run = Path(tmp) / f"{family}-{res}"
                train_case(family, res, args.steps, run)
                results.append((family, res, measure(family, res, run, args.compile)))
    print(
        f"\n{'family':10s} {'size':>5s} {'limit':>8s} {'synth':>8s} {'/limit':>7s} {'/CPU bound':>10s} {'1->2':>6s} "
        f"{'x naive':>8s} {'x naive-b':>9s} {'x ray-data':>10s}"
    )
    for family, res, r in results:
        sampling, encode = r["raw sampling"], r["raw encode+write"]
        limit, bound = min(sampling, encode), 1 / (1 / sampling + 1 / encode)
        synth, one = r["synth generate, 2 worker(s)"], r["synth generate, 1 worker(s)"]
        print(
            f"{family:10s} {res:5d} {limit:8,.0f} {synth:8,.0f} {synth / limit:7.2f} {synth / bound:10.2f} "
            f"{synth / one:6.2f} {synth / r['naive: per image forward + PNG file']:8.2f} "
            f"{synth / r['naive-batch: batched forward + PNG file']:9.2f} "
            f"{synth / r['ray-data map_batches + write_webdataset']:10.2f}"
        )


if __name__ == "__main__":
    main()
