"""Fixtures of the detector's tests."""

import logging

import pytest
from detector_fakes import deploy, make_bundle


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
