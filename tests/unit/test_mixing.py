"""synth.open_dataset(..., real=...): synthetic shards with real images mixed in at a fraction per batch."""

import numpy as np
import pytest
import torch

import synth
from synth.data import load_dataset
from synth.manifest import write_manifest
from synth.spec import DataSpec
from synth.storage import Store

from .test_worker import NAMES, works


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, generator):
    """60 synthetic 8x8 digits in 3 shards (classes 0-9, as scikit-learn's digits)."""
    from synth.generate.worker import write_one_shard

    root = tmp_path_factory.mktemp("mix")
    ref, weights = generator
    plan, ws = works(root, ref, count=60, shard_size=20)
    for w in ws:
        write_one_shard(w, weights)
    write_manifest(Store(root), plan, list(NAMES))
    return root


def _key(image: torch.Tensor) -> bytes:
    return (image * 255).round().to(torch.uint8).numpy().tobytes()


def test_every_batch_holds_its_share_of_real_images(dataset):
    real = load_dataset(DataSpec(source="digits", resolution=8), 0)
    real_keys = {real.images[i].transpose(2, 0, 1).tobytes(): int(real.labels[i]) for i in range(len(real))}
    ds = synth.open_dataset(str(dataset), shuffle=False, real="digits", real_fraction=0.25)
    items = list(ds)
    assert len(items) == len(ds) == 80  # the 60 synthetic ones, and 20 real
    is_real = np.array([_key(image) in real_keys for image, _ in items])
    assert is_real.sum() == 20
    for start in range(0, 80, 8):  # any 8 in a row: exactly 2 real
        assert is_real[start : start + 8].sum() == 2
    assert all(real_keys[_key(image)] == label for (image, label), r in zip(items, is_real) if r)
    synthetic = [label for (_, label), r in zip(items, is_real) if not r]
    assert synthetic == [label for _, label in synth.open_dataset(str(dataset), shuffle=False)]  # in order
    again = list(synth.open_dataset(str(dataset), shuffle=False, real="digits", real_fraction=0.25))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(items, again))  # deterministic for a seed
    other = list(synth.open_dataset(str(dataset), shuffle=False, real="digits", real_fraction=0.25, seed=1))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(items, other))


def test_dataloader_workers_split_the_real_images(dataset):
    ds = synth.open_dataset(str(dataset), shuffle=False, real="digits", real_fraction=0.5)
    loader = torch.utils.data.DataLoader(ds, batch_size=10, num_workers=2)
    real = load_dataset(DataSpec(source="digits", resolution=8), 0)
    real_keys = {real.images[i].transpose(2, 0, 1).tobytes() for i in range(len(real))}
    seen = []
    for images, _ in loader:
        keys = [_key(image) for image in images]
        assert sum(k in real_keys for k in keys) == 5  # half of every batch
        seen += [k for k in keys if k in real_keys]
    assert len(seen) == 60 and len(set(seen)) == 60  # the two workers draw different real images


def test_real_shards_mix_in_and_classes_must_match(dataset, tmp_path):
    items = list(synth.open_dataset(str(dataset), shuffle=False, real=str(dataset), real_fraction=0.5))
    assert len(items) == 120
    with pytest.raises(ValueError, match=r"real=fashion_mnist: its classes \(t-shirt, .*\) are not the synthetic"):
        synth.open_dataset(str(dataset), real="fashion_mnist")
    with pytest.raises(ValueError, match="real_fraction: 1.0 is not in"):
        synth.open_dataset(str(dataset), real="digits", real_fraction=1.0)
