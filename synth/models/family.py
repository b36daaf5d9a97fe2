"""What every model family gives the rest of synth: build, train a step, export, sample.

The training loop (synth/train/loop.py), the checkpoints and the shard worker
only talk to a family through ``Family``; a family's own file (gan.py, vae.py,
diffusion.py) holds its networks, its objective, its sampling and one ``Family``
instance, ``FAMILY``, beside its job section (``synth.models.section``), which it
registers (``synth.models.registry``). Devices and processes stay outside:
``train_step`` receives ``backward`` from Accelerate, tensors arrive on the right
device. docs/architecture.md walks through adding a family.

Conventions: images a family makes are float NCHW in [-1, 1]; what it trains on
is float in [-1, 1], or the integer levels 0..255 (int64 NCHW) when its
capabilities say ``pixels="levels"``; labels int64 (N,); input images (for a
family conditioned on an image) uint8 NCHW, as stored.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class ImageShape:
    """What a model is built for: image size, channels, number of classes."""

    resolution: int
    channels: int
    num_classes: int


Setting = float | tuple[float, float]  # a value, or a range [low, high] drawn per sample (``per_sample``)


@dataclass(frozen=True)
class Sampling:
    """Every built-in family's sampling settings at once, for calling a family directly (tests, bench).

    A job holds only its family's own settings (``generate.sampling``, a ``SamplingSection`` its family
    file defines); a family reads the attributes it knows, so either serves as ``sampling``.

    ``truncation`` scales latents toward the mean (GAN, VAE; 1 = off);
    ``sampler``, ``steps``, ``eta`` and ``guidance`` drive diffusion (DDIM with
    ``steps`` steps, or ancestral DDPM over every timestep; classifier-free
    guidance weight, 1 = plain conditional). ``truncation`` and ``guidance`` may
    be ranges (low, high): each sample draws its own value from its seed.
    """

    truncation: Setting = 1.0
    sampler: str = "ddim"
    steps: int = 50
    eta: float = 0.0
    guidance: Setting = 1.0


# the stream of a sample's seed each ranged setting is drawn from (never the one its latents come from)
_SETTING_STREAMS = {"truncation": 1, "guidance": 2}


def per_sample(value: Setting, seeds: np.ndarray, name: str) -> float | np.ndarray:
    """A setting's value for each seed: ``value`` itself, or for a range (low, high) a uniform draw
    from each seed's own stream (float64 (N,), rounded to 6 decimals so that the value a sample's
    ``.json`` records is the one used)."""
    if not isinstance(value, tuple):
        return value
    low, high = value
    out = np.empty(len(seeds))
    for k, seed in enumerate(seeds):
        stream = np.random.SeedSequence(int(seed), spawn_key=(_SETTING_STREAMS[name],))
        out[k] = low + (high - low) * np.random.Generator(np.random.PCG64(stream)).random()
    return np.round(out, 6)


def scaled_latents(family: Family, net, seeds: np.ndarray, sampling: Sampling) -> torch.Tensor:
    """Each seed's latent scaled by its truncation: the job's value, or its own draw from a range
    (``per_sample``). A truncation of 1 leaves the latents as drawn."""
    z = family.latents(net, seeds)
    truncation = per_sample(sampling.truncation, seeds, "truncation")
    if isinstance(truncation, np.ndarray):
        return z * torch.from_numpy(truncation).to(z.dtype)[:, None]
    return z * truncation if truncation != 1.0 else z


def central(value: Setting) -> float:
    """A setting's value where one value serves all (interpolation grids): a range's middle."""
    return (value[0] + value[1]) / 2 if isinstance(value, tuple) else value


@dataclass(frozen=True)
class SampleRequest:
    """What to make, one row per image; image i depends on its own row only, at any batch size.

    ``seeds`` uint64 (N,): each row's sample seed. ``labels`` int64 (N,): the class asked for
    (0 for an unconditional model). ``sampling``: the family's sampling settings
    (``generate.sampling``). ``inputs`` uint8 (N, C, H, W): each row's input image, for a family
    conditioned on one (else None). ``domains`` int64 (N,): each row's target domain, for a family
    conditioned on an image and a domain (else None).
    """

    seeds: np.ndarray
    labels: np.ndarray
    sampling: Any
    inputs: np.ndarray | None = None
    domains: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.seeds)

    def rows(self, start: int, stop: int) -> SampleRequest:
        """Rows ``start:stop``."""
        return self._take(slice(start, stop))

    def padded(self, n: int) -> SampleRequest:
        """``n`` rows: these, then rows of zeros (seed 0, class 0, a black input) that fill a fixed-shape
        forward and are dropped after it."""
        if len(self) >= n:
            return self

        def pad(a):
            if a is None:
                return None
            out = np.zeros((n, *a.shape[1:]), dtype=a.dtype)
            out[: len(a)] = a
            return out

        return SampleRequest(pad(self.seeds), pad(self.labels), self.sampling, pad(self.inputs), pad(self.domains))

    def _take(self, index) -> SampleRequest:
        def take(a):
            return None if a is None else a[index]

        return SampleRequest(take(self.seeds), take(self.labels), self.sampling, take(self.inputs), take(self.domains))


@dataclass
class StepData:
    """One training step's inputs on one rank.

    ``real(j)`` gives sub-batch ``j`` of real (images, labels) for this step
    (a family taking several discriminator steps per step asks for j = 0, 1,
    ...); ``gen`` is this rank's generator for the step's noise; ``spec`` the
    job's model section.
    """

    real: Callable[[int], tuple[torch.Tensor, torch.Tensor]]
    gen: torch.Generator
    batch_size: int
    num_classes: int
    spec: Any


class Family(ABC):
    """A model family: how its members are built, trained one step, exported and sampled.

    Every family implements the abstract methods. The others belong to a capability its section
    declares (``ModelSection.capabilities``): ``latents``/``decode_latents`` for members with
    latents (truncation, interpolation grids), ``reconstruct`` for those with an encoder,
    ``bits_per_dim`` for those with a likelihood. The job is checked against the capabilities when
    it loads, so these are only called where they exist. gan.py is the reference family.
    """

    name: str = ""
    # The net that generation uses: EMA-averaged during training, finalised and exported. A model
    # that samples with several nets (CycleGAN's two generators, a prior and a decoder) builds them
    # as one nn.ModuleDict under this name: one export (safetensors + JSON, no pickle) holds them all.
    export_net: str = ""
    log_fields: tuple[str, ...] = ()  # figures train_step returns, in CSV column order

    @abstractmethod
    def build(self, spec: Any, shape: ImageShape) -> dict[str, nn.Module]:
        """Every trainable net of the model, by name (``export_net`` among them)."""

    @abstractmethod
    def optimizers(self, nets: dict[str, nn.Module], train: Any) -> dict[str, torch.optim.Optimizer]:
        """The optimisers of ``nets``, by name (``train``: the job's train section)."""

    @abstractmethod
    def train_step(self, nets, opts, data: StepData, backward: Callable) -> dict[str, torch.Tensor]:
        """One optimisation step; returns detached scalar figures named as ``log_fields``."""

    @abstractmethod
    def build_export(self, model_config: dict[str, Any]) -> nn.Module:
        """The exported net (``export_net``) alone, from a checkpoint's ``model_config`` (spec fields + shape)."""

    def finalize(self, net: nn.Module, seed: int) -> None:
        """Prepare the EMA weights of ``export_net`` for export (e.g. re-measure BatchNorm statistics)."""

    @abstractmethod
    def sample(self, net: nn.Module, request: SampleRequest) -> torch.Tensor:
        """Float NCHW images in [-1, 1], one per row of ``request``; image i depends on row i only.

        Called with a fixed number of rows (the shard worker pads), under inference mode.
        """

    def sampling_record(self, sampling: Any) -> dict[str, Any]:
        """The settings of ``sampling`` each sample's ``.json`` records and the plan's digest holds."""
        return sampling.record()

    def latents(self, net: nn.Module, seeds: np.ndarray) -> torch.Tensor:
        """Capability ``latents``: the starting point of each seed's sample, flattened: float (N, D)."""
        raise NotImplementedError(f"{self.name}: no latents")

    def decode_latents(self, net: nn.Module, z: torch.Tensor, labels: np.ndarray, sampling: Any) -> torch.Tensor:
        """Capability ``latents``: images from starting points ``z`` (N, D), as ``sample`` makes them from seeds."""
        raise NotImplementedError(f"{self.name}: no latents")

    def interpolate(self, net: nn.Module, seeds: np.ndarray, label: int, steps: int, sampling: Any) -> torch.Tensor:
        """Capability ``latents``: images along a spherical path through the seeds' starting points,
        ``steps`` per segment, one class."""
        from synth.models.common import slerp_path

        z = slerp_path(self.latents(net, seeds), steps)
        return self.decode_latents(net, z, np.full(len(z), label, dtype=np.int64), sampling)

    def reconstruct(self, net: nn.Module, x: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
        """Capability ``encoder``: real images (float NCHW in [-1, 1]) through the encoder and back."""
        raise NotImplementedError(f"{self.name}: no encoder to reconstruct with")

    def bits_per_dim(self, net: nn.Module, x: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
        """Capability ``likelihood``: each image's negative log-likelihood (or its bound) in bits per
        dimension, float (N,); ``x`` in the family's pixel form."""
        raise NotImplementedError(f"{self.name}: no likelihood")


def shape_of(model_config: dict[str, Any]) -> ImageShape:
    return ImageShape(int(model_config["resolution"]), int(model_config["channels"]), int(model_config["num_classes"]))
