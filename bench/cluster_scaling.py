"""Generation across the nodes of a local multi-node cluster: 2 nodes against 1.

On this machine every node is a `ray start` process (synth.cluster, what `synth cluster up`
runs), so nodes share the same cores: a node offers 1 CPU here, and the figures compare

  1 node x 1 CPU     the baseline
  2 nodes x 1 CPU    the same work spread over two nodes (the target: close to 2x)
  1 node x 2 CPUs    the same 2 CPUs in one node (what the second node costs: object transfer
                     of the weights to another node's store, scheduling across raylets)

each running `synth generate` of the same job (the trained generator of --run, e.g. the
quickstart's) from a child process connected with --address, one shard task per CPU. The
figure is `synth generate`'s own images/s (from the plan's start to its last shard); the wall
time of the command (connect, manifest) is printed too. The shards of every case must be byte
for byte the same: the bench checks it.

Usage: scripts/loopback.sh .venv/bin/python bench/cluster_scaling.py --run runs/quickstart [--count 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = [(1, 1), (2, 1), (1, 2)]  # (nodes, CPUs a node)


def generate(run: Path, out: Path, address: str, env: dict, count: int, tasks: int) -> tuple[float, float]:
    """(images/s that synth generate reports, wall seconds of the command)."""
    shutil.copytree(run / "checkpoints", out / "checkpoints", ignore=shutil.ignore_patterns("train-*"))
    (out / ".synth").mkdir()
    shutil.copy(run / ".synth" / "job.json", out / ".synth" / "job.json")  # the run's job owns the copy
    cmd = [
        sys.executable,
        "-m",
        "synth.cli",
        "generate",
        str(ROOT / "jobs" / "quickstart.yaml"),
        "--out",
        str(out),
        "--address",
        address,
        "--set",
        f"generate.count={count}",
        "--set",
        "generate.shard_size=1000",
        "--set",
        f"resources.generate_tasks={tasks}",
        "--set",
        "evaluate.features_at_generation=false",
        "--set",
        "generate.prefetch=0",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"synth generate failed:\n{proc.stderr[-3000:]}")
    rate = re.search(r"([\d,]+) images/s", proc.stdout)
    return float(rate.group(1).replace(",", "")), wall


def main() -> None:
    from synth import cluster
    from synth.shards import md5_file

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "quickstart")
    ap.add_argument("--count", type=int, default=20_000)
    args = ap.parse_args()
    if not (args.run / "checkpoints" / "generator.safetensors").is_file():
        raise SystemExit(f"{args.run}: no trained generator; run the quickstart first (or pass --run)")
    rows, digests = {}, {}
    with tempfile.TemporaryDirectory(prefix="synth-bench-cluster-") as tmp:
        for nodes, cpus in CASES:
            root = Path(tmp) / f"cluster-{nodes}x{cpus}"
            state = cluster.up(root, nodes, cpus, say=lambda line: None)
            try:
                env = {**os.environ, **cluster.auth_env(root)}
                env.pop("RAY_ADDRESS", None)
                out = Path(tmp) / f"out-{nodes}x{cpus}"
                rate, wall = generate(args.run, out, state["address"], env, args.count, nodes * cpus)
            finally:
                cluster.down(root)
            used = set(json.loads((out / ".synth" / "nodes" / "shards.json").read_text()).values())
            name = f"{nodes} node(s) x {cpus} CPU"
            rows[name] = (rate, wall, len(used))
            digests[name] = {p.name: md5_file(p) for p in sorted((out / "shards").glob("*.tar"))}
            print(f"{name}: {rate:,.0f} images/s, {wall:.1f} s wall, shards written on {len(used)} node(s)", flush=True)
    same = all(d == next(iter(digests.values())) for d in digests.values())
    base = rows["1 node(s) x 1 CPU"][0]
    print(f"\n{'case':24s} {'images/s':>9s} {'wall s':>7s} {'nodes used':>10s} {'x 1 node':>9s}")
    for name, (rate, wall, used) in rows.items():
        print(f"{name:24s} {rate:9,.0f} {wall:7.1f} {used:10d} {rate / base:9.2f}")
    print(f"shards byte-identical across the cases: {same}")
    if not same:
        raise SystemExit("the shards differ between cases")


if __name__ == "__main__":
    main()
