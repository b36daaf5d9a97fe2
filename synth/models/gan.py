"""The GAN family: DCGAN generator and discriminator, conditional or not, three losses, DiffAugment.

Generator: latent (+ class) -> linear -> base grid -> (upsampling conv,
class-conditional BatchNorm, ReLU) x (n-1) -> upsampling conv -> tanh, where an
upsampling conv (``model.upsample``) is a 4x4 stride-2 transposed conv or nearest
upsampling then a 3x3 conv.
Discriminator: strided convs (spectrally normalised unless the loss is
WGAN-GP, whose gradient penalty does that job), LeakyReLU, a conv spanning the
remaining grid, a linear head, and for conditional models a projection term
(Miyato & Koyama, 2018).

Members (``model.name``; each a preset of ``GanModel`` below):
  dcgan       unconditional, non-saturating logistic loss (Goodfellow et al.; Radford et al.)
  sngan       unconditional, hinge loss, spectral norm (Miyato et al., 2018)
  dcgan_cond  conditional (projection discriminator), hinge loss, spectral norm
  wgan_gp     Wasserstein critic with gradient penalty, 5 critic steps a step (Gulrajani et al., 2017),
              nearest upsampling: with transposed convs its critic let a fixed grid of dots into every
              image (bench/wgan_dots.py)
``model.diffaugment`` (color, translation, cutout; Zhao et al., 2020) augments
what the discriminator sees, real and fake alike, for small datasets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from synth.errors import SynthError
from synth.models.common import ConditionalBatchNorm2d, device_of, latents_for_seeds, recompute_batchnorm_stats
from synth.models.family import (
    Family,
    ImageShape,
    SampleRequest,
    Sampling,
    StepData,
    central,
    scaled_latents,
    shape_of,
)
from synth.models.registry import register
from synth.models.section import Capabilities, LatentSampling, Member, ModelSection, SamplingSection


class GanModel(ModelSection):
    """GAN family (synth/models/gan.py): DCGAN generator and discriminator."""

    FAMILY: ClassVar[str] = "gan"
    SAMPLING: ClassVar[type[SamplingSection]] = LatentSampling
    TRAIN_DEFAULTS: ClassVar[dict[str, float]] = {"lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.0, "beta2": 0.9}
    MEMBERS: ClassVar[dict[str, Member]] = {
        "dcgan_cond": Member(
            {"conditional": True, "loss": "hinge", "spectral_norm": True, "n_critic": 1},
            "DCGAN generator (conditional BatchNorm), projection discriminator with spectral norm, hinge loss",
            "`jobs/quickstart.yaml`, `jobs/fashion-dcgan-cond.yaml`, `jobs/fashion-lowdata.yaml`",
        ),
        "dcgan": Member(
            {"conditional": False, "loss": "nonsaturating", "spectral_norm": True, "n_critic": 1},
            "DCGAN, non-saturating logistic loss, spectral norm in D",
            "quickstart + `--set model.name=dcgan`",
        ),
        "sngan": Member(
            {"conditional": False, "loss": "hinge", "spectral_norm": True, "n_critic": 1},
            "DCGAN, hinge loss, spectral norm in D",
            "quickstart + `--set model.name=sngan`",
        ),
        "wgan_gp": Member(
            {"conditional": False, "loss": "wgan_gp", "spectral_norm": False, "n_critic": 5, "upsample": "nearest"},
            "Wasserstein critic with gradient penalty, `n_critic` 5, nearest upsampling",
            "`jobs/mnist-wgan-gp.yaml` (`conditional: true`)",
        ),
    }
    # wgan_gp's preset moved to nearest upsampling (its transposed convs drew a grid of dots): its
    # jobs name the field so that they are not taken for the old jobs, whose checkpoints differ.
    IDENTITY_BASE: ClassVar[dict[str, Any]] = {"upsample": "transposed"}
    name: Literal["dcgan_cond", "dcgan", "sngan", "wgan_gp"]
    latent_dim: int = Field(64, ge=1)
    width: int = Field(64, ge=8, description="channel width of the first conv layers")
    conditional: bool = Field(description="class-conditional (projection discriminator)")
    loss: Literal["hinge", "nonsaturating", "wgan_gp"]
    spectral_norm: bool = Field(description="spectral norm in the discriminator")
    n_critic: int = Field(ge=1, description="discriminator steps per generator step")
    gp_weight: float = Field(10.0, ge=0, description="wgan_gp: weight of the gradient penalty")
    upsample: Literal["transposed", "nearest"] = Field(
        "transposed", description="generator upsampling: 4x4 stride-2 transposed conv, or nearest + 3x3 conv"
    )
    diffaugment: list[Literal["color", "translation", "cutout"]] = Field(
        default_factory=list, description="DiffAugment policies applied to what D sees (small datasets)"
    )

    def capabilities(self) -> Capabilities:
        return Capabilities(conditioning="class" if self.conditional else "none", latents=True)


@dataclass(frozen=True)
class GanConfig:
    """Shape of a DCGAN: image size, channels, classes, latent size, width, conditioning, D normalisation."""

    resolution: int
    channels: int
    num_classes: int
    latent_dim: int = 64
    width: int = 64
    conditional: bool = True
    spectral_norm: bool = True
    upsample: str = "transposed"

    @property
    def label_classes(self) -> int:
        """Classes the nets embed: the real ones, or a single constant one when unconditional."""
        return self.num_classes if self.conditional else 1


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


def _labels(cfg: GanConfig, y: torch.Tensor | None, n: int, device) -> torch.Tensor:
    """The labels the nets embed: ``y`` when conditional, else zeros (one constant class)."""
    if cfg.conditional:
        return y
    return torch.zeros(n, dtype=torch.int64, device=device)


def up_conv(c_in: int, c_out: int, how: str, bias: bool) -> nn.Module:
    """Double the grid: a 4x4 stride-2 transposed conv (DCGAN), or nearest upsampling then a 3x3
    conv, whose kernel overlaps evenly and so cannot draw the transposed conv's checkerboard
    (Odena et al., 2016, "Deconvolution and checkerboard artifacts")."""
    if how == "nearest":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias))
    return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)


class UpBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, num_classes: int, upsample: str = "transposed"):
        super().__init__()
        self.conv = up_conv(c_in, c_out, upsample, bias=False)
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
        k_classes = cfg.label_classes
        # Conditional: the class's embedding joins the latent. Unconditional: the latent alone; a
        # learned constant beside it gives the generator a template to fall back on, and an
        # unconditional DCGAN that had one collapsed onto a single image whatever its latent.
        self.embed = nn.Embedding(k_classes, cfg.latent_dim) if cfg.conditional else None
        in_features = 2 * cfg.latent_dim if cfg.conditional else cfg.latent_dim
        self.fc = nn.Linear(in_features, c0 * base * base, bias=False)
        self.norm0 = ConditionalBatchNorm2d(c0, k_classes)
        self.blocks = nn.ModuleList(
            UpBlock(cfg.width * 2 ** (n - 1 - k), cfg.width * 2 ** (n - 2 - k), k_classes, cfg.upsample)
            for k in range(n - 1)
        )
        self.out = up_conv(cfg.width, cfg.channels, cfg.upsample, bias=True)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        y = _labels(self.cfg, y, len(z), z.device)
        h = self.fc(z if self.embed is None else torch.cat([z, self.embed(y)], dim=1))
        h = h.view(len(z), -1, self.base, self.base)
        h = F.relu(self.norm0(h, y))
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.out(h))


class Discriminator(nn.Module):
    """(x: float NCHW in [-1, 1], y: int64 (N,) or None) -> float (N,) realness scores."""

    def __init__(self, cfg: GanConfig):
        super().__init__()
        self.cfg = cfg
        sn = _spectral_norm if cfg.spectral_norm else (lambda module: module)
        base, n = grid_plan(cfg.resolution)
        layers: list[nn.Module] = [sn(nn.Conv2d(cfg.channels, cfg.width, 4, 2, 1)), nn.LeakyReLU(0.2)]
        c = cfg.width
        for _ in range(n - 1):
            layers += [sn(nn.Conv2d(c, c * 2, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c *= 2
        # A last conv spanning the whole base grid gives every feature a global
        # view; sum-pooling local features instead judges only 10x10 patches.
        layers += [sn(nn.Conv2d(c, 2 * c, base)), nn.LeakyReLU(0.2), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = sn(nn.Linear(2 * c, 1))
        self.embed = sn(nn.Embedding(cfg.num_classes, 2 * c)) if cfg.conditional else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        h = self.features(x)
        score = self.head(h).squeeze(1)
        if self.embed is not None:
            score = score + (self.embed(y) * h).sum(dim=1)
        return score


def d_hinge_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def g_hinge_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


def d_logistic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()


def g_nonsaturating_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_scores).mean()


def d_wasserstein_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return fake_scores.mean() - real_scores.mean()


D_LOSSES = {"hinge": d_hinge_loss, "nonsaturating": d_logistic_loss, "wgan_gp": d_wasserstein_loss}
G_LOSSES = {"hinge": g_hinge_loss, "nonsaturating": g_nonsaturating_loss, "wgan_gp": g_hinge_loss}


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, y, gen: torch.Generator) -> torch.Tensor:
    """WGAN-GP's penalty: (||grad_x D(x_hat)|| - 1)^2 at random points between real and fake images."""
    eps = torch.rand(len(real), 1, 1, 1, generator=gen, device=real.device)
    x_hat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    (grads,) = torch.autograd.grad(D(x_hat, y).sum(), x_hat, create_graph=True)
    return ((grads.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """Differentiable augmentation of a batch the discriminator sees (Zhao et al., 2020).

    ``color``: random brightness, saturation and contrast; ``translation``: shift by up to 1/8 of
    the size (zero fill); ``cutout``: zero a random square of half the size. Randomness from ``gen``.
    """
    n, c, h, w = x.shape

    def rand(*shape):
        return torch.rand(*shape, generator=gen, device=x.device, dtype=x.dtype)

    if "color" in policy:
        x = x + (rand(n, 1, 1, 1) - 0.5)
        if c > 1:
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * (rand(n, 1, 1, 1) * 2) + mean
        mean = x.mean(dim=[1, 2, 3], keepdim=True)
        x = (x - mean) * (rand(n, 1, 1, 1) + 0.5) + mean
    if "translation" in policy:
        sh, sw = max(1, h // 8), max(1, w // 8)
        dy = (rand(n, 1, 1) * (2 * sh + 1)).long() - sh
        dx = (rand(n, 1, 1) * (2 * sw + 1)).long() - sw
        rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy).clamp(-1, h)
        cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx).clamp(-1, w)
        padded = F.pad(x, [1, 1, 1, 1])
        index = ((rows + 1) * (w + 2) + (cols + 1)).view(n, 1, h * w).expand(n, c, h * w)
        x = padded.flatten(2).gather(2, index).view(n, c, h, w)
    if "cutout" in policy:
        ch, cw = max(1, h // 2), max(1, w // 2)
        top = (rand(n, 1, 1) * (h - ch + 1)).long()
        left = (rand(n, 1, 1) * (w - cw + 1)).long()
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
        x = x * (~inside).unsqueeze(1).to(x.dtype)
    return x


def gan_config(spec, shape: ImageShape) -> GanConfig:
    return GanConfig(
        shape.resolution,
        shape.channels,
        shape.num_classes,
        spec.latent_dim,
        spec.width,
        spec.conditional,
        spec.spectral_norm,
        spec.upsample,
    )


class GanFamily(Family):
    """The GAN family's training and sampling (see the module docstring for its members)."""

    name = "gan"
    export_net = "G"
    log_fields = ("loss_d", "loss_g", "d_real", "d_fake")

    def build(self, spec, shape: ImageShape) -> dict[str, nn.Module]:
        cfg = gan_config(spec, shape)
        return {"G": Generator(cfg), "D": Discriminator(cfg)}

    def optimizers(self, nets, train) -> dict[str, torch.optim.Optimizer]:
        betas = (train.beta1, train.beta2)
        return {
            "opt_g": torch.optim.Adam(nets["G"].parameters(), lr=train.lr_g, betas=betas),
            "opt_d": torch.optim.Adam(nets["D"].parameters(), lr=train.lr_d, betas=betas),
        }

    def train_step(self, nets, opts, data: StepData, backward) -> dict[str, torch.Tensor]:
        G, D, spec = nets["G"], nets["D"], data.spec
        n, gen = data.batch_size, data.gen
        d_loss, g_loss = D_LOSSES[spec.loss], G_LOSSES[spec.loss]
        policy = tuple(spec.diffaugment)

        def seen(x):  # what D sees: DiffAugment, when asked for, on real and fake alike
            return diff_augment(x, policy, gen) if policy else x

        for j in range(spec.n_critic):
            real, y_real = data.real(j)
            z = torch.randn(n, spec.latent_dim, generator=gen, device=real.device)
            y_fake = torch.randint(0, data.num_classes, (n,), generator=gen, device=real.device)
            # One generator forward serves the D step and, on the last critic step, the G step.
            fake = G(z, y_fake)
            shown = seen(torch.cat([real, fake.detach()]))
            scores = D(shown, torch.cat([y_real, y_fake]))
            loss_d = d_loss(scores[:n], scores[n:])
            if spec.loss == "wgan_gp":
                # Between the images D scored: with DiffAugment those are augmented, and a penalty
                # on un-augmented images would leave the critic unconstrained where it is used.
                loss_d = loss_d + spec.gp_weight * gradient_penalty(D, shown[:n], shown[n:], y_real, gen)
            opts["opt_d"].zero_grad(set_to_none=True)
            backward(loss_d)
            opts["opt_d"].step()

        loss_g = g_loss(D(seen(fake), y_fake))
        opts["opt_g"].zero_grad(set_to_none=True)
        backward(loss_g)
        opts["opt_g"].step()
        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": scores[:n].mean().detach(),
            "d_fake": scores[n:].mean().detach(),
        }

    def build_export(self, model_config: dict) -> nn.Module:
        return Generator(gan_config(GanModel.from_config(model_config), shape_of(model_config)))

    def finalize(self, net: nn.Module, seed: int) -> None:
        """EMA weights never saw the running BatchNorm stats: measure them on the EMA weights."""
        cfg = net.cfg
        gen = torch.Generator().manual_seed(seed)
        batches = []
        for _ in range(16):
            z = torch.randn(256, cfg.latent_dim, generator=gen)
            batches.append((z, torch.arange(256) % cfg.num_classes))
        recompute_batchnorm_stats(net, batches)

    def sample(self, net, request: SampleRequest) -> torch.Tensor:
        z = scaled_latents(self, net, request.seeds, request.sampling)
        return self.decode_latents(net, z, request.labels, request.sampling, scaled=True)

    def latents(self, net, seeds: np.ndarray) -> torch.Tensor:
        return latents_for_seeds(seeds, net.cfg.latent_dim)

    def decode_latents(
        self, net, z: torch.Tensor, labels: np.ndarray, sampling: Sampling, scaled: bool = False
    ) -> torch.Tensor:
        """``scaled``: ``z`` is already truncated (``scaled_latents``), else scaled here by ``central(truncation)``."""
        truncation = central(sampling.truncation)
        if not scaled and truncation != 1.0:
            z = z * truncation
        device = device_of(net)
        return net(z.to(device), torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)).to(device))

    def sampling_record(self, sampling: Sampling) -> dict:
        return {"truncation": sampling.truncation} if sampling.truncation != 1.0 else {}


FAMILY = GanFamily()
register(GanModel)
