import logging

import numpy as np
import pytest

from synth.cache import content_key, decode_array, encode_array, memoize
from synth.data import load_dataset
from synth.metrics import classifier
from synth.metrics.classifier import cached_train_classifier, predict
from synth.spec import DataSpec


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataSpec(source="digits", resolution=8, channels=1))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_CACHE_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def trainings(monkeypatch):
    """Counts the classifier trainings that really happen."""
    calls = []
    real = classifier.train_classifier

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(classifier, "train_classifier", counting)
    return calls


def entries(root):
    return [p for p in root.rglob("*") if p.is_file()]


def test_key_tells_arrays_apart_by_bytes_dtype_and_shape():
    a = np.arange(12, dtype=np.uint8)
    assert content_key(a, 1) == content_key(a.copy(), 1)
    assert content_key(a, 1) != content_key(a, 2)
    assert content_key(a) != content_key(a.astype(np.int64))
    assert content_key(a) != content_key(a.reshape(3, 4))
    b = a.copy()
    b[5] += 1
    assert content_key(a) != content_key(b)


def test_second_training_on_the_same_data_is_loaded_not_retrained(digits, cache, trainings):
    x, y, k = digits.images, digits.labels, digits.num_classes
    first = cached_train_classifier(x, y, k, epochs=1, seed=0)
    again = cached_train_classifier(x, y, k, epochs=1, seed=0)
    assert (first.from_cache, again.from_cache, len(trainings)) == (False, True, 1)
    assert len(entries(cache)) == 1
    assert (again.held_out_accuracy, again.train_size, again.held_out_size, again.epochs) == (
        first.held_out_accuracy,
        first.train_size,
        first.held_out_size,
        1,
    )
    np.testing.assert_array_equal(predict(again.model, x), predict(first.model, x))


@pytest.mark.parametrize("change", ["images", "labels", "num_classes", "epochs", "seed", "held_out"])
def test_each_input_is_part_of_the_key(digits, cache, trainings, change):
    args = {
        "images": digits.images,
        "labels": digits.labels,
        "num_classes": 10,
        "epochs": 1,
        "seed": 0,
        "held_out": 0.1,
    }
    cached_train_classifier(**args)
    other = {
        "images": lambda a: np.ascontiguousarray(a[::-1]),
        "labels": lambda a: np.random.default_rng(0).permutation(a),
        "num_classes": lambda k: k + 1,
        "epochs": lambda e: e + 1,
        "seed": lambda s: s + 1,
        "held_out": lambda h: 0.2,
    }[change]
    assert not cached_train_classifier(**{**args, change: other(args[change])}).from_cache
    assert len(trainings) == 2 and len(entries(cache)) == 2


def test_damaged_entry_is_retrained_and_rewritten(digits, cache, trainings):
    x, y, k = digits.images, digits.labels, digits.num_classes
    cached_train_classifier(x, y, k, epochs=1, seed=0)
    (entry,) = entries(cache)
    entry.write_bytes(entry.read_bytes()[:100])
    assert not cached_train_classifier(x, y, k, epochs=1, seed=0).from_cache
    assert cached_train_classifier(x, y, k, epochs=1, seed=0).from_cache
    assert len(trainings) == 2 and entries(cache) == [entry]


def test_unwritable_cache_warns_and_computes(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SYNTH_CACHE_DIR", str(blocker))
    calls = []
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            value, hit = memoize("kind", (1,), lambda: calls.append(1) or np.arange(3), encode_array, decode_array)
            assert not hit and value.tolist() == [0, 1, 2]
    assert len(calls) == 2 and "cannot write" in caplog.text
    assert blocker.read_text() == "not a folder"


def test_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_CACHE_DIR", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # were "off" taken for a folder name, it would appear here
    for _ in range(2):
        assert memoize("kind", (1,), lambda: np.arange(3), encode_array, decode_array)[1] is False
    assert not list(tmp_path.rglob("*"))


def test_array_round_trip_and_damaged_entry(cache):
    a = np.random.default_rng(0).normal(size=(7, 5))
    value, hit = memoize("features", ("t",), lambda: a, encode_array, decode_array)
    assert not hit
    value, hit = memoize("features", ("t",), lambda: 1 / 0, encode_array, decode_array)
    assert hit
    np.testing.assert_array_equal(value, a)
    (entry,) = entries(cache)
    entry.write_bytes(entry.read_bytes()[:40])
    assert memoize("features", ("t",), lambda: a, encode_array, decode_array)[1] is False
    assert entries(cache) == [entry]  # rewritten whole, no temporary files left
