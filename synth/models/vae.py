"""The VAE family: a convolutional (optionally class-conditional, optionally beta-) VAE.

Encoder: image -> strided 4x4 convs (GroupNorm, SiLU) down to the base grid ->
flatten (+ class embedding) -> linear -> (mu, logvar).
Decoder: latent (+ class embedding) -> linear -> base grid -> (transposed conv,
GroupNorm, SiLU) x (n-1) -> transposed conv -> per-pixel Bernoulli logits.
The layout mirrors the DCGAN (``synth.models.gan``), so both families accept the
same resolutions (``grid_plan``: 8, 28, 32, 64, ...).

No BatchNorm anywhere: GroupNorm normalises each sample on its own, so a
sample never depends on what else is in the batch, in train and eval mode
alike, and there are no running statistics to recompute for EMA weights.

Tensor conventions: images float NCHW in [-1, 1]; labels int64 (N,); latents
float (N, latent_dim). ``y`` is ignored (may be None) when not conditional.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from synth.models.common import device_of, latents_for_seeds, run_fixed_batch
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
from synth.models.gan import grid_plan
from synth.models.registry import register
from synth.models.section import Capabilities, LatentSampling, Member, ModelSection, SamplingSection


class VaeModel(ModelSection):
    """VAE family (synth/models/vae.py): convolutional encoder and decoder, Bernoulli likelihood."""

    FAMILY: ClassVar[str] = "vae"
    SAMPLING: ClassVar[type[SamplingSection]] = LatentSampling
    TRAIN_DEFAULTS: ClassVar[dict[str, float]] = {"lr_g": 1e-3, "beta1": 0.9, "beta2": 0.999}
    MEMBERS: ClassVar[dict[str, Member]] = {
        "vae": Member(
            {"conditional": False, "beta": 1.0}, "as `cvae`, unconditional", "mnist-cvae + `--set model.name=vae`"
        ),
        "beta_vae": Member(
            {"conditional": False, "beta": 4.0},
            "as `vae`, KL weight `beta` 4",
            "mnist-cvae + `--set model.name=beta_vae`",
        ),
        "cvae": Member(
            {"conditional": True, "beta": 1.0},
            "convolutional VAE, GroupNorm, Bernoulli likelihood; reconstructions in the report",
            "`jobs/mnist-cvae.yaml`, `jobs/fashion-cvae.yaml`",
        ),
    }
    name: Literal["vae", "beta_vae", "cvae"]
    latent_dim: int = Field(32, ge=1)
    width: int = Field(64, ge=8)
    conditional: bool
    beta: float = Field(gt=0, description="weight of the KL term (beta-VAE when != 1)")

    def capabilities(self) -> Capabilities:
        return Capabilities(conditioning="class" if self.conditional else "none", latents=True, encoder=True)


@dataclass(frozen=True)
class VaeConfig:
    """Shape of a VAE: image size, channels, classes, latent size, width, conditioning, KL weight.

    ``beta`` weights the KL term of the loss (beta-VAE when != 1); it does not
    change the architecture, only the objective.
    """

    resolution: int
    channels: int
    num_classes: int
    latent_dim: int = 32
    width: int = 64
    conditional: bool = False
    beta: float = 1.0


def _norm(channels: int) -> nn.GroupNorm:
    # gcd keeps any width valid (16 -> 16 groups, 64 -> 32 groups, 96 -> 32 groups).
    return nn.GroupNorm(math.gcd(32, channels), channels)


class Encoder(nn.Module):
    """(x: float NCHW in [-1, 1], y: int64 (N,) or None) -> (mu, logvar), each float (N, latent_dim)."""

    def __init__(self, cfg: VaeConfig):
        super().__init__()
        base, n = grid_plan(cfg.resolution)
        # The first conv has no norm: normalising raw pixels would throw away
        # each image's overall brightness, which the latent should carry.
        layers: list[nn.Module] = [nn.Conv2d(cfg.channels, cfg.width, 4, 2, 1), nn.SiLU()]
        c = cfg.width
        for _ in range(n - 1):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1), _norm(2 * c), nn.SiLU()]
            c *= 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        # The class joins at the head: the encoder then need not spend latent
        # dimensions on the class the decoder is told anyway.
        self.embed = nn.Embedding(cfg.num_classes, cfg.latent_dim) if cfg.conditional else None
        extra = cfg.latent_dim if cfg.conditional else 0
        self.head = nn.Linear(c * base * base + extra, 2 * cfg.latent_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        if self.embed is not None:
            h = torch.cat([h, self.embed(y)], dim=1)
        mu, logvar = self.head(h).chunk(2, dim=1)
        # Bounds keep exp(logvar) finite in the first steps, when a random head
        # can emit large values; trained posteriors sit far inside them.
        return mu, logvar.clamp(-30.0, 20.0)


class Decoder(nn.Module):
    """(z: float (N, latent_dim), y: int64 (N,) or None) -> float NCHW Bernoulli logits (unbounded)."""

    def __init__(self, cfg: VaeConfig):
        super().__init__()
        base, n = grid_plan(cfg.resolution)
        self.base = base
        c0 = cfg.width * 2 ** (n - 1)
        self.embed = nn.Embedding(cfg.num_classes, cfg.latent_dim) if cfg.conditional else None
        extra = cfg.latent_dim if cfg.conditional else 0
        self.fc = nn.Linear(cfg.latent_dim + extra, c0 * base * base)
        self.norm0 = _norm(c0)
        blocks: list[nn.Module] = []
        for k in range(n - 1):
            c_in, c_out = cfg.width * 2 ** (n - 1 - k), cfg.width * 2 ** (n - 2 - k)
            blocks += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), _norm(c_out), nn.SiLU()]
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.ConvTranspose2d(cfg.width, cfg.channels, 4, 2, 1)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        h = self.fc(z).view(len(z), -1, self.base, self.base)
        h = F.silu(self.norm0(h))
        return self.out(self.blocks(h))


class VAE(nn.Module):
    """A VAE with ``encode``, ``decode`` and ``decode_logits``; ``cfg`` holds its shape.

    ``forward(x, y, generator)`` is the training objective (``vae_loss``): under
    DistributedDataParallel, gradients are synchronised only for computations
    that go through ``forward``. Sampling calls ``decode`` (``sample`` adds the
    fixed-shape calls that make images bit-identical under any batching).
    """

    def __init__(self, cfg: VaeConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior q(z | x, y): float NCHW [-1, 1] images -> (mu, logvar), each float (N, latent_dim)."""
        return self.encoder(x, y)

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Latents float (N, latent_dim) -> float NCHW per-pixel Bernoulli logits of the [0, 1]-scaled image."""
        return self.decoder(z, y)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Latents float (N, latent_dim) -> float NCHW images in [-1, 1] (the Bernoulli mean, rescaled)."""
        # 2 * sigmoid(l) - 1 == tanh(l / 2): the mean of p(x | z) mapped back to [-1, 1].
        return torch.tanh(self.decode_logits(z, y) / 2)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training objective: ``vae_loss(self, x, y, generator)``."""
        return vae_loss(self, x, y, generator)


def vae_loss(
    model: VAE, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Negative ELBO per image, KL weighted by ``model.cfg.beta``: recon + beta * kl.

    x: float NCHW in [-1, 1]; y: int64 (N,) or None. The reparameterisation
    noise comes from ``generator`` alone (it must live on x's device). Returns
    (scalar loss to minimise, detached figures in nats per image: ``recon``,
    ``kl`` and ``nelbo`` = recon + kl, the unweighted bound).

    Likelihood: independent Bernoulli per pixel on (x + 1) / 2, i.e. BCE with
    logits. MNIST pixels are nearly binary, and the Bernoulli log-likelihood
    punishes a grey guess at a black-or-white pixel hard, so edges stay crisp.
    A Gaussian with fixed variance is MSE in disguise: with sigma = 1 its
    reconstruction term is so weak next to the KL that digits blur (an implicit
    large beta), and a learned variance is prone to collapse. For continuous
    colour data the Bernoulli is not a normalised density (the continuous
    Bernoulli fixes that) but still trains a decoder whose mean is the image.
    """
    mu, logvar = model.encode(x, y)
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = model.decode_logits(z, y)
    target = (x + 1) / 2
    # Sum over pixels and latent dims, mean over images: nats per image, so
    # beta means the same thing at any resolution and batch size.
    recon = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1).mean()
    kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(1).mean()
    loss = recon + model.cfg.beta * kl
    figures = {"recon": recon.detach(), "kl": kl.detach(), "nelbo": (recon + kl).detach()}
    return loss, figures


