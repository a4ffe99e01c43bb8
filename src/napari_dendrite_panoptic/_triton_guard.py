"""Load triton safely before torchvision pulls it in.

triton (a torch dependency) bundles an LLVM that clashes with the LLVM of Mesa's OpenGL drivers
(llvmpipe under Xvfb, radeonsi, ...): when napari has opened its OpenGL canvas first, importing
torchvision's ops segfaults. Loading triton with RTLD_DEEPBIND keeps the two apart. Importing
this module does it once; :mod:`napari_dendrite_panoptic.models` imports it before anything
imports torchvision. It costs ~0.3 s, imports no torch, and does nothing where triton is absent
or already loaded.
"""

import importlib.util
import os
import sys


def _preload_triton() -> None:
    """Import triton with RTLD_DEEPBIND unless it is absent or loaded already."""
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
