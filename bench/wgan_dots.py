"""Why wgan_gp draws a grid of dots: train variants of its job a few hundred steps and measure the dots.

Each variant is jobs/mnist-wgan-gp.yaml with some --set overrides, trained in this process (no Ray)
for --steps generator steps. Its exported (EMA) generator, and the raw generator of the last
checkpoint, then draw 100 images of each class, and the script prints:
  fixed pattern  RMS of the mean image minus its 3x3 box blur, in pixel levels (0..255): dots at the
                 same place in every image survive the mean and stand out from its blur; real digits
                 give a smooth mean (the real row is the baseline)
  checker        mean |x * [[1,-1],[-1,1]]| / 4 over the images, in levels: period-2 texture
                 anywhere, fixed or not (a transposed conv's checkerboard)
  fidelity       the domain classifier's accuracy on the class asked for
and writes a 10x10 grid per variant under --out.

Usage: .venv/bin/python bench/wgan_dots.py --steps 400 [--variants transposed,transposed_no_diffaugment,nearest]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from synth.data import load_dataset
from synth.metrics.classifier import predict
from synth.metrics.evaluate import class_grid, domain_classifier
from synth.models import family_for
from synth.models.common import latents_for_seeds, to_uint8
from synth.report import grid_to_png
from synth.spec import load_job
from synth.train.loop import train

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {  # the job as committed draws with nearest upsampling (wgan_gp's preset since 2026-12-07)
    "transposed": ["model.upsample=transposed"],
    "transposed_no_diffaugment": ["model.upsample=transposed", "model.diffaugment=[]"],
    "nearest": ["model.upsample=nearest"],
    "nearest_no_diffaugment": ["model.upsample=nearest", "model.diffaugment=[]"],
    "transposed_spectral_norm": ["model.upsample=transposed", "model.spectral_norm=true"],
}


def fixed_pattern(images: np.ndarray) -> float:
    """RMS (levels) of the mean image's detail finer than a 3x3 box."""
    mean = torch.from_numpy(images.astype(np.float64)).mean(0)  # (H, W, C)
    m = mean.permute(2, 0, 1).unsqueeze(0)
    blur = F.avg_pool2d(F.pad(m, [1, 1, 1, 1], mode="replicate"), 3, 1)
    return float((m - blur).pow(2).mean().sqrt())


def checker(images: np.ndarray) -> float:
    """Mean |2x2 checkerboard response| / 4, in levels."""
    x = torch.from_numpy(images.astype(np.float64)).permute(0, 3, 1, 2)
    k = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64).view(1, 1, 2, 2).repeat(x.shape[1], 1, 1, 1)
    return float(F.conv2d(x, k, groups=x.shape[1]).abs().mean() / 4)


def draw(family, model_config: dict, weights: dict, num_classes: int, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    net = family.build_export(model_config)
    net.load_state_dict(weights)
    net.eval()
    labels = np.repeat(np.arange(num_classes), per_class)
    seeds = np.arange(len(labels), dtype=np.uint64) + 12345
    with torch.no_grad():
        x = net(latents_for_seeds(seeds, net.cfg.latent_dim), torch.from_numpy(labels))
    return to_uint8(x), labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--variants", default="transposed,nearest")
    ap.add_argument("--job", default="mnist-wgan-gp.yaml")
    ap.add_argument("--out", default="runs/wgan-dots")
    args = ap.parse_args()
    out = Path(args.out)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.steps} generator steps a variant")
    base_job = load_job(ROOT / "jobs" / args.job, [])
    data = load_dataset(base_job.data, base_job.seed)
    clf = domain_classifier(data, 5, base_job.seed)
    real = data.images[np.random.default_rng(0).permutation(len(data))[: 100 * data.num_classes]]
    rows = [("real (same count)", fixed_pattern(real), checker(real), float("nan"), 0.0)]
    for name in args.variants.split(","):
        sets = [
            f"train.steps={args.steps}",
            f"train.checkpoint_every={args.steps}",
            f"train.log_every={args.steps}",
            f"train.ema_start={args.steps // 4}",
            *VARIANTS[name],
        ]
        job = load_job(ROOT / "jobs" / args.job, sets)
        folder = out / name
        t0 = time.perf_counter()
        train(job, folder, log_lines=False)
        seconds = time.perf_counter() - t0
        family = family_for(job.model.name)
        meta = json.loads((folder / "checkpoints" / "generator.json").read_text())
        ema = load_file(folder / "checkpoints" / "generator.safetensors")
        state = load_file(folder / "checkpoints" / f"train-{args.steps:07d}.safetensors")
        raw = {k[2:]: v for k, v in state.items() if k.startswith("G/")}
        for which, weights in (("ema", ema), ("raw", raw)):
            images, labels = draw(family, meta["model_config"], weights, data.num_classes, 100)
            fid = float((predict(clf.model, images) == labels).mean())
            rows.append((f"{name} ({which})", fixed_pattern(images), checker(images), fid, seconds))
            (out / f"{name}-{which}.png").write_bytes(grid_to_png(class_grid(images, labels, data.num_classes, 10)))
            print(
                f"{rows[-1][0]:34s} fixed {rows[-1][1]:6.2f}  checker {rows[-1][2]:6.2f}  fidelity {fid:6.1%}  ({seconds:.0f} s)",
                flush=True,
            )
    print(f"\n{'variant':34s} {'fixed pattern':>13s} {'checker':>8s} {'fidelity':>9s} {'train s':>8s}")
    for name, fp, ch, fid, s in rows:
        print(f"{name:34s} {fp:13.2f} {ch:8.2f} {fid:9.1%} {s:8.0f}")


if __name__ == "__main__":
    main()
