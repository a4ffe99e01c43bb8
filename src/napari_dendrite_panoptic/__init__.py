"""Panoptic segmentation of dendrites and dendritic spines for napari and the command line.

Importing the package imports neither torch nor Qt; the engine lives in submodules.
"""

import importlib.metadata as _metadata

# the installed version, from the git tag it was built from (setuptools_scm, pyproject.toml)
try:
    __version__ = _metadata.version("napari-dendrite-panoptic")
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
