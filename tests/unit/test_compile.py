"""generate.compile: a torch.compile'd sampler keeps the output contract (an image depends on its
seed and label alone: not on the batch, the shard layout, the threads or the prefetch thread) and
says in one line where a node cannot compile."""

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from synth.errors import SynthError
from synth.generate.worker import load_generator, sample_images, write_one_shard
from synth.models.common import sample_seeds

from .test_worker import works


def test_compiled_images_do_not_depend_on_batch_layout_or_threads(generator):
    ref, weights = generator
    seeds, labels = sample_seeds(3, np.arange(150)), np.arange(150) % 10
    eager = sample_images(load_generator(ref, weights), seeds, labels, 64)
    graphs = counters["stats"]["unique_graphs"]
    G = load_generator(ref, weights, compile=True)
    reference = sample_images(G, seeds, labels, 250)
    assert counters["stats"]["unique_graphs"] > graphs  # compiled, not quietly run eagerly
    for batch_size in (1, 7, 64):
        assert np.array_equal(sample_images(G, seeds, labels, batch_size), reference), batch_size
    # starting 5 images later puts every image in another row of its 64-row forward
    assert np.array_equal(sample_images(G, seeds[5:], labels[5:], 16), reference[5:])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert np.array_equal(sample_images(G, seeds, labels, 64), reference)
    finally:
        torch.set_num_threads(threads)
    # fused kernels may round otherwise than eager ones, by a grey level at most (so it is another plan)
    diff = np.abs(reference.astype(np.int16) - eager.astype(np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_compiled_shards_same_bytes_with_prefetch_and_batch(tmp_path, generator):
    ref, weights = generator
    _, plain = works(tmp_path / "a", ref, batch_size=16, compile=True)
    _, other = works(tmp_path / "b", ref, batch_size=5, prefetch=2, compile=True)  # sampled in the prefetch thread
    assert [write_one_shard(w, weights).md5 for w in plain] == [write_one_shard(w, weights).md5 for w in other]


def test_no_cpp_compiler_is_one_clear_line(generator, monkeypatch):
    from torch._inductor import config

    ref, weights = generator
    monkeypatch.setattr(config.cpp, "cxx", (None, "/nonexistent/c++"))
    with pytest.raises(
        SynthError,
        match=r"^generate.compile: node .+ has no C\+\+ compiler for torch.compile \(tried "
        r"/nonexistent/c\+\+\); install one or point CXX at one, or set "
        r"generate.compile: false$",
    ):
        load_generator(ref, weights, compile=True)
    load_generator(ref, weights)  # without compile nothing is needed


def test_gpu_needs_triton():
    from torch.utils._triton import has_triton

    from synth.generate.worker import _check_compiler

    if has_triton():
        _check_compiler("cuda")  # nothing to say
    else:  # here: torch's CPU wheel has no Triton
        with pytest.raises(
            SynthError,
            match=r"^generate.compile: node .+ has no Triton for torch.compile on cuda; "
            r"install triton, or set generate.compile: false$",
        ):
            _check_compiler("cuda")
