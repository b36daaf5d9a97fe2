"""Classical augmentations with recorded parameters.

Each operation is a small pydantic model (its ranges and probability, as the
job spec gives them) with two methods: ``draw`` picks the parameters for one
image from a NumPy generator, ``apply`` applies parameters to an image with
``torchvision.transforms.v2.functional``. ``augment`` draws and applies the
whole list and returns the parameters it used; ``replay`` applies recorded
parameters again, through the same ``apply``, so any sample's image can be
regenerated exactly from its ``.json``.

Images here are float32 tensors, C x H x W, in [0, 1]. torch is imported
inside the functions so that the job spec (which imports this module) stays
light.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

Range = tuple[float, float]


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    p: float = Field(1.0, ge=0, le=1, description="probability that the operation is applied")

    def draw(self, rng: np.random.Generator, height: int, width: int, channels: int) -> dict[str, Any]:
        return {}

    def apply(self, img, params: dict[str, Any]):  # pragma: no cover - every op overrides
        raise NotImplementedError


def _check_range(lo: float, hi: float, what: str) -> None:
    if lo > hi:
        raise ValueError(f"{what}: [{lo}, {hi}] is not a range (low > high)")


class HFlip(_Op):
    """Mirror left-right."""

    op: Literal["hflip"]
    p: float = Field(0.5, ge=0, le=1)

    def apply(self, img, params):
        from torchvision.transforms.v2 import functional as F

        return F.horizontal_flip(img)


class VFlip(_Op):
    """Mirror top-bottom."""

    op: Literal["vflip"]
    p: float = Field(0.5, ge=0, le=1)

    def apply(self, img, params):
        from torchvision.transforms.v2 import functional as F

        return F.vertical_flip(img)


class RandomResizedCrop(_Op):
    """Crop a random area (``scale`` of the image, aspect ``ratio``) and resize it back (bilinear)."""

    op: Literal["random_resized_crop"]
    scale: Range = (0.8, 1.0)
    ratio: Range = (3 / 4, 4 / 3)

    @model_validator(mode="after")
    def _ranges(self) -> RandomResizedCrop:
        _check_range(*self.scale, "scale")
        _check_range(*self.ratio, "ratio")
        if not 0 < self.scale[0] <= 1 or self.scale[1] > 1 or self.ratio[0] <= 0:
            raise ValueError("scale must lie in (0, 1] and ratio be > 0")
        return self

    def draw(self, rng, height, width, channels):
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):  # the rejection sampling of torchvision's RandomResizedCrop
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                return {
                    "top": int(rng.integers(0, height - h + 1)),
                    "left": int(rng.integers(0, width - w + 1)),
                    "height": h,
                    "width": w,
                }
        return {"top": 0, "left": 0, "height": height, "width": width}

    def apply(self, img, params):
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        size = list(img.shape[-2:])
        return F.resized_crop(
            img,
            params["top"],
            params["left"],
            params["height"],
            params["width"],
            size,
            interpolation=InterpolationMode.BILINEAR,
            antialias=True,
        )


class Rotate(_Op):
    """Rotate by an angle drawn from ``degrees`` (bilinear, corners filled with ``fill``)."""

    op: Literal["rotate"]
    degrees: Range = (-15.0, 15.0)
    fill: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _ranges(self) -> Rotate:
        _check_range(*self.degrees, "degrees")
        return self

    def draw(self, rng, height, width, channels):
        return {"angle": float(rng.uniform(*self.degrees))}

    def apply(self, img, params):
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        return F.rotate(img, params["angle"], interpolation=InterpolationMode.BILINEAR, fill=[self.fill])


class ColorJitter(_Op):
    """Brightness, contrast (any image), saturation and hue (colour images), in that order.

    Each factor is drawn from [1 - x, 1 + x] (hue: a shift in [-x, x]); 0 leaves it alone.
    """

    op: Literal["color_jitter"]
    brightness: float = Field(0.2, ge=0)
    contrast: float = Field(0.2, ge=0)
    saturation: float = Field(0.2, ge=0)
    hue: float = Field(0.0, ge=0, le=0.5)

    def draw(self, rng, height, width, channels):
        params = {}
        if self.brightness:
            params["brightness"] = float(rng.uniform(max(0.0, 1 - self.brightness), 1 + self.brightness))
        if self.contrast:
            params["contrast"] = float(rng.uniform(max(0.0, 1 - self.contrast), 1 + self.contrast))
        if channels == 3 and self.saturation:
            params["saturation"] = float(rng.uniform(max(0.0, 1 - self.saturation), 1 + self.saturation))
        if channels == 3 and self.hue:
            params["hue"] = float(rng.uniform(-self.hue, self.hue))
        return params

    def apply(self, img, params):
        from torchvision.transforms.v2 import functional as F

        if "brightness" in params:
            img = F.adjust_brightness(img, params["brightness"])
        if "contrast" in params:
            img = F.adjust_contrast(img, params["contrast"])
        if "saturation" in params:
            img = F.adjust_saturation(img, params["saturation"])
        if "hue" in params:
            img = F.adjust_hue(img, params["hue"])
        return img


class GaussianBlur(_Op):
    """Blur with an odd ``kernel_size`` and a sigma drawn from ``sigma``."""

    op: Literal["gaussian_blur"]
    kernel_size: int = Field(3, ge=1)
    sigma: Range = (0.1, 1.0)

    @model_validator(mode="after")
    def _ranges(self) -> GaussianBlur:
        _check_range(*self.sigma, "sigma")
        if self.kernel_size % 2 == 0 or self.sigma[0] <= 0:
            raise ValueError("kernel_size must be odd and sigma > 0")
        return self

    def draw(self, rng, height, width, channels):
        return {"sigma": float(rng.uniform(*self.sigma))}

    def apply(self, img, params):
        from torchvision.transforms.v2 import functional as F

        return F.gaussian_blur(img, [self.kernel_size, self.kernel_size], [params["sigma"], params["sigma"]])


class GaussianNoise(_Op):
    """Add N(0, sigma^2) noise per pixel (sigma drawn from ``sigma``, in units of the [0, 1] range), clipped.

    The noise itself comes from a torch generator seeded with the recorded ``noise_seed``.
    """

    op: Literal["gaussian_noise"]
    sigma: Range = (0.0, 0.05)

    @model_validator(mode="after")
    def _ranges(self) -> GaussianNoise:
        _check_range(*self.sigma, "sigma")
        if self.sigma[0] < 0:
            raise ValueError("sigma must be >= 0")
        return self

    def draw(self, rng, height, width, channels):
        return {"sigma": float(rng.uniform(*self.sigma)), "noise_seed": int(rng.integers(0, 2**63 - 1))}

    def apply(self, img, params):
        import torch

        gen = torch.Generator().manual_seed(params["noise_seed"])
        noise = torch.randn(img.shape, generator=gen, dtype=img.dtype)
        return (img + params["sigma"] * noise).clamp_(0.0, 1.0)


class Erase(_Op):
    """Cutout: fill a random rectangle (``scale`` of the area, aspect ``ratio``) with ``value``."""

    op: Literal["erase"]
    p: float = Field(0.5, ge=0, le=1)
    scale: Range = (0.02, 0.2)
    ratio: Range = (0.3, 3.3)
    value: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _ranges(self) -> Erase:
        _check_range(*self.scale, "scale")
        _check_range(*self.ratio, "ratio")
        if not 0 < self.scale[0] or self.scale[1] > 1 or self.ratio[0] <= 0:
            raise ValueError("scale must lie in (0, 1] and ratio be > 0")
        return self

    def draw(self, rng, height, width, channels):
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):  # the rejection sampling of torchvision's RandomErasing
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            h = round(math.sqrt(target * aspect))
            w = round(math.sqrt(target / aspect))
            if 0 < h < height and 0 < w < width:
                return {
                    "top": int(rng.integers(0, height - h + 1)),
                    "left": int(rng.integers(0, width - w + 1)),
                    "height": h,
                    "width": w,
                }
        return {"top": 0, "left": 0, "height": 0, "width": 0}

    def apply(self, img, params):
        from torchvision.transforms.v2 import functional as F

        if not params["height"] or not params["width"]:
            return img
        fill = img.new_full((img.shape[0], params["height"], params["width"]), self.value)
        return F.erase(img, params["top"], params["left"], params["height"], params["width"], fill)


Op = Annotated[
    HFlip | VFlip | RandomResizedCrop | Rotate | ColorJitter | GaussianBlur | GaussianNoise | Erase,
    Field(discriminator="op"),
]
OP_NAMES = (
    "hflip",
    "vflip",
    "random_resized_crop",
    "rotate",
    "color_jitter",
    "gaussian_blur",
    "gaussian_noise",
    "erase",
)


class AugmentSpec(BaseModel):
    """Augmentations applied to each generated image, in order, each with its probability.

    ``copies``: each generated image yields this many samples, each augmented
    on its own (copy 0 included), each recording its source image.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ops: list[Op] = Field(default_factory=list)
    copies: int = Field(1, ge=1, le=1000)

    @property
    def enabled(self) -> bool:
        return bool(self.ops)


