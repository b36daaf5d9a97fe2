"""What generate.filter costs: `synth generate` images/s with a filter against without, same process, same run.

Takes a trained job output (e.g. runs/quickstart from ./scripts/quickstart.sh, or `synth train
jobs/quickstart.yaml --out runs/qs`) and, in copies of its checkpoints, runs `synth generate` on the
embedded Ray alternately without a filter and with ``generate.filter`` (the domain classifier,
``--candidates`` per kept image), ``--repeats`` times each, Inception features off (they are the
report's, not generation's). Prints each run's images/s, the medians, their ratio (the issue's
target: 0.45 or more at 2 candidates) and the candidates the filter drew per kept image. Also the
same two without Ray, the shard worker called in this process on the same shards, to show what the
filter itself costs. The domain classifier is trained first (or found in synth's cache) and shipped
to the workers; that time is not in the rates.

Usage: scripts/loopback.sh .venv/bin/python bench/filter_cost.py --run runs/qs [--job jobs/quickstart.yaml]
       [--count 20000] [--shard-size 2000] [--candidates 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_run(run: Path, dest: Path) -> Path:
    """A new output folder with the run's trained generator and job claim, and no shards."""
    (dest / ".synth").mkdir(parents=True)
    shutil.copytree(run / "checkpoints", dest / "checkpoints")
    for name in ("job.json", "job.yaml", "train_summary.json"):
        if (run / ".synth" / name).is_file():
            shutil.copy(run / ".synth" / name, dest / ".synth" / name)
    return dest


def generate(job: Path, out: Path, sets: list[str]) -> dict:
    cmd = [sys.executable, "-m", "synth.cli", "generate", str(job), "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode:
        raise SystemExit(f"synth generate failed:\n{proc.stderr[-3000:]}")
    return json.loads((out / ".synth" / "generate_summary.json").read_text())


def drawn_per_kept(out: Path) -> float:
    import pyarrow.parquet as pq

    drawn = pq.read_table(out / "manifest.parquet", columns=["filter_drawn"]).column("filter_drawn").to_numpy()
    return float(drawn.mean())


def in_process(job_path: Path, run: Path, sets: list[str], filtered: list[str], shards: int) -> tuple[float, float]:
    """(unfiltered, filtered) images/s of the shard worker called here, on the first ``shards`` shards."""
    from synth.generate.worker import write_one_shard
    from synth.spec import load_job
    from synth.stages.generate import generation_plan

    rates = []
    for extra in ([], filtered):
        with tempfile.TemporaryDirectory(prefix="synth-bench-filter-") as tmp:
            out = copy_run(run, Path(tmp) / "out")
            job = load_job(job_path, sets + extra)
            planned = generation_plan(job, out)
            works = [w for _, w in zip(range(shards), planned.works)]
            write_one_shard(works[0], *planned.shared)  # warm: the generator and classifier load once per process
            t0 = time.perf_counter()
            made = sum(write_one_shard(w, *planned.shared).num_samples for w in works[1:])
            rates.append(made / (time.perf_counter() - t0))
    return rates[0], rates[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="a trained job's output folder")
    ap.add_argument("--job", type=Path, default=ROOT / "jobs" / "quickstart.yaml")
    ap.add_argument("--count", type=int, default=20_000)
    ap.add_argument("--shard-size", type=int, default=2_000)
    ap.add_argument("--candidates", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    sets = [
        f"generate.count={args.count}",
        f"generate.shard_size={args.shard_size}",
        "evaluate.features_at_generation=false",
    ]
    filtered = [f"generate.filter.candidates={args.candidates}"]
    print(
        f"{args.job.name} from {args.run}: {args.count:,} images in shards of {args.shard_size:,}; filter: the domain "
        f"classifier, {args.candidates} candidates per kept image",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="synth-bench-filter-") as tmp:
        warm = copy_run(args.run, Path(tmp) / "warm")  # trains (or loads) the domain classifier once
        generate(args.job, warm, sets[:1] + ["generate.count=200", "generate.shard_size=200", *sets[2:], *filtered])
        rates: dict[str, list[float]] = {"unfiltered": [], "filtered": []}
        per_kept = []
        for r in range(args.repeats):
            for kind, extra in (("unfiltered", []), ("filtered", filtered)):
                out = copy_run(args.run, Path(tmp) / f"{kind}-{r}")
                summary = generate(args.job, out, sets + extra)
                rates[kind].append(summary["images_per_s"])
                note = ""
                if extra:
                    per_kept.append(drawn_per_kept(out))
                    note = f", {per_kept[-1]:.3f} candidates drawn per kept image"
                print(
                    f"  {kind:10s} run {r + 1}: {summary['images_per_s']:8,.0f} images/s "
                    f"({summary['generated']:,} in {summary['seconds']:.1f} s{note})",
                    flush=True,
                )
                shutil.rmtree(out)
    plain, kept = statistics.median(rates["unfiltered"]), statistics.median(rates["filtered"])
    print(
        f"\nsynth generate (embedded Ray), medians: unfiltered {plain:,.0f} images/s, filtered {kept:,.0f} images/s; "
        f"filtered / unfiltered = {kept / plain:.2f} (target >= 0.45); {statistics.mean(per_kept):.3f} candidates "
        "per kept image"
    )
    one, two = in_process(args.job, args.run, sets, filtered, shards=min(4, -(-args.count // args.shard_size)))
    print(
        f"shard worker in this process (1 process, no Ray): unfiltered {one:,.0f} images/s, filtered {two:,.0f} "
        f"images/s; ratio {two / one:.2f}"
    )


if __name__ == "__main__":
    main()
