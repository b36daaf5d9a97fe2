"""Training: what sharing the cores with the rest of Ray costs a `synth train` run.

Starts `synth train jobs/quickstart.yaml` (an embedded Ray, 1 worker on all cores) and, once it
trains, alternates windows of equal length over its Ray's other processes (the driver, GCS, raylet,
dashboard and agents, Ray Train's controller and helper actors: every process the run started
except the Ray Train worker):

  running   left alone (the baseline, between every two other windows)
  paused    stopped with SIGSTOP, so the worker has the cores to itself
  batch     their threads under SCHED_BATCH: they still run, but no longer preempt on waking
  idle      their threads under SCHED_IDLE: they run only where a core would otherwise idle

Prints each window's training rate (from the loss log, its first second left out), the median per
kind of window against the running ones, and where the CPU went in the running windows. A paused
window's rate is what the worker trains at when the rest of Ray costs nothing; compare it with the
plain loop of bench/train_overhead.py.

Usage: scripts/loopback.sh .venv/bin/python bench/train_contention.py [--cycles 3] [--window 20]
       [--kinds paused,batch,idle]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

from train_cpu_share import processes, start_training  # bench/ is on sys.path when a bench script runs

POLICY = {"batch": os.SCHED_BATCH, "idle": os.SCHED_IDLE}


def run_tree(root: int) -> tuple[list[int], int]:
    """The processes descending from ``root`` (itself included) but the Ray Train worker, and the worker."""
    procs = processes()
    tree, frontier = [root], [root]
    while frontier:
        children = [p for p, (ppid, _, _) in procs.items() if ppid in frontier]
        tree += children
        frontier = children
    workers = [p for p in tree if procs.get(p, (0, 0, ""))[2].startswith("ray::RayTrainWorker")]
    if len(workers) != 1:
        raise SystemExit(f"expected one Ray Train worker under pid {root}, found {len(workers)}")
    return [p for p in tree if p != workers[0]], workers[0]


def apply(kind: str, pids: list[int], on: bool) -> None:
    if kind == "paused":
        for pid in pids:
            os.kill(pid, signal.SIGSTOP if on else signal.SIGCONT)
        return
    for pid in pids:
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in threads:
            try:
                os.sched_setscheduler(int(tid), POLICY[kind] if on else os.SCHED_OTHER, os.sched_param(0))
            except OSError:
                pass  # a thread that ended meanwhile


def short(cmd: str) -> str:
    """A command line as a person names it: ray::Actor, gcs_server, dashboard.py, synth.cli."""
    words = cmd.split()
    if "-m" in words[:-1]:  # python -m synth.cli: the module
        return words[words.index("-m") + 1]
    script = next((w for w in words if w.endswith(".py")), words[0] if words else "?")
    return os.path.basename(script) if not script.startswith("ray::") else script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=3, help="rounds over the kinds of window")
    ap.add_argument("--window", type=float, default=20.0, help="seconds per window")
    ap.add_argument("--kinds", default="paused,batch,idle")
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    steps = int((2 * len(kinds) * args.cycles + 2) * args.window * 25)  # more than the run needs at 25 steps/s
    out = Path(tempfile.mkdtemp(prefix="synth-bench-contention-")) / "out"
    proc, log = start_training(out, [f"train.steps={steps}", "train.log_every=20", f"train.checkpoint_every={steps}"])
    with open(log) as fh:
        rows = list(csv.DictReader(fh))
    start = log.stat().st_mtime - float(rows[-1]["elapsed_s"])  # wall clock of the log's elapsed_s = 0
    others, worker = run_tree(proc.pid)
    windows: list[tuple[str, float, float]] = []
    ticks: dict[int, int] = {}
    names: dict[int, str] = {}
    busy = 0.0

    def window(kind: str) -> None:
        nonlocal busy
        before = processes()
        t0 = time.time()
        if kind != "running":
            apply(kind, others, True)
        time.sleep(args.window)
        if kind != "running":
            apply(kind, others, False)
        t1 = time.time()
        windows.append((kind, t0 - start, t1 - start))
        if kind == "running":
            after = processes()
            names.update({pid: cmd for pid, (_, _, cmd) in after.items()})
            for pid in after.keys() & before.keys():
                ticks[pid] = ticks.get(pid, 0) + after[pid][1] - before[pid][1]
            busy += t1 - t0
        print(f"{kind:8s} {t0 - start:6.1f}-{t1 - start:6.1f} s", flush=True)

    try:
        window("running")
        for _ in range(args.cycles):
            for kind in kinds:
                window(kind)
                window("running")
        time.sleep(3)  # the loss log's next rows, past the last window
    finally:
        apply("paused", others, False)
        proc.send_signal(signal.SIGINT)
        proc.wait()
    with open(log) as fh:
        logged = [(float(r["elapsed_s"]), int(r["step"])) for r in csv.DictReader(fh)]

    def step_at(t: float) -> float:
        for (t1, s1), (t2, s2) in itertools.pairwise(logged):
            if t1 <= t <= t2:
                return s1 + (s2 - s1) * (t - t1) / (t2 - t1)
        raise SystemExit(f"the loss log does not cover {t:.1f} s")

    rates: dict[str, list[float]] = {}
    for kind, a, b in windows:
        rates.setdefault(kind, []).append((step_at(b) - step_at(a + 1)) * 64 / (b - a - 1))
    base = statistics.median(rates["running"])
    print(f"\n{'window':9s} {'median img/s':>13s} {'x running':>10s}  rates")
    for kind, values in rates.items():
        print(
            f"{kind:9s} {statistics.median(values):13,.0f} {statistics.median(values) / base:10.3f}  "
            + ", ".join(f"{v:,.0f}" for v in values)
        )
    tick = os.sysconf("SC_CLK_TCK")
    share = {p: t / tick / busy for p, t in ticks.items() if p in others or p == worker}
    print(f"\nCPU in the running windows ({busy:.0f} s), in cores:")
    print(f"{share.get(worker, 0):5.2f}  the Ray Train worker")
    print(f"{sum(v for p, v in share.items() if p != worker):5.2f}  the run's {len(others)} other processes, busiest:")
    for pid in sorted(others, key=lambda p: -share.get(p, 0))[:8]:
        print(f"{share.get(pid, 0):5.3f}  {short(names.get(pid, '?'))}")


if __name__ == "__main__":
    main()
