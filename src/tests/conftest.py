"""Fixtures: WIDER FACE trees built in tmp dirs."""

import pytest
from helpers import STANDARD, WiderTree


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
