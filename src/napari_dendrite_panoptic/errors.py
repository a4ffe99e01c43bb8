"""The plugin's own error types: every message is meant to be shown to a user as it is."""


class DendritePanopticError(Exception):
    """Base class of every error this plugin raises on purpose."""


class InputError(DendritePanopticError, ValueError):
    """Input data (a file, an array, a layer) that the plugin cannot use, with the reason."""


class TiffReadError(InputError):
    """A TIFF file that cannot be read: names the file and the problem."""


class DataNotFoundError(DendritePanopticError, FileNotFoundError):
    """A real annotated data set is absent from the data folder (``DENDRITE_PANOPTIC_DATA``)."""


class ModelError(DendritePanopticError):
    """A model folder, card or weight file that cannot be used."""


class OutputExistsError(DendritePanopticError, FileExistsError):
    """An output file exists and overwriting was not asked for."""


class Cancelled(DendritePanopticError):
    """A long job was cancelled by the user between two units of work."""
