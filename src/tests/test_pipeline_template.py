"""roles/detector_training's pipeline.config template, rendered as Ansible renders it, parsed
with the Object Detection API's protos (tensorflow-object-detection-api 0.1.1's generated
pipeline_pb2): a misspelled field or a value of the wrong type fails here, not on the host."""

import os
import subprocess
import sys

import jinja2
import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(REPO, "roles", "detector_training")
LAB_VARS = os.path.join(REPO, "inventory", "lab", "group_vars", "training_hosts",
                        "detector_training.yml")

PATHS = {
    "detector_training_train_input_glob": "/data/train.record-?????-of-00002",
    "detector_training_val_input_glob": "/data/val.record",
    "detector_training_label_map_path": "/data/label_map.pbtxt",
    "detector_training_fine_tune_checkpoint": "",
    # tasks/config.yml passes the number of the data set's classes.
    "detector_training_num_classes": 1,
}

# Prints the parsed config's fields the tests look at, or the parse error (exit 1).
PARSE = """
import json, sys
from google.protobuf import text_format
from object_detection.protos import pipeline_pb2
try:
    config = text_format.Merge(sys.stdin.read(), pipeline_pb2.TrainEvalPipelineConfig())
except text_format.ParseError as error:
    sys.exit("ParseError: %s" % error)
ssd = config.model.ssd
gen = ssd.anchor_generator.ssd_anchor_generator
coder = ssd.box_coder.faster_rcnn_box_coder
# A single message in older protos, repeated in newer ones (the text holds one block either way).
eval_reader = config.eval_input_reader
eval_reader = eval_reader[0] if hasattr(eval_reader, "add") else eval_reader
print(json.dumps({
    "num_classes": ssd.num_classes,
    "size": [ssd.image_resizer.fixed_shape_resizer.height,
             ssd.image_resizer.fixed_shape_resizer.width],
    "type": ssd.feature_extractor.type,
    "depth_multiplier": round(ssd.feature_extractor.depth_multiplier, 6),
    "min_depth": ssd.feature_extractor.min_depth,
    "override": ssd.feature_extractor.override_base_feature_extractor_hyperparams,
    "decay": round(ssd.feature_extractor.conv_hyperparams.batch_norm.decay, 6),
    "layers": gen.num_layers, "min_scale": round(gen.min_scale, 6),
    "max_scale": round(gen.max_scale, 6),
    "ratios": [round(r, 4) for r in gen.aspect_ratios],
    "scales": [coder.y_scale, coder.x_scale, coder.height_scale, coder.width_scale],
    "optimizer": config.train_config.optimizer.WhichOneof("optimizer"),
    "steps": config.train_config.num_steps,
    "batch": config.train_config.batch_size,
    "fine_tune": config.train_config.fine_tune_checkpoint,
    "train_input": list(config.train_input_reader.tf_record_input_reader.input_path),
    "flips": len(config.train_config.data_augmentation_options),
    "eval_interval": config.eval_config.eval_interval_secs,
    "eval_examples": config.eval_config.num_examples,
    "metrics": list(config.eval_config.metrics_set),
    "eval_epochs": eval_reader.num_epochs,
}))
"""


