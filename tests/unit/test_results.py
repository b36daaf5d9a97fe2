"""The stages' typed results: their summary files keep the keys they always had, and read back."""

import json

import pytest

from synth.fsutil import atomic_write_json
from synth.report import load_summaries, save_summary, stages_section
from synth.stages.results import GenerateResult, TrainResult

DATA = {"source": "digits", "images": 1797, "classes": 10}


@pytest.fixture
def out(tmp_path):
    """An --out as claim_out_dir leaves it (the summaries go into .synth/)."""
    (tmp_path / ".synth").mkdir()
    return tmp_path


def test_a_skipped_training_stores_its_step_and_data_only(out):
    save_summary(out, "train", TrainResult(step=400, data=DATA, skipped=True))
    assert load_summaries(out)["train"] == {"step": 400, "skipped": True, "data": DATA}


def test_a_training_run_stores_what_the_checkpoint_recorded(out):
    metrics = {"step": 8, "world_size": 2, "replica_max_diff": 0.0, "weights": "train-0000008.safetensors"}
    trained = TrainResult(**metrics, nodes=["a", None], seconds=3.5, data=DATA)
    save_summary(out, "train", trained)
    expected = out / "expected.json"  # what run_train's dict made before the result was typed
    atomic_write_json(expected, {**metrics, "nodes": ["a", None], "seconds": 3.5, "data": DATA})
    stored = out / ".synth" / "train_summary.json"
    assert stored.read_bytes() == expected.read_bytes()
    assert TrainResult.from_json(json.loads(stored.read_text())) == trained


def test_generation_summary_round_trips_and_renders(out):
    made = GenerateResult(
        count=60, class_counts=[30, 30], copies=1, shards=3, bytes=9000, generated=40, skipped_shards=1,
        features_for_report=0, nodes=1, seconds=2.0, images_per_s=20.0, location="/x/", manifest="/x/manifest.parquet",
        worker_peak_rss_mb=100.0, driver_peak_rss_mb=200.0,
    )  # fmt: skip
    save_summary(out, "generate", made)
    found = load_summaries(out)["generate"]
    assert found["images_per_s"] == 20.0 and GenerateResult.from_json(found) == made
    page = stages_section(TrainResult.from_json({"step": 5}), made)
    assert "Training: 5 steps, ? worker(s), n/a s" in page
    assert "Generation: 60 images in 3 shards; last run made 40 in 2.00 s (20.00 images/s)" in page
