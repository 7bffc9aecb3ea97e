"""Fixtures of the detector's tests."""

import logging

import pytest
from decode_reference import AIY_ANCHORS
from detector_fakes import deploy, make_bundle

from facekit.detector.tensors import load_anchors


@pytest.fixture
def quiet_root():
    """main() sets the root logger's level: put it back."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


@pytest.fixture
def deployed(tmp_path):
    models = str(tmp_path / "models")
    made = make_bundle(tmp_path, extra={"input_size": "256"})
    deploy(made, models)
    return models, made


@pytest.fixture(scope="module")
def aiy_anchors():
    """AIY's 1278 anchors of a 256x256 face model, float32 [1278, 4]."""
    return load_anchors(AIY_ANCHORS)
