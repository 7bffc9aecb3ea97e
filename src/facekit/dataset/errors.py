"""Exceptions the dataset tools raise; the CLI turns them into one-line errors."""

from facekit.errors import FacekitError


class DatasetError(FacekitError):
    """Bad input data: the message says what, where, and (where it can) what to do."""


class AnnotationError(DatasetError):
    """A malformed line in a WIDER FACE annotation file (or a CSV / VOC file)."""

    def __init__(self, filename, lineno, message):
        # type: (str, int, str) -> None
        self.filename = filename
        self.lineno = lineno
        self.reason = message
        super(AnnotationError, self).__init__("{}:{}: {}".format(filename, lineno, message))

    def __reduce__(self):
        # Keeps the exception picklable across worker processes despite the custom __init__.
        return (type(self), (self.filename, self.lineno, self.reason))


class ImageError(DatasetError):
    """A missing or corrupt image under --strict."""
