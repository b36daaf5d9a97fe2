"""What idle Ray actors cost a CPU training loop on a small machine.

Ray Train 2 runs every training job with a controller and helper actors (synchronisation, placement
group clean-up, datasets, autoscaling coordination), each its own process whose main thread wakes
about 100 times a second to check for signals. On 2 cores, those wake-ups land on the cores that
the training step's 2 OpenMP threads keep busy, and a descheduled thread holds up its whole team at
the next barrier. This measures that cost alone: the plain training loop of bench/train_overhead.py
(no Accelerate, no Ray Train) in the driver of an embedded Ray, with 0 and with K idle actors alive
(alternated, medians).

Usage: scripts/loopback.sh .venv/bin/python bench/train_interference.py [--member cvae] [--actors 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from train_overhead import MEMBERS, plain


def main() -> None:
    import ray
    import torch

    from synth import engine
    from synth.spec import load_job

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--member", default="cvae", choices=list(MEMBERS))
    ap.add_argument(
        "--actors",
        type=int,
        default=5,
        help="idle actors: as many as Ray Train 2 runs beside a lone worker "
        "(controller, synchronisation, placement-group cleaner, datasets, autoscaling)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    job_file, steps = MEMBERS[args.member]
    steps *= 2
    job = load_job(ROOT.parent / "jobs" / job_file, [f"train.steps={steps}"])
    rates: dict[int, list[float]] = {0: [], args.actors: []}
    with engine.ray_session(None):

        @ray.remote(num_cpus=0)
        class Idle:
            def ping(self) -> int:
                return 1

        torch.set_num_threads(2)
        for _ in range(args.repeats):
            for k, rate in rates.items():
                actors = [Idle.remote() for _ in range(k)]
                ray.get([a.ping.remote() for a in actors])
                time.sleep(2)
                rate.append(plain(job, steps, steps // 10))
                for a in actors:
                    ray.kill(a)
                time.sleep(2)
                print(f"{k} idle actors: {rate[-1]:,.0f} img/s", flush=True)
    base = statistics.median(rates[0])
    for k, values in rates.items():
        med = statistics.median(values)
        print(
            f"{args.member}, {k} idle actors: median {med:,.0f} img/s, x none {med / base:.3f}  "
            f"(runs: {', '.join(f'{v:,.0f}' for v in values)})"
        )


if __name__ == "__main__":
    main()
