"""Start-up: time from `synth run` to the first training step, and to the first shard written.

Runs a small `synth run jobs/quickstart.yaml` (30 training steps, 2,000 images in 4 shards, no
Inception, no CAS) as a child process and watches its output folder, every 20 ms: the first row
of train_log.csv (with train.log_every=1 it is written after step 1) and the first
shards/*.tar (a shard appears under its final name only when whole). Baselines measured in the
same run, each a fresh interpreter: `import torch`; `import ray; ray.init(); ray.shutdown()` (an
embedded Ray, started and stopped); `synth --help` (the CLI's own imports). Each figure is the
median of --repeats runs.

Usage: scripts/loopback.sh .venv/bin/python bench/startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETS = [
    "train.steps=30",
    "train.log_every=1",
    "train.checkpoint_every=30",
    "generate.count=2000",
    "generate.shard_size=500",
    "evaluate.inception=false",
    "evaluate.cas=false",
    "evaluate.num_samples=200",
    "evaluate.classifier_epochs=1",
]


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def synth_run(out: Path) -> dict[str, float]:
    cmd = [sys.executable, "-m", "synth.cli", "run", str(ROOT / "jobs" / "quickstart.yaml"), "--out", str(out)]
    for s in SETS:
        cmd += ["--set", s]
    marks: dict[str, float] = {}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log, shards = out / "train_log.csv", out / "shards"
    while proc.poll() is None:
        now = time.perf_counter() - t0
        if "first step" not in marks and log.is_file() and len(log.read_text().splitlines()) >= 2:
            marks["first step"] = now
        if "first shard" not in marks and shards.is_dir() and any(shards.glob("*.tar")):
            marks["first shard"] = now
        time.sleep(0.02)
    marks["whole run"] = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"synth run failed:\n{proc.stderr.read()[-3000:]}")
    return marks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    py = sys.executable
    runs: dict[str, list[float]] = {}
    for i in range(args.repeats):
        runs.setdefault("python: import torch", []).append(timed([py, "-c", "import torch"]))
        runs.setdefault("python: import ray; ray.init(); ray.shutdown()", []).append(
            timed(
                [py, "-c", "import ray; ray.init(include_dashboard=True, dashboard_host='127.0.0.1'); ray.shutdown()"]
            )
        )
        runs.setdefault("synth --help", []).append(timed([py, "-m", "synth.cli", "--help"]))
        with tempfile.TemporaryDirectory(prefix="synth-bench-startup-") as tmp:
            for name, value in synth_run(Path(tmp) / "out").items():
                runs.setdefault(f"synth run: {name}", []).append(value)
        print(f"repeat {i + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in runs.items()), flush=True)
    base = statistics.median(runs["python: import ray; ray.init(); ray.shutdown()"])
    print(f"\n{'measure (median of ' + str(args.repeats) + ')':58s} {'seconds':>8s} {'x Ray start':>11s}")
    for name, values in runs.items():
        median = statistics.median(values)
        print(f"{name:58s} {median:8.1f} {median / base:11.2f}")


if __name__ == "__main__":
    main()
