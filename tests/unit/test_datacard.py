"""The dataset card: written from what generation made, completed by the report's figures."""

import yaml

from synth.datacard import complete_card, generation_card, read_card, render_card, write_card
from synth.spec import job_from_dict
from synth.storage import Store

NAMES = ["t-shirt", "trouser"]


def card_of(job):
    made = {"count": 1200, "class_counts": [600, 600], "shards": 2, "bytes": 123456, "copies": 1}
    meta = {"family": "gan", "digest": "abc123", "step": 3500, "versions": {"torch": "x"}}
    return generation_card(job, made, meta, "plan99", NAMES, {"images": 60000}, "the domain classifier: SmallCNN")


def test_card_says_what_made_the_data_and_reads_without_synth(tmp_path):
    job = job_from_dict(
        {"data": {"source": "fashion_mnist"}, "generate": {"filter": {"candidates": 3}}, "output": {"name": "fa"}}
    )
    card = card_of(job)
    assert card["source"]["license"] == "mit" and card["source"]["images"] == 60000
    assert card["drawing"]["filter"]["candidates"] == 3 and card["evaluation"] is None
    text = render_card(card)
    front = yaml.safe_load(text.split("---\n")[1])
    assert (
        front["license"] == "mit"
        and front["size_categories"] == ["1K<n<10K"]
        and front["source_datasets"] == ["fashion_mnist"]
    )
    assert "| t-shirt | 600 |" in text and "Not evaluated yet" in text and "Quality filter: 3 candidates" in text
    assert "`abc123`" in text and "`plan99`" in text and "MIT (Zalando Research)" in text
    store = Store(tmp_path)
    write_card(store, card)
    assert read_card(store) == card and (tmp_path / "DATASET_CARD.md").read_text() == text


def test_the_report_completes_the_card_with_its_figures_and_limits(tmp_path):
    job = job_from_dict({"data": {"source": "fashion_mnist"}, "generate": {"filter": {}}})
    store = Store(tmp_path)
    assert not complete_card(store, {})  # no card: nothing to complete
    write_card(store, card_of(job))
    figures = {
        "num_generated": 1000,
        "num_real": 1000,
        "fid_inception": 50.5,
        "kid_inception": {"kid": 0.02},
        "fid_domain": 9.0,
        "fid_domain_real_vs_real": 2.0,
        "label_fidelity": 0.9,
        "labelled": True,
        "class_names": NAMES,
        "label_fidelity_per_class": {"t-shirt": 0.95, "trouser": 0.6},
        "prdc_domain": {"coverage": 0.9, "recall": 0.8},
        "cas": {
            "synthetic": {"accuracy": 0.88, "num_train": 1000},
            "real": {"accuracy": 0.93},
            "gap": 0.05,
            "network": "ResNet-8",
            "test_set": "fashion_mnist: 10,000 real test images",
        },
        "filter": {
            "per_class": [{"class": "t-shirt", "drawn_per_kept": 2.0}, {"class": "trouser", "drawn_per_kept": 5.5}]
        },
    }
    assert complete_card(store, figures)
    card = read_card(store)
    assert card["evaluation"]["cas"]["gap"] == 0.05 and card["evaluation"]["fid_inception"] == 50.5
    limits = " ".join(card["limitations"])
    assert "class 'trouser': only 60%" in limits and "t-shirt" not in limits.split("filter drew")[0]
    assert "drew 5.5 candidates" in limits and "high by construction" in limits and "5.0 points below" in limits
    text = (tmp_path / "DATASET_CARD.md").read_text()
    assert "88.00% trained on 1,000" in text and "| FID, InceptionV3 | 50.5 |" in text
