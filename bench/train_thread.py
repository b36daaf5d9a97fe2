"""A training step in a thread, as Ray Train runs it, against the same step in the main thread.

Ray Train calls the training function in a thread of its worker process. This runs the plain loop
of bench/train_overhead.py (no Accelerate, no Ray) three ways, each in a fresh interpreter, rounds
alternated: in the main thread (the baseline), in a second thread, and in a second thread after
synth.memtune.keep_freed_memory() (what the Ray Train worker now does). Prints medians of images/s
and of the page faults each run took.

Usage: .venv/bin/python bench/train_thread.py [--member dcgan_cond] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CHILD = """
import resource, sys, threading
sys.path.insert(0, {bench!r})
import torch
from synth.memtune import keep_freed_memory
from synth.spec import load_job
from train_overhead import MEMBERS, plain
member, way = sys.argv[1], sys.argv[2]
job_file, steps = MEMBERS[member]
job = load_job({jobs!r} + "/" + job_file, [f"train.steps={{steps}}"])
if way == "thread, keep_freed_memory":
    keep_freed_memory()
found = {{}}
run = lambda: found.update(rate=plain(job, steps, steps // 6))
if way == "main thread":
    run()
else:
    t = threading.Thread(target=run); t.start(); t.join()
print(found["rate"], resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
"""
WAYS = ("main thread", "thread", "thread, keep_freed_memory")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--member", default="dcgan_cond")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    code = CHILD.format(bench=str(ROOT), jobs=str(ROOT.parent / "jobs"))
    found: dict[str, list[tuple[float, int]]] = {w: [] for w in WAYS}
    for _ in range(args.repeats):
        for way in WAYS:
            out = subprocess.run(
                [sys.executable, "-c", code, args.member, way], capture_output=True, text=True, check=False
            )
            if out.returncode:
                raise SystemExit(out.stderr[-2000:])
            rate, faults = out.stdout.split()[-2:]
            found[way].append((float(rate), int(faults)))
            print(f"{way:28s} {float(rate):8,.0f} img/s {int(faults):10,d} page faults", flush=True)
    base = statistics.median(r for r, _ in found["main thread"])
    print(f"\n{args.member}: medians of {args.repeats}")
    for way, runs in found.items():
        rate = statistics.median(r for r, _ in runs)
        print(
            f"{way:28s} {rate:8,.0f} img/s  x main {rate / base:.3f}  {statistics.median(f for _, f in runs):10,.0f} page faults"
        )


if __name__ == "__main__":
    main()
