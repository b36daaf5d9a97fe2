"""Every model family synth knows, by name: the one place a family is added.

A family file ends with ``register(TheSection)``: its ``model:`` section, which names the family,
its members (``model.name``) and their presets, its sampling settings and what each member can
do. The job spec's model union, ``--dry-run`` and the README's model table come from here.

``load()`` imports the built-in family files, then any plugin: the modules named in the
``SYNTH_PLUGINS`` environment variable (comma-separated) and the ``synth.families`` entry points
of installed packages. A plugin registers its section the same way; a Ray worker imports the
plugin's module when it unpickles the job, so the module must be importable on every node.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from synth.errors import SynthError
from synth.models.section import ModelSection

BUILTIN = ("synth.models.gan", "synth.models.vae", "synth.models.diffusion")
PLUGINS_ENV = "SYNTH_PLUGINS"

_SECTIONS: dict[str, type[ModelSection]] = {}
_LISTENERS: list = []  # called after a registration (synth.spec rebuilds its model union)
_loaded = False


def on_register(listener) -> None:
    """Call ``listener()`` after every later registration."""
    _LISTENERS.append(listener)


def register(section: type[ModelSection]) -> type[ModelSection]:
    """Add a family (its section class); its ``FAMILY`` object lives in the section's module."""
    family = section.FAMILY
    if not family or not section.MEMBERS:
        raise ValueError(f"{section.__name__}: a family section needs FAMILY and MEMBERS")
    known = _SECTIONS.get(family)
    if known is not None and known is not section and known.__qualname__ != section.__qualname__:
        raise ValueError(f"model family {family!r} is registered twice ({known.__module__}, {section.__module__})")
    taken = {name: f for f, cls in _SECTIONS.items() if f != family for name in cls.MEMBERS}
    for name in section.MEMBERS:
        if name in taken:
            raise ValueError(f"model {name!r} of family {family!r} is already a member of {taken[name]!r}")
    _SECTIONS[family] = section
    for listener in _LISTENERS:
        listener()
    return section


def load() -> None:
    """Import the built-in families and the plugins (once per process)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN:
        importlib.import_module(module)
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SynthError(f"{PLUGINS_ENV}: cannot import model plugin {module!r}: {exc}") from None
    for entry in entry_points(group="synth.families"):
        entry.load()


def sections() -> dict[str, type[ModelSection]]:
    """Family name -> its ``model:`` section class, built-in families first."""
    load()
    return dict(_SECTIONS)


def members() -> dict[str, str]:
    """Member name (``model.name``) -> its family's name."""
    return {name: family for family, cls in sections().items() for name in cls.MEMBERS}


def section_for(name: str) -> type[ModelSection]:
    """The section class of member ``name`` (SynthError naming the choices if unknown)."""
    family = members().get(name)
    if family is None:
        raise SynthError(f"model.name: unknown model {name!r}; choose from {', '.join(members())}")
    return _SECTIONS[family]


def family_for(name: str):
    """The ``Family`` that trains and samples member ``name``: its section's module's ``FAMILY``."""
    return importlib.import_module(section_for(name).__module__).FAMILY


def models_table(builtin_only: bool = False) -> str:
    """The model table (Markdown), one row per member: README's, and ``synth models``."""
    rows = [
        "| `model.name` | family | conditioned on | can | what it is | job |",
        "|---|---|---|---|---|---|",
    ]
    for family, cls in sections().items():
        if builtin_only and cls.__module__ not in BUILTIN:
            continue
        for name, member in cls.MEMBERS.items():
            caps = cls.model_validate({"name": name}).capabilities()
            rows.append(
                f"| `{name}` | {family} | {caps.conditioning} | {caps.words()} | {member.about} | {member.job or '-'} |"
            )
    return "\n".join(rows) + "\n"
