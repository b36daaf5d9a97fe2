"""The domain classifier: a small CNN trained on the real data.

It judges generated images in their own domain, where ImageNet features say
little (MNIST-like data): label fidelity (does a class-c image look like c to
it), FID in its penultimate features, and the class histogram of what it sees.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synth.cache import memoize, source_digest
from synth.models.common import from_uint8


class SmallCNN(nn.Module):
    """(x: float NCHW in [-1, 1]) -> logits (N, K); ``features`` gives the 128-d penultimate layer."""

    feature_dim = 128

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(64 * 16, self.feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class FastCNN(nn.Module):
    """A small classifier for generate.filter: three stride-2 3x3 convolutions (16, 32, 64 channels),
    global average pooling, a linear head. About 1/30 of SmallCNN's multiply-adds at 28x28, so judging
    every candidate costs less than drawing it; and it is not the network the report judges with.
    (x: float NCHW in [-1, 1]) -> logits (N, K)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, 2, 1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, 2, 1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


HELD_OUT = 0.1  # share of the real images the domain classifier is scored on, not trained on
BATCH = 128


def held_out_size(n: int, held_out: float = HELD_OUT) -> int:
    """How many of ``n`` images train_classifier keeps back to score on."""
    return max(1, int(n * held_out))


def images_seen(n: int, epochs: int) -> int:
    """Images fit_classifier steps through in all on ``n`` training images: a progress bar's total."""
    return epochs * max(1, n // BATCH) * min(n, BATCH)


@dataclass
class TrainedClassifier:
    model: SmallCNN
    held_out_accuracy: float
    train_size: int
    held_out_size: int
    epochs: int
    from_cache: bool = False  # loaded from synth.cache: an identical training ran before


def cached_train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    epochs: int,
    seed: int,
    held_out: float = HELD_OUT,
    progress_bar: Callable[[int], AbstractContextManager] | None = None,
    network: str = "cnn",
) -> TrainedClassifier:
    """train_classifier's result, from the cache (synth.cache) when the same images, labels, settings
    and code trained one before; else trained and cached. ``network``: a key of
    ``synth.metrics.cas.NETWORKS`` (the domain classifier is ``cnn``, SmallCNN).

    ``progress_bar(total)``: a context manager whose ``update(n)`` counts training images, entered
    only when training happens (synth.progress.Progress fits).
    """

    def train() -> TrainedClassifier:
        total = images_seen(len(images) - held_out_size(len(images), held_out), epochs)
        with progress_bar(total) if progress_bar is not None else nullcontext() as bar:
            progress = None if bar is None else bar.update
            return train_classifier(
                images, labels, num_classes, epochs, seed, held_out, progress=progress, network=network
            )

    from synth.metrics.cas import NETWORKS

    build = NETWORKS[network][0]
    code = source_digest(build, train_classifier, fit_classifier, random_shift, from_uint8, held_out_size)
    parts = ("train_classifier", code, torch.__version__, BATCH, images, labels, num_classes, epochs, seed, held_out)
    if network != "cnn":  # the domain classifier's key stays what it was
        parts += (network,)
    clf, hit = memoize(
        "classifiers",
        parts,
        train,
        _encode_classifier,
        lambda data: _decode_classifier(data, images.shape[-1], num_classes, build),
    )
    clf.from_cache = hit
    return clf


def _encode_classifier(clf: TrainedClassifier) -> bytes:
    from safetensors.torch import save

    info = {f.name: getattr(clf, f.name) for f in fields(clf) if f.name not in ("model", "from_cache")}
    state = {k: v.detach().cpu().contiguous() for k, v in clf.model.state_dict().items()}
    return save(state, metadata={"info": json.dumps(info)})


def _decode_classifier(data: bytes, channels: int, num_classes: int, build=SmallCNN) -> TrainedClassifier:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        state = load(data)
        header_len = int.from_bytes(data[:8], "little")  # safetensors: 8-byte header length, then the JSON header
        info = json.loads(json.loads(data[8 : 8 + header_len])["__metadata__"]["info"])
    except SafetensorError as exc:
        raise ValueError(str(exc)) from exc
    model = build(channels, num_classes)
    model.load_state_dict(state)
    model.eval()
    return TrainedClassifier(model, **info)


