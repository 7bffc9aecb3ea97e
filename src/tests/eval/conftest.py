"""Fixtures of the eval tests: a small synthetic WIDER ground truth (.mat files written with
scipy), and the real one (the evaluation tools' files) where it is present."""

import os

import numpy as np
import pytest
import wider_synthetic

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
# The WIDER FACE evaluation tools' ground truth, kept beside the repository (not in it).
REAL_GT = os.environ.get("FACEKIT_WIDER_EVAL_GT") or os.path.join(
    os.path.dirname(REPO), "shared", "datasets", "wider_face_eval")


@pytest.fixture(scope="session")
def scipy_io():
    return pytest.importorskip("scipy.io", reason="scipy reads and writes the ground truth's "
                                                  ".mat files (requirements.txt has it)")


@pytest.fixture(scope="session")
def synthetic_gt_dir(tmp_path_factory, scipy_io):
    """Ground truth of 5 events, 2-6 images each, 0-12 faces per image (some images without
    faces, some with no face counted in easy), written as the tools' four .mat files."""
    rng = np.random.default_rng(7)
    events = wider_synthetic.random_ground_truth(rng, events=5)
    directory = str(tmp_path_factory.mktemp("wider_gt"))
    wider_synthetic.write_ground_truth(directory, events)
    return directory


@pytest.fixture(scope="session")
def synthetic_gt(synthetic_gt_dir):
    from facekit.eval import groundtruth  # noqa: PLC0415

    return groundtruth.read_ground_truth(synthetic_gt_dir)


@pytest.fixture(scope="session")
def real_gt_dir(scipy_io):
    if not os.path.isfile(os.path.join(REAL_GT, "wider_face_val.mat")):
        pytest.skip("the WIDER FACE evaluation tools' ground truth is not at {} (set "
                    "FACEKIT_WIDER_EVAL_GT to its folder)".format(REAL_GT))
    return REAL_GT


@pytest.fixture(scope="session")
def real_gt(real_gt_dir):
    from facekit.eval import groundtruth  # noqa: PLC0415

    return groundtruth.read_ground_truth(real_gt_dir)
