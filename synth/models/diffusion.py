"""The diffusion family: a DDPM with a small U-Net, DDPM and DDIM samplers, classifier-free guidance.

The network predicts the noise (epsilon) added to an image (Ho et al., 2020).
Conditional models learn an extra "null" class, index ``num_classes``, that
stands for "no label": training drops labels to it with probability
``p_uncond``, and sampling mixes the two predictions (classifier-free guidance,
Ho & Salimans, 2022). Both samplers are one loop, the DDIM update (Song et al.,
2021); DDPM is that loop over every step with eta = 1, which is exactly
ancestral sampling from the DDPM posterior.

Images are float NCHW in [-1, 1]. Nothing here knows about devices or
processes: tensors go where the model's parameters are. Sampling noise comes
from one CPU generator per sample, so x_T and every step's noise are the same on
any device, and the network always runs on a fixed number of rows
(``common.run_fixed_batch``), so image i is bit-for-bit a function of its seed, its
label and the sampler settings, never of the batch it was sampled in.
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

from synth.errors import SynthError
from synth.models.common import device_of, run_fixed_batch
from synth.models.family import Family, ImageShape, SampleRequest, Sampling, StepData, central, per_sample, shape_of
from synth.models.registry import register
from synth.models.section import Capabilities, Guidance, Member, ModelSection, SamplingSection


class DiffusionSampling(SamplingSection):
    """Diffusion sampling: the sampler, its steps and noise, classifier-free guidance."""

    sampler: Literal["ddim", "ddpm"] = Field("ddim", description="DDIM, or ancestral DDPM")
    steps: int = Field(50, ge=1, description="DDIM steps (DDPM takes every timestep)")
    eta: float = Field(0.0, ge=0, le=1, description="DDIM noise (0 = deterministic given x_T)")
    guidance: Guidance = Field(
        1.0,
        description="classifier-free guidance weight (1 = none); a range [low, high]: each sample draws "
        "its own from its seed (recorded in its .json)",
    )


class DiffusionModel(ModelSection):
    """Diffusion family (synth/models/diffusion.py): DDPM with a small U-Net."""

    FAMILY: ClassVar[str] = "diffusion"
    SAMPLING: ClassVar[type[SamplingSection]] = DiffusionSampling
    TRAIN_DEFAULTS: ClassVar[dict[str, float]] = {"lr_g": 2e-4, "beta1": 0.9, "beta2": 0.999}
    MEMBERS: ClassVar[dict[str, Member]] = {
        "ddpm": Member(
            {"conditional": False}, "as `ddpm_cond`, unconditional", "mnist-ddpm-cond + `--set model.name=ddpm`"
        ),
        "ddpm_cond": Member(
            {"conditional": True},
            "DDPM, small U-Net (GroupNorm, attention at the lowest level), EMA, classifier-free guidance",
            "`jobs/mnist-ddpm-cond.yaml`",
        ),
    }
    name: Literal["ddpm", "ddpm_cond"]
    width: int = Field(64, ge=8)
    conditional: bool
    timesteps: int = Field(1000, ge=2)
    schedule: Literal["cosine", "linear"] = "cosine"
    p_uncond: float = Field(0.1, ge=0, lt=1, description="label dropout for classifier-free guidance")
    attention: bool = Field(True, description="one self-attention block at the U-Net's lowest resolution")

    def capabilities(self) -> Capabilities:
        # x_T is a latent (interpolation through deterministic DDIM), but not one truncation scales.
        return Capabilities(conditioning="class" if self.conditional else "none", latents=True)

    def check_sampling(self, sampling: SamplingSection) -> None:
        if sampling.sampler == "ddim" and sampling.steps > self.timesteps:
            raise ValueError(
                f"generate.sampling.steps: {sampling.steps} DDIM steps, but the model has "
                f"{self.timesteps} timesteps (model.timesteps); use at most {self.timesteps}"
            )


CHANNEL_MULTS = (1, 2, 2, 2)  # width multiplier per resolution level, top to bottom


@dataclass(frozen=True)
class DiffusionConfig:
    """Shape of a diffusion model and its noise process.

    ``schedule`` is "cosine" (Nichol & Dhariwal, 2021) or "linear" (Ho et al.);
    ``p_uncond`` is the label dropout that trains the unconditional branch;
    ``attention`` adds one self-attention block at the lowest resolution.
    """

    resolution: int
    channels: int
    num_classes: int
    width: int = 64
    conditional: bool = True
    timesteps: int = 1000
    schedule: str = "cosine"
    p_uncond: float = 0.1
    attention: bool = True


def level_plan(resolution: int) -> int:
    """How many times the U-Net halves the grid: while even and at least 4 after, at most 3."""
    levels, r = 0, resolution
    while levels < 3 and r % 2 == 0 and r // 2 >= 4:
        levels, r = levels + 1, r // 2
    if levels == 0:
        raise SynthError(
            f"data.resolution: {resolution} does not suit the diffusion U-Net; "
            "use b * 2**n with b >= 4, n >= 1 (e.g. 8, 28, 32, 64)"
        )
    return levels


def _groups(channels: int) -> int:
    return math.gcd(8, channels)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (N,) -> float (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the embedding added in between, plus a skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        # Zero-init: each block starts as its skip, which keeps a deep stack stable early on.
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of one image, residual."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.heads = heads if channels % heads == 0 else 1
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (n, heads, h*w, c/heads)
        o = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(o.transpose(-1, -2).reshape(n, c, h, w))


class UNet(nn.Module):
    """(x_t: float NCHW, t: int64 (N,), y: int64 (N,) or None) -> predicted noise, float NCHW like x_t.

    One residual block per level on the way down and up, skips joined by
    concatenation, strided-conv downsampling and nearest+conv upsampling, a
    middle of block-attention-block. ``y`` holds class indices in
    [0, num_classes]; ``num_classes`` is the null class. Unconditional models
    have no class embedding and ignore ``y``. No BatchNorm and no dropout, so an
    image's output depends on that image alone and train/eval modes agree.
    """

    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        self.cfg = cfg
        levels = level_plan(cfg.resolution)
        ch = [cfg.width * m for m in CHANNEL_MULTS[: levels + 1]]
        emb_dim = 4 * cfg.width
        self.time_mlp = nn.Sequential(nn.Linear(cfg.width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_embed = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.conditional else None
        self.stem = nn.Conv2d(cfg.channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList(ResBlock(ch[max(i - 1, 0)], ch[i], emb_dim) for i in range(levels + 1))
        self.downsample = nn.ModuleList(nn.Conv2d(ch[i], ch[i], 3, stride=2, padding=1) for i in range(levels))
        self.mid1 = ResBlock(ch[-1], ch[-1], emb_dim)
        self.attn = SelfAttention(ch[-1]) if cfg.attention else nn.Identity()
        self.mid2 = ResBlock(ch[-1], ch[-1], emb_dim)
        self.up = nn.ModuleList(ResBlock(2 * ch[i], ch[i], emb_dim) for i in range(levels + 1))
        self.upsample = nn.ModuleList(nn.Conv2d(ch[i + 1], ch[i], 3, padding=1) for i in range(levels))
        self.out_norm = nn.GroupNorm(_groups(ch[0]), ch[0])
        self.out = nn.Conv2d(ch[0], cfg.channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # start by predicting zero noise: loss 1, no wild first steps
        nn.init.zeros_(self.out.bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.cfg.width))
        if self.class_embed is not None:
            emb = emb + self.class_embed(y)
        emb = F.silu(emb)  # every block's projection starts with this nonlinearity; do it once
        h = self.stem(x_t)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid2(self.attn(self.mid1(h, emb)), emb)
        for i in reversed(range(len(self.up))):
            h = self.up[i](torch.cat([h, skips.pop()], dim=1), emb)
            if i > 0:
                h = self.upsample[i - 1](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))


@dataclass(frozen=True, eq=False)
class Schedule:
    """The noise process: float64 CPU tensors of length ``timesteps``, and the config they came from.

    x_t = sqrt(alphas_cumprod[t]) * x0 + sqrt(1 - alphas_cumprod[t]) * noise, t in [0, timesteps).
    """

    cfg: DiffusionConfig
    betas: torch.Tensor
    alphas_cumprod: torch.Tensor

    @classmethod
    def from_config(cls, cfg: DiffusionConfig) -> Schedule:
        T = cfg.timesteps
        if cfg.schedule == "cosine":
            s = 0.008
            f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2) ** 2
            # the cosine sends beta to 1 as t -> T, a singular last step; cap it as Nichol & Dhariwal do
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        elif cfg.schedule == "linear":
            scale = 1000 / T  # the DDPM range is for 1000 steps; keep the total noise the same for other T
            betas = torch.linspace(scale * 1e-4, scale * 0.02, T, dtype=torch.float64)
        else:
            raise SynthError(f"model.schedule: unknown schedule {cfg.schedule!r}; choose cosine or linear")
        return cls(cfg, betas, torch.cumprod(1 - betas, dim=0))


def diffusion_loss(
    unet: nn.Module, schedule: Schedule, x0: torch.Tensor, y: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Epsilon-prediction MSE on a batch of real images x0 (float NCHW in [-1, 1]) with labels y (int64 (N,)).

    t, the noise and the label dropout are drawn from ``generator`` (on its own
    device, then moved to x0's). Reads the config from ``schedule``, never from
    ``unet``, so a DDP-wrapped network works. Returns (scalar loss, detached figures).
    """
    cfg, n = schedule.cfg, len(x0)
    dev = generator.device
    t = torch.randint(0, cfg.timesteps, (n,), generator=generator, device=dev)
    noise = torch.randn(x0.shape, generator=generator, device=dev).to(x0.device, x0.dtype)
    drop = torch.rand(n, generator=generator, device=dev) < cfg.p_uncond
    abar = schedule.alphas_cumprod[t.cpu()].to(x0.device, x0.dtype)[:, None, None, None]
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    labels = None
    if cfg.conditional:
        labels = torch.where(drop.to(y.device), torch.full_like(y, cfg.num_classes), y)
    eps = unet(x_t, t.to(x0.device), labels)
    loss = F.mse_loss(eps.float(), noise.float())
    return loss, {"loss": loss.detach()}


