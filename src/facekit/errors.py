"""The base of facekit's errors: a failure the CLI and the services report as one line.

Each stage has its own subclasses (facekit.dataset.errors, facekit.model.errors, the
software bonnet's BonnetError, the detector's DetectorError); catching FacekitError
catches them all, so a new stage's errors reach `facekit`'s one-line report (exit 1)
without another clause there. Python 3.5: the kit imports it.
"""


class FacekitError(Exception):
    """Bad input or a state facekit cannot work with: the message says what was wrong,
    where (file, line, variable) and, where it can, what to do."""


class BusyError(FacekitError):
    """Another facekit run holds the lock of the outputs this run would write."""
