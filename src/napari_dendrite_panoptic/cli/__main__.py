"""``python -m napari_dendrite_panoptic.cli``: the same as ``dendrite-panoptic``."""

import sys

from .main import main

sys.exit(main())
