"""facekit.argtypes: the argument types `facekit` and `facekit-detector` share."""

import argparse
import math
import subprocess
import sys

import pytest

from facekit import argtypes


@pytest.mark.parametrize("parse, text, value", [
    (argtypes.nonnegative, "0", 0),
    (argtypes.positive, "7", 7),
    (argtypes.port, "65535", 65535),
    (argtypes.nonnegative_float, "2.5", 2.5),
    (argtypes.nonnegative_float, "inf", math.inf),
    (argtypes.number(float, 0.0, 1.0, True, True), "0.5", 0.5),
    (argtypes.precision, "1", 1.0),
    (argtypes.class_score, "0.3", (None, 0.3)),
    (argtypes.class_score, "face=0.31", ("face", 0.31)),
    (argtypes.class_score, "a=b=0.4", ("a=b", 0.4)),
])
def test_values_in_range_are_returned(parse, text, value):
    assert parse(text) == value


@pytest.mark.parametrize("parse, text, message", [
    (argtypes.nonnegative, "-1", "-1 is outside [0, inf)"),
    (argtypes.positive, "0", "0 is outside [1, inf)"),
    (argtypes.positive, "1.5", "'1.5' is not a whole number"),
    (argtypes.port, "70000", "70000 is outside [0, 65535]"),
    (argtypes.nonnegative_float, "x", "'x' is not a number"),
    (argtypes.nonnegative_float, "nan", "'nan' is not a number"),
    (argtypes.number(float, 0.0, 1.0, True, True), "1", "1 is outside (0.0, 1.0)"),
    (argtypes.number(float, 0.0, low_open=True), "0", "0 is outside (0.0, inf)"),
    (argtypes.key_value, "no-equals", "expected key=value, got 'no-equals'"),
    (argtypes.source, "WIDER_val.zip=", "expected NAME=CHECKSUM"),
    (argtypes.precision, "0", "0 is outside (0.0, 1.0]"),
    (argtypes.class_score, "=0.3", "expected SCORE or LABEL=SCORE"),
    (argtypes.class_score, "face=1.5", "1.5 is outside (0.0, 1.0)"),
])
def test_values_out_of_range_say_why(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse(text)
    assert message in str(info.value)


def test_key_value_and_source_split_at_the_first_equals_sign():
    assert argtypes.key_value("note=a=b") == ("note", "a=b")
    assert argtypes.key_value("empty=") == ("empty", "")
    assert argtypes.source("WIDER_val.zip=sha256:f9") == ("WIDER_val.zip", "sha256:f9")


def test_argtypes_imports_no_other_facekit_module():
    """The detector imports argtypes on the kit: it stands at the package level, beside the
    kit's code and the CLI alike, and pulls in neither."""
    code = ("import sys, facekit.argtypes; "
            "print(sorted(m for m in sys.modules if m.startswith('facekit')))")
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    assert out.strip() == "['facekit', 'facekit.argtypes']"
