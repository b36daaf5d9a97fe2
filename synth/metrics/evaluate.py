"""Evaluation: read generated shards and real data, compute the report's figures.

Figures (each states its sample counts and feature network in the report):
  fid_inception   standard FID, InceptionV3 pool3, clean-fid resize
  fid_domain      FID in the domain classifier's 128-d features
  fid_domain_real_vs_real  the same between two halves of the real data (a floor to compare with)
  label_fidelity  domain classifier accuracy on generated images vs the class they were made for
  per-class label fidelity and the histogram of predicted classes (collapse shows here)
  prdc_domain     precision, recall, density, coverage (k = 5) in the domain features, and the same
                  between two halves of the real data (collapse shows in coverage and recall)
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from synth import cache
from synth.data import ImageDataset, load_dataset
from synth.dataset import UNLABELLED
from synth.errors import SynthError
from synth.generate.worker import shard_rel
from synth.manifest import IMAGE_EXTS, read_manifest
from synth.metrics.classifier import TrainedClassifier, cached_train_classifier, classifier_features, predict
from synth.metrics.fid import INCEPTION_NAME, InceptionFeatures, clean_resize, features_to_fid
from synth.metrics.manifold import features_to_prdc
from synth.progress import Progress, note
from synth.shards import read_shard
from synth.spec import Job
from synth.storage import Store

DOMAIN_NAME = "SmallCNN trained on the real data (4 conv layers, 128-d penultimate features)"


def read_generated(store: Store, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` generated samples in manifest order: (uint8 NHWC images, int64 labels).

    Samples of an unlabelled dataset (an unconditional model's) have label UNLABELLED (-1).
    """
    manifest = read_manifest(store)
    shards = list(dict.fromkeys(manifest.column("shard").to_pylist()))
    images, labels = [], []
    for name in shards:
        with store.open(shard_rel(name)) as fh:
            for key, fields in read_shard(fh):
                ext = next((e for e in IMAGE_EXTS if e in fields), None)
                if ext is None:
                    raise SynthError(f"{name}: sample {key} has no image")
                arr = np.asarray(Image.open(io.BytesIO(fields[ext])))
                images.append(arr[..., None] if arr.ndim == 2 else arr)
                labels.append(int(fields["cls"]) if "cls" in fields else UNLABELLED)
                if len(images) >= limit:
                    return np.stack(images), np.asarray(labels, dtype=np.int64)
    if not images:
        raise SynthError(f"{store.where('shards')}: no samples to evaluate")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def real_subset(data: ImageDataset, n: int, seed: int) -> np.ndarray:
    order = np.random.default_rng(seed).permutation(len(data))[: min(n, len(data))]
    return data.images[np.sort(order)]


def evaluate(job: Job, out: Path) -> dict:
    """Compute every figure of the report; returns a JSON-able dict."""
    t0 = time.perf_counter()
    ecfg = job.evaluate
    data = load_dataset(job.data, job.seed)
    from synth.data import resize_images
    from synth.pipeline import dataset_store

    fake, fake_labels = read_generated(dataset_store(job, out), ecfg.num_samples)
    if fake.shape[1:] != data.images.shape[1:]:  # output resized (generate.resolution): judge at the data's size
        fake = resize_images(fake, data.images.shape[1], data.images.shape[3])
    real = real_subset(data, ecfg.num_samples, job.seed + 1)

    clf = domain_classifier(data, ecfg.classifier_epochs, job.seed)
    preds = predict(clf.model, fake)
    labelled = bool((fake_labels != UNLABELLED).all())
    per_class = {
        data.class_names[c]: float((preds[fake_labels == c] == c).mean()) if (fake_labels == c).any() else None
        for c in range(data.num_classes)
    }
    hist = np.bincount(preds, minlength=data.num_classes)
    f_real, f_fake = classifier_features(clf.model, real), classifier_features(clf.model, fake)
    figures: dict = {
        "num_generated": int(len(fake)),
        "num_real": int(len(real)),
        "dataset": data.name,
        "num_classes": data.num_classes,
        "class_names": list(data.class_names),
        "labelled": labelled,
        # an unlabelled dataset has no class asked for: only what the classifier sees
        "label_fidelity": float((preds == fake_labels).mean()) if labelled else None,
        "label_fidelity_per_class": per_class if labelled else None,
        "predicted_class_counts": hist.tolist(),
        "requested_class_counts": np.bincount(fake_labels, minlength=data.num_classes).tolist() if labelled else None,
        "classifier": {
            "network": DOMAIN_NAME,
            "held_out_accuracy": clf.held_out_accuracy,
            "train_size": clf.train_size,
            "held_out_size": clf.held_out_size,
            "epochs": clf.epochs,
            "from_cache": clf.from_cache,
        },
        "fid_domain": features_to_fid(f_real, f_fake),
        # interleaved halves: both class-balanced (the subset is in dataset order)
        "fid_domain_real_vs_real": features_to_fid(f_real[0::2], f_real[1::2]) if len(real) >= 4 else None,
        "fid_domain_network": DOMAIN_NAME,
        # coverage falls when a model collapses onto few modes; the real-vs-real halves give its ceiling
        **manifold_figures(f_real, f_fake),
    }
    if ecfg.inception:
        figures.update(inception_fid(real, fake))
    figures.update(reconstruction_figures(job, out, data, ecfg.num_samples, ecfg.grid_per_class))
    # unlabelled: rows by the class the classifier sees, so a collapsed model shows as empty rows
    figures["grid_images"] = class_grid(fake, fake_labels if labelled else preds, data.num_classes, ecfg.grid_per_class)
    figures["seconds"] = time.perf_counter() - t0
    return figures


