"""Exceptions of the model tools; the CLI turns them into one-line errors (exit 1).

Kept free of anything newer than Python 3.5: bundle.py imports it on the Vision Kit.
"""

from facekit.errors import FacekitError


class ModelError(FacekitError):
    """Bad model input: the message says what, where, and (where it can) what to do."""


class ConfigError(ModelError):
    """A pipeline.config that cannot be read, or asks for what facekit does not support."""


class BundleError(ModelError):
    """A bundle that cannot be created from the given files."""


class AnchorsFileError(ModelError):
    """An anchors.txt that is not a table of 'ymin xmin ymax xmax' lines."""
