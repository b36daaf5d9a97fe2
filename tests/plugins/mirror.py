"""A trivial image-to-image member, registered from a test file: ``mirror``.

Each sample is its input image mirrored left to right, through two fixed 1x1 convolutions (one
export holding two nets, as CycleGAN's two generators will), plus a little noise drawn from the
sample's seed. Nothing to learn (``trained=False``): ``synth train`` exports the fixed nets. It
proves the family contract end to end: an input image per row, several nets in one export, a
member added by one file.

Use: ``SYNTH_PLUGINS=tests.plugins.mirror`` (with the repository on PYTHONPATH), then a job with
``model: {name: mirror}`` and ``generate.inputs``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from synth.models.family import Family, ImageShape, SampleRequest, StepData, shape_of
from synth.models.registry import register
from synth.models.section import Capabilities, Member, ModelSection, SamplingSection


class MirrorSampling(SamplingSection):
    noise: float = Field(4.0, ge=0, le=64, description="grey levels of seeded noise added to each pixel")


class MirrorModel(ModelSection):
    """Mirror family (tests/plugins/mirror.py): an input image, mirrored, plus seeded noise."""

    FAMILY: ClassVar[str] = "mirror"
    SAMPLING: ClassVar[type[SamplingSection]] = MirrorSampling
    MEMBERS: ClassVar[dict[str, Member]] = {
        "mirror": Member({}, "a test member: the input mirrored, plus seeded noise", "tests/plugins/mirror.py")
    }
    name: Literal["mirror"]

    def capabilities(self) -> Capabilities:
        return Capabilities(conditioning="image", trained=False)


class MirrorFamily(Family):
    name = "mirror"
    export_net = "maps"
    log_fields = ()

    def build(self, spec, shape: ImageShape) -> dict[str, nn.Module]:
        return {"maps": self._maps(shape.channels)}

    def optimizers(self, nets, train):
        return {}

    def train_step(self, nets, opts, data: StepData, backward):
        raise NotImplementedError("mirror has no training")

    def build_export(self, model_config: dict) -> nn.Module:
        return self._maps(shape_of(model_config).channels)

    @staticmethod
    def _maps(channels: int) -> nn.ModuleDict:
        """Two 1x1 convolutions, a gain of 0.5 then of 2: together the identity, up to rounding."""
        maps = nn.ModuleDict({"there": nn.Conv2d(channels, channels, 1), "back": nn.Conv2d(channels, channels, 1)})
        with torch.no_grad():
            for net, gain in ((maps["there"], 0.5), (maps["back"], 2.0)):
                net.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1) * gain)
                net.bias.zero_()
        return maps

    def sample(self, net, request: SampleRequest) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(request.inputs)).float() / 127.5 - 1.0  # uint8 NCHW -> [-1, 1]
        x = net["back"](net["there"](torch.flip(x, dims=[3])))
        noise = np.stack(
            [np.random.default_rng(int(seed)).standard_normal(x.shape[1:]) for seed in request.seeds]
        ).astype(np.float32)
        return (x + torch.from_numpy(noise) * (request.sampling.noise / 127.5)).clamp(-1, 1)


FAMILY = MirrorFamily()
register(MirrorModel)
