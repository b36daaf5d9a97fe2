"""Speed of one conditional-DCGAN training step (G + D, hinge loss) in a plain PyTorch loop.

Prints ms/step and images/s for each variant and its ratio to the fp32 NCHW baseline run in
the same process. Usage: python bench/train_step.py [--steps 40] [--batch 64] [--width 64]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from synth.models.gan import Discriminator, GanConfig, Generator, d_hinge_loss, g_hinge_loss


def time_steps(variant: str, steps: int, batch: int, width: int) -> float:
    """Seconds per step, after 3 warm-up steps."""
    torch.manual_seed(0)
    cfg = GanConfig(28, 1, 10, 64, width)
    G, D = Generator(cfg), Discriminator(cfg)
    fmt = torch.channels_last if variant != "fp32-nchw" else torch.contiguous_format
    G, D = G.to(memory_format=fmt), D.to(memory_format=fmt)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.0, 0.9))
    real = (torch.rand(batch, 1, 28, 28) * 2 - 1).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if variant == "bf16" else contextlib.nullcontext
    for i in range(steps + 3):
        if i == 3:
            t0 = time.perf_counter()
        with autocast():
            fake = G(torch.randn(batch, 64), y)
            scores = D(torch.cat([real, fake.detach()]), torch.cat([y, y])).float()
            loss_d = d_hinge_loss(scores[:batch], scores[batch:])
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        with autocast():
            loss_g = g_hinge_loss(D(fake, y).float())
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width", type=int, default=64)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, width {args.width}")
    base = None
    for variant in ("fp32-nchw", "fp32-channels-last", "bf16"):
        s = time_steps(variant, args.steps, args.batch, args.width)
        base = base or s
        print(f"{variant:20s} {1000 * s:7.1f} ms/step {args.batch / s:7.0f} img/s  x{base / s:.2f} vs fp32-nchw")


if __name__ == "__main__":
    main()
