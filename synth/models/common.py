"""Parts shared by every model family: EMA, conditioning, per-sample latents.

Tensor conventions: inside models images are float NCHW in [-1, 1]; at I/O and
metric boundaries they are uint8 NHWC (see ``to_uint8``/``from_uint8``).
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import torch
from torch import nn


def sample_seeds(job_seed: int, indices: np.ndarray) -> np.ndarray:
    """The seed of each sample, from (job seed, sample index) alone.

    Uses numpy's SeedSequence with the index as spawn key, so seeds are
    independent streams and never depend on batching or workers.
    Returns uint64 values below 2**63 (valid torch seeds).
    """
    out = np.empty(len(indices), dtype=np.uint64)
    for j, index in enumerate(indices):
        words = np.random.SeedSequence(entropy=job_seed, spawn_key=(int(index),)).generate_state(2, np.uint32)
        out[j] = ((int(words[0]) << 32) | int(words[1])) & (2**63 - 1)
    return out


def latents_for_seeds(seeds: np.ndarray, latent_dim: int) -> torch.Tensor:
    """One standard-normal latent per seed, each from its own generator. Shape (N, latent_dim)."""
    out = torch.empty(len(seeds), latent_dim)
    gen = torch.Generator()
    for j, seed in enumerate(seeds):
        gen.manual_seed(int(seed))
        out[j] = torch.randn(latent_dim, generator=gen)
    return out


def device_of(model: nn.Module) -> torch.device:
    """Where a model's weights are: its inputs follow them (a model never picks a device; latents are
    drawn on CPU, the same on every device, then moved)."""
    return next(model.parameters()).device


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Float NCHW in [-1, 1] -> uint8 NHWC (round to nearest)."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def from_uint8(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are looked up per class."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Embedding(num_classes, channels)
        self.beta = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.bn(x)
        return out * self.gamma(y)[:, :, None, None] + self.beta(y)[:, :, None, None]


class EMA:
    """Exponential moving average of a model's weights (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float, start_step: int = 0):
        self.decay = decay
        self.start_step = start_step
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = 0.0 if step < self.start_step else self.decay
        for ema_p, p in zip(self.shadow.parameters(), model.parameters()):
            ema_p.lerp_(p.detach().to(ema_p.dtype), 1.0 - decay)
        for ema_b, b in zip(self.shadow.buffers(), model.buffers()):
            ema_b.copy_(b)


@torch.no_grad()
def recompute_batchnorm_stats(model: nn.Module, batches) -> None:
    """Replace BatchNorm running stats with exact averages over ``batches``.

    ``batches`` yields argument tuples for ``model``. EMA weights never saw the
    running stats that training accumulated, so sampling in eval mode (needed
    for batch-independent outputs) uses stats measured on the EMA weights.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [(m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for args in batches:
        model(*args)
    model.eval()
    for m, (momentum, _) in zip(norms, saved):
        m.momentum = momentum


def slerp_path(points: torch.Tensor, steps: int) -> torch.Tensor:
    """Points along spherical paths through ``points`` (K, D) in order: (K - 1) * (steps - 1) + 1 rows.

    Spherical, not linear: a standard-normal latent lies near the sphere of radius sqrt(D), and a
    straight line between two cuts inside it, into latents a model rarely saw in training.
    """
    if len(points) < 2 or steps < 2:
        raise ValueError("an interpolation needs at least 2 points and 2 steps")
    out = [points[:1]]
    t = torch.linspace(0.0, 1.0, steps, dtype=points.dtype)[1:, None]
    for a, b in itertools.pairwise(points):
        cos = (a @ b / (a.norm() * b.norm())).clamp(-1.0, 1.0)
        theta = torch.arccos(cos)
        if theta.abs() < 1e-4:  # (nearly) parallel: slerp's 0/0; the straight line is the same path
            out.append(torch.lerp(a, b, t))
        else:
            out.append((torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / torch.sin(theta))
    return torch.cat(out)


def run_fixed_batch(fn, inputs: tuple[torch.Tensor | None, ...], rows: int) -> torch.Tensor:
    """``fn(*inputs)`` computed in calls of exactly ``rows`` rows, the last one padded with copies
    of its last row; ``None`` inputs are passed through as ``None``.

    Why: oneDNN, MKL and cuDNN choose kernels by batch size, and the kernels
    round differently (about 1e-6 per forward here), so the same image sampled
    in batches of 1 and of 12 drifts apart over the steps. At one fixed batch
    size a row's result does not depend on its position or on the other rows
    (checked on CPU; on GPU it also needs ``cudnn.benchmark`` off), so a fixed
    forward batch makes every image independent of how callers batch.
    """
    n = len(inputs[0])
    pad = -n % rows
    if pad:
        inputs = tuple(None if t is None else torch.cat([t, t[-1:].expand(pad, *t.shape[1:])]) for t in inputs)
    chunks = [slice(i, i + rows) for i in range(0, n + pad, rows)]
    return torch.cat([fn(*(None if t is None else t[c] for t in inputs)) for c in chunks])[:n]
