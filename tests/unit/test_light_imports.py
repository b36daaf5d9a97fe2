"""Reading a dataset back needs no torch: the readers' modules, and `synth verify`, import without it."""

import subprocess
import sys

import pytest

from synth.manifest import write_manifest
from synth.storage import Store

from .test_worker import NAMES, works


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, generator):
    """20 synthetic 8x8 digits in 2 shards."""
    from synth.generate.worker import write_one_shard

    root = tmp_path_factory.mktemp("light")
    ref, weights = generator
    plan, ws = works(root, ref, count=20, shard_size=10)
    for w in ws:
        write_one_shard(w, weights)
    write_manifest(Store(root), plan, list(NAMES))
    return root


def fresh(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter, which prints whether torch got imported when it exits."""
    probe = "import atexit, sys; atexit.register(lambda: print('torch imported:', 'torch' in sys.modules))\n"
    return subprocess.run(
        [sys.executable, "-c", probe + code, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_readers_import_without_torch():
    done = fresh("import synth, synth.reader, synth.manifest, synth.layout, synth.parts")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "torch imported: False"


def test_verify_runs_without_torch(dataset):
    done = fresh(
        "import sys; from synth.cli import main; sys.argv = ['synth', 'verify', sys.argv[1]]; main()", str(dataset)
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("verify: ok, 2 shards, 20 samples"), done.stdout
    assert lines[-1] == "torch imported: False"


def test_open_dataset_is_still_a_torch_dataset(dataset):
    """The torch base class appears once the dataset is opened: a DataLoader takes it as a stream."""
    import torch

    import synth
    from synth.reader import MixedDataset

    plain = synth.open_dataset(str(dataset), shuffle=False)
    mixed = synth.open_dataset(str(dataset), shuffle=False, real=str(dataset), real_fraction=0.5)
    assert isinstance(plain, torch.utils.data.IterableDataset)
    assert isinstance(mixed, MixedDataset) and isinstance(mixed, torch.utils.data.IterableDataset)
    assert len(list(torch.utils.data.DataLoader(mixed, batch_size=8))) == 5  # 40 samples: 20 synthetic, 20 real
