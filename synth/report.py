"""report.json (machine-readable figures) and report.html (what a person reads)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from synth import layout
from synth.fsutil import atomic_write_bytes, atomic_write_json
from synth.layout import SUMMARIES
from synth.spec import Job
from synth.stages.results import GenerateResult, TrainResult


def save_summary(out: Path, stage: str, result: TrainResult | GenerateResult) -> None:
    """A stage's result under --out (layout.SUMMARIES), for the report and later commands."""
    atomic_write_json(out / SUMMARIES[stage], result.to_json())


def load_summaries(out: Path) -> dict:
    """The stored summaries by stage ("train", "generate"), as their JSON dicts."""
    found = {}
    for stage, rel in SUMMARIES.items():
        path = out / rel
        if path.is_file():
            found[stage] = json.loads(path.read_text())
    return found


def write_report(out: Path, job: Job, figures: dict) -> None:
    """Write report.json, report.html and report_grid.png under ``out``."""
    figures = dict(figures)
    grid_png = grid_to_png(figures.pop("grid_images"))
    atomic_write_bytes(out / layout.REPORT_GRID, grid_png)
    recon_b64 = _grid_file(out, figures.pop("reconstruction_grid", None), layout.REPORT_RECONSTRUCTIONS)
    nn_b64 = [
        base64.b64encode(grid_to_png(nn_strip(strip), width=240)).decode()
        for strip in figures.pop("memorisation_images", [])
    ]
    rejected_b64 = _grid_file(out, figures.pop("filter_rejected_grid", None), layout.REPORT_REJECTED)
    stages = load_summaries(out)
    doc = {"job": job.model_dump(mode="json"), "figures": figures, **stages}
    atomic_write_json(out / layout.REPORT_JSON, doc)
    page = render_html(
        job, figures, stages, base64.b64encode(grid_png).decode(), read_log(out), recon_b64, nn_b64, rejected_b64
    )
    atomic_write_bytes(out / layout.REPORT_HTML, page.encode())


def _grid_file(out: Path, grid: np.ndarray | None, name: str) -> str | None:
    """Write an optional grid as ``out/name`` (PNG); its base64 for the page, or None without one."""
    if grid is None:
        return None
    png = grid_to_png(grid)
    atomic_write_bytes(out / name, png)
    return base64.b64encode(png).decode()