def domain_classifier(data: ImageDataset, epochs: int, seed: int) -> TrainedClassifier:
    """The domain classifier of ``data``: from the cache when one was trained on the same data, else trained."""
    clf = cached_train_classifier(data.images, data.labels, data.num_classes, epochs, seed,
                                  progress_bar=lambda total: Progress("domain classifier", total, "img"))  # fmt: skip
    if clf.from_cache:
        note("domain classifier: loaded from the cache (trained before on the same data and settings)")
    return clf


def reconstruction_figures(job: Job, out: Path, data: ImageDataset, n: int, per_class: int) -> dict:
    """For a model with an encoder (VAE family): how well it reconstructs real images, and a grid of them.

    ``reconstruction_mae``: mean absolute pixel error (0-255 grey levels) over ``n`` real images;
    ``reconstruction_grid``: uint8, per class a row of real images above a row of their reconstructions.
    """
    import torch

    from synth.generate.worker import GeneratorRef, load_generator
    from synth.models.common import from_uint8, to_uint8
    from synth.train import checkpoint as ckpt

    ref_meta, weights = ckpt.load_generator_files(out / "checkpoints")
    ref = GeneratorRef(job.model.name, ref_meta["model_config"], ref_meta["digest"])
    if not ref.family.can_reconstruct:
        return {}
    sampler = load_generator(ref, weights)
    order = np.sort(np.random.default_rng(job.seed + 2).permutation(len(data))[: min(n, len(data))])
    images, labels = data.images[order], data.labels[order]
    with torch.inference_mode():
        recon = to_uint8(sampler.family.reconstruct(sampler.net, from_uint8(images), labels))
    mae = float(np.abs(recon.astype(np.int16) - images.astype(np.int16)).mean())
    k, h = data.num_classes, images.shape[1]
    real_rows, recon_rows = (class_grid(x, labels, k, per_class) for x in (images, recon))
    grid = np.stack([real_rows.reshape(k, h, *real_rows.shape[1:]), recon_rows.reshape(k, h, *recon_rows.shape[1:])], 1)
    grid = grid.reshape(2 * k * h, *real_rows.shape[1:])  # per class: the real row, then its reconstructions
    return {"reconstruction_mae": mae, "reconstruction_num_images": int(len(images)), "reconstruction_grid": grid}


PRDC_MAX = 5000  # k-NN on dense distance matrices: 3 of N x N float64, 200 MB each at this size


def manifold_figures(f_real: np.ndarray, f_fake: np.ndarray, k: int = 5) -> dict:
    """Precision, recall, density, coverage (on at most PRDC_MAX of each) and their real-vs-real values."""
    f_real, f_fake = f_real[:PRDC_MAX], f_fake[:PRDC_MAX]
    if min(len(f_real), len(f_fake)) <= k:
        return {"prdc_domain": None, "prdc_domain_real_vs_real": None}
    halves = (f_real[0::2], f_real[1::2])
    return {
        "prdc_domain": features_to_prdc(f_real, f_fake, k),
        "prdc_domain_real_vs_real": features_to_prdc(*halves, k) if min(map(len, halves)) > k else None,
        "prdc_num_samples": [int(len(f_real)), int(len(f_fake))],
    }


def inception_fid(real: np.ndarray, fake: np.ndarray) -> dict:
    """Standard FID; the real images' features come from the cache (synth.cache) when computed before."""
    import importlib.metadata

    import PIL
    import torch

    extractor = InceptionFeatures()
    with Progress("inception features", len(fake), "img") as bar:
        f_fake = extractor(fake, progress=bar.update)

    def real_features() -> np.ndarray:
        with Progress("inception features, real", len(real), "img") as bar:
            return extractor(real, progress=bar.update)

    code = cache.source_digest(InceptionFeatures, clean_resize)
    versions = (torch.__version__, PIL.__version__, importlib.metadata.version("clean-fid"))
    f_real, hit = cache.memoize("features", ("inception", code, *versions, extractor.weights_digest, real),
                                real_features, lambda f: cache.encode_array(f.astype(np.float32)),
                                lambda data: cache.decode_array(data).astype(np.float64))  # fmt: skip
    if hit:
        note(f"inception features of the {len(real):,} real images: loaded from the cache")
    return {
        "fid_inception": features_to_fid(f_real, f_fake),
        "fid_inception_network": INCEPTION_NAME,
        "fid_inception_num_real": int(len(real)),
        "fid_inception_num_generated": int(len(fake)),
        "fid_inception_real_from_cache": hit,
    }


def class_grid(images: np.ndarray, labels: np.ndarray, num_classes: int, per_class: int) -> np.ndarray:
    """uint8 (rows*H, cols*W, C): one row per class, ``per_class`` samples each (black where short)."""
    n, h, w, c = images.shape
    grid = np.zeros((num_classes * h, per_class * w, c), dtype=np.uint8)
    for k in range(num_classes):
        for j, i in enumerate(np.flatnonzero(labels == k)[:per_class]):
            grid[k * h : (k + 1) * h, j * w : (j + 1) * w] = images[i]
    return grid
