"""``synth interpolate``: a grid of images along a path between sample seeds' latents."""

from __future__ import annotations

from pathlib import Path

from synth.errors import SynthError
from synth.layout import INTERPOLATION, checkpoints
from synth.spec import Job
from synth.stages.generate import sampling_of
from synth.stages.outdir import check_out_dir


def run_interpolate(job: Job, out: Path, seeds: list[int], steps: int, classes: list[str] | None) -> Path:
    """A PNG grid of images along a path through the seeds' latents: a row per class, ``steps`` per segment.

    Seeds are sample seeds as the shards' ``.json`` records them. Writes ``out/interpolation.png``.
    """
    import io

    import numpy as np
    import torch
    from PIL import Image

    from synth.fsutil import atomic_write_bytes
    from synth.generate.plan import _class_index
    from synth.generate.worker import GeneratorRef, load_generator
    from synth.models.common import to_uint8
    from synth.train import checkpoint as ckpt

    check_out_dir(out, job, must_exist=True)  # so job.model is the model the checkpoint holds
    if not job.model.capabilities().latents:
        raise SynthError(f"interpolate: {job.model.name} has no latents to interpolate between")
    if len(seeds) < 2 or steps < 2:
        raise SynthError("interpolate: give at least 2 seeds (--seeds 1,2) and --steps of at least 2")
    meta, weights = ckpt.load_generator_files(checkpoints(out))
    names = list(meta["class_names"])
    rows = list(range(len(names))) if job.model.capabilities().takes_class else [0]
    if classes:
        rows = [_class_index(c, names, "--classes") for c in classes]
    model = load_generator(GeneratorRef(job.model.name, meta["model_config"], meta["digest"]), weights)
    sampling = sampling_of(job)
    seed_array = np.asarray(seeds, dtype=np.uint64)
    with torch.inference_mode():
        grid = [to_uint8(model.family.interpolate(model.net, seed_array, k, steps, sampling)) for k in rows]
    images = np.stack(grid)  # rows, cols, H, W, C
    r, c, h, w, ch = images.shape
    canvas = images.transpose(0, 2, 1, 3, 4).reshape(r * h, c * w, ch)
    picture = Image.fromarray(canvas[..., 0] if ch == 1 else canvas)
    scale = max(1, 64 // h)  # small images drawn larger, pixels kept sharp
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    path = out / INTERPOLATION
    atomic_write_bytes(path, buf.getvalue())
    return path