# Rows per forward pass of ``reconstruct`` (sampling gets fixed-shape calls from the shard worker,
# synth.generate.worker.FORWARD_ROWS). CPU kernels (most of all the Linear's gemm; on some grids
# the transposed convs too) pick their code path by batch size, so a row in a batch of 1 can
# differ from the same row in a batch of 32 by ~1e-6 and flip a uint8 level (measured: 11 pixels
# of 32 images at 64x64). With every call the same shape, each row gets the same arithmetic.
SAMPLE_CHUNK = 32


class VaeFamily(Family):
    """The VAE family's training and sampling: vae, beta_vae (beta = 4), cvae (conditional)."""

    name = "vae"
    export_net = "vae"
    log_fields = ("loss", "recon", "kl")

    def build(self, spec, shape: ImageShape) -> dict[str, nn.Module]:
        return {"vae": VAE(vae_config(spec, shape))}

    def optimizers(self, nets, train) -> dict[str, torch.optim.Optimizer]:
        return {"opt": torch.optim.Adam(nets["vae"].parameters(), lr=train.lr_g, betas=(train.beta1, train.beta2))}

    def train_step(self, nets, opts, data: StepData, backward) -> dict[str, torch.Tensor]:
        x, y = data.real(0)
        loss, figures = nets["vae"](x, y if data.spec.conditional else None, data.gen)
        opts["opt"].zero_grad(set_to_none=True)
        backward(loss)
        opts["opt"].step()
        return {"loss": loss.detach(), "recon": figures["recon"], "kl": figures["kl"]}

    def build_export(self, model_config: dict) -> nn.Module:
        return VAE(vae_config(VaeModel.from_config(model_config), shape_of(model_config)))

    def sample(self, net, request: SampleRequest) -> torch.Tensor:
        z = scaled_latents(self, net, request.seeds, request.sampling)
        y = torch.as_tensor(np.asarray(request.labels, dtype=np.int64))
        dev = device_of(net)
        return run_fixed_batch(net.decode, (z.to(dev), y.to(dev)), len(z))

    def latents(self, net, seeds: np.ndarray) -> torch.Tensor:
        return latents_for_seeds(seeds, net.cfg.latent_dim)

    def decode_latents(self, net, z: torch.Tensor, labels: np.ndarray, sampling: Sampling) -> torch.Tensor:
        y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        dev = device_of(net)
        return run_fixed_batch(net.decode, ((z * central(sampling.truncation)).to(dev), y.to(dev)), len(z))

    def sampling_record(self, sampling: Sampling) -> dict:
        return {"truncation": sampling.truncation} if sampling.truncation != 1.0 else {}

    @torch.no_grad()
    def reconstruct(self, net, x: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
        """Decode the posterior mean of each image (no noise), in fixed-shape calls like ``sample``."""
        y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        if len(x) == 0:
            return x[:0]

        def through(xc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:
            mu, _ = net.encode(xc, yc if net.cfg.conditional else None)
            return net.decode(mu, yc)

        dev = device_of(net)
        return run_fixed_batch(through, (x.to(dev), y.to(dev)), SAMPLE_CHUNK)


def vae_config(spec, shape: ImageShape) -> VaeConfig:
    return VaeConfig(
        shape.resolution, shape.channels, shape.num_classes, spec.latent_dim, spec.width, spec.conditional, spec.beta
    )


FAMILY = VaeFamily()
register(VaeModel)
