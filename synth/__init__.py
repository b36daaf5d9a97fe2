"""synth: train an image generative model, mass-generate WebDataset shards, judge them."""

__version__ = "0.1.0"