def random_shift(x: torch.Tensor, gen: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Translate each image by up to ``pixels`` (padding with the background value -1)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pixels,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * pixels + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pixels + 1, (n,), generator=gen)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    epochs: int,
    seed: int,
    held_out: float = HELD_OUT,
    progress=None,
    network: str = "cnn",
) -> TrainedClassifier:
    """Train a classifier (SmallCNN, or ``network`` of synth.metrics.cas.NETWORKS) on uint8 NHWC images;
    report accuracy on a held-out split. ``progress``: as fit_classifier."""
    from synth.metrics.cas import NETWORKS

    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=gen).numpy()
    n_val = held_out_size(len(images), held_out)
    val, tr = order[:n_val], order[n_val:]
    model = fit_classifier(images[tr], labels[tr], num_classes, epochs, seed, gen, progress, NETWORKS[network][0])
    acc = float((predict(model, images[val]) == labels[val]).mean())
    return TrainedClassifier(model, acc, len(tr), len(val), epochs)


def fit_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    epochs: int,
    seed: int,
    gen: torch.Generator | None = None,
    progress=None,
    network: Callable[[int, int], nn.Module] = SmallCNN,
) -> nn.Module:
    """``network(channels, num_classes)`` (default SmallCNN) trained on all of the uint8 NHWC images:
    AdamW, one-cycle schedule, random shifts.

    ``progress(n)`` is called with the number of images of each step.
    """
    gen = gen if gen is not None else torch.Generator().manual_seed(seed)
    x, y = from_uint8(images), torch.from_numpy(labels).long()
    with torch.random.fork_rng(devices=[]):  # seeded init, global RNG untouched
        torch.manual_seed(seed)
        model = network(images.shape[-1], num_classes)
    steps_per_epoch = max(1, len(x) // BATCH)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * steps_per_epoch)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for b in range(steps_per_epoch):
            idx = perm[b * BATCH : (b + 1) * BATCH]
            loss = F.cross_entropy(model(random_shift(x[idx], gen)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if progress is not None:
                progress(len(idx))
    model.eval()
    return model


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Predicted class of each uint8 NHWC image."""
    out = [model(from_uint8(images[i : i + batch_size])).argmax(1) for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy()


@torch.no_grad()
def classifier_outputs(model: SmallCNN, images: np.ndarray, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(penultimate features (N, 128), logits (N, K)), float64, of uint8 NHWC images in one pass."""
    feats, logits = [], []
    for i in range(0, len(images), batch_size):
        f = model.features(from_uint8(images[i : i + batch_size]))
        feats.append(f)
        logits.append(model.head(f))
    return torch.cat(feats).double().numpy(), torch.cat(logits).double().numpy()


def export_classifier(model: nn.Module, network: str, class_names: list[str], channels: int) -> bytes:
    """A classifier as synth's safetensors file: the weights, and in the metadata which network of
    ``synth.metrics.cas.NETWORKS`` it is (``cnn``, ``resnet``), its input channels and its class names.
    ``generate.filter.classifier`` takes such a file."""
    from safetensors.torch import save

    info = {"network": network, "channels": int(channels), "class_names": [str(n) for n in class_names]}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save(state, metadata={"synth_classifier": json.dumps(info)})


def import_classifier(data: bytes) -> tuple[nn.Module, list[str]]:
    """(the classifier, its class names) from ``export_classifier``'s bytes; ValueError if they are not one."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    from synth.metrics.cas import NETWORKS

    try:
        state = load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
        info = json.loads(meta["synth_classifier"])
    except (SafetensorError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a TorchScript file, nor a synth safetensors classifier ({exc})") from None
    if info.get("network") not in NETWORKS:
        raise ValueError(f"unknown classifier network {info.get('network')!r} (synth knows {', '.join(NETWORKS)})")
    model = NETWORKS[info["network"]][0](int(info["channels"]), len(info["class_names"]))
    model.load_state_dict(state)
    return model.eval(), list(info["class_names"])
