"""What a family declares about itself, without torch: its job section, its sampling settings, what it can do.

A family file (gan.py, vae.py, diffusion.py) defines one ``ModelSection`` subclass, the job's
``model:`` section for its members, and registers it (``synth.models.registry.register``). The
section names the members and their presets, the family's sampling settings (``generate.sampling``)
and each member's ``Capabilities``; the job is checked against them when it loads, before any
net is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

Conditioning = Literal["none", "class", "image", "image+domain"]


@dataclass(frozen=True)
class Capabilities:
    """What a member can do, which decides what a job may ask of it.

    ``conditioning``: what each sample is made from besides its seed: nothing, a class, an input
    image, or an input image and a target domain. ``latents``: a latent per seed (truncation,
    interpolation). ``encoder``: real images map back to latents (reconstructions in the report).
    ``likelihood``: "exact" or "bound" when the model gives bits per dimension. ``trained``: False
    for a member optimised at sampling time (style transfer, DeepDream): ``synth train`` has
    nothing to do. ``pixels``: what the training step receives: "float" in [-1, 1], or "levels",
    the integer pixel values 0..255 (autoregressive models and flows model discrete pixels).
    """

    conditioning: Conditioning = "none"
    latents: bool = False
    encoder: bool = False
    likelihood: Literal["exact", "bound"] | None = None
    trained: bool = True
    pixels: Literal["float", "levels"] = "float"

    @property
    def takes_class(self) -> bool:
        return self.conditioning == "class"

    @property
    def takes_image(self) -> bool:
        return self.conditioning in ("image", "image+domain")

    def words(self) -> str:
        """The capabilities as a reader wants them in a table: ``latents, encoder``."""
        parts = [name for name in ("latents", "encoder") if getattr(self, name)]
        if self.likelihood:
            parts.append(f"likelihood ({self.likelihood})")
        if not self.trained:
            parts.append("no training")
        if self.pixels == "levels":
            parts.append("integer pixels")
        return ", ".join(parts) or "-"


class Section(BaseModel):
    """A job section: unknown fields are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _setting(ok, bounds: str):
    """A validator of a sampling setting that takes a number, or a range [low, high] drawn per sample."""

    def check(value: Any) -> Any:
        what = f"expected a number {bounds}, or a range [low, high] of them"
        if isinstance(value, (tuple, list)):
            if len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise ValueError(f"{what}, got {list(value)}")
            if not all(ok(v) for v in value):
                raise ValueError(f"{what}, got {list(value)}")
            if value[0] > value[1]:
                raise ValueError(f"a range [low, high] needs low <= high, got {list(value)}")
            return (float(value[0]), float(value[1]))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
            raise ValueError(f"{what}, got {value!r}")
        return float(value)

    return BeforeValidator(check)


Truncation = Annotated[float | tuple[float, float], _setting(lambda v: 0 < v <= 2, "in (0, 2]")]
Guidance = Annotated[float | tuple[float, float], _setting(lambda v: v >= 0, ">= 0")]


class SamplingSection(Section):
    """A family's generation-time settings (``generate.sampling``): they change the pixels, so they are
    part of a shard plan's digest. A family with none keeps this empty section."""

    def record(self) -> dict[str, Any]:
        """The settings each sample's ``.json`` records (and the plan's digest holds): by default those
        that differ from the family's defaults."""
        default = type(self)()
        return {k: getattr(self, k) for k in type(self).model_fields if getattr(self, k) != getattr(default, k)}


class LatentSampling(SamplingSection):
    """Sampling of a family with latents (GAN, VAE): the latent truncation."""

    truncation: Truncation = Field(
        1.0,
        description="latents scaled by this: below 1 toward the mean (cleaner, less varied), above 1 away "
        "from it (more varied); 1 = off; a range [low, high]: each sample draws its own from its seed "
        "(recorded in its .json)",
    )


@dataclass(frozen=True)
class Member:
    """A named member of a family: its preset (the section's fields it fixes), what it is in a few words,
    and the job file that shows it (for the README's model table)."""

    preset: dict[str, Any]
    about: str = ""
    job: str = ""


class ModelSection(Section):
    """A family's ``model:`` section: ``name`` picks a member, whose preset fills the fields left out.

    Subclasses set ``FAMILY`` (the family's name), ``MODULE`` (where its ``FAMILY`` object lives, when
    not the section's own module), ``MEMBERS``, ``SAMPLING`` and ``TRAIN_DEFAULTS``, and say what a
    member can do in ``capabilities``.
    """

    FAMILY: ClassVar[str] = ""
    MEMBERS: ClassVar[dict[str, Member]] = {}
    SAMPLING: ClassVar[type[SamplingSection]] = SamplingSection
    TRAIN_DEFAULTS: ClassVar[dict[str, float]] = {}
    # Fields compared with these values rather than the preset's: a preset that changes what its
    # member builds lists the old value here, so its jobs get a new identity.
    IDENTITY_BASE: ClassVar[dict[str, Any]] = {}

    name: str

    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        return {name: member.preset for name, member in cls.MEMBERS.items()}

    @classmethod
    def from_config(cls, model_config: dict[str, Any]) -> ModelSection:
        """The section stored in a checkpoint's ``model_config`` (which adds the image shape)."""
        return cls.model_validate({k: v for k, v in model_config.items() if k in cls.model_fields})

    def capabilities(self) -> Capabilities:
        """What this member can do (it may depend on fields, e.g. ``conditional``)."""
        return Capabilities()

    def check_sampling(self, sampling: SamplingSection) -> None:
        """Raise ValueError (naming the fields) when the sampling settings do not fit this model."""

    def canonical(self) -> dict[str, Any]:
        """What defines this model: name and size, and any field that differs from the name's preset.

        Job identities and checkpoints use this, so a release that adds a field (with a preset)
        leaves existing outputs and checkpoints valid; IDENTITY_BASE undoes that where a preset
        changed.
        """
        preset = type(self).model_validate({"name": self.name}).model_dump(mode="json")
        preset.update(self.IDENTITY_BASE)
        keep = ("name", "latent_dim", "width")
        return {k: v for k, v in self.model_dump(mode="json").items() if k in keep or v != preset[k]}

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            name = data.get("name", next(iter(cls.MEMBERS)))
            member = cls.MEMBERS.get(name)
            return {**(member.preset if member else {}), **data, "name": name}
        return data
