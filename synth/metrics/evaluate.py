"""Evaluation: read generated shards and real data, compute the report's figures.

Figures (each states its sample counts and feature network in the report, and ``protocol`` says
how the samples were drawn):
  fid_inception, kid_inception   standard FID and KID, InceptionV3 pool3, clean-fid resize
  fid_domain, kid_domain         FID and KID in the domain classifier's 128-d features
  fid_domain_real_vs_real        the same FID between two halves of the real data (a floor)
  fid_domain_per_class           per-class FID (conditional output)
  inception_score_domain         Inception Score with the domain classifier's class head (and of
                                 the real images: the ceiling)
  label_fidelity                 domain classifier accuracy on generated images vs the class asked
  per-class label fidelity and the histogram of predicted classes (collapse shows here)
  prdc_domain                    precision, recall, density, coverage (k = 5) in the domain
                                 features, and between two halves of the real data
  memorisation                   generated images' nearest training images in the domain features,
                                 against how near training images come to one another
  cas                            Classification Accuracy Score: a ResNet-8 trained on generated
                                 images, on as many real ones, and on both; tested on the real
                                 test split
"""

from __future__ import annotations

import tarfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path

import numpy as np

from synth import cache
from synth.data import ImageDataset, load_dataset
from synth.errors import SynthError
from synth.generate.plan import head_counts
from synth.layout import checkpoints, dataset_store, shard_rel
from synth.manifest import WIDS_INDEX, read_manifest, read_shard_index
from synth.metrics.cas import NETWORKS, cas_images_seen, classification_accuracy_score
from synth.metrics.classifier import TrainedClassifier, cached_train_classifier, classifier_outputs
from synth.metrics.features import extractor, feature_key, fill_missing, local_pass, stored_features
from synth.metrics.fid import INCEPTION_NAME, features_to_fid, per_class_fid
from synth.metrics.filtered import filter_figures
from synth.metrics.inputs import find_generated
from synth.metrics.kernel import inception_score, kernel_inception_distance
from synth.metrics.manifold import features_to_prdc
from synth.metrics.memorisation import memorisation
from synth.progress import Progress, note
from synth.reader import UNLABELLED
from synth.shards import read_shard, sample_image
from synth.spec import Job
from synth.storage import Store

DOMAIN_NAME = "SmallCNN trained on the real data (4 conv layers, 128-d penultimate features)"


@dataclass
class Generated:
    """The generated images judged: uint8 NHWC, int64 labels (UNLABELLED for none), and how they were
    drawn (``order``, for the protocol). For a synth dataset also where they came from: its store, and
    per shard read (in order) the sample indices and the shard's md5, to find their stored features."""

    images: np.ndarray
    labels: np.ndarray
    order: str
    store: Store | None = None
    shards: dict[str, tuple[np.ndarray, str]] = field(default_factory=dict)

    def at_size(self, data: ImageDataset) -> Generated:
        return replace(self, images=at_data_size(self.images, data))


HEAD_ORDER = "the same number from the head of every shard, spread over the whole dataset"


def read_generated(store: Store, limit: int) -> Generated:
    """``limit`` generated samples: the first few of every shard (plan.head_counts), in manifest order.

    Samples of an unlabelled dataset (an unconditional model's) have label UNLABELLED (-1).
    """
    names = read_manifest(store).column("shard").to_pylist()
    shards = list(dict.fromkeys(names))
    sizes = Counter(names)
    md5s = {}
    if store.exists(WIDS_INDEX):
        md5s = {e["url"].rsplit("/", 1)[-1]: e.get("md5sum", "") for e in read_shard_index(store)["shardlist"]}
    images, labels, read = [], [], {}
    for name, take in zip(shards, head_counts([sizes[n] for n in shards], limit)):
        if not take:
            continue
        indices = []
        try:
            with store.open(shard_rel(name)) as fh:
                for key, fields in islice(read_shard(fh), take):
                    images.append(sample_image(fields, f"{name}: sample {key}"))
                    labels.append(int(fields["cls"]) if "cls" in fields else UNLABELLED)
                    indices.append(int(key) if key.isdigit() else -1)
        except (OSError, tarfile.TarError) as exc:
            raise SynthError(
                f"{store.where(shard_rel(name))}: cannot read the shard ({exc}); `synth verify` checks every shard"
            ) from None
        read[name] = (np.asarray(indices, dtype=np.int64), md5s.get(name, ""))
    if not images:
        raise SynthError(f"{store.where('shards')}: no samples to evaluate")
    return Generated(np.stack(images), np.asarray(labels, dtype=np.int64), HEAD_ORDER, store, read)


