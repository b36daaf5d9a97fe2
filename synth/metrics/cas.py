"""Classification Accuracy Score: train a classifier on generated images, test it on real ones.

After Ravuri & Vinyals (2019). The same classifier, trained the same way on real training images,
is the baseline: the gap between the two accuracies, both on the same real test images, is what a
downstream user loses by training on the synthetic data instead of the real data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from synth.metrics.classifier import SmallCNN, fit_classifier, predict

CAS_NETWORK = "SmallCNN (4 conv layers), AdamW one-cycle, random 2-pixel shifts"


@dataclass(frozen=True)
class Score:
    accuracy: float
    per_class: list[float | None]
    num_train: int


@dataclass(frozen=True)
class CasResult:
    synthetic: Score  # trained on generated images
    real: Score  # trained on real training images: the baseline
    num_test: int
    epochs: int
    network: str = CAS_NETWORK

    @property
    def gap(self) -> float:
        """Baseline accuracy minus CAS (positive: synthetic data trains a worse classifier)."""
        return self.real.accuracy - self.synthetic.accuracy

    def to_dict(self) -> dict:
        return {**asdict(self), "gap": self.gap}


def score(model: SmallCNN, images: np.ndarray, labels: np.ndarray, num_classes: int, num_train: int) -> Score:
    preds = predict(model, images)
    per_class = [float((preds[labels == c] == c).mean()) if (labels == c).any() else None for c in range(num_classes)]
    return Score(float((preds == labels).mean()), per_class, num_train)


def classification_accuracy_score(
    fake: tuple[np.ndarray, np.ndarray],
    real_train: tuple[np.ndarray, np.ndarray],
    real_test: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    epochs: int,
    seed: int,
    progress=None,
) -> CasResult:
    """Each argument pair is (uint8 NHWC images, int64 labels). Both classifiers share seed and epochs."""
    scores = []
    for images, labels in (fake, real_train):
        model = fit_classifier(images, labels, num_classes, epochs, seed, progress=progress)
        scores.append(score(model, *real_test, num_classes, len(images)))
    return CasResult(scores[0], scores[1], len(real_test[1]), epochs)
