"""Sampling speed of each family's net by memory layout and compilation, in one process.

The shard worker's own forward (synth.generate.worker._forward_fixed: 64 rows, per-seed latents,
uint8 out) on a net of each job's architecture (weights at their initialisation: speed does not
depend on training), four ways: NCHW eager (the baseline), channels-last eager (what the worker
uses), and, with --compile, torch.compile of each. Prints images/s, the ratio to the baseline, and
the share of pixels that differ from the baseline's (a layout or a compiler may round differently).

Usage: .venv/bin/python bench/sampling.py [--families gan,vae,diffusion] [--resolutions 28,64] [--compile]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
JOBS = {"gan": "quickstart.yaml", "vae": "mnist-cvae.yaml", "diffusion": "mnist-ddpm-cond.yaml"}
CALLS = {"gan": 20, "vae": 20, "diffusion": 1}  # forwards of 64 rows timed (a diffusion one is 50 U-Net passes)


def rate(family, net, sampling, calls: int) -> tuple[float, np.ndarray]:
    """(images/s, the last forward's uint8 images) of ``calls`` timed forwards after one untimed."""
    from synth.generate.worker import FORWARD_ROWS, LoadedModel, _forward_fixed

    sampler = LoadedModel(family, net)
    seeds = np.arange(1, FORWARD_ROWS + 1, dtype=np.uint64)
    labels = np.arange(FORWARD_ROWS) % 10
    _forward_fixed(sampler, seeds, labels, sampling)  # warm-up (and, compiled, the compilation)
    t0 = time.perf_counter()
    for _ in range(calls):
        images = _forward_fixed(sampler, seeds, labels, sampling)
    return FORWARD_ROWS * calls / (time.perf_counter() - t0), images


def main() -> None:
    from synth.models import family_for
    from synth.models.family import ImageShape
    from synth.spec import load_job
    from synth.stages.generate import sampling_of

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", default="gan,vae,diffusion")
    ap.add_argument("--resolutions", default="28,64")
    ap.add_argument("--compile", action="store_true", help="also torch.compile (tens of seconds to compile per net)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'family':10s} {'size':>4s} {'variant':26s} {'img/s':>8s} {'x NCHW':>7s} {'pixels differing':>17s}")
    for name in args.families.split(","):
        for res in (int(r) for r in args.resolutions.split(",")):
            job = load_job(ROOT / "jobs" / JOBS[name], [f"data.resolution={res}"])
            family = family_for(job.model.name)
            torch.manual_seed(0)
            nets = family.build(job.model, ImageShape(res, job.data.channels, 10))
            base = nets[family.export_net].eval().requires_grad_(False)
            variants = {"NCHW": base, "channels-last": copy.deepcopy(base).to(memory_format=torch.channels_last)}
            if args.compile:
                variants["NCHW, compiled"] = torch.compile(copy.deepcopy(base))
                variants["channels-last, compiled"] = torch.compile(variants["channels-last"])
            sampling, baseline, reference = sampling_of(job), None, None
            for variant, net in variants.items():
                t0 = time.perf_counter()
                images_per_s, images = rate(family, net, sampling, CALLS[name])
                if baseline is None:
                    baseline, reference = images_per_s, images
                extra = (
                    f" (first forward and timing: {time.perf_counter() - t0:.0f} s)" if "compiled" in variant else ""
                )
                print(
                    f"{name:10s} {res:4d} {variant:26s} {images_per_s:8,.1f} {images_per_s / baseline:7.2f} "
                    f"{(images != reference).mean():17.2e}{extra}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
