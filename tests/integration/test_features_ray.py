"""The Inception pass sharded across Ray tasks gives the features of the pass in this process.

Run in a child interpreter with its own embedded Ray: a second ray.init/shutdown cycle inside the
pytest process (conftest.ray_in_process holds the one) is not something Ray promises to survive.
"""

import subprocess
import sys

CHECK = """
import numpy as np, ray
from synth.data import load_dataset
from synth.metrics.features import extractor
from synth.stages.evaluate import ray_feature_pass
from synth.spec import DataSpec

images = load_dataset(DataSpec(source="digits", resolution=16), 0).images[:14]
net = extractor()
ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
try:
    seen = []
    sharded = ray_feature_pass(net, chunk=8)(images, seen.append)  # 2 tasks at once
finally:
    ray.shutdown()
assert sorted(seen) == [6, 8], seen
local = net(images)
assert sharded.shape == local.shape == (14, 2048)
# each row is its own image's (not shuffled by task order), to float32 rounding
assert np.abs(sharded - local).max() < 1e-4 * np.abs(local).max()
assert not np.allclose(sharded[:-1], local[1:])
print("same features")
"""


def test_ray_pass_matches_local():
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0 and "same features" in proc.stdout, proc.stderr[-3000:]
