"""Model cards: what a model folder is, as plain data (JSON), validated on load."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ModelError

CARD_FILE = "card.json"
CARD_FORMAT = 1
KNOWN_ARCHITECTURES = ("maskrcnn_resnet18_fpn_lite", "fcn_resnet18_fpn_lite")
DEFAULT_THRESHOLD = 0.5
"""The spine score and dendrite probability thresholds of a card that recommends none."""
THRESHOLD_KEYS = ("spine_score_threshold", "dendrite_threshold")
"""The thresholds a card's ``inference`` may recommend (each 0-1)."""
_POSITIVE_WHOLE = ("fpn_channels", "box_head_size", "mask_head_channels", "detections_per_tile")


def input_planes(config: dict[str, Any]) -> int:
    """Planes a network of this config takes as channels (``input_planes``, default 1): a
    positive odd number, the segmented plane in the middle."""
    planes = config.get("input_planes", 1)
    if not isinstance(planes, int) or isinstance(planes, bool) or planes < 1 or planes % 2 == 0:
        raise ModelError(f"input_planes must be a positive odd whole number, not {planes!r}")
    return planes


def _is_number(value: Any) -> bool:
    """A real JSON number (not a bool, not a string)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class NetworkCard:
    """One network of a model folder.

    ``architecture`` names a builder in :mod:`.builders`; ``config`` holds its arguments (anchor
    sizes in px at the native pixel size, channel widths, ...). ``sha256`` is the hash of the
    safetensors file, checked when the weights are loaded.
    """

    architecture: str
    weights_file: str
    sha256: str
    config: dict[str, Any] = field(default_factory=dict)
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.architecture not in KNOWN_ARCHITECTURES:
            raise ModelError(
                f"unknown architecture {self.architecture!r}; this version knows "
                + ", ".join(KNOWN_ARCHITECTURES)
            )


@dataclass(frozen=True)
class ModelCard:
    """A model folder's card: both networks, the pixel size they work at, normalisation, history.

    ``pixel_size_um`` is the native (y, x) pixel size in µm: images are resampled to it before
    inference. ``normalisation`` is ``{"kind": "percentile", "low": p_lo, "high": p_hi}``.
    ``inference`` holds recommended settings, e.g. ``{"spine_score_threshold": 0.6,
    "dendrite_threshold": 0.5}``.
    """

    name: str
    version: str
    pixel_size_um: float
    spines: NetworkCard
    dendrites: NetworkCard
    normalisation: dict[str, Any] = field(
        default_factory=lambda: {"kind": "percentile", "low": 1.0, "high": 99.8}
    )
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    inference: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    format: int = CARD_FORMAT

    def __post_init__(self) -> None:
        if not _is_number(self.pixel_size_um) or not (0 < self.pixel_size_um < float("inf")):
            raise ModelError(
                f"model card {self.name!r}: pixel_size_um must be a number > 0, not "
                f"{self.pixel_size_um!r}"
            )
        for what, value in (("normalisation", self.normalisation), ("inference", self.inference)):
            if not isinstance(value, dict):
                raise ModelError(f"model card {self.name!r}: {what} must be a JSON object")
        low, high = self.normalisation.get("low", 1.0), self.normalisation.get("high", 99.8)
        if not (_is_number(low) and _is_number(high) and 0 <= low < high <= 100):
            raise ModelError(
                f"model card {self.name!r}: normalisation low and high must be numbers with "
                f"0 <= low < high <= 100, not {low!r} and {high!r}"
            )
        for key in THRESHOLD_KEYS:
            value = self.inference.get(key, DEFAULT_THRESHOLD)
            if not (_is_number(value) and 0 <= value <= 1):
                raise ModelError(
                    f"model card {self.name!r}: inference.{key} must be a number from 0 to 1, "
                    f"not {value!r}"
                )
        for net in (self.spines, self.dendrites):
            if not isinstance(net.config, dict):
                raise ModelError(f"model card {self.name!r}: a network's config must be an object")
            for key in _POSITIVE_WHOLE:
                value = net.config.get(key, 1)
                if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                    raise ModelError(
                        f"model card {self.name!r}: {net.architecture} config {key} must be a "
                        f"positive whole number, not {value!r}"
                    )
        if self.normalisation.get("kind") != "percentile":
            raise ModelError(
                f"model card {self.name!r}: unknown normalisation {self.normalisation}"
            )
        planes = {input_planes(net.config) for net in (self.spines, self.dendrites)}
        if len(planes) != 1:
            raise ModelError(
                f"model card {self.name!r}: the spine and dendrite networks take different "
                f"numbers of input planes ({sorted(planes)})"
            )

    @property
    def input_planes(self) -> int:
        """Planes each network sees at once: 1, or an odd number of neighbouring planes."""
        return input_planes(self.spines.config)

    def with_input_planes(self, planes: int) -> ModelCard:
        """This card with both networks taking ``planes`` input planes (the weights must be
        widened to match, see :func:`.builders.widen_input_planes`)."""
        return replace(
            self,
            spines=replace(self.spines, config={**self.spines.config, "input_planes": planes}),
            dendrites=replace(
                self.dendrites, config={**self.dendrites.config, "input_planes": planes}
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "card") -> ModelCard:
        """Build and validate a card from its dict; errors name ``origin``."""
        if not isinstance(data, dict):
            raise ModelError(f"{origin}: not a valid model card (not a JSON object)")
        try:
            nets = {
                k: NetworkCard(**{**data[k], "classes": tuple(data[k].get("classes", ()))})
                for k in ("spines", "dendrites")
            }
            rest = {k: v for k, v in data.items() if k not in ("spines", "dendrites")}
            return cls(**rest, **nets)
        except ModelError as exc:
            raise ModelError(f"{origin}: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{origin}: not a valid model card ({exc})") from None

    def threshold(self, key: str) -> float:
        """The threshold (0-1) ``inference.<key>`` recommends (a :data:`THRESHOLD_KEYS` entry),
        :data:`DEFAULT_THRESHOLD` when the card names none."""
        return float(self.inference.get(key, DEFAULT_THRESHOLD))

    def save(self, folder: Path) -> Path:
        """Write ``card.json`` into ``folder`` atomically; returns its path."""
        from ..core import atomic_write_text

        path = Path(folder) / CARD_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, folder: Path) -> ModelCard:
        """Read ``card.json`` from a model folder."""
        path = Path(folder) / CARD_FILE
        if not path.is_file():
            raise ModelError(f"'{folder}' is not a model folder: it has no {CARD_FILE}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except RecursionError:
            raise ModelError(
                f"cannot read model card '{path}': its JSON is nested too deeply"
            ) from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read model card '{path}': {exc}") from None
        return cls.from_dict(data, origin=str(path))
