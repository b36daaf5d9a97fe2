"""The Inception pass sharded across Ray tasks gives the features of the pass in this process."""

import numpy as np
import pytest

from synth.data import load_dataset
from synth.metrics.features import extractor
from synth.pipeline import ray_feature_pass
from synth.spec import DataSpec


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_ray_pass_matches_local(ray_local):
    images = load_dataset(DataSpec(source="digits", resolution=16), 0).images[:30]
    net = extractor()
    seen = []
    sharded = ray_feature_pass(net, chunk=8)(images, seen.append)  # 4 tasks, 2 at once
    assert sorted(seen) == [6, 8, 8, 8]
    local = net(images)
    assert sharded.shape == local.shape == (30, 2048)
    # each row is its own image's (not shuffled by task order), to float32 rounding
    assert np.abs(sharded - local).max() < 1e-4 * np.abs(local).max()
    assert not np.allclose(sharded[:-1], local[1:])
