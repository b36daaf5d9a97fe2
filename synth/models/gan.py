"""The GAN family: a class-conditional DCGAN.

Generator: latent + class -> linear -> base grid -> (transposed conv,
class-conditional BatchNorm, ReLU) x (n-1) -> transposed conv -> tanh.
Discriminator: spectrally normalised strided convs, LeakyReLU, a conv spanning
the remaining grid, and a projection head (Miyato & Koyama, 2018) for the class.
Trained with the hinge loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from synth.errors import SynthError
from synth.models.common import ConditionalBatchNorm2d


@dataclass(frozen=True)
class GanConfig:
    """Shape of a DCGAN: image size, channels, classes, latent size, width."""

    resolution: int
    channels: int
    num_classes: int
    latent_dim: int = 64
    width: int = 64


def grid_plan(resolution: int) -> tuple[int, int]:
    """(base, n): resolution = base * 2**n with base <= 7, n >= 1."""
    base, n = resolution, 0
    while base > 7 and base % 2 == 0:
        base, n = base // 2, n + 1
    if base > 7 or n == 0:
        raise SynthError(
            f"data.resolution: {resolution} does not suit a DCGAN; use b * 2**n with b <= 7 (e.g. 28, 32, 56, 64)"
        )
    return base, n


class UpBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, num_classes: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)
        self.norm = ConditionalBatchNorm2d(c_out, num_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x), y))


class Generator(nn.Module):
    """(z: float (N, latent_dim), y: int64 (N,)) -> float NCHW images in [-1, 1]."""

    def __init__(self, cfg: GanConfig):
        super().__init__()
        self.cfg = cfg
        base, n = grid_plan(cfg.resolution)
        self.base = base
        c0 = cfg.width * 2 ** (n - 1)
        self.embed = nn.Embedding(cfg.num_classes, cfg.latent_dim)
        self.fc = nn.Linear(2 * cfg.latent_dim, c0 * base * base, bias=False)
        self.norm0 = ConditionalBatchNorm2d(c0, cfg.num_classes)
        self.blocks = nn.ModuleList(
            UpBlock(cfg.width * 2 ** (n - 1 - k), cfg.width * 2 ** (n - 2 - k), cfg.num_classes) for k in range(n - 1)
        )
        self.out = nn.ConvTranspose2d(cfg.width, cfg.channels, 4, 2, 1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, self.embed(y)], dim=1))
        h = h.view(len(z), -1, self.base, self.base)
        h = F.relu(self.norm0(h, y))
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.out(h))


class Discriminator(nn.Module):
    """(x: float NCHW in [-1, 1], y: int64 (N,)) -> float (N,) realness scores."""

    def __init__(self, cfg: GanConfig):
        super().__init__()
        base, n = grid_plan(cfg.resolution)
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(cfg.channels, cfg.width, 4, 2, 1)), nn.LeakyReLU(0.2)]
        c = cfg.width
        for _ in range(n - 1):
            layers += [spectral_norm(nn.Conv2d(c, c * 2, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c *= 2
        # A last conv spanning the whole base grid gives every feature a global
        # view; sum-pooling local features instead judges only 10x10 patches.
        layers += [spectral_norm(nn.Conv2d(c, 2 * c, base)), nn.LeakyReLU(0.2), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = spectral_norm(nn.Linear(2 * c, 1))
        self.embed = spectral_norm(nn.Embedding(cfg.num_classes, 2 * c))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.head(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)


def d_hinge_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def g_hinge_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()
