"""Generation speed: `synth generate` end to end against its limit, two naive loops and Ray Data.

All figures come from one process on one embedded Ray, so they share the machine's state:

  limit        (the issue's target) the slower of (a) raw sampling: the worker's sampling path alone (seeds,
               latents, forward passes, uint8), as Ray tasks, one per shard, as many at once as Ray has
               CPUs, and (b) raw encode-and-write:
               the same images, sampled beforehand, resized/augmented/encoded/written into tars by
               the worker's own code (synth.generate.worker.encoded_samples + shards.write_shard).
  CPU bound    1 / (1/sampling + 1/encode+write): on a machine without a GPU both stages run on the
               same cores, so no schedule beats the sum of their costs.
  synth        synth.stages.generate.run_generate (what `synth generate` calls): plan, Ray tasks, sample,
               augment, encode, tar, manifest parts; then the manifest and indexes (timed apart).
  naive        one process, one forward per image, one PNG file per image (StyleGAN's generate.py).
  naive-batch  one process, batched forwards, one PNG file per image (EDM's generate.py).
  ray-data     ray.data.range -> map_batches (sample) -> write_webdataset, the same model and
               the same fields (png, cls, json), PNG at the same zlib level.

Usage (needs a trained generator, e.g. the quickstart's):
  scripts/loopback.sh .venv/bin/python bench/generate.py --run runs/quickstart
  scripts/loopback.sh .venv/bin/python bench/generate.py --run runs/quickstart --job jobs/digits-augmented.yaml
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "quickstart", help="a job output with checkpoints/")
    ap.add_argument("--job", type=Path, default=ROOT / "jobs" / "quickstart.yaml", help="job spec (encoding, augment)")
    ap.add_argument("--count", type=int, default=20_000)
    ap.add_argument("--shard-size", type=int, default=1_000)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--naive-count", type=int, default=2_000)
    ap.add_argument("--prefetch", type=int, default=None, help="generate.prefetch (default: the job's)")
    ap.add_argument("--compile", action="store_true", help="generate.compile: every path samples a torch.compile'd net")
    ap.add_argument("--skip-ray-data", action="store_true")
    ap.add_argument("--skip-naive", action="store_true")
    return ap.parse_args()


def setup_out(args, tmp: Path):
    """A job output folder holding the trained generator, and the job with the benchmark's sizes."""
    from synth.spec import job_from_dict, load_job
    from synth.stages.outdir import claim_out_dir

    src = args.run / "checkpoints"
    if not (src / "generator.safetensors").is_file():
        raise SystemExit(f"{src}: no generator.safetensors; run the quickstart first (or pass --run)")
    saved = json.loads((args.run / ".synth" / "job.json").read_text())["job"]
    sets = [
        f"seed={saved['seed']}",
        f"output.name={saved['output']['name']}",
        f"generate.count={args.count}",
        f"generate.shard_size={args.shard_size}",
        f"generate.batch_size={args.batch_size}",
        f"resources.generate_tasks={args.workers}",
        "evaluate.features_at_generation=false",
    ]  # generation alone; bench/features.py times that
    if args.prefetch is not None:
        sets.append(f"generate.prefetch={args.prefetch}")
    if args.compile:
        sets.append("generate.compile=true")
    job = load_job(args.job, sets)
    job = job_from_dict({**job.model_dump(mode="json"), "model": saved["model"]})  # the run's model, any family
    out = tmp / "out"
    (out / "checkpoints").mkdir(parents=True)
    for name in ("generator.safetensors", "generator.json"):
        shutil.copy(src / name, out / "checkpoints" / name)
    claim_out_dir(out, job)
    return job, out


def timed_tasks(ray, fn, args_list) -> tuple[float, list]:
    """Submit one task per args tuple (Ray runs as many at once as the CPUs allow); wall seconds and results."""
    t0 = time.perf_counter()
    results = ray.get([fn.remote(*a) for a in args_list])
    return time.perf_counter() - t0, results


