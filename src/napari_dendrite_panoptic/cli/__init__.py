"""Layer 5: the ``dendrite-panoptic`` command line: segment (with Dask batches), evaluate, train,
sample."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