FILE_ORDER = "the first in file order"


def read_images_at(path: Path, limit: int, data: ImageDataset) -> Generated:
    """``limit`` images at ``path``, at the real data's size (see synth.metrics.inputs.find_generated).

    Classes come from the shards' ``cls`` fields, or from sub-folder names that match the real
    data's class names; otherwise the images are unlabelled.
    """
    from synth.data import _resize_one
    from synth.data.sources import read_image

    found = find_generated(path)
    if found.dataset is not None:
        return read_generated(found.dataset, limit).at_size(data)
    size, channels = data.images.shape[1], data.images.shape[3]
    mode = "RGB" if channels == 3 else "L"
    if found.tars:
        images, labels = [], []
        for tar in found.tars:
            try:
                for key, fields in read_shard(tar):
                    images.append(_resize_one(sample_image(fields, f"{tar}: sample {key}", mode), size, channels))
                    labels.append(int(fields["cls"]) if "cls" in fields else UNLABELLED)
                    if len(images) >= limit:
                        return Generated(np.stack(images), np.asarray(labels, dtype=np.int64), FILE_ORDER)
            except (tarfile.TarError, OSError, ValueError) as exc:
                raise SynthError(f"{tar}: not a readable WebDataset shard ({exc})") from None
        if not images:
            raise SynthError(f"--generated {path}: its shards hold no samples")
        return Generated(np.stack(images), np.asarray(labels, dtype=np.int64), FILE_ORDER)
    files = found.files[:limit]
    names = {n: i for i, n in enumerate(data.class_names)}
    parents = [f.parent.name if f.parent != found.path else None for f in files]
    labelled = all(p in names for p in parents)
    images = np.stack([_resize_one(read_image(f), size, channels) for f in files])
    labels = np.asarray([names[p] if labelled else UNLABELLED for p in parents], dtype=np.int64)
    return Generated(images, labels, FILE_ORDER)


def real_subset(data: ImageDataset, n: int, seed: int) -> np.ndarray:
    """Indices (sorted) of a seeded sample of ``n`` real images."""
    return np.sort(np.random.default_rng(seed).permutation(len(data))[: min(n, len(data))])