def main() -> None:
    args = parse_args()
    import ray
    import torch

    from synth import engine
    from synth.generate.worker import encoded_samples, load_generator, source_images
    from synth.shards import write_shard
    from synth.stages.generate import generation_plan, run_generate, sampling_of
    from synth.storage import Store

    tmp = Path(tempfile.mkdtemp(prefix="synth-bench-gen-"))
    job, out = setup_out(args, tmp)
    plan, works, shared, _names, _, _ = generation_plan(job, out)
    weights = shared[0]
    works = list(works)
    print(
        f"job {args.job.name}: {plan.count:,} images, {plan.num_shards} shards of {plan.shard_size}, "
        f"batch {args.batch_size}, format {job.generate.format}, augment ops {len(job.augment.ops)}, "
        f"copies {plan.copies}, prefetch {job.generate.prefetch}; generator {works[0].generator.model_config}"
    )
    rows: dict[str, float] = {}

    with engine.ray_session(None):
        weights_ref = ray.put(weights)

        @ray.remote(num_cpus=1)
        def threads() -> int:
            return torch.get_num_threads()

        @ray.remote(num_cpus=1)
        def sample_only(work, weights) -> int:
            """Samples covered (a source image stands for its ``copies`` samples, as in the real worker)."""
            G = load_generator(work.generator, weights, compile=work.compile)
            sources = sum(len(images) for images, _ in source_images(work, G))
            assert sources * work.plan.copies >= work.shard.size
            return work.shard.size

        @ray.remote(num_cpus=1)
        def sample_keep(work, weights) -> list:
            G = load_generator(work.generator, weights, compile=work.compile)
            return list(source_images(work, G))

        @ray.remote(num_cpus=1)
        def encode_only(work, batches, store) -> int:
            samples = work.plan.samples(work.shard.start, work.shard.stop)
            return write_shard(
                store, f"shards/{work.shard.name}", encoded_samples(work, iter(batches), samples)
            ).num_samples

        print(f"torch threads in a 1-CPU Ray task: {ray.get(threads.remote())}")
        timed_tasks(ray, sample_only, [(w, weights_ref) for w in works[: 2 * args.workers]])  # warm the workers

        seconds, counts = timed_tasks(ray, sample_only, [(w, weights_ref) for w in works])
        rows["raw sampling"] = sum(counts) / seconds
        batch_refs = [sample_keep.remote(w, weights_ref) for w in works]
        ray.wait(batch_refs, num_returns=len(batch_refs))
        scratch = Store(tmp / "encode-only")
        seconds, counts = timed_tasks(ray, encode_only, [(w, b, scratch) for w, b in zip(works, batch_refs)])
        assert sum(counts) == plan.count
        rows["raw encode+write"] = plan.count / seconds
        del batch_refs

        for workers in sorted({1, args.workers}):
            for p in (out / "shards", out / ".synth" / "parts"):
                shutil.rmtree(p, ignore_errors=True)
            wjob = job.model_copy(update={"resources": job.resources.model_copy(update={"generate_tasks": workers})})
            t0 = time.perf_counter()
            made = run_generate(wjob, out)
            total = time.perf_counter() - t0
            assert made.generated == plan.count
            rows[f"synth generate, {workers} worker(s)"] = made.images_per_s
            rows[f"synth generate, {workers} worker(s), incl. manifest"] = plan.count / total

        if not args.skip_ray_data:
            rows["ray-data map_batches + write_webdataset"] = ray_data_run(ray, job, out, plan, tmp, args)

    if not args.skip_naive:
        G = load_generator(works[0].generator, weights, compile=works[0].compile)
        torch.set_num_threads(args.workers)
        sampling = sampling_of(job)
        rows["naive: per image forward + PNG file"] = naive(G, plan, args.naive_count, 1, tmp / "naive", sampling)
        rows["naive-batch: batched forward + PNG file"] = naive(
            G, plan, args.naive_count, args.batch_size, tmp / "nb", sampling
        )
    report(rows, args.workers)
    shutil.rmtree(tmp, ignore_errors=True)