def sample_rng(seed: int, copy: int) -> np.random.Generator:
    """The generator of one sample's augmentation: seeded by its source's seed and its copy number."""
    return np.random.default_rng([int(seed), int(copy)])


def to_float(image: np.ndarray):
    """uint8 H x W x C -> float32 C x H x W in [0, 1]."""
    import torch

    image = np.require(image, requirements=["C", "W"])  # PIL's arrays are read-only; torch wants writable
    return torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)


def to_uint8(img) -> np.ndarray:
    """float32 C x H x W in [0, 1] -> uint8 H x W x C (rounded)."""
    import torch

    return img.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def augment(ops: list, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """Apply each op with its probability; return the image and what was applied, with its parameters.

    The record is a list of ``{"op": name, "position": k, **params}`` in order
    of application, ``k`` being the op's place in ``ops``.
    """
    height, width, channels = image.shape
    img, record = None, []
    for position, op in enumerate(ops):
        if rng.random() >= op.p:
            continue
        params = op.draw(rng, height, width, channels)
        img = op.apply(to_float(image) if img is None else img, params)
        record.append({"op": op.op, "position": position, **params})
    return (image if img is None else to_uint8(img)), record


def replay(ops: list, image: np.ndarray, record: list[dict]) -> np.ndarray:
    """Apply a recorded augmentation again: the same image, bit for bit.

    ``ops`` is the job's op list (it holds the fixed settings, such as the blur
    kernel and fill values); ``record`` comes from the sample's ``.json``.
    """
    if not record:
        return image
    img = to_float(image)
    for entry in record:
        op = ops[entry["position"]]
        if op.op != entry["op"]:
            raise ValueError(f"record names {entry['op']!r} at position {entry['position']}, the job has {op.op!r}")
        img = op.apply(img, {k: v for k, v in entry.items() if k not in ("op", "position")})
    return to_uint8(img)
