"""synth: train an image generative model, mass-generate WebDataset shards on Ray, judge them."""

__version__ = "0.1.0"
__all__ = ["open_dataset"]


def __getattr__(name: str):
    if name == "open_dataset":  # lazy: `import synth` stays light
        from synth.reader import open_dataset

        return open_dataset
    raise AttributeError(f"module 'synth' has no attribute {name!r}")
