"""One shape rule for every layer: a 2D or 3D image as (Z, Y, X)."""

from __future__ import annotations

from typing import Any

import numpy as np

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
