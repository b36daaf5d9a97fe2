"""Generation memory: peak memory of `synth generate` for 10k, 100k and 1M images.

Each count is a real `synth generate` run (a fresh CLI process with its own embedded Ray) from the
same trained generator. While it runs, every process of its session (the driver, Ray's raylet, GCS
and dashboard, the shard workers) is sampled once a second. Printed per count:

  driver peak RSS     the CLI process (ru_maxrss, as `synth generate` reports it)
  worker peak RSS     the largest peak of any shard worker process (ru_maxrss, reported per shard)
  tree peak PSS       the largest sum, over one sample, of the proportional set size of every
                      process in the session (shared pages counted once)
and the ratio of each to the smallest count's. Flat means the ratios stay near 1.00.

Usage:
  scripts/loopback.sh .venv/bin/python bench/generate_memory.py --run runs/quickstart
  scripts/loopback.sh .venv/bin/python bench/generate_memory.py --run runs/quickstart --counts 10000,100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def session_pss_mb(sid: int) -> float:
    total = 0
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid:
                total += proc.memory_full_info().pss
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return total / 2**20


def run_one(args, count: int, tmp: Path) -> dict:
    out = tmp / f"out-{count}"
    (out / "checkpoints").mkdir(parents=True)
    for name in ("generator.safetensors", "generator.json"):
        shutil.copy(args.run / "checkpoints" / name, out / "checkpoints" / name)
    shutil.copytree(
        args.run / ".synth", out / ".synth", ignore=shutil.ignore_patterns("parts", "ray_train", "features")
    )
    job = json.loads((args.run / ".synth" / "job.json").read_text())["job"]
    sets = [
        f"seed={job['seed']}",
        f"output.name={job['output']['name']}",
        f"model.width={job['model']['width']}",
        f"model.latent_dim={job['model']['latent_dim']}",
        f"generate.count={count}",
        f"generate.shard_size={args.shard_size}",
        f"generate.format={args.format}",
        "evaluate.features_at_generation=false",
    ]  # generation alone
    cmd = [sys.executable, "-m", "synth.cli", "generate", str(args.job), "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    peak = {"pss": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            peak["pss"] = max(peak["pss"], session_pss_mb(proc.pid))

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    _stdout, stderr = proc.communicate()
    stop.set()
    watcher.join()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"synth generate --count {count} failed:\n{stderr[-3000:]}")
    from synth.report import SUMMARIES

    summary = json.loads((out / SUMMARIES["generate"]).read_text())
    shutil.rmtree(out, ignore_errors=True)
    return {
        "count": count,
        "seconds": seconds,
        "driver": summary["driver_peak_rss_mb"],
        "worker": summary["worker_peak_rss_mb"],
        "tree_pss": peak["pss"],
        "images_per_s": summary["images_per_s"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "quickstart")
    ap.add_argument("--job", type=Path, default=ROOT / "jobs" / "quickstart.yaml")
    ap.add_argument("--counts", default="10000,100000,1000000")
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--format", default="png")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="synth-bench-mem-"))
    rows = []
    try:
        for count in (int(c) for c in args.counts.split(",")):
            rows.append(run_one(args, count, tmp))
            r = rows[-1]
            print(f"done {count:,}: {r['seconds']:.0f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows[0]
    print(
        f"\n{'images':>10s} {'wall s':>7s} {'img/s':>7s} {'driver MB':>10s} {'worker MB':>10s} {'tree PSS MB':>12s}"
        f"  ratios to {base['count']:,} (driver, worker, tree)"
    )
    for r in rows:
        print(
            f"{r['count']:10,d} {r['seconds']:7.0f} {r['images_per_s']:7,.0f} {r['driver']:10.0f} {r['worker']:10.0f} "
            f"{r['tree_pss']:12.0f}  {r['driver'] / base['driver']:.2f} {r['worker'] / base['worker']:.2f} "
            f"{r['tree_pss'] / base['tree_pss']:.2f}"
        )


if __name__ == "__main__":
    main()
