"""napari dock widgets: thin adapters between viewer layers and the engine."""
