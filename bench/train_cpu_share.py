"""Where the CPU goes while `synth train` runs: each process's share of the cores over 15 s of training.

Starts `synth train jobs/quickstart.yaml` (600 steps) in a child process, waits for the loss log's
second interval (start-up excluded), reads every process's CPU time from /proc twice, 15 s apart,
and prints the busiest processes in cores, then the training rate the loss log reports.

Usage: scripts/loopback.sh .venv/bin/python bench/train_cpu_share.py [--set train.num_workers=2 ...]
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, user + system clock ticks, command line, or the process name without one)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()[:100]
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(pid)] = (
            int(fields[1]),
            int(fields[11]) + int(fields[12]),
            cmd or stat[stat.index("(") + 1 : stat.rindex(")")],
        )
    return found


def start_training(out: Path, sets: list[str]) -> tuple[subprocess.Popen, Path]:
    """Start `synth train jobs/quickstart.yaml --out out --set ...` in a child process; return it and
    its loss log once the log has its second interval (start-up behind it)."""
    cmd = [sys.executable, "-m", "synth.cli", "train", str(ROOT / "jobs" / "quickstart.yaml"), "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "train_log.csv"
    while not (log.is_file() and len(log.read_text().splitlines()) >= 3):
        if proc.poll() is not None:
            raise SystemExit("synth train ended before its second log interval")
        time.sleep(0.2)
    return proc, log


def main() -> None:
    sets = sys.argv[1:]
    out = Path(tempfile.mkdtemp(prefix="synth-bench-cpu-")) / "out"
    proc, log = start_training(out, ["train.steps=600", "train.log_every=20", *sets])
    before, t0 = processes(), time.time()
    time.sleep(15)
    after, seconds = processes(), time.time() - t0
    tick = os.sysconf("SC_CLK_TCK")
    shares = sorted(((after[p][1] - before.get(p, (0, 0, ""))[1]) / tick / seconds, after[p][2]) for p in after)
    for share, name in shares[::-1][:12]:
        print(f"{share:5.2f} cores  {name}")
    print(f"all processes: {sum(s for s, _ in shares):.2f} cores")
    proc.wait()
    with open(log) as fh:
        rows = list(csv.DictReader(fh))
    rate = (
        (int(rows[-1]["step"]) - int(rows[1]["step"]))
        * 64
        / (float(rows[-1]["elapsed_s"]) - float(rows[1]["elapsed_s"]))
    )
    print(f"training rate after the first interval: {rate:.0f} img/s")


if __name__ == "__main__":
    main()