def nn_strip(images: np.ndarray) -> np.ndarray:
    """A generated image, a grey bar, then its nearest training images: one uint8 HWC strip."""
    h, c = images.shape[1], images.shape[3]
    bar = np.full((h, max(2, h // 7), c), 128, np.uint8)
    return np.concatenate([images[0], bar, *images[1:]], axis=1)


def grid_to_png(grid: np.ndarray, width: int = 560) -> bytes:
    """A uint8 HWC grid as PNG bytes, scaled by whole pixels to about ``width`` px wide."""
    scale = max(1, width // grid.shape[1])
    pil = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def read_log(out: Path) -> list[dict]:
    path = out / layout.TRAIN_LOG
    if not path.is_file():
        return []
    with open(path) as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def loss_svg(rows: list[dict], width: int = 640, height: int = 220) -> str:
    """An inline SVG of every ``loss*`` column of the training log against step."""
    if len(rows) < 2:
        return "<p>(no training log)</p>"
    steps = np.array([r["step"] for r in rows])
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    series = dict(zip([k for k in rows[0] if k.startswith("loss")], colours))
    values = np.array([[r[k] for k in series] for r in rows])
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    hi = hi if hi > lo else lo + 1
    pad = 30

    def xy(s, v):
        x = pad + (s - steps[0]) / max(steps[-1] - steps[0], 1) * (width - 2 * pad)
        y = height - pad - (v - lo) / (hi - lo) * (height - 2 * pad)
        return f"{x:.1f},{y:.1f}"

    lines = []
    for j, (name, colour) in enumerate(series.items()):
        pts = " ".join(xy(s, v) for s, v in zip(steps, values[:, j]))
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>')
        lines.append(f'<text x="{width - pad - 60}" y="{pad + 14 * j}" fill="{colour}" font-size="12">{name}</text>')
    axes = (
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>'
        f'<text x="{pad}" y="{height - 8}" font-size="11">step {int(steps[0])}</text>'
        f'<text x="{width - pad - 60}" y="{height - 8}" font-size="11">step {int(steps[-1])}</text>'
        f'<text x="2" y="{pad}" font-size="11">{hi:.2f}</text><text x="2" y="{height - pad}" font-size="11">{lo:.2f}</text>'
    )
    return f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">{axes}{"".join(lines)}</svg>'


def class_bars_svg(names: list[str], seen: list[int], requested: list[int] | None, width: int = 640) -> str:
    """An inline SVG bar chart per class: what the domain classifier sees (and what was requested)."""
    height, pad, top = 200, 30, 20
    peak = max([*seen, *(requested or []), 1])
    slot = (width - 2 * pad) / max(len(names), 1)
    bars = []
    for i, name in enumerate(names):
        x = pad + i * slot
        h = (height - pad - top) * seen[i] / peak
        bars.append(
            f'<rect x="{x + slot * 0.15:.1f}" y="{height - pad - h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" fill="#1f77b4"><title>{html.escape(name)}: {seen[i]} seen</title></rect>'
        )
        if requested is not None:
            y = height - pad - (height - pad - top) * requested[i] / peak
            bars.append(
                f'<line x1="{x + slot * 0.1:.1f}" x2="{x + slot * 0.9:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                'stroke="#d62728" stroke-width="2"/>'
            )
        bars.append(
            f'<text x="{x + slot / 2:.1f}" y="{height - pad + 14}" font-size="11" text-anchor="middle">'
            f"{html.escape(name[:10])}</text>"
        )
        bars.append(
            f'<text x="{x + slot / 2:.1f}" y="{height - pad - h - 3:.1f}" font-size="10" '
            f'text-anchor="middle">{seen[i]}</text>'
        )
    legend = f'<text x="{pad}" y="12" font-size="11" fill="#1f77b4">bars: seen by the domain classifier</text>'
    if requested is not None:
        legend += f'<text x="{pad + 260}" y="12" font-size="11" fill="#d62728">lines: requested</text>'
    axis = f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>'
    return (
        f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">{legend}{axis}{"".join(bars)}</svg>'
    )


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def cas_section(f: dict) -> str:
    cas = f.get("cas")
    if cas is None:
        reason = f.get("cas_skipped")
        return f"<h2>Classification Accuracy Score</h2><p>Not computed: {html.escape(reason)}.</p>" if reason else ""
    arms = [("generated images (CAS)", cas["synthetic"]), ("real images (baseline)", cas["real"])]
    if cas.get("real_plus_synthetic"):
        arms.append(("real + generated images", cas["real_plus_synthetic"]))
    rows = "".join(
        f"<tr><td>{a}</td><td>{s['num_train']:,}</td><td><b>{_pct(s['accuracy'])}</b></td></tr>" for a, s in arms
    )
    return (
        f"<h2>Classification Accuracy Score</h2><p>Does the synthetic data train a classifier? The same "
        f"classifier ({html.escape(cas['network'])}) trained three ways, each tested on {html.escape(cas['test_set'])} "
        f"that the generative model never saw. Gap to the real baseline: <b>{100 * cas['gap']:.2f} points</b>.</p>"
        f"<table><tr><th>trained on</th><th>training images</th><th>test accuracy</th></tr>{rows}</table>"
        f"<p class=small>Protocol: {html.escape(cas['protocol'])}.</p>{cas_table_section(f.get('cas_table'))}"
    )


def cas_table_section(table: dict | None) -> str:
    """evaluate.cas_table: per row of real and synthetic training images, each classifier's test accuracy
    (mean ± spread over its seeds)."""
    if not table:
        return ""
    networks = list(table["networks"])
    by_arm: dict[str, dict] = {}
    for row in table["rows"]:
        by_arm.setdefault(row["arm"], {"real": row["real"], "synthetic": row["synthetic"]})[row["network"]] = row

    def cell(row) -> str:
        if row is None:
            return "n/a"
        spread = f" ± {100 * row['std']:.2f}" if len(row["seeds"]) > 1 else ""
        return f"{100 * row['mean']:.2f}%{spread}"

    head = "".join(f"<th>{html.escape(n)}</th>" for n in networks)
    rows = "".join(
        f"<tr><td>{html.escape(arm)}</td><td>{v['real']:,}</td><td>{v['synthetic']:,}</td>"
        + "".join(f"<td>{cell(v.get(n))}</td>" for n in networks)
        + "</tr>"
        for arm, v in by_arm.items()
    )
    nets = "; ".join(f"{html.escape(k)}: {html.escape(v)}" for k, v in table["networks"].items())
    return (
        f"<h3>Real and synthetic data together</h3><p>Test accuracy of classifiers trained on real images, "
        f"generated ones, and both, including the low-data case (a few real labels, with and without generated "
        f"images). Mean ± spread (standard deviation) over the classifier seeds.</p><table><tr><th>trained on"
        f"</th><th>real</th><th>generated</th>{head}</tr>{rows}</table><p class=small>{nets}. "
        f"{html.escape(table['protocol'])}.</p>"
    )


def filter_section(job: Job, f: dict, rejected_b64: str | None) -> str:
    """What generate.filter kept and rejected, per class, with the rejected candidates' grid."""
    flt, spec = f.get("filter"), job.generate.filter
    if not flt:
        return ""
    names = [r["class"] for r in flt["per_class"]]

    def drift(counts: list[int]) -> str:
        top = [i for i in np.argsort(counts)[::-1][:2] if counts[i]]
        return ", ".join(f"{html.escape(names[i])} ({counts[i]:,})" for i in top) or "-"

    rows = "".join(
        f"<tr><td>{html.escape(r['class'])}</td><td>{r['kept']:,}</td><td>{_fmt(r['drawn_per_kept'])}</td>"
        f"<td>{_fmt(r['kept_score_median'])}</td><td>{r['rejected']:,}</td><td>{drift(r['rejected_seen_as'])}</td>"
        f"<td>{r['outranked']:,}</td></tr>"
        for r in flt["per_class"]
    )
    bins = flt["bins"]
    hist = "".join(
        f"<tr><td>{bins[i]:.1f}-{bins[i + 1]:.1f}</td><td>{k:,}</td><td>{o:,}</td><td>{r:,}</td></tr>"
        for i, (k, o, r) in enumerate(zip(flt["kept_histogram"], flt["outranked_histogram"], flt["rejected_histogram"]))
    )
    who = {"domain": "the domain classifier", "fast": "a small fast CNN trained on the real data"}.get(
        spec.classifier if spec is not None else "",
        html.escape(spec.classifier if spec is not None else "a classifier"),
    )
    bias = ""
    if spec is not None and spec.classifier == "domain":
        bias = (
            " The same classifier measures label fidelity above, so that figure is high by construction: "
            "judge a filtered dataset by its Classification Accuracy Score."
        )
    rule = ""
    if spec is not None:
        rule = (
            f" Kept: the image {who} puts in the class asked for, with probability at least "
            f"{spec.min_confidence}, the most confident of {spec.candidates} candidates"
            f"{f' up to {spec.cap} (above it, the first drawn)' if spec.cap < 1 else ''}; up to "
            f"{spec.max_candidates} drawn for one image."
        )
    grid = (
        f'<p>Candidates not accepted, one row per class asked for:</p><img class="grid" '
        f'src="data:image/png;base64,{rejected_b64}" alt="rejected candidates">'
        if rejected_b64
        else ""
    )
    return (
        f"<h2>Quality filter</h2><p>Every image was chosen among candidates by {who}: "
        f"{flt['drawn']:,} drawn for {flt['kept']:,} kept, <b>{_fmt(flt['drawn_per_kept'])}</b> per kept image."
        f"{rule}{bias}</p><table><tr><th>class</th><th>kept</th><th>drawn per kept</th><th>median score kept"
        f"</th><th>not accepted</th><th>those seen as</th><th>accepted, outranked</th></tr>{rows}</table>"
        f"<p>Scores (the classifier's probability of the class asked for) of the kept candidates, of those "
        f"accepted but less confident than the one kept, and of those not accepted:</p><table><tr><th>score"
        f"</th><th>kept</th><th>outranked</th><th>not accepted</th></tr>{hist}</table>{grid}"
    )


def memorisation_section(f: dict, nn_b64: list[str]) -> str:
    m = f.get("memorisation")
    if not m:
        return ""
    rows = "".join(
        f'<tr><td><img class="grid" src="data:image/png;base64,{b64}" alt="generated {r["generated"]} and its nearest '
        f'training images"></td><td>{r["generated"]}</td><td>{", ".join(f"{d:.2f}" for d in r["distances"])}</td></tr>'
        for r, b64 in zip(m["rows"], nn_b64)
    )
    ratio = m.get("nn_distance_ratio")
    return (
        f"<h2>Memorisation check</h2><p>Each generated image's nearest training images, among all "
        f"{m['num_train']:,}, in the domain classifier's features. Median distance of a generated image to its "
        f"nearest training image: <b>{m['nn_distance_median']:.3f}</b>; of a training image to its nearest other "
        f"training image: {m['nn_distance_median_real']:.3f} (ratio <b>{_fmt(ratio)}</b>: well below 1 means "
        f"copying). Generated images nearer to a training image than 99% of training images are to one another: "
        f"<b>{_pct(m['share_nearer_than_real_p1'])}</b> (about 1% when nothing is copied).</p>"
        f"<p>The {len(m['rows'])} closest pairs: in each row the generated image first, then its 3 nearest "
        f"training images. Copies look identical.</p><table><tr><th>generated | nearest training images</th>"
        f"<th>sample</th><th>distances</th></tr>{rows}</table>"
    )


def protocol_section(f: dict) -> str:
    p = f.get("protocol") or {}
    items = "".join(f"<li><b>{html.escape(k.replace('_', ' '))}</b>: {html.escape(v)}</li>" for k, v in p.items())
    return f"<h2>Protocol</h2><ul>{items}</ul>" if items else ""


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1 else f"{v:,.2f}"
    return html.escape(str(v))


def stages_section(trained: TrainResult | None, made: GenerateResult | None) -> str:
    """The report's list items on the training and generation runs (none for a stage not run here)."""
    rows = ""
    if trained is not None:
        workers = "?" if trained.world_size is None else trained.world_size
        rows += f"<li>Training: {trained.step} steps, {workers} worker(s), {_fmt(trained.seconds)} s</li>"
    if made is not None:
        rows += (
            f"<li>Generation: {made.count:,} images in {made.shards} shards; last run made "
            f"{made.generated:,} in {_fmt(made.seconds)} s ({_fmt(made.images_per_s)} images/s)</li>"
        )
    return rows


class FigureRow(NamedTuple):
    """One row of the report's figures table; ``network`` is plain text (escaped when rendered), the
    other cells are HTML."""

    figure: str
    value: str
    samples: str
    network: str


def fidelity_rows(f: dict) -> list[FigureRow]:
    """Label fidelity, with the domain classifier's held-out accuracy ("n/a" when unlabelled)."""
    clf, labelled = f["classifier"], f.get("label_fidelity") is not None
    cache = "; from the cache" if clf.get("from_cache") else ""
    return [
        FigureRow(
            "Label fidelity",
            f"{100 * f['label_fidelity']:.2f}%" if labelled else "n/a (unlabelled dataset)",
            f"{f['num_generated']} generated images",
            f"domain classifier ({_fmt(100 * clf['held_out_accuracy'])}% on {clf['held_out_size']} held-out real "
            f"images{cache})",
        )
    ]


def inception_rows(f: dict) -> list[FigureRow]:
    """FID (and KID) in InceptionV3 features, when evaluate computed them."""
    if "fid_inception" not in f:
        return []
    net = f["fid_inception_network"]
    counts = f"{f['fid_inception_num_generated']} generated vs {f['fid_inception_num_real']} real, PNG"
    rows = [FigureRow("FID, InceptionV3", _fmt(f["fid_inception"]), counts, net)]
    k = f.get("kid_inception")
    if k:
        kid = f"{k['kid']:.4g} ± {k['kid_std']:.2g}"
        rows.append(FigureRow("KID, InceptionV3", kid, f"{k['subsets']} subset pairs of {k['subset_size']}", net))
    return rows


def domain_rows(f: dict) -> list[FigureRow]:
    """FID in the domain classifier's features, its real-vs-real floor, and KID when computed."""
    n_gen, n_real, net = f["num_generated"], f["num_real"], f["fid_domain_network"]
    rows = [
        FigureRow("FID, domain features", _fmt(f["fid_domain"]), f"{n_gen} generated vs {n_real} real", net),
        FigureRow(
            "FID, domain features, real vs real",
            _fmt(f.get("fid_domain_real_vs_real")),
            f"{n_real // 2} vs {n_real - n_real // 2} real",
            "the floor: what two samples of real data score",
        ),
    ]
    kid = f.get("kid_domain")
    if kid:
        rows.append(
            FigureRow(
                "KID, domain features",
                f"{kid['kid']:.4g} ± {kid['kid_std']:.2g}",
                f"{kid['subsets']} subset pairs of {kid['subset_size']}",
                net + "; unbiased: compare across sample counts",
            )
        )
    return rows


PRDC_MEANING = {
    "coverage": (
        "share of real images with a generated one among their 5 nearest "
        "neighbours: falls when the model collapses onto few modes"
    ),
    "recall": "share of real images inside the generated images' k-NN manifold (variety)",
    "precision": "share of generated images inside the real images' k-NN manifold (realism)",
}


def prdc_rows(f: dict) -> list[FigureRow]:
    """Coverage, recall and precision in domain features, each with its real-vs-real reference."""
    if not f.get("prdc_domain"):
        return []
    m, ref = f["prdc_domain"], f.get("prdc_domain_real_vs_real") or {}
    return [
        FigureRow(
            f"{key.capitalize()}, domain features (k=5)",
            _fmt(m[key]),
            f"{f['num_generated']} generated vs {f['num_real']} real",
            f"{what}; real vs real: {_fmt(ref.get(key))}",
        )
        for key, what in PRDC_MEANING.items()
    ]


def inception_score_rows(f: dict) -> list[FigureRow]:
    """The Inception Score with the domain classifier, against the real images' score."""
    isd = f.get("inception_score_domain")
    if not isd:
        return []
    real_is = f["inception_score_domain_real"]
    return [
        FigureRow(
            "Inception Score, domain classifier",
            f"{isd['is']:.3f} ± {isd['is_std']:.2g}",
            f"{f['num_generated']} generated, {isd['splits']} splits",
            f"{f['inception_score_network']}; real images score {real_is['is']:.3f} "
            f"(at most {f['num_classes']}: confident and varied)",
        )
    ]


def memorisation_rows(f: dict) -> list[FigureRow]:
    """The memorisation check's nearest-neighbour distance ratio."""
    m = f.get("memorisation")
    if not m:
        return []
    return [
        FigureRow(
            "Memorisation: nearest-neighbour distance ratio",
            _fmt(m["nn_distance_ratio"]),
            f"{m['num_generated']} generated vs {m['num_train']:,} training",
            "median distance to the nearest training image over the same among training images; "
            "well below 1 means copying (see the memorisation check)",
        )
    ]


def cas_rows(f: dict) -> list[FigureRow]:
    """The Classification Accuracy Score, against a classifier trained on as many real images."""
    c = f.get("cas")
    if not c:
        return []
    return [
        FigureRow(
            "Classification Accuracy Score",
            _pct(c["synthetic"]["accuracy"]),
            f"{c['synthetic']['num_train']:,} generated; tested on {c['num_test']:,} real",
            f"{c['network']}; trained on as many real images: {_pct(c['real']['accuracy'])}",
        )
    ]


def reconstruction_rows(f: dict) -> list[FigureRow]:
    """A VAE's mean reconstruction error on training images."""
    if "reconstruction_mae" not in f:
        return []
    return [
        FigureRow(
            "Reconstruction error",
            f"{f['reconstruction_mae']:.2f}",
            f"{f['reconstruction_num_images']} real (training) images",
            "mean absolute pixel error in grey levels (0-255), encoder's posterior mean decoded",
        )
    ]


def figure_rows(f: dict) -> list[FigureRow]:
    """The figures table's rows, in the report's order."""
    return [
        *fidelity_rows(f),
        *inception_rows(f),
        *domain_rows(f),
        *prdc_rows(f),
        *inception_score_rows(f),
        *memorisation_rows(f),
        *cas_rows(f),
        *reconstruction_rows(f),
    ]


def page_head(job: Job) -> str:
    """The page from its doctype to the opening <body>, with the stylesheet."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>synth report: {html.escape(job.output.name)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
th{{background:#f4f4f4}}img.grid{{image-rendering:pixelated;border:1px solid #ccc}}pre{{background:#f7f7f7;padding:1em}}
.small{{font-size:0.9em;color:#555}}</style>
</head><body>"""


def intro_section(job: Job, f: dict, stages: dict) -> str:
    """The title, what was judged against what, and the training and generation runs."""
    if f.get("generated_source"):
        subject = f"Images from <b>{html.escape(f['generated_source'])}</b> judged against"
    else:
        subject = f"Model <b>{html.escape(job.model.name)}</b> trained on"
    stage_rows = stages_section(
        TrainResult.from_json(stages["train"]) if "train" in stages else None,
        GenerateResult.from_json(stages["generate"]) if "generate" in stages else None,
    )
    return f"""<h1>synth report: {html.escape(job.output.name)}</h1>
<p>{subject} <b>{html.escape(f["dataset"])}</b>
({f["num_classes"]} classes) at {job.data.resolution}x{job.data.resolution}, {job.data.channels} channel(s).</p>
<ul>{stage_rows}</ul>"""


def figures_section(f: dict) -> str:
    """The figures table (figure_rows) and how to read it."""
    table = "".join(
        f"<tr><td>{r.figure}</td><td><b>{r.value}</b></td><td>{r.samples}</td><td>{html.escape(r.network)}</td></tr>"
        for r in figure_rows(f)
    )
    return f"""<h2>Figures</h2>
<table><tr><th>figure</th><th>value</th><th>samples</th><th>feature network</th></tr>{table}</table>
<p>Lower FID is better. FID falls as the sample count grows and depends on the feature network
and the image encoding: compare only figures with the same counts, network and encoding (these
are not comparable with published CIFAR-10 or ImageNet FIDs). Label fidelity: the share of
generated images that the domain classifier assigns to the class they were generated for.</p>"""


def samples_section(f: dict, grid_b64: str) -> str:
    """The sample grid (base64 PNG), titled by whether its rows are requested or seen classes."""
    if f.get("label_fidelity") is not None:
        title = "Samples, one row per class"
    else:
        title = "Samples, one row per class the domain classifier sees"
    return f"""<h2>{title}</h2>
<img class="grid" src="data:image/png;base64,{grid_b64}" alt="sample grid">"""


def reconstruction_section(recon_b64: str | None) -> str:
    """A VAE's real images over their reconstructions (base64 PNG); empty without a grid."""
    if not recon_b64:
        return ""
    return (
        "<h2>Reconstructions</h2><p>Per class, real training images (upper row) and the model's "
        "reconstructions of them (lower row): the posterior mean, decoded.</p>"
        f'<img class="grid" src="data:image/png;base64,{recon_b64}" alt="reconstructions">'
    )


def per_class_section(f: dict) -> str:
    """Per class: requested and seen counts (bars and table), label fidelity and FID."""
    names = f["class_names"]
    requested = f["requested_class_counts"] or ["-"] * len(names)
    fidelity = f["label_fidelity_per_class"] or {}
    class_fid = f.get("fid_domain_per_class") or [None] * len(names)
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{requested[i]}</td><td>{f['predicted_class_counts'][i]}</td>"
        f"<td>{_fmt(100 * fidelity[n]) + '%' if fidelity.get(n) is not None else 'n/a'}</td><td>{_fmt(class_fid[i])}</td></tr>"
        for i, n in enumerate(names)
    )
    bars = class_bars_svg(names, f["predicted_class_counts"], f["requested_class_counts"])
    if f.get("label_fidelity") is not None:
        note = (
            "Requested: the classes the images were generated for; seen: what the domain classifier "
            "sees. A class that nobody sees, or one that takes everything, means collapse."
        )
    else:
        note = (
            "The model is unconditional, so no class was requested; seen: what the domain classifier "
            "sees in its images. Real data has every class: a class that nobody sees, or one that "
            "takes everything, means collapse."
        )
    return f"""<h2>Per class</h2>
<p>{note}</p>
{bars}
<table><tr><th>class</th><th>requested</th><th>seen</th><th>label fidelity</th><th>FID, domain features</th></tr>{rows}</table>
<p class=small>Per-class FID compares each class's generated images with the real images of that class (about
{f["num_real"] // max(f["num_classes"], 1)} of each): a class drawn badly stands out here.</p>"""


def losses_section(log_rows: list[dict]) -> str:
    """The training losses against step (a placeholder line without a training log)."""
    return f"<h2>Training losses</h2>\n{loss_svg(log_rows)}"


def job_section(job: Job) -> str:
    """The job as YAML."""
    return f"<h2>Job</h2>\n<pre>{html.escape(job.to_yaml())}</pre>"


def render_html(
    job: Job,
    f: dict,
    stages: dict,
    grid_b64: str,
    log_rows: list[dict],
    recon_b64: str | None = None,
    nn_b64: list[str] | None = None,
    rejected_b64: str | None = None,
) -> str:
    """The report page: its head, then one section a line (an empty line for a section with
    nothing to show), then the tail. Images are base64 PNGs, ``stages`` the stored summaries."""
    sections = [
        page_head(job),
        intro_section(job, f, stages),
        figures_section(f),
        samples_section(f, grid_b64),
        reconstruction_section(recon_b64),
        per_class_section(f),
        filter_section(job, f, rejected_b64),
        cas_section(f),
        memorisation_section(f, nn_b64 or []),
        losses_section(log_rows),
        protocol_section(f),
        job_section(job),
        "</body></html>\n",
    ]
    return "\n".join(sections)