def evaluate(job: Job, out: Path, generated: Path | None = None, feature_pass=local_pass) -> dict:
    """Compute every figure of the report; returns a JSON-able dict (plus image arrays for the page).

    ``generated``: judge these images (see read_images_at) instead of the job's own shards.
    ``feature_pass``: InceptionFeatures -> the pass that runs it over images (features.local_pass in
    this process; the CLI gives one sharded across Ray).
    """
    t0 = time.perf_counter()
    ecfg = job.evaluate
    data = load_dataset(job.data, job.seed)
    if generated is None:
        gen = read_generated(dataset_store(job, out), ecfg.num_samples).at_size(data)
    else:
        gen = read_images_at(generated, ecfg.num_samples, data)
    fake, fake_labels = gen.images, gen.labels
    if len(fake) < 2:
        raise SynthError(f"{generated or out}: {len(fake)} generated image(s); need at least 2 to evaluate")
    if ((fake_labels != UNLABELLED) & ((fake_labels < 0) | (fake_labels >= data.num_classes))).any():
        raise SynthError(
            f"{generated or out}: class labels outside 0-{data.num_classes - 1} ({data.name} has "
            f"{data.num_classes} classes)"
        )
    real_idx = real_subset(data, ecfg.num_samples, job.seed + 1)
    real, real_labels = data.images[real_idx], data.labels[real_idx]

    clf = domain_classifier(data, ecfg.classifier_epochs, job.seed)
    f_train, logits_train = classifier_outputs(clf.model, data.images)  # every training image: memorisation
    f_real, logits_real = f_train[real_idx], logits_train[real_idx]
    f_fake, logits_fake = classifier_outputs(clf.model, fake)
    preds = logits_fake.argmax(axis=1)
    labelled = bool((fake_labels != UNLABELLED).all())
    per_class = {
        data.class_names[c]: float((preds[fake_labels == c] == c).mean()) if (fake_labels == c).any() else None
        for c in range(data.num_classes)
    }
    hist = np.bincount(preds, minlength=data.num_classes)
    # subsets of at most half the images, so that they differ and their spread means something
    kid_size = max(2, min(ecfg.kid_subset_size, min(len(real), len(fake)) // 2))
    kid_args = {"subsets": ecfg.kid_subsets, "subset_size": kid_size, "seed": job.seed}
    figures: dict = {
        "num_generated": len(fake),
        "num_real": len(real),
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
        # per class: the generated images of class c against the real ones of class c
        "fid_domain_per_class": per_class_fid(f_real, real_labels, f_fake, fake_labels, data.num_classes)
        if labelled
        else None,
        "kid_domain": kernel_inception_distance(f_real, f_fake, **kid_args) if min(len(real), len(fake)) >= 2 else None,
        **inception_scores(logits_fake, logits_real, ecfg.is_splits),
        # coverage falls when a model collapses onto few modes; the real-vs-real halves give its ceiling
        **manifold_figures(f_real, f_fake),
    }
    figures.update(memorisation_figures(f_train, data, fake, f_fake, ecfg.memorisation_rows, job.seed))
    if ecfg.inception:
        figures.update(inception_figures(real, gen, ecfg.inception_weights, kid_args, feature_pass))
    if generated is None:
        figures.update(reconstruction_figures(job, out, data, ecfg.num_samples, ecfg.grid_per_class))
        figures.update(
            filter_grid(
                filter_figures(dataset_store(job, out), list(data.class_names), ecfg.grid_per_class),
                data.num_classes,
                ecfg.grid_per_class,
            )
        )
    else:
        figures["generated_source"] = str(generated)
    if ecfg.cas:
        figures.update(cas_figures(job, out, data, generated))
    # unlabelled: rows by the class the classifier sees, so a collapsed model shows as empty rows
    figures["grid_images"] = class_grid(fake, fake_labels if labelled else preds, data.num_classes, ecfg.grid_per_class)
    figures["protocol"] = protocol(job, data, len(real), len(fake), generated, gen.order)
    figures["seconds"] = time.perf_counter() - t0
    return figures


def at_data_size(images: np.ndarray, data: ImageDataset) -> np.ndarray:
    """Generated images at the real data's size and channels (generate.resolution may differ): judged there."""
    if images.shape[1:] == data.images.shape[1:]:
        return images
    from synth.data import resize_images

    return resize_images(images, data.images.shape[1], data.images.shape[3])


def protocol(
    job: Job, data: ImageDataset, num_real: int, num_fake: int, generated: Path | None = None, order: str = HEAD_ORDER
) -> dict:
    """How the figures' samples were drawn and processed: enough to reproduce or compare them."""
    e = job.evaluate
    if generated is None:
        source = (
            f"{num_fake:,} samples, {order}, decoded from the shards ({job.generate.format}"
            f"{', lossless' if job.generate.lossless else ''})"
        )
    else:
        source = f"{num_fake:,} images of {generated}, {order}"
    return {
        "generated": source,
        "real": f"{num_real:,} of the {len(data):,} real training images of {data.name}, drawn with seed {job.seed + 1}",
        "resolution": f"{data.images.shape[1]}x{data.images.shape[2]}, {data.images.shape[3]} channel(s): generated "
        "images of another size are resized to it first",
        "inception_resize": "clean-fid: PIL bicubic per channel on the uint8 image to 299x299, gray repeated to RGB",
        "domain_classifier": f"{DOMAIN_NAME}, {e.classifier_epochs} epochs on 90% of the real images, seed {job.seed}",
        "kid": f"cubic polynomial kernel, unbiased MMD^2 over {e.kid_subsets} random subset pairs of "
        f"min({e.kid_subset_size:,}, half the images) images, seed {job.seed}",
        "inception_score": f"{e.is_splits} splits of the images in a seeded random order",
        "prdc": "k = 5 nearest neighbours, on at most 5,000 of each",
        "memorisation": "Euclidean nearest neighbours among all training images in the domain classifier's features",
    }


def inception_scores(logits_fake: np.ndarray, logits_real: np.ndarray, splits: int) -> dict:
    """Inception Score of the generated and of the real images, with the domain classifier's class head
    (ImageNet's Inception head says little about digits or clothes)."""
    if min(len(logits_fake), len(logits_real)) < splits:
        return {"inception_score_domain": None, "inception_score_domain_real": None}
    return {
        "inception_score_domain": inception_score(logits_fake, splits),
        "inception_score_domain_real": inception_score(logits_real, splits),
        "inception_score_network": DOMAIN_NAME + ", its class head",
    }


def memorisation_figures(
    f_train: np.ndarray, data: ImageDataset, fake: np.ndarray, f_fake: np.ndarray, rows: int, seed: int
) -> dict:
    """The memorisation figures over every training image (``f_train``: their features), and ``rows``
    closest generated/training pairs."""
    found = memorisation(f_fake, f_train, k=3, seed=seed)
    dist, idx = found.pop("distances"), found.pop("indices")
    closest = np.argsort(dist[:, 0], kind="stable")[:rows]
    found["rows"] = [{"generated": int(i), "train": idx[i].tolist(), "distances": dist[i].tolist()} for i in closest]
    images = [np.stack([fake[i], *data.images[idx[i]]]) for i in closest]
    return {"memorisation": found, "memorisation_images": images}


def cas_figures(job: Job, out: Path, data: ImageDataset, generated: Path | None = None) -> dict:
    """Classification Accuracy Score, or why there is none: the job's generated images are read back
    through synth.open_dataset, as a user's training job would read them (``generated``: read directly)."""
    from synth.data import load_test_dataset

    test = load_test_dataset(job.data)
    if test is None:
        return {"cas": None, "cas_skipped": f"data.source {job.data.source!r} has no real test split to score on"}
    e = job.evaluate
    wanted = e.cas_samples * (5 if e.cas_table else 1)  # the table's 5x row needs five times the generated images
    if generated is None:
        fake, fake_labels = load_through_loader(dataset_store(job, out).url, wanted, job.seed)
        how = f"read through synth.open_dataset (shards shuffled, seed {job.seed})"
    else:
        found = read_images_at(generated, wanted, data)
        fake, fake_labels = found.images, found.labels
        how = f"{generated}, {found.order}"
    if (fake_labels == UNLABELLED).any():
        return {"cas": None, "cas_skipped": "the generated images have no classes (an unconditional model)"}
    n = min(len(fake), len(data), e.cas_samples)
    keep = real_subset(data, n, job.seed + 3)
    fake = at_data_size(fake, data)
    total = cas_images_seen(n, n, e.cas_epochs)
    with Progress("CAS classifiers", total, "img") as bar:
        result = classification_accuracy_score(
            (fake[:n], fake_labels[:n]),
            (data.images[keep], data.labels[keep]),
            (test.images, test.labels),
            data.num_classes,
            e.cas_epochs,
            job.seed,
            progress=bar.update,
        )
    found = {
        "cas": {
            **result.to_dict(),
            "test_set": f"{test.name}: {len(test):,} real test images",
            "protocol": f"{n:,} generated images, {how}; {n:,} real training images drawn with seed "
            f"{job.seed + 3}; "
            f"{e.cas_epochs} epochs, batch 128, seed {job.seed} for every classifier",
        }
    }
    if e.cas_table:
        found["cas_table"] = cas_table_figures(
            job,
            (fake, fake_labels),
            (data.images[keep], data.labels[keep]),
            (test.images, test.labels),
            data.num_classes,
        )
    return found


def cas_table_figures(job: Job, fake, real, test, num_classes: int) -> dict:
    """evaluate.cas_table: the CAS table (synth.metrics.cas.cas_table) for each of evaluate.cas_networks."""
    from synth.metrics.cas import cas_table, cas_table_images_seen, table_arms

    e = job.evaluate
    arms = table_arms(len(real[1]), len(fake[1]))
    seeds = [job.seed + k for k in range(e.cas_seeds)]
    total = cas_table_images_seen(arms, len(real[1]), e.cas_epochs, len(seeds)) * len(e.cas_networks)
    rows = []
    with Progress("CAS table", total, "img") as bar:
        for network in e.cas_networks:
            rows += cas_table(
                fake, real, test, num_classes, e.cas_epochs, seeds, network, bar.update, arms, subset_seed=job.seed + 4
            )
    return {
        "rows": rows,
        "networks": {n: NETWORKS[n][1] for n in e.cas_networks},
        "protocol": f"real images: a class-stratified subset of the {len(real[1]):,} above (seed {job.seed + 4}); "
        f"generated images: the first of the {len(fake[1]):,} read as above; {e.cas_epochs} epochs, "
        "more for smaller sets so that every row takes as many steps as the real row; classifier "
        f"seeds {', '.join(map(str, seeds))}",
    }


def load_through_loader(url: str, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``limit`` samples of a synth dataset, decoded by synth.open_dataset: (uint8 NHWC, int64 labels)."""
    from synth.reader import open_dataset

    def to_array(pil) -> np.ndarray:
        arr = np.asarray(pil)
        return arr[..., None] if arr.ndim == 2 else arr

    images, labels = [], []
    for image, label in open_dataset(url, shuffle=True, seed=seed, transform=to_array):
        images.append(image)
        labels.append(label)
        if len(images) >= limit:
            break
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def domain_classifier(data: ImageDataset, epochs: int, seed: int, network: str = "cnn") -> TrainedClassifier:
    """The domain classifier of ``data`` (or, with ``network``, another of synth.metrics.cas.NETWORKS
    trained the same way: generate.filter's ``fast``): from the cache when one was trained on the same
    data, else trained."""
    what = "domain classifier" if network == "cnn" else f"{network} classifier"
    clf = cached_train_classifier(
        data.images,
        data.labels,
        data.num_classes,
        epochs,
        seed,
        progress_bar=lambda total: Progress(what, total, "img"),
        network=network,
    )
    if clf.from_cache:
        note(f"{what}: loaded from the cache (trained before on the same data and settings)")
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

    if not job.model.capabilities().encoder:
        return {}
    ref_meta, weights = ckpt.load_generator_files(checkpoints(out))
    ref = GeneratorRef(job.model.name, ref_meta["model_config"], ref_meta["digest"])
    model = load_generator(ref, weights)
    order = np.sort(np.random.default_rng(job.seed + 2).permutation(len(data))[: min(n, len(data))])
    images, labels = data.images[order], data.labels[order]
    with torch.inference_mode():
        recon = to_uint8(model.family.reconstruct(model.net, from_uint8(images), labels))
    mae = float(np.abs(recon.astype(np.int16) - images.astype(np.int16)).mean())
    k, h = data.num_classes, images.shape[1]
    real_rows, recon_rows = (class_grid(x, labels, k, per_class) for x in (images, recon))
    grid = np.stack([real_rows.reshape(k, h, *real_rows.shape[1:]), recon_rows.reshape(k, h, *recon_rows.shape[1:])], 1)
    grid = grid.reshape(2 * k * h, *real_rows.shape[1:])  # per class: the real row, then its reconstructions
    return {"reconstruction_mae": mae, "reconstruction_num_images": len(images), "reconstruction_grid": grid}


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
        "prdc_num_samples": [len(f_real), len(f_fake)],
    }


def inception_figures(
    real: np.ndarray, gen: Generated, weights: str | None, kid_args: dict, feature_pass=local_pass
) -> dict:
    """Standard FID and KID. The generated images' features come from the generation workers where they
    stored them (features.stored_features), the real images' from the cache (synth.cache) when computed
    before; the rest from ``feature_pass``."""
    net = extractor(weights)
    run = feature_pass(net)
    size, channels = real.shape[1], real.shape[3]
    key = feature_key(net, size, channels)
    fake = gen.images
    f_fake = np.full((len(fake), 2048), np.nan)
    if gen.store is not None:
        found, unreadable = stored_features(gen.store, gen.shards, key)
        f_fake = np.concatenate(list(found.values()))
        for where in unreadable:
            note(f"{where}: unreadable stored features; computing them")
    stored = int((~np.isnan(f_fake).any(axis=1)).sum())
    if stored:
        note(f"inception features of {stored:,} of the {len(fake):,} generated images: computed at generation")
    with Progress("inception features", len(fake) - stored, "img") as bar:
        fill_missing(f_fake, fake, run, bar.update)

    def real_features() -> np.ndarray:
        with Progress("inception features, real", len(real), "img") as bar:
            return run(real, bar.update)

    f_real, hit = cache.memoize(
        "features",
        (key, real),
        real_features,
        lambda f: cache.encode_array(f.astype(np.float32)),
        lambda data: cache.decode_array(data).astype(np.float64),
    )
    if hit:
        note(f"inception features of the {len(real):,} real images: loaded from the cache")
    return {
        "fid_inception": features_to_fid(f_real, f_fake),
        "kid_inception": kernel_inception_distance(f_real, f_fake, **kid_args)
        if min(len(real), len(fake)) >= 2
        else None,
        "fid_inception_network": INCEPTION_NAME,
        "fid_inception_weights": str(net.weights_path),
        "fid_inception_num_real": len(real),
        "fid_inception_num_generated": len(fake),
        "fid_inception_real_from_cache": hit,
        "fid_inception_generated_stored": stored,
    }


def filter_grid(found: dict, num_classes: int, per_class: int) -> dict:
    """filter_figures' result with its rejected images laid out as a grid (``filter_rejected_grid``)."""
    images, labels = found.pop("filter_rejected", (None, None))
    if images is not None:
        found["filter_rejected_grid"] = class_grid(images, labels, num_classes, per_class)
    return found


def class_grid(images: np.ndarray, labels: np.ndarray, num_classes: int, per_class: int) -> np.ndarray:
    """uint8 (rows*H, cols*W, C): one row per class, ``per_class`` samples each (black where short)."""
    _n, h, w, c = images.shape
    grid = np.zeros((num_classes * h, per_class * w, c), dtype=np.uint8)
    for k in range(num_classes):
        for j, i in enumerate(np.flatnonzero(labels == k)[:per_class]):
            grid[k * h : (k + 1) * h, j * w : (j + 1) * w] = images[i]
    return grid
