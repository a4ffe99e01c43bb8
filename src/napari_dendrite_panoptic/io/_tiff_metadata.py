"""Voxel size, channel names and stored records from the metadata of an open TIFF file.

The voxel size is looked for in ImageJ properties, then OME-XML ``PhysicalSize`` attributes,
then the TIFF resolution tags (screen and print resolutions such as 72 dpi are ignored); length
units are converted to µm. Channel names come from OME ``Channel`` elements or ImageJ
``Labels``. The stored record is the JSON object that
:func:`napari_dendrite_panoptic.io.write_tiff_atomic` writes. This module never imports napari,
Qt or torch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import tifffile

logger = logging.getLogger(__name__)

# Length units found in ImageJ descriptions and OME-XML, as µm per unit.
_UM_PER_UNIT = {
    **dict.fromkeys(("um", "µm", "μm", "micron", "microns", "micrometer", "micrometre"), 1.0),
    **dict.fromkeys(("micrometers", "micrometres"), 1.0),
    **dict.fromkeys(("nm", "nanometer", "nanometre", "nanometers", "nanometres"), 1e-3),
    **dict.fromkeys(("mm", "millimeter", "millimetre", "millimeters", "millimetres"), 1e3),
    **dict.fromkeys(("cm", "centimeter", "centimetre", "centimeters", "centimetres"), 1e4),
    **dict.fromkeys(("m", "meter", "metre", "meters", "metres"), 1e6),
    **dict.fromkeys(("in", "inch", "inches"), 25400.0),
    **dict.fromkeys(("å", "angstrom", "ångström"), 1e-4),
    "pm": 1e-6,
}
# TIFF ResolutionUnit values (4 and 5 are tifffile extensions) as µm per unit.
_UM_PER_RESUNIT = {2: 25400.0, 3: 1e4, 4: 1e3, 5: 1.0}
# Screen and print resolutions written by graphics software: not a microscope's pixel size.
_GRAPHICS_DPI = (72.0, 96.0, 300.0)


def _unit_factor(unit: Any) -> float | None:
    """µm per `unit` (a length unit name), or None when it is not a length unit."""
    if not isinstance(unit, str):
        return None
    text = unit.strip().replace("\\u00B5", "µ").replace("\\u00b5", "µ").replace("\\u03bc", "µ")
    return _UM_PER_UNIT.get(text.lower(), _UM_PER_UNIT.get(text))


def _rational(tag: Any) -> float | None:
    """Value of a RATIONAL resolution tag (pixels per unit), or None."""
    if tag is None:
        return None
    value = tag.value
    try:
        num, den = value if isinstance(value, tuple) else (value, 1)
        return float(num) / float(den)
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def read_voxel_size(
    tif: tifffile.TiffFile, has_z: bool, path: Path
) -> tuple[tuple[float, float, float], str]:
    """Return the stored voxel size of series 0 and where it came from.

    Parameters
    ----------
    tif : tifffile.TiffFile
        The open file.
    has_z : bool
        Whether the stack has a Z axis; without one the z size is 1.0.
    path : pathlib.Path
        The file, for log messages.

    Returns
    -------
    tuple
        ((z, y, x) in µm, source): source is ``"imagej"``, ``"ome"``, ``"resolution"`` (TIFF
        resolution tags), looked for in that order, or ``"none"`` with all sizes 1.0 when
        nothing usable (finite and > 0, not a screen/print dpi) is stored.
    """
    page = tif.series[0].keyframe
    x_ppu = _rational(page.tags.get("XResolution"))
    y_ppu = _rational(page.tags.get("YResolution"))
    found = None
    if tif.is_imagej and tif.imagej_metadata:
        meta = tif.imagej_metadata
        unit = meta.get("unit")
        factors = [_unit_factor(meta.get(key, unit)) for key in ("zunit", "yunit", "unit")]
        if None not in factors:
            sizes = (_to_float(meta.get("spacing", 1.0)), _inverse(y_ppu), _inverse(x_ppu))
            found = (tuple(s * f for s, f in zip(sizes, factors, strict=True)), "imagej")
        elif unit is not None and str(unit).strip().lower() not in ("pixel", "pixels", "px"):
            logger.warning(
                "'%s': ImageJ unit %r is not a length unit; its calibration is ignored.",
                path,
                unit,
            )
    if found is None and tif.is_ome and tif.ome_metadata:
        found = _ome_voxel_size(tif.ome_metadata, path)
    if found is None and x_ppu is not None and int(page.resolutionunit) in _UM_PER_RESUNIT:
        um_per_unit = _UM_PER_RESUNIT[int(page.resolutionunit)]
        y_ppu = x_ppu if y_ppu is None else y_ppu
        if um_per_unit == 25400.0 and x_ppu == y_ppu and x_ppu in _GRAPHICS_DPI:
            logger.info("'%s': %g dpi is a screen/print resolution; ignored.", path, x_ppu)
        else:
            shaped = tif.shaped_metadata[0] if tif.is_shaped and tif.shaped_metadata else {}
            z_factor = _unit_factor(shaped.get("unit"))
            z = _to_float(shaped.get("spacing", 1.0)) * z_factor if z_factor else 1.0
            y, x = um_per_unit * _inverse(y_ppu), um_per_unit * _inverse(x_ppu)
            found = ((z, y, x), "resolution")
    if found is None:
        return (1.0, 1.0, 1.0), "none"
    voxel, source = found
    if not has_z:
        voxel = (1.0, voxel[1], voxel[2])
    if not all(math.isfinite(v) and v > 0 for v in voxel):
        logger.warning(
            "'%s': stored voxel size %s µm (%s) is not usable; using 1 pixel.", path, voxel, source
        )
        return (1.0, 1.0, 1.0), "none"
    return tuple(float(f"{v:.9g}") for v in voxel), source


def _to_float(value: Any) -> float:
    """`value` as a float; NaN when it is not a number (so the voxel size is rejected)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _inverse(pixels_per_unit: float | None) -> float:
    """Unit per pixel; 1.0 when not stored, NaN when stored as 0."""
    if pixels_per_unit is None:
        return 1.0
    return 1.0 / pixels_per_unit if pixels_per_unit != 0 else math.nan


