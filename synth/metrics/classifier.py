"""The domain classifier: a small CNN trained on the real data.

It judges generated images in their own domain, where ImageNet features say
little (MNIST-like data): label fidelity (does a class-c image look like c to
it), FID in its penultimate features, and the class histogram of what it sees.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synth.cache import content_key, entry_path, write_atomic
from synth.models.common import from_uint8

log = logging.getLogger(__name__)


class SmallCNN(nn.Module):
    """(x: float NCHW in [-1, 1]) -> logits (N, K); ``features`` gives the 128-d penultimate layer."""

    feature_dim = 128

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(64 * 16, self.feature_dim), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

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


# Part of every cache key, with torch's version: bump it when SmallCNN or its training changes.
CLASSIFIER_VERSION = 1


def cached_train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    epochs: int,
    seed: int,
    held_out: float = HELD_OUT,
    train: Callable[[], TrainedClassifier] | None = None,
) -> TrainedClassifier:
    """train_classifier's result, from the cache (synth.cache) when the same images, labels and settings
    trained one before; otherwise trained (by ``train()`` if given: train_classifier with a progress
    bar, say) and cached.
    """
    key = content_key("train_classifier", CLASSIFIER_VERSION, torch.__version__, images, labels, num_classes,
                      epochs, seed, held_out)  # fmt: skip
    path = entry_path("classifiers", key, ".safetensors")
    if path is not None and path.exists():
        try:
            return _load_classifier(path, images.shape[-1], num_classes)
        except Exception as exc:  # a damaged entry costs a retraining, not the evaluation
            log.warning("cache: %s unreadable (%s); training the classifier again", path, exc)
    clf = train() if train is not None else train_classifier(images, labels, num_classes, epochs, seed, held_out)
    if path is not None:
        from safetensors.torch import save_file

        info = {f.name: getattr(clf, f.name) for f in fields(clf) if f.name not in ("model", "from_cache")}
        state = {k: v.contiguous() for k, v in clf.model.state_dict().items()}
        write_atomic(path, lambda tmp: save_file(state, str(tmp), metadata={"info": json.dumps(info)}))
    return clf


def _load_classifier(path, channels: int, num_classes: int) -> TrainedClassifier:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        info = json.loads(f.metadata()["info"])
        state = {k: f.get_tensor(k) for k in f.keys()}
    model = SmallCNN(channels, num_classes)
    model.load_state_dict(state)
    model.eval()
    return TrainedClassifier(model, **info, from_cache=True)


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
) -> TrainedClassifier:
    """Train SmallCNN on uint8 NHWC images; report accuracy on a held-out split. ``progress``: as fit_classifier."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=gen).numpy()
    n_val = held_out_size(len(images), held_out)
    val, tr = order[:n_val], order[n_val:]
    model = fit_classifier(images[tr], labels[tr], num_classes, epochs, seed, gen, progress)
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
) -> SmallCNN:
    """SmallCNN trained on all of the uint8 NHWC images: AdamW, one-cycle schedule, random shifts.

    ``progress(n)`` is called with the number of images of each step.
    """
    gen = gen if gen is not None else torch.Generator().manual_seed(seed)
    x, y = from_uint8(images), torch.from_numpy(labels).long()
    with torch.random.fork_rng(devices=[]):  # seeded init, global RNG untouched
        torch.manual_seed(seed)
        model = SmallCNN(images.shape[-1], num_classes)
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
def predict(model: SmallCNN, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Predicted class of each uint8 NHWC image."""
    out = [model(from_uint8(images[i : i + batch_size])).argmax(1) for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy()


@torch.no_grad()
def classifier_features(model: SmallCNN, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Penultimate features (N, 128) float64 of uint8 NHWC images."""
    out = [model.features(from_uint8(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return torch.cat(out).double().numpy()
