"""`facekit model anchors`: the SSD anchor table of a pipeline.config.

The reference is AIY's own table for the training stage's config (data/aiy_anchors_256.txt,
1278 rows, ymin xmin ymax xmax). Configs are read with the Object Detection API's generated
protos in a `facekit` subprocess: this test process has TensorFlow, and with it protobuf's C
implementation, loaded already (see test_pb2_needs_pure_python_protobuf).
"""

import importlib.util
import math
import os
import subprocess
import sys

import graphs
import numpy as np
import pytest
from helpers import REPO

from facekit.model import anchors
from facekit.model.config import EMBEDDED_SSD_256, load_ssd_model
from facekit.model.errors import ConfigError

AIY_TABLE = os.path.join(REPO, "src", "tests", "data", "aiy_anchors_256.txt")

HAVE_OD_PROTOS = importlib.util.find_spec("object_detection") is not None
needs_od_protos = pytest.mark.skipif(
    not HAVE_OD_PROTOS,
    reason="object_detection's generated protos are not installed: "
           ".venv/bin/pip install --no-deps tensorflow-object-detection-api==0.1.1")


def run_facekit(*args):
    """Run `facekit ARGS` in a fresh interpreter (protobuf implementation chosen by the CLI)."""
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"))
    env.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)
    return subprocess.run([sys.executable, "-m", "facekit.cli"] + [str(a) for a in args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env, timeout=300, check=False)


def write_config(tmp_path, name="pipeline.config", **options):
    path = tmp_path / name
    path.write_text(graphs.pipeline_config(**options))
    return path


def aiy_table():
    return np.loadtxt(AIY_TABLE)


def test_default_model_matches_aiys_table():
    table, sizes = anchors.model_anchors(EMBEDDED_SSD_256)
    assert sizes == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    assert table.shape == (1278, 4) and table.dtype == np.float32
    assert np.abs(table - aiy_table()).max() < 1e-6
    assert anchors.expected_anchor_count() == 1278
    assert anchors.layout(EMBEDDED_SSD_256.anchor_generator, sizes) == \
        "16x16x3 + 8x8x6 + 4x4x6 + 2x2x6 + 1x1x6"


def test_rows_are_layer_then_y_then_x_then_box():
    table, _ = anchors.model_anchors(EMBEDDED_SSD_256)
    centres = (table[:, :2] + table[:, 2:]) / 2
    # Layer 0: 16x16 cells of 3 boxes; row 3 is cell (y 0, x 1), row 48 cell (y 1, x 0).
    assert np.allclose(centres[0], [1 / 32, 1 / 32])
    assert np.allclose(centres[3], [1 / 32, 3 / 32])
    assert np.allclose(centres[48], [3 / 32, 1 / 32])
    # Its boxes: scale 0.1 square, then scale 0.2 at aspect ratios 2 and 0.5.
    sides = table[:3, 2:] - table[:3, :2]
    assert np.allclose(sides, [[0.1, 0.1], [0.2 / math.sqrt(2), 0.2 * math.sqrt(2)],
                               [0.2 * math.sqrt(2), 0.2 / math.sqrt(2)]], atol=1e-6)
    # The last cell (1x1 map) ends with the interpolated box sqrt(0.95 * 1.0), centred.
    half = math.sqrt(0.95) / 2
    assert np.allclose(table[-1], [0.5 - half, 0.5 - half, 0.5 + half, 0.5 + half], atol=1e-6)


def test_mobilenet_v1_at_300_gives_its_known_1917_anchors():
    model = EMBEDDED_SSD_256._replace(
        feature_extractor="ssd_mobilenet_v1", image_height=300, image_width=300,
        anchor_generator=EMBEDDED_SSD_256.anchor_generator._replace(num_layers=6))
    table, sizes = anchors.model_anchors(model)
    assert sizes == [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    assert table.shape == (1917, 4)
    # Layer scales 0.2, 0.35, ..., 0.95: the 10x10 layer's first box is 0.35 square.
    first = table[19 * 19 * 3]
    assert np.allclose(first[2:] - first[:2], [0.35, 0.35], atol=1e-6)
    assert np.allclose((first[:2] + first[2:]) / 2, [0.05, 0.05], atol=1e-6)


def test_non_square_input_scales_the_base_anchor_like_the_api():
    generator = EMBEDDED_SSD_256.anchor_generator._replace(num_layers=2, scales=(0.5, 0.8),
                                                          aspect_ratios=(1.0,))
    table = anchors.generate(generator, [(2, 4), (1, 2)], image_height=200, image_width=400)
    assert table.shape == (2 * 4 * 3 + 1 * 2 * 2, 4)
    # Base size scaled by min(H, W) / W = 0.5 across: a "square" 0.5 box is 0.5 x 0.25.
    box = table[4]  # cell (0, 1), its second box: scale 0.5, ratio 2.0
    assert np.allclose(box[2:] - box[:2], [0.5 / math.sqrt(2), 0.5 * math.sqrt(2) * 0.5])
    assert np.allclose((box[:2] + box[2:]) / 2, [0.25, 0.375])


def test_feature_map_sizes_of_the_supported_extractors_and_refusals():
    v2 = EMBEDDED_SSD_256._replace(feature_extractor="ssd_mobilenet_v2", image_height=320,
                                   image_width=240, pad_to_multiple=32)
    # 240 is padded to 256 first.
    assert anchors.derive_feature_map_sizes(v2) == [(20, 16), (10, 8), (5, 4), (3, 2), (2, 1),
                                                    (1, 1)]
    with pytest.raises(ConfigError, match="accepts only 256x256 input.*300x300"):
        anchors.derive_feature_map_sizes(EMBEDDED_SSD_256._replace(image_height=300,
                                                                  image_width=300))
    with pytest.raises(ConfigError, match="ssd_inception_v2 is not one.*--feature-map-sizes"):
        anchors.derive_feature_map_sizes(
            EMBEDDED_SSD_256._replace(feature_extractor="ssd_inception_v2"))
    with pytest.raises(ConfigError, match="with fpn"):
        anchors.derive_feature_map_sizes(EMBEDDED_SSD_256._replace(use_fpn=True))
    with pytest.raises(ConfigError, match="num_layers 5 but there are 3 feature maps"):
        anchors.model_anchors(EMBEDDED_SSD_256, [(16, 16), (8, 8), (4, 4)])


def test_feature_map_size_lists():
    assert anchors.parse_feature_map_sizes("16,8, 4") == [(16, 16), (8, 8), (4, 4)]
    assert anchors.parse_feature_map_sizes("19x10,1X1") == [(19, 10), (1, 1)]
    for bad in ("16,,8", "16x", "0,1", "ax2", "1x2x3"):
        with pytest.raises(ConfigError, match="write N or HxW"):
            anchors.parse_feature_map_sizes(bad)


def test_generator_settings_the_api_would_choke_on_are_refused():
    gen = EMBEDDED_SSD_256.anchor_generator
    with pytest.raises(ConfigError, match="num_layers 1 needs explicit `scales`"):
        anchors.box_specs(gen._replace(num_layers=1))
    with pytest.raises(ConfigError, match="2 scales for num_layers 5"):
        anchors.box_specs(gen._replace(scales=(0.1, 0.2)))
    with pytest.raises(ConfigError, match="layer 1 no boxes"):
        anchors.box_specs(gen._replace(aspect_ratios=(), interpolated_scale_aspect_ratio=0.0))


def test_pb2_needs_pure_python_protobuf_or_says_how(tmp_path, monkeypatch):
    """In-process, protobuf is already loaded (by TensorFlow): the error says what to do."""
    from google.protobuf.internal import api_implementation  # noqa: PLC0415

    path = write_config(tmp_path)
    if not HAVE_OD_PROTOS:
        with pytest.raises(ConfigError, match="tensorflow-object-detection-api==0.1.1"):
            load_ssd_model(str(path))
    elif api_implementation.Type() == "python":
        assert load_ssd_model(str(path)).num_classes == 1
    else:
        with pytest.raises(ConfigError, match="PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python"):
            load_ssd_model(str(path))
    for name in [m for m in sys.modules if m.startswith("object_detection")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "object_detection", None)
    with pytest.raises(ConfigError, match="not importable.*protoc object_detection/protos/"
                                          ".*tensorflow-object-detection-api==0.1.1"):
        load_ssd_model(str(path))


@needs_od_protos
def test_cli_table_of_the_training_config_is_aiys(tmp_path):
    config = write_config(tmp_path)
    out = tmp_path / "anchors.txt"
    result = run_facekit("model", "anchors", config, "--output", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "wrote 1278 anchors (16x16x3 + 8x8x6 + 4x4x6 + 2x2x6 + " \
                                    "1x1x6) to {}".format(out)
    written = np.loadtxt(str(out))
    assert written.shape == (1278, 4)
    assert np.abs(written - aiy_table()).max() < 1e-6
    # Without --output the same table goes to stdout.
    printed = run_facekit("model", "anchors", config)
    assert printed.returncode == 0 and printed.stdout == out.read_text()


@needs_od_protos
def test_cli_other_config_gives_its_own_table(tmp_path):
    config = write_config(tmp_path, size=300, extractor="ssd_mobilenet_v1", num_layers=6,
                          num_classes=3)
    result = run_facekit("model", "anchors", config)
    assert result.returncode == 0, result.stderr
    table = np.array([[float(v) for v in line.split()] for line in result.stdout.splitlines()])
    assert table.shape == (1917, 4)
    centres = (table[:, :2] + table[:, 2:]) / 2
    assert (centres > 0).all() and (centres < 1).all()
    assert (table[:, 2:] > table[:, :2]).all()

    # An extractor facekit does not derive sizes for works with explicit sizes.
    inception = write_config(tmp_path, "inception.config", size=300,
                             extractor="ssd_inception_v2", num_layers=6)
    refused = run_facekit("model", "anchors", inception)
    assert refused.returncode == 1
    assert "ssd_inception_v2 is not one facekit derives sizes for" in refused.stderr
    given = run_facekit("model", "anchors", inception, "--feature-map-sizes", "19,10,5,3,2,1")
    assert given.returncode == 0 and given.stdout == result.stdout


@needs_od_protos
@pytest.mark.parametrize("options, message", [
    ({"anchor_generator": ""},
     "model.ssd.anchor_generator is missing: add anchor_generator { ssd_anchor_generator"),
    ({"anchor_generator": "grid_anchor_generator { height: 256 width: 256 }"},
     "model.ssd.anchor_generator is grid_anchor_generator: facekit computes anchors for "
     "ssd_anchor_generator only"),
    ({"image_resizer": "keep_aspect_ratio_resizer { min_dimension: 256 max_dimension: 512 }"},
     "model.ssd.image_resizer is keep_aspect_ratio_resizer: the Vision Bonnet takes a fixed "
     "input size"),
    ({"size": 300},
     "embedded_ssd_mobilenet_v1 accepts only 256x256 input (its extractor raises otherwise); "
     "the config's fixed_shape_resizer is 300x300"),
])
def test_cli_config_errors_are_clear(tmp_path, options, message):
    config = write_config(tmp_path, **options)
    result = run_facekit("model", "anchors", config, "--output", tmp_path / "anchors.txt")
    assert result.returncode == 1
    assert result.stderr.startswith("facekit: error: {}: {}".format(config, message))
    assert not (tmp_path / "anchors.txt").exists()


@needs_od_protos
def test_cli_misspelled_field_is_named_with_its_line(tmp_path):
    text = graphs.pipeline_config().replace("max_scale", "maximum_scale")
    lineno = text[:text.index("maximum_scale")].count("\n") + 1
    config = tmp_path / "typo.config"
    config.write_text(text)
    result = run_facekit("model", "anchors", config)
    assert result.returncode == 1
    assert "{}:{}:".format(config, lineno) in result.stderr
    assert 'has no field named "maximum_scale"' in result.stderr

    other = tmp_path / "frcnn.config"
    other.write_text("model { faster_rcnn { num_classes: 1 } }\n")
    result = run_facekit("model", "anchors", other)
    assert result.returncode == 1
    assert "model is faster_rcnn, not ssd" in result.stderr
