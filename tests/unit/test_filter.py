"""generate.filter without Ray: candidate seeds, the keep rule, shards, the log, the one-line errors."""

import io
import json
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from synth.errors import SynthError
from synth.generate.filter import (
    FilterLog,
    candidate_seeds,
    check_judge,
    choose,
    judge_probs,
    load_judge,
    read_filter_log,
)
from synth.generate.plan import Plan, resolve_class_counts
from synth.generate.worker import ShardWork, load_generator, sample_images, write_one_shard
from synth.layout import filter_rel
from synth.manifest import write_manifest
from synth.spec import FilterSpec
from synth.storage import Store

from ..conftest import hash_classifier, members

NAMES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    """A real TorchScript classifier file (8x8 gray, 10 classes) that puts each class first for about a
    tenth of varied images."""
    return hash_classifier(tmp_path_factory.mktemp("judge") / "judge.pt", 64, NAMES).read_bytes()


def test_candidate_seeds_depend_on_job_seed_source_and_j_only():
    sources, plan_seeds = np.array([3, 3, 9]), np.array([111, 111, 222], dtype=np.uint64)
    zero = candidate_seeds(5, sources, plan_seeds, np.array([0, 0, 0]))
    assert zero.tolist() == plan_seeds.tolist()  # candidate 0 is the unfiltered sample
    one = candidate_seeds(5, sources, plan_seeds, np.array([1, 2, 1]))
    assert len(set(one.tolist()) | set(zero.tolist())) == 5 and (one < 2**63).all()
    # the same (job seed, source, j) gives the same seed wherever it comes in a batch
    assert candidate_seeds(5, sources[::-1], plan_seeds[::-1], np.array([1, 2, 1]))[::-1].tolist() == one.tolist()
    assert candidate_seeds(6, sources, plan_seeds, np.array([1, 2, 1])).tolist() != one.tolist()


def _parts(generator, judge_bytes):
    ref, weights = generator
    G = load_generator(ref, weights)
    model, _ = load_judge(judge_bytes)

    def draw(seeds, labels):
        return sample_images(G, seeds, labels, len(seeds))

    return draw, (lambda images: judge_probs(model, images))


def test_kept_images_are_accepted_candidates_chosen_by_the_rule(generator, judge):
    draw, probs_of = _parts(generator, judge)
    sources = np.arange(40, 70)
    seeds = np.arange(1000, 1030, dtype=np.uint64)
    labels = np.arange(30) % 10
    spec = FilterSpec(candidates=3, max_candidates=90, min_confidence=0.2)
    log = FilterLog(10)
    kept, picks, failed = choose(draw, probs_of, spec, 7, sources, seeds, labels, log)
    assert len(failed) == 0 and kept.shape == (30, 8, 8, 1)
    probs = probs_of(kept)
    assert (probs.argmax(1) == labels).all() and (probs[np.arange(30), labels] >= 0.2).all()
    np.testing.assert_allclose(picks.score, probs[np.arange(30), labels], rtol=1e-4)
    assert (picks.drawn % 3 == 0).all() and (picks.candidate < picks.drawn).all()
    assert (picks.candidate >= picks.drawn - 3).all()  # kept from the last round drawn
    for k in range(30):  # each kept image is its candidate's image, and the best of its last round
        j = int(picks.candidate[k])
        assert picks.seed[k] == candidate_seeds(7, sources[k : k + 1], seeds[k : k + 1], np.array([j]))[0]
        np.testing.assert_array_equal(draw(picks.seed[k : k + 1], labels[k : k + 1])[0], kept[k])
        last = np.arange(picks.drawn[k] - 3, picks.drawn[k])
        cand = candidate_seeds(7, np.full(3, sources[k]), np.full(3, seeds[k]), last)
        p = probs_of(draw(cand, np.full(3, labels[k])))
        ok = (p.argmax(1) == labels[k]) & (p[:, labels[k]] >= 0.2)
        assert last[np.argmax(np.where(ok, p[:, labels[k]], -1))] == j
    assert picks.drawn.sum() > 30 * 3  # some needed a second round: the test exercises it
    logged = read_filter_log(log.to_bytes())
    assert len(logged["rejected_score"]) == picks.drawn.sum() - 30
    assert (np.bincount(logged["image_asked"], minlength=10) <= 8).all() and len(logged["images"]) > 0
    # not kept: turned down by the classifier, or accepted and outranked (the kept one is more confident)
    outranked = logged["rejected_accepted"]
    assert outranked.any() and (~outranked).any()
    assert (logged["image_score"] < 1).all() and len(logged["images"]) <= (~outranked).sum()


def test_a_cap_keeps_the_first_confident_candidate(generator, judge):
    draw, probs_of = _parts(generator, judge)
    sources, seeds, labels = np.arange(20), np.arange(20, dtype=np.uint64) + 5, np.arange(20) % 10
    spec = FilterSpec(candidates=4, max_candidates=200, cap=1e-6)  # every accepted candidate ranks equal
    _, picks, _ = choose(draw, probs_of, spec, 3, sources, seeds, labels, FilterLog(10))
    for k in range(20):  # the first accepted of its round
        first = np.arange(picks.drawn[k] - 4, picks.candidate[k] + 1)
        cand = candidate_seeds(3, np.full(len(first), sources[k]), np.full(len(first), seeds[k]), first)
        accepted = probs_of(draw(cand, np.full(len(first), labels[k]))).argmax(1) == labels[k]
        assert accepted[-1] and not accepted[:-1].any()


