"""Array rules every layer shares: a 2D or 3D image as (Z, Y, X), a mask as instances."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError


def as_zyx(image: Any) -> Any:
    """The image as (Z, Y, X): a (Y, X) image gains a Z axis of 1, a (Z, Y, X) one is returned
    as is (lazy arrays stay lazy; a 2D lazy array is read). Any dtype; raises
    :class:`InputError` for other numbers of axes."""
    ndim = len(image.shape)
    if ndim == 2:
        return image[None] if isinstance(image, np.ndarray) else np.asarray(image)[None]
    if ndim != 3:
        raise InputError(
            f"expected a 2D (Y, X) or 3D (Z, Y, X) image, got shape {tuple(image.shape)}; "
            "pick one channel and time point first"
        )
    return image


def mask_to_instances(mask: Any) -> np.ndarray:
    """Instances of a mask (any shape, non-zero = inside): its face-connected components
    numbered 1..n, as uint32 of the same shape; in a stack the components are 3D (a spine is
    one object through its planes)."""
    labels, _ = ndi.label(np.asarray(mask) > 0)
    return labels.astype(np.uint32)