def predict_noise(
    unet: nn.Module,
    schedule: Schedule,
    x_t: torch.Tensor,
    t: int,
    y: torch.Tensor,
    guidance: float | torch.Tensor = 1.0,
    forward_batch: int = 64,
) -> torch.Tensor:
    """Guided noise prediction at step t: eps_u + guidance * (eps_c - eps_u), float NCHW like x_t.

    guidance 1 is the plain conditional prediction; other values evaluate the
    conditional rows and their null-class copies in one batched forward. A tensor (N,) gives each
    row its own guidance.
    Unconditional models ignore ``y`` and ``guidance``. See ``common.run_fixed_batch``
    for ``forward_batch``.
    """
    cfg = schedule.cfg
    steps = torch.full((len(x_t),), t, dtype=torch.long, device=x_t.device)
    if not cfg.conditional:
        return run_fixed_batch(unet, (x_t, steps, None), forward_batch)
    if not isinstance(guidance, torch.Tensor) and guidance == 1.0:
        return run_fixed_batch(unet, (x_t, steps, y), forward_batch)
    x2, t2, y2 = torch.cat([x_t, x_t]), torch.cat([steps, steps]), torch.cat([y, torch.full_like(y, cfg.num_classes)])
    eps_c, eps_u = run_fixed_batch(unet, (x2, t2, y2), forward_batch).chunk(2)
    if isinstance(guidance, torch.Tensor):
        guidance = guidance.to(eps_c.device, eps_c.dtype).view(-1, 1, 1, 1)
    return eps_u + guidance * (eps_c - eps_u)