def _works(root, ref, batch_size, spec, count=30, shard_size=12):
    counts = resolve_class_counts("balanced", count, True, 1, NAMES)
    plan = Plan(counts, shard_size, job_seed=5, prefix="f")
    return plan, [
        ShardWork(Store(root), plan, s, batch_size, "plan-f", ref, tuple(NAMES), filter=spec) for s in plan.shards()
    ]


def test_filtered_shards_are_the_same_bytes_at_any_batch_size_and_record_the_filter(tmp_path, generator, judge):
    ref, weights = generator
    spec = FilterSpec(candidates=2, max_candidates=120)
    md5s = {}
    for batch in (5, 16):
        plan, ws = _works(tmp_path / f"b{batch}", ref, batch, spec)
        md5s[batch] = [write_one_shard(w, weights, None, judge).md5 for w in ws]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # one thread, and the sampler in its prefetch thread
        _, ws = _works(tmp_path / "t1", ref, 7, spec)
        md5s["1 thread"] = [write_one_shard(replace(w, prefetch=2), weights, None, judge).md5 for w in ws]
    finally:
        torch.set_num_threads(threads)
    assert md5s[16] == md5s[5] == md5s["1 thread"]
    root = tmp_path / "b16"
    write_manifest(Store(root), plan, NAMES)
    manifest = pq.read_table(root / "manifest.parquet").to_pandas()
    assert np.bincount(manifest["class"], minlength=10).tolist() == [3] * 10  # exact counts
    assert {"filter_score", "filter_drawn", "filter_candidate"} <= set(manifest.columns)
    assert (manifest["filter_drawn"] >= 2).all() and (manifest["filter_candidate"] < manifest["filter_drawn"]).all()
    found = members(*sorted((root / "shards").glob("*.tar")))
    model, _ = load_judge(judge)
    for row in manifest.itertuples():
        meta = json.loads(found[f"{row.key}.json"])
        assert meta["filter"]["drawn"] == row.filter_drawn and meta["filter"]["candidate"] == row.filter_candidate
        assert meta["filter"]["score"] == pytest.approx(row.filter_score, rel=1e-5)
    images = np.stack([np.asarray(Image.open(io.BytesIO(found[f"{k}.png"])))[..., None] for k in manifest["key"]])
    assert (judge_probs(model, images).argmax(1) == manifest["class"].to_numpy()).all()  # what was written passes
    logged = read_filter_log((root / filter_rel("f-000000.tar")).read_bytes())
    assert len(logged["rejected_score"]) == int(manifest[manifest.shard == "f-000000.tar"].filter_drawn.sum()) - 12


def test_a_class_the_classifier_never_accepts_is_one_line_and_leaves_no_shard(tmp_path, generator):
    ref, weights = generator
    never7 = hash_classifier(tmp_path / "never7.pt", 64, NAMES, never=7).read_bytes()
    _, ws = _works(tmp_path, ref, 16, FilterSpec(candidates=2, max_candidates=120))
    with pytest.raises(SynthError) as err:
        for w in ws:
            write_one_shard(w, weights, None, never7)
    msg = str(err.value)
    assert "\n" not in msg and "class '7' cannot be filled" in msg and "120 candidates" in msg
    assert "kept 0 of its" in msg
    assert not any(p.suffix == ".tar" for p in (tmp_path / "shards").iterdir())


def test_classifier_files_that_do_not_fit_the_job_are_one_line(tmp_path):
    five = hash_classifier(tmp_path / "five.pt", 64, NAMES[:5]).read_bytes()
    with pytest.raises(SynthError, match=r"five.pt gives 5 class scores, but the job has 10 classes"):
        check_judge(five, "five.pt", NAMES, 8, 1)
    other = hash_classifier(tmp_path / "other.pt", 64, [f"c{i}" for i in range(10)]).read_bytes()
    with pytest.raises(SynthError, match=r"trained on classes c0, c1, .*but the job's are 0, 1"):
        check_judge(other, "other.pt", NAMES, 8, 1)
    nameless = hash_classifier(tmp_path / "nameless.pt", 64, NAMES, names=False).read_bytes()
    check_judge(nameless, "nameless.pt", NAMES, 8, 1)  # the count is all it can be checked on
    with pytest.raises(SynthError, match=r"garbage.bin: cannot run it"):
        check_judge(b"not a model at all", "garbage.bin", NAMES, 8, 1)
    with pytest.raises(SynthError, match=r"cannot run it on a 28x28"):  # wrong input size for its weights
        check_judge(nameless, "nameless.pt", NAMES, 28, 1)


