"""Our standard FID against clean-fid's own compute_fid on the same two folders of PNGs.

Both use the same TorchScript InceptionV3 (clean-fid takes it as custom_feat_extractor, since its
own download cannot run offline) and clean-fid's resize; what is compared is everything else:
reading the files, the resize call, batching, the statistics and the Fréchet distance.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from synth.data.sources import image_files, load_mnist_subset, read_image
from synth.metrics.fid import InceptionFeatures, features_to_fid, inception_weights_path

N = 32  # images a folder: Inception runs at ~10 images/s here (2 AVX2 cores)


class CleanFidExtractor(torch.nn.Module):
    """clean-fid's calling convention: float NCHW in [0, 255], already resized to 299x299."""

    def __init__(self):
        super().__init__()
        model = torch.jit.load(str(inception_weights_path()), map_location="cpu").eval()
        self.layers = model.net.layers

    def forward(self, x):
        return self.layers((x - 128) / 128).reshape(len(x), 2048)


@pytest.mark.slow
def test_fid_matches_clean_fid_compute_fid(tmp_path):
    from cleanfid import fid as cleanfid

    digits = load_mnist_subset(None)
    folders = {}
    for name, classes in (("a", (0, 1, 2, 3, 4)), ("b", (3, 5, 6, 8, 9))):
        folder = tmp_path / name
        folder.mkdir()
        idx = np.flatnonzero(np.isin(digits.labels, classes))[:N]
        for i in idx:
            Image.fromarray(digits.images[i, :, :, 0]).save(folder / f"{i:05d}.png")
        folders[name] = folder
    extractor = InceptionFeatures()
    feats = {k: extractor([read_image(p) for p in image_files(v)]) for k, v in folders.items()}
    ours = features_to_fid(feats["a"], feats["b"])
    theirs = cleanfid.compute_fid(
        str(folders["a"]),
        str(folders["b"]),
        mode="clean",
        num_workers=0,
        batch_size=32,
        device=torch.device("cpu"),
        custom_feat_extractor=CleanFidExtractor().eval(),
        verbose=False,
    )
    assert ours == pytest.approx(theirs, rel=1e-4)
    assert ours > 10.0  # two different sets of digits: far from zero, so the agreement means something
