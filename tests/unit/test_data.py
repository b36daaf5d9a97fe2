import numpy as np
import pytest
from PIL import Image

from synth.data import load_dataset
from synth.data.sources import FASHION_DEBIAN_DIR
from synth.errors import SynthError
from synth.spec import DataSpec


def test_digits_resized_to_job_resolution():
    ds = load_dataset(DataSpec(source="digits", resolution=16, channels=1))
    assert ds.images.shape == (1797, 16, 16, 1) and ds.images.dtype == np.uint8
    assert ds.images.max() == 255 and ds.num_classes == 10
    assert ds.labels.dtype == np.int64 and set(np.unique(ds.labels)) == set(range(10))


def test_mnist_subset_is_balanced_28x28():
    ds = load_dataset(DataSpec(source="mnist_subset"))
    assert ds.images.shape == (5000, 28, 28, 1)
    assert ds.class_counts().tolist() == [500] * 10
    # background black, strokes white: the mean is far below mid-grey
    assert 20 < ds.images.mean() < 50


def test_limit_takes_a_seeded_subset():
    a = load_dataset(DataSpec(source="mnist_subset", limit=100), seed=3)
    b = load_dataset(DataSpec(source="mnist_subset", limit=100), seed=3)
    c = load_dataset(DataSpec(source="mnist_subset", limit=100), seed=4)
    assert len(a) == 100 and np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)


def test_channels_three_repeats_gray():
    ds = load_dataset(DataSpec(source="digits", resolution=8, channels=3, limit=5))
    assert ds.images.shape == (5, 8, 8, 3)
    assert np.array_equal(ds.images[..., 0], ds.images[..., 2])


@pytest.mark.skipif(not FASHION_DEBIAN_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_package():
    ds = load_dataset(DataSpec(source="fashion_mnist"))
    assert ds.images.shape == (60000, 28, 28, 1)
    assert ds.class_counts().tolist() == [6000] * 10
    assert ds.class_names[9] == "ankle-boot"


def test_fashion_mnist_missing_says_how_to_install(tmp_path):
    with pytest.raises(SynthError, match="apt-get install dataset-fashion-mnist"):
        load_dataset(DataSpec(source="fashion_mnist", path=str(tmp_path)))


def make_folder(root, sizes):
    rng = np.random.default_rng(0)
    for cls, (w, h, mode) in sizes.items():
        d = root / cls
        d.mkdir(parents=True)
        for i in range(3):
            arr = rng.integers(0, 255, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
            Image.fromarray(arr, mode).save(d / f"img{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_folder_any_size_resized(tmp_path):
    make_folder(tmp_path, {"cat": (40, 30, "RGB"), "dog": (17, 50, "L")})
    ds = load_dataset(DataSpec(source="folder", path=str(tmp_path), resolution=32, channels=3))
    assert ds.images.shape == (6, 32, 32, 3) and ds.class_names == ("cat", "dog")
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_empty_folder_error(tmp_path):
    with pytest.raises(SynthError, match="has no class sub-folders"):
        load_dataset(DataSpec(source="folder", path=str(tmp_path)))


def test_class_without_images_error(tmp_path):
    make_folder(tmp_path, {"a": (8, 8, "L")})
    (tmp_path / "b").mkdir()
    with pytest.raises(SynthError, match=r"class folder .*/b holds no images"):
        load_dataset(DataSpec(source="folder", path=str(tmp_path)))


def test_unreadable_image_is_named(tmp_path):
    make_folder(tmp_path, {"a": (8, 8, "L")})
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(SynthError, match=r"cannot read image .*broken\.png"):
        load_dataset(DataSpec(source="folder", path=str(tmp_path)))


def test_missing_folder(tmp_path):
    with pytest.raises(SynthError, match="is not a folder"):
        load_dataset(DataSpec(source="folder", path=str(tmp_path / "nope")))
