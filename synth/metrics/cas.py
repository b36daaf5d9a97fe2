"""Classification Accuracy Score: train a classifier on generated images, test it on real ones.

After Ravuri & Vinyals (2019). The same classifier, trained the same way (same seed, epochs and
schedule), is trained three times: on N generated images (the CAS), on N real training images (the
baseline), and on both (does synthetic data add to real data?). All three are tested on the same
real test images, which the generative model never saw. The gap between the first two is what a
downstream user loses by training on the synthetic data instead of real data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch.nn.functional as F
from torch import nn

from synth.metrics.classifier import FastCNN, SmallCNN, fit_classifier, images_seen, predict


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a shortcut (He et al., 2016)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """ResNet-8 of He et al.'s CIFAR family, for 28x28 to 32x32 images: a 3x3 stem, three stages
    of one basic block (widths 16, 32, 64; strides 1, 2, 2), global average pooling, a linear head.
    78k parameters; about 2,000 training images/s on 2 CPU cores at 28x28."""

    def __init__(self, channels: int, num_classes: int, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        self.stages = nn.Sequential(
            BasicBlock(widths[0], widths[0], 1),
            BasicBlock(widths[0], widths[1], 2),
            BasicBlock(widths[1], widths[2], 2),
        )
        self.head = nn.Linear(widths[2], num_classes)

    def features(self, x):
        return self.stages(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x):
        return self.head(self.features(x))


NETWORKS: dict[str, tuple[Callable[[int, int], nn.Module], str]] = {
    "resnet": (SmallResNet, "ResNet-8 (3 basic blocks, widths 16/32/64), AdamW one-cycle, random 2-pixel shifts"),
    "cnn": (SmallCNN, "SmallCNN (4 conv layers), AdamW one-cycle, random 2-pixel shifts"),
    "fast": (FastCNN, "FastCNN (3 stride-2 conv layers), AdamW one-cycle, random 2-pixel shifts"),
}


@dataclass(frozen=True)
class Score:
    accuracy: float
    per_class: list[float | None]
    num_train: int


@dataclass(frozen=True)
class CasResult:
    synthetic: Score  # trained on generated images: the CAS
    real: Score  # trained on as many real training images: the baseline
    real_plus_synthetic: Score | None  # trained on both
    num_test: int
    epochs: int
    seed: int
    network: str

    @property
    def gap(self) -> float:
        """Baseline accuracy minus CAS (positive: synthetic data trains a worse classifier)."""
        return self.real.accuracy - self.synthetic.accuracy

    def to_dict(self) -> dict:
        return {**asdict(self), "gap": self.gap}


def score(model: nn.Module, images: np.ndarray, labels: np.ndarray, num_classes: int, num_train: int) -> Score:
    preds = predict(model, images)
    per_class = [float((preds[labels == c] == c).mean()) if (labels == c).any() else None for c in range(num_classes)]
    return Score(float((preds == labels).mean()), per_class, num_train)


def cas_images_seen(
    num_fake: int, num_real: int, epochs: int, mixed: bool = True, real_epochs: int | None = None
) -> int:
    """Training images classification_accuracy_score steps through: a progress bar's total."""
    total = images_seen(num_fake, epochs) + images_seen(num_real, real_epochs or epochs)
    return total + (images_seen(num_fake + num_real, epochs) if mixed else 0)


def classification_accuracy_score(
    fake: tuple[np.ndarray, np.ndarray],
    real_train: tuple[np.ndarray, np.ndarray],
    real_test: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    epochs: int,
    seed: int,
    progress=None,
    network: str = "resnet",
    mixed: bool = True,
    real_epochs: int | None = None,
) -> CasResult:
    """Each argument pair is (uint8 NHWC images, int64 labels). Every classifier shares seed and epochs.

    ``network``: a key of NETWORKS; ``mixed``: also train on real plus synthetic images;
    ``real_epochs``: the real-only classifier's epochs, when not ``epochs`` (as many steps as on
    a larger synthetic set).
    """
    build, description = NETWORKS[network]
    arms = [(fake, epochs), (real_train, real_epochs or epochs)]
    if mixed:
        both = (np.concatenate([real_train[0], fake[0]]), np.concatenate([real_train[1], fake[1]]))
        arms.append((both, epochs))
    scores = []
    for (images, labels), arm_epochs in arms:
        model = fit_classifier(images, labels, num_classes, arm_epochs, seed, progress=progress, network=build)
        scores.append(score(model, *real_test, num_classes, len(images)))
    return CasResult(scores[0], scores[1], scores[2] if mixed else None, len(real_test[1]), epochs, seed, description)