def _protos_available():
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    probe = subprocess.run([sys.executable, "-c", "import object_detection.protos.pipeline_pb2"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _protos_available(),
    reason="the Object Detection API protos are missing: "
           "pip install --no-deps tensorflow-object-detection-api==0.1.1 (make venv does)")


def role_defaults():
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        return yaml.safe_load(handle)


def render(overrides=None, template=None):
    variables = role_defaults()
    variables.update(PATHS)
    variables.update(overrides or {})
    env = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    if template is None:
        with open(os.path.join(ROLE, "templates", "pipeline.config.j2")) as handle:
            template = handle.read()
    return env.from_string(template).render(**variables)


def parse(text):
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    result = subprocess.run([sys.executable, "-c", PARSE], input=text, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, check=False)
    if result.returncode != 0:
        return None, result.stderr.strip().splitlines()[-1]
    return yaml.safe_load(result.stdout), None


def test_defaults_give_the_bonnet_model_and_the_stock_optimizer():
    parsed, error = parse(render())
    assert error is None, error
    assert parsed["num_classes"] == 1
    assert parsed["size"] == [256, 256]
    assert parsed["type"] == "embedded_ssd_mobilenet_v1"
    assert parsed["depth_multiplier"] == 0.125 and parsed["min_depth"] == 16
    assert parsed["layers"] == 5
    assert (parsed["min_scale"], parsed["max_scale"]) == (0.2, 0.95)
    assert parsed["ratios"] == [1.0, 2.0, 0.5, 3.0, 0.3333]
    assert parsed["scales"] == [10.0, 10.0, 5.0, 5.0]
    assert parsed["optimizer"] == "rms_prop_optimizer"
    assert parsed["override"] is False and parsed["decay"] == 0.9997
    assert parsed["fine_tune"] == ""
    assert parsed["train_input"] == [PATHS["detector_training_train_input_glob"]]
    assert parsed["flips"] == 1


def test_lab_short_run_recipe_parses_with_the_batch_norm_override():
    with open(LAB_VARS) as handle:
        lab = yaml.safe_load(handle)
    lab["detector_training_num_steps"] = 1000  # a lookup in the inventory
    parsed, error = parse(render(lab))
    assert error is None, error
    assert parsed["optimizer"] == "adam_optimizer"
    assert parsed["override"] is True and parsed["decay"] == 0.99
    assert parsed["steps"] == 1000 and parsed["batch"] == 8


def test_fine_tune_checkpoint_is_written_when_set():
    parsed, error = parse(render({
        "detector_training_fine_tune_checkpoint": "/ckpt/model.ckpt-870894",
        "detector_training_random_flip": False}))
    assert error is None, error
    assert parsed["fine_tune"] == "/ckpt/model.ckpt-870894"
    assert parsed["flips"] == 0


def test_a_misspelled_field_is_refused_naming_it():
    with open(os.path.join(ROLE, "templates", "pipeline.config.j2")) as handle:
        template = handle.read().replace("depth_multiplier:", "depth_multiplyer:")
    parsed, error = parse(render(template=template))
    assert parsed is None
    assert "depth_multiplyer" in error and "ParseError" in error


def test_rendered_config_gives_the_aiy_anchor_table(tmp_path):
    path = tmp_path / "pipeline.config"
    path.write_text(render())
    out = tmp_path / "anchors.txt"
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"))
    subprocess.run([sys.executable, "-m", "facekit.cli", "model", "anchors", str(path),
                    "--output", str(out)], env=env, check=True)
    rows = [line.split() for line in out.read_text().splitlines()]
    with open(os.path.join(os.path.dirname(__file__), "data", "aiy_anchors_256.txt")) as handle:
        reference = [line.split() for line in handle if line.strip()]
    assert len(rows) == len(reference) == 1278
    worst = max(abs(float(a) - float(b)) for r, q in zip(rows, reference) for a, b in zip(r, q))
    assert worst < 1e-6


def test_eval_job_settings_score_each_val_image_once_per_look():
    parsed, error = parse(render())
    assert error is None, error
    # The checkout's default metrics (Pascal VOC), one pass over the val records per checkpoint.
    assert parsed["metrics"] == [] and parsed["eval_epochs"] == 1
    assert parsed["eval_interval"] == 300 and parsed["eval_examples"] == 500
    parsed, error = parse(render({"detector_training_eval_interval": 20,
                                  "detector_training_eval_metrics_set": "coco_detection_metrics"}))
    assert error is None, error
    assert parsed["eval_interval"] == 20 and parsed["metrics"] == ["coco_detection_metrics"]
