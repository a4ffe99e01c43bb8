"""The run record: which model, settings, input and software made a result.

The same record is written beside CLI outputs (``<stem>_run.json``), stored in the saved TIFFs'
metadata and in the result layers' ``metadata``; ``segment --from-run`` reads it back.
Fields are explained one by one in ``docs/provenance.md``.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InputError
from ..models import LoadedModels
from .config import InferenceConfig, PanopticResult

RECORD_FORMAT = 1
_CONFIG_FIELDS = tuple(InferenceConfig.__dataclass_fields__)  # type: ignore[attr-defined]

LATER_STEPS_OFF = {
    "spine_focus_fraction": 0.0,
    "dendrite_depth_tolerance": None,
    "test_time_flips": False,
    "stack_mode": "planes",
}
"""Settings of steps added after the first run records (all in v0.1 of the plugin, November
2026: the spine focus trim, then the dendrite depth trim, then the mirror views; then the stack
modes) and the value
that switches each off: a record without one was made without that step, so its re-run leaves
it out too."""


def software_versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape a result (absent ones are skipped)."""
    versions = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "numpy", "scipy", "tifffile", "napari"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def run_record(
    result: PanopticResult,
    models: LoadedModels,
    *,
    input_path: str | None,
    input_shape: tuple[int, ...],
    input_dtype: str,
    input_voxel_size_um: tuple[float, float, float] | None,
    input_voxel_size_source: str,
    started: _dt.datetime,
    duration_s: float,
    input_channel: int | None = None,
) -> dict[str, Any]:
    """A JSON-serialisable record of one segmentation run (``input_channel``: the channel
    segmented, where the input has several or one was asked for)."""
    card = models.card
    return {
        "record_format": RECORD_FORMAT,
        "plugin": "napari-dendrite-panoptic",
        "plugin_version": __version__,
        "model": {
            "name": card.name,
            "version": card.version,
            "folder": str(models.folder),
            "pixel_size_um": card.pixel_size_um,
            "weights_sha256": {"spines": card.spines.sha256, "dendrites": card.dendrites.sha256},
        },
        "parameters": dict(result.parameters),
        "pixel_size": {
            "used_um": list(result.voxel_size_um),
            "source": result.pixel_size_source,
            **(
                {"estimate": result.parameters["pixel_size_estimate"]}
                if "pixel_size_estimate" in result.parameters
                else {}
            ),
        },
        "input": {
            "path": input_path,
            "shape": [int(s) for s in input_shape],
            "dtype": str(input_dtype),
            "voxel_size_um": list(input_voxel_size_um) if input_voxel_size_um else None,
            "voxel_size_source": input_voxel_size_source,
            "channel": input_channel,
        },
        "started": started.astimezone(_dt.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(float(duration_s), 3),
        "software": software_versions(),
        "spines_found": int(len(result.table["id"])),
    }


_WHOLE = ("tile_size", "tile_overlap", "batch_tiles", "min_spine_px")
_OPTIONAL = (
    "model",
    "spine_score_threshold",
    "dendrite_threshold",
    "pixel_size_um",
    "dendrite_depth_tolerance",
)


def _checked_value(key: str, value: Any) -> Any:
    """``value`` when it has the type of :class:`InferenceConfig`'s field ``key``, else an
    :class:`InputError` naming the field."""
    if value is None and key in _OPTIONAL:
        return value
    default = getattr(InferenceConfig(), key)
    if key in _WHOLE:
        ok = isinstance(value, int) and not isinstance(value, bool)
        kind = "a whole number"
    elif isinstance(default, str) or key in ("model", "device"):
        ok, kind = isinstance(value, str), "a string"
    elif isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        kind = "a number"
    if not ok:
        raise InputError(f"not a usable run record: parameters.{key} must be {kind}, not {value!r}")
    return value


def config_from_record(record: dict[str, Any]) -> InferenceConfig:
    """The :class:`InferenceConfig` a record was made with (``--from-run``); a record whose
    values have the wrong types is an :class:`InputError`."""
    try:
        params = record["parameters"]
        values = {k: _checked_value(k, params[k]) for k in _CONFIG_FIELDS if k in params}
    except (KeyError, TypeError) as exc:
        raise InputError(f"not a run record: missing {exc}") from None
    model = record.get("model")
    if not isinstance(model, dict):
        raise InputError(
            f"not a usable run record: 'model' must be an object with the model's folder and "
            f"weight hashes, not {model!r}"
        )
    if values.get("model") is None:
        values["model"] = model.get("folder")
        if values["model"] is not None and not isinstance(values["model"], str):
            raise InputError("not a usable run record: model.folder must be a string")
    for key, off in LATER_STEPS_OFF.items():
        values.setdefault(key, off)
    try:
        return InferenceConfig(**values)
    except TypeError as exc:
        raise InputError(f"not a usable run record: {exc}") from None


def recorded_channel(record: dict[str, Any]) -> int | None:
    """The channel a record's run segmented (None for records that do not say)."""
    channel = (record.get("input") or {}).get("channel")
    if channel is None:
        return None
    if not isinstance(channel, int) or isinstance(channel, bool):
        raise InputError(
            f"not a usable run record: input.channel must be a whole number, not {channel!r}"
        )
    return channel


def load_record(path: str | Path) -> dict[str, Any]:
    """Read a ``<stem>_run.json`` record."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except RecursionError:
        raise InputError(
            f"cannot read run record '{path}': its JSON is nested too deeply"
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read run record '{path}': {exc}") from None
    if not isinstance(record, dict) or record.get("plugin") != "napari-dendrite-panoptic":
        raise InputError(f"'{path}' is not a napari-dendrite-panoptic run record")
    return record


def check_model_matches(record: dict[str, Any], models: LoadedModels) -> None:
    """Raise when the model loaded for a re-run is not the one the record names, or when the
    record names no weight hashes (then the model cannot be verified, so it is refused)."""
    wanted = record.get("model", {}).get("weights_sha256")
    if not (
        isinstance(wanted, dict)
        and all(
            isinstance(wanted.get(k), str) and len(wanted[k]) == 64 for k in ("spines", "dendrites")
        )
    ):
        raise InputError(
            "the run record holds no weight hashes (model.weights_sha256), so the model it "
            "names cannot be verified; run without --from-run and name the model with --model"
        )
    have = {"spines": models.card.spines.sha256, "dendrites": models.card.dendrites.sha256}
    if {k: wanted[k] for k in have} != have:
        raise InputError(
            f"the model in '{models.folder}' is not the one this run used "
            f"(weights SHA-256 differ); the record names {record['model'].get('name')!r} "
            f"from {record['model'].get('folder')!r}"
        )
