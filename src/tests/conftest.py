"""Fixtures: WIDER FACE trees built in tmp dirs."""

import logging
import os

import pytest

_TF2_BEHAVIOR = os.environ.get("TF2_BEHAVIOR")
from helpers import STANDARD, WiderTree  # noqa: E402 - after reading the environment

# Importing TensorFlow 2 (helpers does) puts TF2_BEHAVIOR=1 into this process's environment,
# and so into every child the tests start. TensorFlow 1.13 (the training host's mkl build)
# reads it when imported and gives TensorShape int dimensions, which the 2018 Object Detection
# API cannot read: the children get the variable only if whoever started pytest set it.
if _TF2_BEHAVIOR is None:
    os.environ.pop("TF2_BEHAVIOR", None)


@pytest.fixture
def wider(tmp_path):
    """A WiderTree with the STANDARD images written and annotated."""
    tree = WiderTree(tmp_path / "wider")
    for seed, (path, (width, height), _) in enumerate(STANDARD):
        tree.add_image(path, width, height, seed=seed,
                       fmt="PNG" if path.endswith(".png") else "JPEG")
    tree.write_annotations([(path, faces) for path, _, faces in STANDARD])
    return tree


@pytest.fixture
def make_tree(tmp_path):
    """Factory for empty WiderTrees (for broken inputs)."""
    counter = [0]

    def make():
        counter[0] += 1
        return WiderTree(tmp_path / "tree{}".format(counter[0]))

    return make


@pytest.fixture(autouse=True)
def _facekit_logger_restored():
    """`facekit.cli.main` gives the "facekit" logger its own handler and stops propagation, as a
    program should; tests that call it in-process must not leave that to the next test's caplog."""
    logger = logging.getLogger("facekit")
    saved = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
