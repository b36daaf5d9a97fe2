"""The report page, one section at a time: a section with nothing to show is empty, the page holds
every section in order, and the figures table keeps its rows' order."""

from synth import report
from synth.spec import job_from_dict

NAMES = ["zero", "one"]


def base_figures() -> dict:
    """The figures every evaluation has (an unconditional model's, with no optional figure)."""
    return {
        "dataset": "digits",
        "num_classes": 2,
        "class_names": NAMES,
        "num_generated": 20,
        "num_real": 40,
        "classifier": {"held_out_accuracy": 0.97, "held_out_size": 100},
        "label_fidelity": None,
        "label_fidelity_per_class": None,
        "requested_class_counts": None,
        "predicted_class_counts": [12, 8],
        "fid_domain": 3.5,
        "fid_domain_network": "domain CNN <small>",
    }


def full_figures() -> dict:
    """Every optional figure, as evaluate and write_report leave them."""
    kid = {"kid": 0.012, "kid_std": 0.003, "subsets": 10, "subset_size": 10}
    arm = {"num_train": 20, "accuracy": 0.9}
    return {
        **base_figures(),
        "label_fidelity": 0.95,
        "label_fidelity_per_class": {"zero": 1.0, "one": 0.9},
        "requested_class_counts": [10, 10],
        "fid_domain_real_vs_real": 1.25,
        "fid_domain_per_class": [4.0, 5.0],
        "fid_inception": 20.5,
        "fid_inception_num_generated": 20,
        "fid_inception_num_real": 40,
        "fid_inception_network": "InceptionV3",
        "kid_inception": kid,
        "kid_domain": kid,
        "prdc_domain": {"precision": 0.8, "recall": 0.7, "coverage": 0.6},
        "prdc_domain_real_vs_real": {"precision": 0.9, "recall": 0.9, "coverage": 0.9},
        "inception_score_domain": {"is": 1.8, "is_std": 0.05, "splits": 2},
        "inception_score_domain_real": {"is": 1.9},
        "inception_score_network": "domain CNN",
        "memorisation": {
            "num_generated": 20,
            "num_train": 40,
            "nn_distance_ratio": 1.1,
            "nn_distance_median": 2.0,
            "nn_distance_median_real": 1.8,
            "share_nearer_than_real_p1": 0.01,
            "rows": [{"generated": 3, "distances": [1.0, 1.5, 2.0]}],
        },
        "cas": {
            "synthetic": arm,
            "real": {**arm, "accuracy": 0.95},
            "num_test": 50,
            "network": "small CNN",
            "test_set": "the test split",
            "gap": 0.05,
            "protocol": "one seed",
        },
        "reconstruction_mae": 12.5,
        "reconstruction_num_images": 20,
        "protocol": {"real_images": "the training split"},
    }


def test_sections_without_their_figures_are_empty():
    job, f = job_from_dict({}), base_figures()
    assert report.reconstruction_section(None) == ""
    assert report.filter_section(job, f, None) == ""
    assert report.cas_section(f) == ""
    assert report.memorisation_section(f, []) == ""
    assert report.protocol_section(f) == ""
    for optional in (
        report.inception_rows,
        report.prdc_rows,
        report.inception_score_rows,
        report.memorisation_rows,
        report.cas_rows,
        report.reconstruction_rows,
    ):
        assert optional(f) == [], optional.__name__
    assert [r.figure for r in report.figure_rows(f)] == [
        "Label fidelity",
        "FID, domain features",
        "FID, domain features, real vs real",
    ]


def test_the_figures_table_keeps_its_order():
    assert [r.figure for r in report.figure_rows(full_figures())] == [
        "Label fidelity",
        "FID, InceptionV3",
        "KID, InceptionV3",
        "FID, domain features",
        "FID, domain features, real vs real",
        "KID, domain features",
        "Coverage, domain features (k=5)",
        "Recall, domain features (k=5)",
        "Precision, domain features (k=5)",
        "Inception Score, domain classifier",
        "Memorisation: nearest-neighbour distance ratio",
        "Classification Accuracy Score",
        "Reconstruction error",
    ]


def test_kid_in_inception_features_needs_its_fid():
    f = full_figures()
    del f["fid_inception"]
    assert "KID, InceptionV3" not in [r.figure for r in report.figure_rows(f)]


def test_the_page_holds_every_section_in_order():
    job, f = job_from_dict({}), full_figures()
    log = [{"step": 0.0, "loss_g": 2.0, "loss_d": 1.0}, {"step": 10.0, "loss_g": 1.0, "loss_d": 1.5}]
    page = report.render_html(job, f, {}, "R1JJRA==", log, "UkVDT04=", ["Tk4w"], None)
    sections = [
        report.page_head(job),
        report.intro_section(job, f, {}),
        report.figures_section(f),
        report.samples_section(f, "R1JJRA=="),
        report.reconstruction_section("UkVDT04="),
        report.per_class_section(f),
        report.cas_section(f),
        report.memorisation_section(f, ["Tk4w"]),
        report.losses_section(log),
        report.protocol_section(f),
        report.job_section(job),
    ]
    at = [page.find(s) for s in sections]
    assert all(s for s in sections) and -1 not in at and at == sorted(at), at
    assert page.startswith("<!doctype html>") and page.endswith("</body></html>\n")
    assert "domain CNN &lt;small&gt;" in report.figures_section(f)  # the network column is plain text


def test_an_unlabelled_page_says_so():
    f = base_figures()
    assert "n/a (unlabelled dataset)" in report.figures_section(f)
    assert "one row per class the domain classifier sees" in report.samples_section(f, "")
    assert "The model is unconditional" in report.per_class_section(f)
    labelled = full_figures()
    assert "95.00%" in report.figures_section(labelled)
    assert "one row per class the domain classifier sees" not in report.samples_section(labelled, "")
    assert "The model is unconditional" not in report.per_class_section(labelled)
