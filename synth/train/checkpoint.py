"""Checkpoints: weights and optimiser tensors in safetensors, a small JSON state.

Layout under ``checkpoints/`` (synth.layout names the files):
  state.json                   step, model config, versions, file name of the weights
  train-{step:07d}.safetensors everything needed to resume (models, EMA, optimisers)
  generator.safetensors        the EMA generator ready for sampling (written at the end)
  generator.json               its config, step and digest

Every file is written to a temporary name and renamed, and state.json is
written last, so a crash leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from synth.errors import SynthError
from synth.fsutil import atomic_write_json, file_digest
from synth.layout import GENERATOR_FILE, GENERATOR_META, STATE_FILE


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def flatten_optimizer(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    """Optimiser state -> (flat tensors ``prefix/param_id/name``, JSON-able param groups)."""
    sd = optimizer.state_dict()
    tensors = {}
    for pid, slots in sd["state"].items():
        for name, value in slots.items():
            tensors[f"{prefix}/{pid}/{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, sd["param_groups"]


def unflatten_optimizer(prefix: str, tensors: dict[str, torch.Tensor], param_groups: list) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        head, _, rest = key.partition("/")
        if head != prefix:
            continue
        pid, _, name = rest.partition("/")
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": param_groups}


def prefixed(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{k}": v for k, v in module.state_dict().items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    head = prefix + "/"
    return {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}


def save_training_checkpoint(
    folder: Path,
    step: int,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
) -> Path:
    """Write ``train-{step}.safetensors`` then ``state.json``; drop older weights."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    groups = {}
    for name, module in modules.items():
        tensors.update(prefixed(name, module))
    for name, opt in optimizers.items():
        flat, groups[name] = flatten_optimizer(name, opt)
        tensors.update(flat)
    weights = folder / f"train-{step:07d}.safetensors"
    save_tensors(weights, tensors)
    atomic_write_json(
        folder / STATE_FILE,
        {**state, "step": step, "weights": weights.name, "optimizer_groups": groups, "versions": versions()},
    )
    for old in folder.glob("train-*.safetensors"):
        if old != weights:
            old.unlink(missing_ok=True)
    return weights


def read_state(folder: Path) -> dict[str, Any] | None:
    """The checkpoint state, or None if there is no checkpoint."""
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SynthError(f"{path}: unreadable checkpoint state ({exc}); delete {folder} to start over") from None


def check_same_model(state: dict[str, Any], model_config: dict[str, Any], folder: Path) -> None:
    """Refuse to resume when the model config differs from the checkpoint's."""
    saved = state.get("model_config", {})
    if saved == model_config:
        return
    changed = sorted(k for k in set(saved) | set(model_config) if saved.get(k) != model_config.get(k))
    details = ", ".join(f"{k}: {saved.get(k)!r} -> {model_config.get(k)!r}" for k in changed)
    raise SynthError(
        f"{folder / STATE_FILE}: the model config changed since this checkpoint ({details}); "
        f"use a new --out, or delete {folder} to train from scratch"
    )


def load_training_checkpoint(
    folder: Path,
    state: dict[str, Any],
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
) -> int:
    """Restore modules and optimisers in place; return the step to continue from."""
    weights = folder / state["weights"]
    if not weights.is_file():
        raise SynthError(f"{weights}: checkpoint weights missing; delete {folder} to train from scratch")
    tensors = load_file(str(weights))
    for name, module in modules.items():
        module.load_state_dict(unprefixed(name, tensors))
    for name, opt in optimizers.items():
        opt.load_state_dict(unflatten_optimizer(name, tensors, state["optimizer_groups"][name]))
    return int(state["step"])


def save_generator(folder: Path, generator: torch.nn.Module, meta: dict[str, Any]) -> str:
    """Write the sampling-ready generator and its JSON description; return its digest."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / GENERATOR_FILE
    save_tensors(path, dict(generator.state_dict()))
    digest = file_digest(path)
    atomic_write_json(folder / GENERATOR_META, {**meta, "digest": digest, "versions": versions()})
    return digest


def load_generator_files(folder: Path) -> tuple[dict[str, Any], bytes]:
    """(meta, safetensors bytes) of the trained generator, or a clear error."""
    meta_path, path = folder / GENERATOR_META, folder / GENERATOR_FILE
    if not meta_path.is_file() or not path.is_file():
        raise SynthError(f"{path}: no trained generator; run 'synth train' (or 'synth run') with this --out first")
    return json.loads(meta_path.read_text()), path.read_bytes()


def versions() -> dict[str, str]:
    import synth

    return {"synth": synth.__version__, "torch": torch.__version__}