def seed_generators(seeds: np.ndarray) -> list[torch.Generator]:
    """One CPU generator per seed (uint64 below 2**63, as from ``common.sample_seeds``)."""
    return [torch.Generator().manual_seed(int(seed)) for seed in seeds]


def draw_noise(generators: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    """One standard-normal draw of ``shape`` from each generator, stacked: float (N, *shape) on CPU."""
    return torch.stack([torch.randn(shape, generator=g) for g in generators])


def ddim_timesteps(timesteps: int, steps: int) -> list[int]:
    """``steps`` descending timesteps, evenly spaced and starting at timesteps - 1.

    "Trailing" spacing (Lin et al., 2024): the first step starts from pure noise,
    where training put x_T. steps == timesteps gives every step.
    """
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must be in [1, {timesteps}], got {steps}")
    return [timesteps - 1 - k * timesteps // steps for k in range(steps)]


@torch.no_grad()
def denoise(
    unet: nn.Module,
    schedule: Schedule,
    x_T: torch.Tensor,
    y: torch.Tensor,
    timesteps: list[int],
    eta: float = 0.0,
    guidance: float | torch.Tensor = 1.0,
    generators: list[torch.Generator] | None = None,
    forward_batch: int = 64,
) -> torch.Tensor:
    """Run the DDIM update from x_T (float NCHW) through descending ``timesteps`` to x_0 in [-1, 1].

    ``y`` is int64 (N,) on x_T's device. eta scales the fresh noise of each step (0: deterministic, 1: DDPM posterior
    variance); when it is above 0, ``generators`` (one per sample) supply it.
    The predicted x_0 is clipped to [-1, 1] and the noise re-derived from it, as
    clipping is what keeps small models' samples in range.
    """
    if eta > 0 and generators is None:
        raise ValueError("eta > 0 needs one generator per sample for the step noise")
    abar = schedule.alphas_cumprod.tolist()  # Python floats: coefficients exact and the same for every sample
    x = x_T
    for i, t in enumerate(timesteps):
        a_t = abar[t]
        a_prev = abar[timesteps[i + 1]] if i + 1 < len(timesteps) else 1.0
        eps = predict_noise(unet, schedule, x, t, y, guidance, forward_batch).float()
        x0 = ((x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)).clamp(-1, 1)
        eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
        sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * draw_noise(generators, x.shape[1:]).to(x.device)
    return x.clamp(-1, 1)


def _sample(unet, schedule, seeds, labels, timesteps, eta, guidance, forward_batch) -> torch.Tensor:
    cfg = schedule.cfg
    labels = np.asarray(labels, dtype=np.int64)
    if len(seeds) != len(labels):
        raise ValueError(f"{len(seeds)} seeds but {len(labels)} labels")
    device = device_of(unet)
    if len(seeds) == 0:
        return torch.empty(0, cfg.channels, cfg.resolution, cfg.resolution, device=device)
    if cfg.conditional and not (0 <= labels.min() and labels.max() < cfg.num_classes):
        raise ValueError(f"labels must be in [0, {cfg.num_classes}) for this conditional model")
    generators = seed_generators(seeds)
    x_T = draw_noise(generators, (cfg.channels, cfg.resolution, cfg.resolution)).to(device)
    y = torch.from_numpy(labels).to(device)
    return denoise(unet, schedule, x_T, y, timesteps, eta, guidance, generators, forward_batch)


def sample_ddpm(
    unet: nn.Module,
    schedule: Schedule,
    seeds: np.ndarray,
    labels: np.ndarray,
    guidance: float | torch.Tensor = 1.0,
    forward_batch: int = 64,
) -> torch.Tensor:
    """Ancestral DDPM sampling over all timesteps: float NCHW in [-1, 1], one image per (seed, label).

    ``seeds`` uint64, ``labels`` int64 (ignored by unconditional models). Each
    sample's own generator draws its x_T, then its noise at every step.
    ``forward_batch`` is rows per network call (see ``common.run_fixed_batch``): images
    are bit-exact only for the same value, so keep it fixed within a job; the
    caller's batch (twice it with guidance) is best a multiple of it, as the last
    call is padded.
    """
    every_step = ddim_timesteps(schedule.cfg.timesteps, schedule.cfg.timesteps)
    return _sample(unet, schedule, seeds, labels, every_step, 1.0, guidance, forward_batch)


def sample_ddim(
    unet: nn.Module,
    schedule: Schedule,
    seeds: np.ndarray,
    labels: np.ndarray,
    steps: int = 50,
    eta: float = 0.0,
    guidance: float | torch.Tensor = 1.0,
    forward_batch: int = 64,
) -> torch.Tensor:
    """DDIM sampling in ``steps`` steps: float NCHW in [-1, 1], one image per (seed, label).

    ``seeds`` uint64, ``labels`` int64 (ignored by unconditional models). With
    eta = 0 the image is a deterministic function of x_T, which the sample's
    own generator draws; with eta > 0 that generator also draws the step noise.
    ``forward_batch`` as in ``sample_ddpm``.
    """
    timesteps = ddim_timesteps(schedule.cfg.timesteps, steps)
    return _sample(unet, schedule, seeds, labels, timesteps, eta, guidance, forward_batch)


def diffusion_config(spec, shape: ImageShape) -> DiffusionConfig:
    return DiffusionConfig(
        shape.resolution,
        shape.channels,
        shape.num_classes,
        spec.width,
        spec.conditional,
        spec.timesteps,
        spec.schedule,
        spec.p_uncond,
        spec.attention,
    )


class DiffusionFamily(Family):
    """The diffusion family's training and sampling: ddpm, ddpm_cond (classifier-free guidance)."""

    name = "diffusion"
    export_net = "unet"
    log_fields = ("loss",)

    def __init__(self) -> None:
        self._schedules: dict[DiffusionConfig, Schedule] = {}

    def schedule(self, cfg: DiffusionConfig) -> Schedule:
        if cfg not in self._schedules:
            self._schedules[cfg] = Schedule.from_config(cfg)
        return self._schedules[cfg]

    def build(self, spec, shape: ImageShape) -> dict[str, nn.Module]:
        return {"unet": UNet(diffusion_config(spec, shape))}

    def optimizers(self, nets, train) -> dict[str, torch.optim.Optimizer]:
        return {"opt": torch.optim.Adam(nets["unet"].parameters(), lr=train.lr_g, betas=(train.beta1, train.beta2))}

    def train_step(self, nets, opts, data: StepData, backward) -> dict[str, torch.Tensor]:
        unet = nets["unet"]
        cfg = getattr(unet, "module", unet).cfg  # the config of the net inside a DDP wrapper
        x, y = data.real(0)
        loss, _ = diffusion_loss(unet, self.schedule(cfg), x, y, data.gen)
        opts["opt"].zero_grad(set_to_none=True)
        backward(loss)
        opts["opt"].step()
        return {"loss": loss.detach()}

    def build_export(self, model_config: dict) -> nn.Module:
        return UNet(diffusion_config(DiffusionModel.from_config(model_config), shape_of(model_config)))

    def sample(self, net, request: SampleRequest) -> torch.Tensor:
        schedule = self.schedule(net.cfg)
        seeds, sampling = request.seeds, request.sampling
        labels = np.ascontiguousarray(request.labels, dtype=np.int64)
        guidance = per_sample(sampling.guidance, seeds, "guidance")  # a range: each sample's own draw
        if isinstance(guidance, np.ndarray):
            guidance = torch.from_numpy(guidance).float()
        if sampling.sampler == "ddpm":
            return sample_ddpm(net, schedule, seeds, labels, guidance, forward_batch=len(seeds))
        return sample_ddim(
            net, schedule, seeds, labels, sampling.steps, sampling.eta, guidance, forward_batch=len(seeds)
        )

    def latents(self, net, seeds: np.ndarray) -> torch.Tensor:
        """Each seed's x_T (as ``sample`` draws it), flattened."""
        cfg = net.cfg
        return draw_noise(seed_generators(seeds), (cfg.channels, cfg.resolution, cfg.resolution)).flatten(1)

    def decode_latents(self, net, z: torch.Tensor, labels: np.ndarray, sampling: Sampling) -> torch.Tensor:
        """Deterministic DDIM (eta 0) from the given x_T: interpolating x_T interpolates the images."""
        cfg = net.cfg
        device = device_of(net)
        x_T = z.view(len(z), cfg.channels, cfg.resolution, cfg.resolution).to(device)
        y = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)).to(device)
        timesteps = ddim_timesteps(cfg.timesteps, sampling.steps)
        return denoise(
            net, self.schedule(cfg), x_T, y, timesteps, 0.0, central(sampling.guidance), forward_batch=len(z)
        )

    def sampling_record(self, sampling: Sampling) -> dict:
        record = {"sampler": sampling.sampler, "guidance": sampling.guidance}
        if sampling.sampler == "ddim":
            record.update(steps=sampling.steps, eta=sampling.eta)
        return record


FAMILY = DiffusionFamily()
register(DiffusionModel)
