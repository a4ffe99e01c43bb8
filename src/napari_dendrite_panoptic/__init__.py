"""Panoptic segmentation of dendrites and dendritic spines for napari and the command line.

Importing the package imports neither torch nor Qt; the engine lives in submodules.
"""

import importlib.util
import os
import sys

__version__ = "0.1.0"


def _preload_triton() -> None:
    """Load triton (pulled in by torch/torchvision) with its own symbols bound first.

    triton bundles an LLVM that clashes with the LLVM of Mesa's OpenGL drivers (llvmpipe under
    Xvfb, radeonsi, ...): when napari has opened its OpenGL canvas first, importing torchvision's
    ops segfaults. Loading triton with RTLD_DEEPBIND keeps the two apart. It costs ~0.3 s and
    imports no torch; nothing happens where triton is absent or already loaded.
    """
    if "triton" in sys.modules or not hasattr(os, "RTLD_DEEPBIND"):
        return
    try:
        if importlib.util.find_spec("triton") is None:
            return
    except (ImportError, ValueError):
        return
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
    try:
        import triton  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken triton must not break the plugin
        pass
    finally:
        sys.setdlopenflags(flags)


_preload_triton()