def test_a_synth_classifier_round_trips_through_safetensors():
    from synth.metrics.classifier import SmallCNN, export_classifier, import_classifier

    torch.manual_seed(0)
    model = SmallCNN(1, 10).eval()
    data = export_classifier(model, "cnn", NAMES, 1)
    loaded, names = import_classifier(data)
    x = torch.randn(4, 1, 28, 28)
    assert names == NAMES and torch.equal(model(x), loaded(x))
    check_judge(data, "domain", NAMES, 28, 1)


def test_the_fast_and_domain_classifiers_are_trained_cached_and_shipped(tmp_path):
    """classifier: fast (the default) and domain: trained on the real training split, cached, exported
    as synth's safetensors file whose network is the one named; the fast one costs a fraction of the
    domain one's multiply-adds."""
    import torch

    from synth.metrics.classifier import FastCNN, SmallCNN
    from synth.spec import job_from_dict
    from synth.stages.generate import judge_file

    def macs(model) -> int:
        total = 0

        def hook(module, inputs, output):
            nonlocal total
            if isinstance(module, torch.nn.Conv2d):
                total += (
                    output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1] // module.groups
                )
            elif isinstance(module, torch.nn.Linear):
                total += module.in_features * module.out_features

        handles = [m.register_forward_hook(hook) for m in model.modules()]
        model(torch.zeros(1, 1, 28, 28))
        for h in handles:
            h.remove()
        return total

    assert macs(FastCNN(1, 10)) * 20 < macs(SmallCNN(1, 10))
    files = {}
    for name, network in (("fast", "fast"), ("domain", "cnn")):
        job = job_from_dict(
            {
                "data": {"source": "digits", "resolution": 8},
                "evaluate": {"classifier_epochs": 1},
                "generate": {"filter": {"classifier": name}},
            }
        )
        found = judge_file(job, NAMES)
        assert found.kind == "safetensors" and "held-out real images" in found.description
        info = json.loads(
            json.loads(found.data[8 : 8 + int.from_bytes(found.data[:8], "little")])["__metadata__"]["synth_classifier"]
        )
        assert info["network"] == network and info["class_names"] == NAMES
        check_judge(found.data, name, NAMES, 8, 1)
        assert judge_file(job, NAMES).digest == found.digest  # from the cache: the same weights
        files[name] = found.digest
    assert files["fast"] != files["domain"]
    assert job_from_dict({"generate": {"filter": {}}}).generate.filter.classifier == "fast"


def test_the_reports_filter_figures_add_up(tmp_path, generator, judge):
    """What the report shows of a filtered dataset: per class kept, drawn, turned down and outranked
    add up to what the manifest and the logs hold; a few turned-down images per class; the section."""
    from synth.metrics.evaluate import filter_grid
    from synth.metrics.filtered import filter_figures
    from synth.report import filter_section
    from synth.spec import job_from_dict

    ref, weights = generator
    plan, ws = _works(tmp_path, ref, 16, FilterSpec(candidates=2, max_candidates=120))
    for w in ws:
        write_one_shard(w, weights, None, judge)
    write_manifest(Store(tmp_path), plan, NAMES)
    manifest = pq.read_table(tmp_path / "manifest.parquet").to_pandas()
    found = filter_figures(Store(tmp_path), NAMES, per_class=4)
    f = found["filter"]
    assert f["kept"] == 30 and f["drawn"] == manifest.filter_drawn.sum() and f["logs_found"] == 3
    for c, row in enumerate(f["per_class"]):
        mine = manifest[manifest["class"] == c]
        assert row["kept"] == 3 and row["drawn"] == mine.filter_drawn.sum()
        assert row["rejected"] + row["outranked"] == row["drawn"] - row["kept"]
        assert sum(row["rejected_seen_as"]) == row["rejected"] and row["rejected_seen_as"][c] == 0  # seen as others
    assert sum(f["kept_histogram"]) == 30
    assert sum(f["rejected_histogram"]) + sum(f["outranked_histogram"]) == f["drawn"] - 30
    images, labels = found["filter_rejected"]
    assert (np.bincount(labels, minlength=10) <= 4).all() and len(images) == len(labels) > 0
    figures = filter_grid(dict(found), 10, 4)
    assert figures["filter_rejected_grid"].shape == (10 * 8, 4 * 8, 1) and "filter_rejected" not in figures
    job = job_from_dict({"generate": {"filter": {"classifier": "x.pt", "cap": 0.9}}})
    page = filter_section(job, figures, "QUJD")
    assert "Quality filter" in page and f"{f['drawn']:,} drawn for 30 kept" in page and "up to 0.9" in page
    assert 'src="data:image/png;base64,QUJD"' in page and "high by construction" not in page


def test_an_unfiltered_dataset_has_no_filter_figures(tmp_path, generator):
    from synth.metrics.filtered import filter_figures

    ref, weights = generator
    plan, ws = _works(tmp_path, ref, 16, None)
    for w in ws:
        write_one_shard(w, weights)
    write_manifest(Store(tmp_path), plan, NAMES)
    assert "filter_score" not in pq.read_table(tmp_path / "manifest.parquet").column_names
    assert filter_figures(Store(tmp_path), NAMES, per_class=4) == {}