def naive(G, plan, count: int, batch_size: int, folder: Path, sampling) -> float:
    """Images/s of a plain loop writing one PNG file per image (no tar, no manifest)."""
    import torch
    from PIL import Image

    from synth.models.common import to_uint8
    from synth.models.family import SampleRequest

    folder.mkdir(parents=True)
    s = plan.samples(0, count)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, count, batch_size):
            images = to_uint8(
                G.family.sample(G.net, SampleRequest(s.seed[i : i + batch_size], s.label[i : i + batch_size], sampling))
            )
            for j, image in enumerate(images):
                Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(folder / f"{i + j:08d}.png")
    return count / (time.perf_counter() - t0)


def ray_data_run(ray, job, out, plan, tmp: Path, args) -> float:
    """Images/s of the same model through Ray Data's map_batches and write_webdataset."""
    from PIL import Image

    from synth.generate.plan import sample_key
    from synth.generate.worker import load_generator, sample_images

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    weights_path = str(out / "checkpoints" / "generator.safetensors")
    meta = json.loads((out / "checkpoints" / "generator.json").read_text())
    from synth.generate.worker import GeneratorRef

    ref = GeneratorRef(job.model.name, meta["model_config"], meta["digest"])
    from synth.stages.generate import sampling_of

    sampling = sampling_of(job)

    def generate(batch: dict) -> dict:
        ids = batch["id"]
        G = load_generator(ref, Path(weights_path).read_bytes(), compile=job.generate.compile)
        s = plan.samples(int(ids[0]), int(ids[-1]) + 1)
        images = sample_images(G, s.seed, s.label, len(ids), sampling)
        metas = [
            json.dumps({"index": int(i), "seed": int(sd), "class": int(c)}) for i, sd, c in zip(ids, s.seed, s.label)
        ]
        return {"__key__": [sample_key(int(i)) for i in ids], "png": images[..., 0], "cls": s.label, "json": metas}

    def encode(sample: dict) -> dict:
        buf = io.BytesIO()
        Image.fromarray(np.asarray(sample["png"], dtype=np.uint8)).save(buf, format="PNG", compress_level=6)
        return {
            "__key__": sample["__key__"],
            "png": buf.getvalue(),
            "cls": str(int(sample["cls"])).encode(),
            "json": sample["json"].encode(),
        }

    dest = tmp / "ray-data"
    t0 = time.perf_counter()
    ds = ray.data.range(plan.count, override_num_blocks=plan.num_shards)
    ds = ds.map_batches(generate, batch_size=args.batch_size, num_cpus=1)
    ds.write_webdataset(str(dest), encoder=encode, min_rows_per_file=args.shard_size)
    seconds = time.perf_counter() - t0
    files = sorted(dest.glob("*.tar"))
    print(f"ray-data wrote {len(files)} files, e.g. {files[0].name}")
    return plan.count / seconds


def report(rows: dict[str, float], workers: int) -> None:
    limit = min(rows["raw sampling"], rows["raw encode+write"])
    synth = rows[f"synth generate, {workers} worker(s)"]
    print(f"\n{'measure':58s} {'images/s':>10s} {'x limit':>8s} {'synth x':>8s}")
    for name, value in rows.items():
        shown = f"{value:10,.0f}" if value >= 100 else f"{value:10.2f}"  # diffusion makes a few images/s
        print(f"{name:58s} {shown} {value / limit:8.2f} {synth / value:8.2f}")
    one = rows.get("synth generate, 1 worker(s)")
    if one and workers > 1:
        print(f"\nscaling: {workers} workers / 1 worker = {synth / one:.2f}x")
    print(
        f"synth generate / limit = {synth / limit:.2f} (limit: {'sampling' if limit == rows['raw sampling'] else 'encode+write'})"
    )
    serial = 1.0 / (1.0 / rows["raw sampling"] + 1.0 / rows["raw encode+write"])
    print(
        f"synth generate / CPU bound = {synth / serial:.2f} (CPU bound {serial:,.0f} images/s: sampling and "
        "encoding share the same cores, so their costs add: 1 / (1/sampling + 1/encode))"
    )


if __name__ == "__main__":
    main()
