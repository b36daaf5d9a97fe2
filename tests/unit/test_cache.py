import numpy as np
import pytest

from synth.cache import content_key, entry_path, read_array, write_array
from synth.data import load_dataset
from synth.metrics.classifier import cached_train_classifier, predict
from synth.spec import DataSpec


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataSpec(source="digits", resolution=8, channels=1))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_key_tells_arrays_apart_by_bytes_dtype_and_shape():
    a = np.arange(12, dtype=np.uint8)
    assert content_key(a, 1) == content_key(a.copy(), 1)
    assert content_key(a, 1) != content_key(a, 2)
    assert content_key(a) != content_key(a.astype(np.int64))
    assert content_key(a) != content_key(a.reshape(3, 4))
    b = a.copy()
    b[5] += 1
    assert content_key(a) != content_key(b)


def test_second_training_on_the_same_data_is_loaded_not_retrained(digits, cache):
    x, y, k = digits.images, digits.labels, digits.num_classes
    first = cached_train_classifier(x, y, k, epochs=1, seed=0)
    assert not first.from_cache
    assert len(list(cache.rglob("*.safetensors"))) == 1

    def fail():
        raise AssertionError("trained although an identical classifier is cached")

    again = cached_train_classifier(x, y, k, epochs=1, seed=0, train=fail)
    assert again.from_cache
    assert (again.held_out_accuracy, again.train_size, again.epochs) == (first.held_out_accuracy, first.train_size, 1)
    np.testing.assert_array_equal(predict(again.model, x), predict(first.model, x))

    shuffled = np.random.default_rng(0).permutation(y)  # other labels, other key
    assert not cached_train_classifier(x, shuffled, k, epochs=1, seed=0).from_cache
    assert not cached_train_classifier(x, y, k, epochs=1, seed=1).from_cache
    assert len(list(cache.rglob("*.safetensors"))) == 3


def test_damaged_entry_is_retrained_and_rewritten(digits, cache):
    x, y, k = digits.images, digits.labels, digits.num_classes
    cached_train_classifier(x, y, k, epochs=1, seed=0)
    (entry,) = cache.rglob("*.safetensors")
    entry.write_bytes(entry.read_bytes()[:100])
    clf = cached_train_classifier(x, y, k, epochs=1, seed=0)
    assert not clf.from_cache
    assert cached_train_classifier(x, y, k, epochs=1, seed=0).from_cache
    assert not list(cache.rglob("*.tmp"))


def test_off_writes_nothing(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_CACHE_DIR", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # were "off" taken for a folder name, it would appear here
    x, y, k = digits.images, digits.labels, digits.num_classes
    assert not cached_train_classifier(x, y, k, epochs=1, seed=0).from_cache
    assert not cached_train_classifier(x, y, k, epochs=1, seed=0).from_cache
    assert not list(tmp_path.rglob("*"))


def test_array_round_trip_and_damaged_entry(cache):
    path = entry_path("features", content_key("test", np.arange(3)), ".npy")
    assert read_array(path) is None
    a = np.random.default_rng(0).normal(size=(7, 5))
    write_array(path, a)
    np.testing.assert_array_equal(read_array(path), a)
    path.write_bytes(path.read_bytes()[:40])
    assert read_array(path) is None
    assert not list(cache.rglob("*.tmp"))