@dataclass(frozen=True)
class Arm:
    """One row of the CAS table: a classifier trained on ``real`` real and ``synthetic`` generated images."""

    name: str
    real: int
    synthetic: int
    real_repeats: int = (
        1  # the real images this many times over: half real, half synthetic at real_repeats = synthetic / real
    )

    @property
    def images(self) -> int:
        """Training images in one epoch of this arm."""
        return self.real * self.real_repeats + self.synthetic


def table_arms(num_real: int, num_fake: int) -> list[Arm]:
    """The CAS table's rows for R real and F generated training images: real only, synthetic only (as
    many), real + synthetic at 1x, 2x and 5x R (those F allows), and the low-data rows: 1% and 10% of
    the real images, alone and with R synthetic ones."""
    r, s = num_real, min(num_real, num_fake)
    arms = [Arm("real", r, 0), Arm("synthetic", 0, s)]
    arms += [Arm(f"real + synthetic {k}x", r, k * r) for k in (1, 2, 5) if k * r <= num_fake]
    for pct in (1, 10):
        few = max(1, r * pct // 100)
        arms += [Arm(f"{pct}% real", few, 0), Arm(f"{pct}% real + synthetic", few, s)]
    return arms


def stratified(labels: np.ndarray, n: int, num_classes: int, seed: int) -> np.ndarray:
    """Indices of ``n`` of the images, each class in proportion (largest remainder), in a seeded order."""
    from synth.generate.plan import apportion

    counts = np.bincount(labels, minlength=num_classes)
    take = apportion(min(n, len(labels)), counts)
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in enumerate(take)]
    return np.sort(np.concatenate(chosen))


def cas_table(
    fake: tuple[np.ndarray, np.ndarray],
    real_train: tuple[np.ndarray, np.ndarray],
    real_test: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    epochs: int,
    seeds: list[int],
    network: str = "resnet",
    progress=None,
    arms: list[Arm] | None = None,
    subset_seed: int = 0,
    base: int | None = None,
) -> list[dict]:
    """Test accuracy of ``network`` trained on each arm of ``table_arms`` (or ``arms``), once per seed.

    Every arm draws its real images from ``real_train`` (a class-stratified subset, seeded) and its
    synthetic ones from the head of ``fake`` (generated in a seeded shuffled order); the subsets are
    drawn with ``subset_seed``, the same for every classifier seed. An arm smaller
    than ``base`` images (default: the real ones) trains for as many steps as ``epochs`` epochs of
    ``base`` images take (more epochs), so a low-data classifier is not also a less-trained one.
    Rows: name, counts, epochs, per-seed accuracies, mean, std.
    """
    build = NETWORKS[network][0]
    arms = arms or table_arms(len(real_train[1]), len(fake[1]))
    base = base or len(real_train[1])
    rows = []
    for arm in arms:
        keep = stratified(real_train[1], arm.real, num_classes, subset_seed) if arm.real else np.zeros(0, np.int64)
        keep = np.tile(keep, arm.real_repeats)
        images = np.concatenate([real_train[0][keep], fake[0][: arm.synthetic]])
        labels = np.concatenate([real_train[1][keep], fake[1][: arm.synthetic]])
        arm_epochs = max(epochs, -(-epochs * base // max(1, len(labels))))
        accuracies = []
        for seed in seeds:
            model = fit_classifier(images, labels, num_classes, arm_epochs, seed, progress=progress, network=build)
            accuracies.append(score(model, *real_test, num_classes, len(images)).accuracy)
        rows.append(
            {
                "arm": arm.name,
                "real": int(arm.real),
                "real_repeats": arm.real_repeats,
                "synthetic": int(arm.synthetic),
                "epochs": arm_epochs,
                "network": network,
                "seeds": list(seeds),
                "accuracy": accuracies,
                "mean": float(np.mean(accuracies)),
                "std": float(np.std(accuracies)),
            }
        )
    return rows


def cas_table_images_seen(arms: list[Arm], base: int, epochs: int, seeds: int) -> int:
    """Training images cas_table steps through: a progress bar's total."""
    total = 0
    for arm in arms:
        n = arm.images
        total += images_seen(n, max(epochs, -(-epochs * base // max(1, n))))
    return total * seeds
