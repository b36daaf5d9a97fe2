"""`synth run` end to end through the CLI, on a real embedded Ray, on real bundled data."""

import io
import json
import re
import shutil
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from synth.shards import md5_file

from ..conftest import QUICKSTART, hash_classifier, members, run_cli

TINY = [
    "--set",
    "data.limit=1000",
    "--set",
    "train.steps=40",
    "--set",
    "train.log_every=10",
    "--set",
    "train.checkpoint_every=20",
    "--set",
    "generate.count=230",
    "--set",
    "generate.shard_size=50",
    "--set",
    "generate.batch_size=16",
    "--set",
    "evaluate.num_samples=40",
    "--set",
    "evaluate.classifier_epochs=1",
    "--set",
    "output.name=tiny",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    proc = run_cli("run", str(QUICKSTART), "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc


def shard_md5s(out):
    return {p.name: md5_file(p) for p in sorted((out / "shards").glob("*.tar"))}


def test_outputs_and_counts(tiny_run):
    out, proc = tiny_run
    assert "report:" in proc.stdout and "generated: 230 images in 5 shards" in proc.stdout
    assert sorted(p.name for p in (out / "shards").iterdir()) == [f"tiny-{i:06d}.tar" for i in range(5)]
    manifest = pq.read_table(out / "manifest.parquet").to_pandas()
    assert len(manifest) == 230 and manifest["key"].is_unique
    assert set(manifest.columns) >= {"key", "shard", "class", "seed"}
    assert np.bincount(manifest["class"], minlength=10).tolist() == [23] * 10
    assert manifest.groupby("shard").size().tolist() == [50, 50, 50, 50, 30]
    assert (out / "checkpoints" / "generator.safetensors").is_file()
    assert (out / "checkpoints" / "state.json").is_file()
    assert len((out / "train_log.csv").read_text().strip().splitlines()) == 1 + 4


def test_report(tiny_run):
    out, _ = tiny_run
    report = json.loads((out / "report.json").read_text())
    f = report["figures"]
    for key in ("label_fidelity", "fid_domain", "fid_inception", "predicted_class_counts", "classifier"):
        assert key in f
    assert 0.0 <= f["label_fidelity"] <= 1.0 and f["fid_inception"] > 0 and f["fid_domain"] > 0
    assert f["num_generated"] == 40 and f["fid_inception_num_real"] == 40
    # the 40 judged are the first 8 of each of the 5 shards; their Inception features were computed by
    # the generation workers
    assert f["fid_inception_generated_stored"] == 40
    assert sorted(p.name for p in (out / ".synth" / "features").iterdir()) == [f"tiny-{i:06d}.npz" for i in range(5)]
    assert report["train"]["step"] == 40 and report["generate"]["count"] == 230
    page = (out / "report.html").read_text()
    assert "InceptionV3" in page and "SmallCNN" in page and "40 generated vs 40 real" in page
    assert set(f["prdc_domain"]) == {"precision", "recall", "density", "coverage"}
    assert 0 <= f["prdc_domain"]["coverage"] <= 1 and f["prdc_domain_real_vs_real"]["coverage"] > 0
    assert "Coverage, domain features (k=5)" in page
    assert "data:image/png;base64," in page
    grid = Image.open(out / "report_grid.png")
    assert grid.width > 0 and grid.height > 0


def test_report_has_kid_is_cas_memorisation_and_protocol(tiny_run):
    out, _ = tiny_run
    f = json.loads((out / "report.json").read_text())["figures"]
    for kid in (f["kid_domain"], f["kid_inception"]):
        assert kid["subset_size"] == 20 and kid["subsets"] == 100 and kid["kid_std"] > 0  # subsets differ
    assert 1.0 <= f["inception_score_domain"]["is"] <= 10.0 and f["inception_score_domain_real"]["is"] > 1.0
    assert len(f["fid_domain_per_class"]) == 10
    m = f["memorisation"]
    assert m["num_train"] == 1000 and m["num_generated"] == 40 and len(m["rows"]) == 8
    firsts = [r["distances"][0] for r in m["rows"]]
    assert firsts == sorted(firsts) and all(len(r["train"]) == 3 for r in m["rows"])
    assert firsts[0] == pytest.approx(min(firsts)) and m["nn_distance_median"] >= firsts[-1]
    cas = f["cas"]  # the MNIST subset's real test split: MNIST's 10,000 test digits
    assert cas["num_test"] == 10_000 and cas["test_set"].startswith("mnist_test")
    assert [cas[a]["num_train"] for a in ("synthetic", "real", "real_plus_synthetic")] == [230, 230, 460]
    assert all(0.0 <= cas[a]["accuracy"] <= 1.0 for a in ("synthetic", "real", "real_plus_synthetic"))
    assert cas["gap"] == pytest.approx(cas["real"]["accuracy"] - cas["synthetic"]["accuracy"])
    assert set(f["protocol"]) >= {"generated", "real", "inception_resize", "kid", "memorisation"}
    page = (out / "report.html").read_text()
    for section in (
        "Classification Accuracy Score",
        "Memorisation check",
        "Protocol",
        "KID, InceptionV3",
        "Inception Score, domain classifier",
        "FID, domain features</th>",
    ):
        assert section in page, section
    assert page.count("<svg") == 2  # the per-class bar chart and the loss curves


def test_evaluate_again_takes_the_classifier_and_real_features_from_the_cache(tiny_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(tiny_run[0], out)  # the module's run stays as the other tests expect it
    env = {"SYNTH_CACHE_DIR": str(tmp_path / "cache")}
    reports = []
    for _ in range(2):
        proc = run_cli("evaluate", str(QUICKSTART), "--out", str(out), *TINY, "--set", "evaluate.cas=false", env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        reports.append(json.loads((out / "report.json").read_text())["figures"])
    assert [r["classifier"]["from_cache"] for r in reports] == [False, True]
    assert [r["fid_inception_real_from_cache"] for r in reports] == [False, True]
    assert "loaded from the cache" in proc.stderr
    assert sorted(p.parent.name for p in (tmp_path / "cache").rglob("*") if p.is_file()) == ["classifiers", "features"]
    for key in ("label_fidelity", "fid_domain", "predicted_class_counts", "prdc_domain", "fid_inception"):
        assert reports[0][key] == pytest.approx(reports[1][key], rel=1e-6), key
    assert reports[0]["classifier"]["held_out_accuracy"] == reports[1]["classifier"]["held_out_accuracy"]


def test_features_from_generation_give_the_figures_evaluation_computes(tiny_run, tmp_path, cli_on_one_ray):
    out = tmp_path / "run"
    shutil.copytree(tiny_run[0], out)
    shutil.rmtree(out / ".synth" / "features")
    proc = cli_on_one_ray("evaluate", str(QUICKSTART), "--out", str(out), *TINY, "--set", "evaluate.cas=false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((out / "report.json").read_text())["figures"]
    first = json.loads((tiny_run[0] / "report.json").read_text())["figures"]
    assert again["fid_inception_generated_stored"] == 0 and first["fid_inception_generated_stored"] == 40
    assert again["fid_inception"] == pytest.approx(first["fid_inception"], rel=1e-4)
    assert again["kid_inception"]["kid"] == pytest.approx(first["kid_inception"]["kid"], rel=1e-4, abs=1e-7)


def test_evaluate_other_images_folder_and_shards_agree(tiny_run, tmp_path, cli_on_one_ray):
    """`synth evaluate --generated` on images synth did not lay out: the run's samples as a folder of
    class sub-folders, and its bare shards, judged against the same real data, give the same figures."""
    out, _ = tiny_run
    folder = tmp_path / "images"
    for shard in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".png"):
                    key = m.name[: -len(".png")]
                    label = int(tar.extractfile(f"{key}.cls").read())
                    (folder / str(label)).mkdir(parents=True, exist_ok=True)
                    (folder / str(label) / m.name).write_bytes(tar.extractfile(m).read())
    common = [
        "--real",
        "mnist_subset",
        "--set",
        "data.limit=1000",
        "--set",
        "evaluate.num_samples=230",
        "--set",
        "evaluate.classifier_epochs=1",
        "--set",
        "evaluate.inception=false",
        "--set",
        "evaluate.cas=false",
    ]
    figures = []
    for source, rep in ((folder, "from-folder"), (out / "shards", "from-shards")):
        proc = cli_on_one_ray("evaluate", "--generated", str(source), "--out", str(tmp_path / rep), *common)
        assert proc.returncode == 0, proc.stderr[-3000:]
        figures.append(json.loads((tmp_path / rep / "report.json").read_text())["figures"])
        assert figures[-1]["generated_source"] == str(source) and figures[-1]["num_generated"] == 230
        assert str(source) in (tmp_path / rep / "report.html").read_text()
    a, b = figures
    assert a["labelled"] and b["labelled"]  # classes from the sub-folder names, and from the shards' .cls
    assert a["requested_class_counts"] == b["requested_class_counts"] == [23] * 10
    for key in ("label_fidelity", "fid_domain"):
        assert a[key] == pytest.approx(b[key], rel=1e-9), key  # same images, another order
    assert a["prdc_domain"] == pytest.approx(b["prdc_domain"])


def test_three_readers_agree(tiny_run):
    out, _ = tiny_run
    manifest = pq.read_table(out / "manifest.parquet").to_pandas()
    expected = list(zip(manifest["key"], manifest["class"].astype(int)))
    shards = sorted(str(p) for p in (out / "shards").glob("*.tar"))

    plain = []
    for path in shards:
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                key, ext = m.name.split(".", 1)
                if ext == "png":
                    img = Image.open(io.BytesIO(tar.extractfile(m).read()))
                    assert img.size == (28, 28)
                    label = int(tar.extractfile(f"{key}.cls").read())
                    plain.append((key, label))
    assert plain == expected

    ds = wds.WebDataset(shards, shardshuffle=False).decode("pil").to_tuple("__key__", "png", "cls", "json")
    seen = [(k, int(c)) for k, img, c, meta in ds]
    assert seen == expected


def test_rerun_skips_done_shards(tiny_run, cli_on_one_ray):
    out, _ = tiny_run
    before = shard_md5s(out)
    proc = cli_on_one_ray("generate", str(QUICKSTART), "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "0 new" in proc.stdout and "5 shards already done" in proc.stdout
    assert shard_md5s(out) == before


def test_same_bytes_with_other_workers_and_batch(tiny_run, cli_on_one_ray):
    out, _ = tiny_run
    before = shard_md5s(out)
    for p in (out / "shards").glob("*.tar"):
        p.unlink()
    for p in (out / ".synth" / "parts").glob("*"):
        p.unlink()
    proc = cli_on_one_ray(
        "generate",
        str(QUICKSTART),
        "--out",
        str(out),
        *TINY,
        "--set",
        "resources.generate_tasks=1",
        "--set",
        "resources.generate_cpus=2",
        "--set",
        "generate.batch_size=7",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "230 new" in proc.stdout
    assert shard_md5s(out) == before


def test_resources_beyond_the_embedded_ray_are_one_line(tiny_run):
    out, _ = tiny_run
    before = shard_md5s(out)
    gen = run_cli("generate", str(QUICKSTART), "--out", str(out), *TINY, "--set", "resources.generate_cpus=512")
    assert gen.returncode == 2 and "Traceback" not in gen.stderr
    assert re.search(
        r"resources.generate_cpus: 512 per task, but the cluster has \d+ CPUs? \(an embedded Ray cannot "
        r"add nodes\)$",
        gen.stderr.strip().splitlines()[-1],
    )
    assert shard_md5s(out) == before
    claimed = (out / ".synth" / "job.json").read_bytes()
    train = run_cli(
        "train", str(QUICKSTART), "--out", str(out), *TINY, "--set", "train.num_workers=64", "--set", "train.steps=60"
    )
    assert train.returncode == 2 and "Traceback" not in train.stderr
    assert "train.num_workers: 64 training workers x 1 CPU, but the cluster has" in train.stderr.splitlines()[-1]
    assert (out / ".synth" / "job.json").read_bytes() == claimed  # refused before --out was claimed


def test_interpolate_writes_a_grid(tiny_run, cli_on_one_ray):
    out, _ = tiny_run
    proc = cli_on_one_ray(
        "interpolate", str(QUICKSTART), "--out", str(out), *TINY, "--seeds", "1,2,3", "--steps", "4", "--classes", "3,8"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    grid = Image.open(out / "interpolation.png")
    assert grid.size == (7 * 56, 2 * 56)  # 2 segments of 4 points share one: 7 columns; 2 classes; 28 px drawn 2x
    assert np.asarray(grid).std() > 0
    bad = run_cli("interpolate", str(QUICKSTART), "--out", str(out), *TINY, "--seeds", "1,x")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --seeds '1,x': expected integers separated by commas"


def test_compiled_generation_is_another_plan_of_the_same_images(tiny_run, tmp_path, cli_on_one_ray):
    """generate.compile: every shard is made anew (a compiled net may round otherwise, so it is not
    the eager plan), with the same keys and classes, each pixel within one grey level of the eager run's."""
    out, _ = tiny_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy)

    def samples(root):
        return members(*sorted((root / "shards").glob("*.tar")))

    eager = samples(copy)
    proc = cli_on_one_ray("generate", str(QUICKSTART), "--out", str(copy), *TINY, "--set", "generate.compile=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "230 new" in proc.stdout
    compiled = samples(copy)
    assert compiled.keys() == eager.keys() and len(compiled) == 230 * 3
    for key in compiled:
        if key.endswith(".png"):
            a, b = (np.asarray(Image.open(io.BytesIO(s[key]))).astype(np.int16) for s in (eager, compiled))
            assert np.abs(a - b).max() <= 1, key
        elif key.endswith(".cls"):
            assert compiled[key] == eager[key]


def test_filtered_generation_through_the_cli(tiny_run, tmp_path, cli_on_one_ray):
    """generate.filter with a user's TorchScript classifier: exact class counts, every written image
    accepted, the filter recorded in the manifest and each .json, the same bytes with other tasks and
    batch, a dataset `synth verify` passes; a class the classifier never accepts is one line that names
    it and leaves the shards finished before it in place."""
    out, _ = tiny_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    judge = hash_classifier(tmp_path / "judge.pt", 28 * 28, [str(i) for i in range(10)])
    flt = ["--set", f"generate.filter.classifier={judge}", "--set", "generate.filter.max_candidates=200"]
    proc = cli_on_one_ray("generate", str(QUICKSTART), "--out", str(copy), *TINY, *flt)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "230 new" in proc.stdout
    manifest = pq.read_table(copy / "manifest.parquet").to_pandas()
    assert np.bincount(manifest["class"], minlength=10).tolist() == [23] * 10
    assert (manifest["filter_drawn"] >= 2).all() and manifest["filter_drawn"].mean() > 2  # some took more rounds
    found = members(*sorted((copy / "shards").glob("*.tar")))
    meta = json.loads(found[f"{manifest.key[3]}.json"])
    assert meta["filter"]["drawn"] == manifest.filter_drawn[3] and meta["filter"]["seed"] > 0
    from synth.generate.filter import judge_probs, load_judge

    model, _ = load_judge(judge.read_bytes())
    images = np.stack([np.asarray(Image.open(io.BytesIO(found[f"{k}.png"])))[..., None] for k in manifest.key])
    assert (judge_probs(model, images).argmax(1) == manifest["class"].to_numpy()).all()
    assert cli_on_one_ray("verify", str(copy)).returncode == 0
    before = shard_md5s(copy)
    for p in [*(copy / "shards").glob("*.tar"), *(copy / ".synth" / "parts").glob("*")]:
        p.unlink()
    again = cli_on_one_ray(
        "generate",
        str(QUICKSTART),
        "--out",
        str(copy),
        *TINY,
        *flt,
        "--set",
        "resources.generate_tasks=1",
        "--set",
        "generate.batch_size=7",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert shard_md5s(copy) == before

    never7 = hash_classifier(tmp_path / "never7.pt", 28 * 28, [str(i) for i in range(10)], never=7)
    for p in [*(copy / "shards").glob("*.tar"), *(copy / ".synth" / "parts").glob("*")]:
        p.unlink()
    # 80 samples in 4 shards of 20; the one sample of class 7 is source 31, in the second shard
    bad = run_cli(
        "generate",
        str(QUICKSTART),
        "--out",
        str(copy),
        *TINY,
        "--set",
        f"generate.filter.classifier={never7}",
        "--set",
        "generate.filter.max_candidates=200",
        "--set",
        "generate.count=80",
        "--set",
        "generate.shard_size=20",
        "--set",
        'generate.classes={counts: {"0": 40, "1": 39, "7": 1}}',
        "--set",
        "resources.generate_tasks=1",
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    line = bad.stderr.strip().splitlines()[-1]  # the task's message alone, not Ray's traceback of it
    assert line.startswith("error: generate.filter: class '7' cannot be filled: none of the 200 candidates"), line
    assert "tiny-000001.tar kept 0 of its 1 samples" in line
    assert sorted(p.name for p in (copy / "shards").glob("*.tar")) == ["tiny-000000.tar"]
    assert (copy / ".synth" / "parts" / "tiny-000000.parquet").is_file()

    wrong = hash_classifier(tmp_path / "five.pt", 28 * 28, [str(i) for i in range(5)])
    refused = run_cli(
        "generate", str(QUICKSTART), "--out", str(copy), *TINY, "--set", f"generate.filter.classifier={wrong}"
    )
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .endswith("five.pt gives 5 class scores, but the job has 10 classes (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)")
    )


def test_dataset_card_beside_the_shards(tiny_run, cli_on_one_ray):
    """synth generate writes DATASET_CARD.md and datacard.json; synth evaluate adds the report's figures."""
    import yaml

    out, _ = tiny_run
    card = json.loads((out / "datacard.json").read_text())
    job = json.loads((out / ".synth" / "job.json").read_text())
    assert card["job"]["identity"] == job["identity"] and card["job"]["seed"] == 0
    generator = json.loads((out / "checkpoints" / "generator.json").read_text())
    assert card["model"]["checkpoint_digest"] == generator["digest"] and card["model"]["trained_steps"] == 40
    assert card["source"]["name"] == "mnist_subset" and card["source"]["images"] == 1000
    assert card["samples"]["count"] == 230 and sum(card["samples"]["class_counts"].values()) == 230
    report = json.loads((out / "report.json").read_text())["figures"]
    assert card["evaluation"]["fid_inception"] == report["fid_inception"]
    assert card["evaluation"]["cas"]["gap"] == report["cas"]["gap"]
    assert card["created_by"]["synth"] and isinstance(card["limitations"], list)
    text = (out / "DATASET_CARD.md").read_text()
    front = yaml.safe_load(text.split("---\n")[1])  # Hugging Face's metadata block
    assert front["task_categories"] == ["image-classification"] and front["size_categories"] == ["n<1K"]
    assert "synthetic" in front["tags"] and front["license"] == "other"
    for heading in ("## Dataset structure", "## Dataset creation", "## Evaluation", "## Limitations", "## Licensing"):
        assert heading in text
    assert card["model"]["checkpoint_digest"] in text and "Classification Accuracy Score" in text
    again = cli_on_one_ray(
        "generate", str(QUICKSTART), "--out", str(out), *TINY
    )  # the same plan: the figures still hold
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((out / "datacard.json").read_text())["evaluation"] == card["evaluation"]
