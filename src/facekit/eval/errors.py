"""Exceptions of the evaluation tools; the CLI turns them into one-line errors (exit 1)."""

from facekit.errors import FacekitError


class EvalError(FacekitError):
    """Bad evaluation input: the message says what, where, and (where it can) what to do."""


class PredictionFileError(EvalError):
    """A prediction file that is not in the WIDER format (names the file and line)."""


class GroundTruthError(EvalError):
    """Ground-truth files that are missing, unreadable or not the WIDER FACE layout."""
