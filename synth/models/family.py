"""What every model family gives the rest of synth: build, train a step, export, sample.

The training loop (synth/train/loop.py), the checkpoints and the shard worker
only talk to a family through ``Family``; a family's own file (gan.py, vae.py,
diffusion.py) holds its networks, its objective, its sampler and one ``Family``
instance, ``FAMILY``. Devices and processes stay outside: ``train_step``
receives ``backward`` from Accelerate, tensors arrive on the right device.

Conventions: images float NCHW in [-1, 1] inside models; labels int64 (N,).
"""

from __future__ import annotations

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
    """Generation-time settings that change the pixels (part of a shard plan's digest).

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


class Family:
    """A model family. Subclasses override every method; see gan.py for the reference one."""

    name: str = ""
    sampler_key: str = ""  # which of the built nets samples (EMA-averaged, exported)
    log_fields: tuple[str, ...] = ()  # figures train_step returns, in CSV column order

    def build(self, spec: Any, shape: ImageShape) -> dict[str, nn.Module]:
        """Every trainable net of the model, by name (``sampler_key`` among them)."""
        raise NotImplementedError

    def optimizers(self, nets: dict[str, nn.Module], train: Any) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(self, nets, opts, data: StepData, backward: Callable) -> dict[str, torch.Tensor]:
        """One optimisation step; returns detached scalar figures named as ``log_fields``."""
        raise NotImplementedError

    def build_sampler(self, model_config: dict[str, Any]) -> nn.Module:
        """The sampling net alone, from a checkpoint's ``model_config`` (spec fields + shape)."""
        raise NotImplementedError

    def finalize(self, sampler: nn.Module, seed: int) -> None:
        """Prepare EMA weights for export (e.g. re-measure BatchNorm statistics). Default: nothing."""

    def sample(self, net: nn.Module, seeds: np.ndarray, labels: np.ndarray, sampling: Sampling) -> torch.Tensor:
        """Float NCHW images in [-1, 1], one per (seed, label); image i depends on its seed and label only.

        Called with a fixed number of rows (the shard worker pads), under inference mode.
        """
        raise NotImplementedError

    def latents(self, net: nn.Module, seeds: np.ndarray) -> torch.Tensor:
        """The starting point of each seed's sample, flattened: float (N, D)."""
        raise NotImplementedError

    def decode_latents(self, net: nn.Module, z: torch.Tensor, labels: np.ndarray, sampling: Sampling) -> torch.Tensor:
        """Images (float NCHW in [-1, 1]) from starting points ``z`` (N, D), as ``sample`` makes them from seeds."""
        raise NotImplementedError

    def interpolate(
        self, net: nn.Module, seeds: np.ndarray, label: int, steps: int, sampling: Sampling
    ) -> torch.Tensor:
        """Images along a spherical path through the seeds' starting points, ``steps`` per segment, one class."""
        from synth.models.common import slerp_path

        z = slerp_path(self.latents(net, seeds), steps)
        return self.decode_latents(net, z, np.full(len(z), label, dtype=np.int64), sampling)

    def sampling_record(self, sampling: Sampling) -> dict[str, Any]:
        """The settings of ``sampling`` this family uses, for each sample's ``.json``."""
        return {}

    can_reconstruct = False  # has an encoder: the report shows real images next to their reconstructions

    def reconstruct(self, net: nn.Module, x: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
        """Real images (float NCHW in [-1, 1]) through the encoder and back, deterministically."""
        raise NotImplementedError(f"{self.name}: no encoder to reconstruct with")


def shape_of(model_config: dict[str, Any]) -> ImageShape:
    return ImageShape(int(model_config["resolution"]), int(model_config["channels"]), int(model_config["num_classes"]))
