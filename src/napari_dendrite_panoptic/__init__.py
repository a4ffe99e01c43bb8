"""Panoptic segmentation of dendrites and dendritic spines for napari and the command line.

Importing the package imports neither torch nor Qt; the engine lives in submodules.
"""

__version__ = "0.1.0"
