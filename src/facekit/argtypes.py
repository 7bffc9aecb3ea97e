"""Argument types of facekit's command lines: `facekit` and `facekit-detector` alike.

Each is an argparse `type=`: it returns the value or raises ArgumentTypeError with a
message argparse prints after the flag's name (exit status 2). The detector imports
this on the Vision Kit: Python 3.5, standard library only.
"""

import argparse


def number(kind, low=None, high=None, low_open=False, high_open=False):
    """A parser of `kind` (int or float) numbers within [low, high]; low_open / high_open
    exclude the bound itself. NaN is never a valid value (it compares false with any
    bound, so it would slip through every range)."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError("{!r} is not a {}".format(
                text, "whole number" if kind is int else "number")) from None
        if value != value:  # noqa: PLR0124 - NaN
            raise argparse.ArgumentTypeError("{!r} is not a number".format(text))
        if (low is not None and (value < low or (low_open and value == low))) or (
                high is not None and (value > high or (high_open and value == high))):
            raise argparse.ArgumentTypeError("{} is outside {}{}, {}{}".format(
                text, "(" if low_open else "[", low, high if high is not None else "inf",
                ")" if high_open or high is None else "]"))
        return value

    return parse


nonnegative = number(int, 0)
positive = number(int, 1)
nonnegative_float = number(float, 0.0)
# Seconds that must pass between two things (an interval, a frame age): more than 0.
seconds = number(float, 0.0, low_open=True)
port = number(int, 0, 65535)
# A detector's score threshold: a score is a sigmoid, in (0, 1), so 0 and 1 cut nothing or all.
score = number(float, 0.0, 1.0, True, True)
# An AP, a recall or another share: [0, 1].
fraction = number(float, 0.0, 1.0)
# A precision to reach: (0, 1] (0 asks for nothing).
precision = number(float, 0.0, 1.0, low_open=True)


def class_score(text):
    """SCORE or LABEL=SCORE (a score threshold for every class, or for one) as
    (label or None, score)."""
    label, sep, value = text.rpartition("=")
    if sep and not label:
        raise argparse.ArgumentTypeError("expected SCORE or LABEL=SCORE, got {!r}".format(text))
    return (label if sep else None), score(value)


def key_value(text):
    """KEY=VALUE as (key, value); the value may hold '=' and be empty."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected key=value, got {!r}".format(text))
    return key, value


def source(text):
    """NAME=CHECKSUM (a source archive and its digest) as (name, checksum)."""
    name, sep, checksum = text.partition("=")
    if not sep or not name or not checksum:
        raise argparse.ArgumentTypeError(
            "expected NAME=CHECKSUM (e.g. WIDER_val.zip=sha256:...), got {!r}".format(text))
    return name, checksum