def _ome_pixels(ome_xml: str) -> ET.Element | None:
    """The Pixels element of the first Image of an OME-XML document, or None."""
    try:
        root = ET.fromstring(ome_xml)
    except ET.ParseError:
        return None
    return next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)


def _ome_voxel_size(ome_xml: str, path: Path) -> tuple[tuple[float, float, float], str] | None:
    """(z, y, x) µm from PhysicalSize attributes, or None when X and Y are not both stored."""
    pixels = _ome_pixels(ome_xml)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None
    sizes = []
    for letter in "ZYX":
        value = pixels.get(f"PhysicalSize{letter}")
        if value is None:
            sizes.append(1.0 if letter == "Z" else _to_float(pixels.get("PhysicalSizeX")))
            continue
        factor = _unit_factor(pixels.get(f"PhysicalSize{letter}Unit", "µm"))
        sizes.append(_to_float(value) * factor if factor else math.nan)
    return (sizes[0], sizes[1], sizes[2]), "ome"


def read_channel_names(tif: tifffile.TiffFile, n_channels: int) -> tuple[str, ...]:
    """Return one name per channel.

    Parameters
    ----------
    tif : tifffile.TiffFile
        The open file.
    n_channels : int
        Number of channels of the stack (0 when it has no C axis).

    Returns
    -------
    tuple of str
        Names from OME ``Channel`` elements or ImageJ ``Labels`` when there is a non-empty one
        for every channel, else ``"channel 0"``, ``"channel 1"``, ...; empty for 0 channels.
    """
    if n_channels == 0:
        return ()
    names: list[str] = []
    if tif.is_ome and tif.ome_metadata:
        pixels = _ome_pixels(tif.ome_metadata)
        if pixels is not None:
            channels = [e for e in pixels if e.tag.rsplit("}", 1)[-1] == "Channel"]
            names = [c.get("Name", "") for c in channels]
    elif tif.is_imagej and tif.imagej_metadata:
        labels = tif.imagej_metadata.get("Labels")
        if isinstance(labels, list | tuple):
            names = [str(label) for label in labels[:n_channels]]
    if len(names) == n_channels and all(name.strip() for name in names):
        return tuple(name.strip() for name in names)
    return tuple(f"channel {i}" for i in range(n_channels))


def read_stored_metadata(tif: tifffile.TiffFile) -> dict[str, Any]:
    """Return the record stored with the file.

    Parameters
    ----------
    tif : tifffile.TiffFile
        The open file.

    Returns
    -------
    dict
        The JSON object in the ImageJ ``Info`` property or under ``"metadata"`` in a tifffile
        JSON description; otherwise the ImageJ or description entries that are plain strings,
        numbers or booleans.
    """
    entries: dict[str, Any] = {}
    if tif.is_imagej and tif.imagej_metadata:
        entries = dict(tif.imagej_metadata)
        with contextlib.suppress(TypeError, ValueError):
            record = json.loads(entries.get("Info", ""))
            if isinstance(record, dict):
                return record
    elif tif.is_shaped and tif.shaped_metadata:
        entries = dict(tif.shaped_metadata[0])
        if isinstance(entries.get("metadata"), dict):
            return dict(entries["metadata"])
    return {k: v for k, v in entries.items() if isinstance(v, str | int | float | bool)}
