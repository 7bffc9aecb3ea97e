"""`facekit model config`: a pipeline.config parsed as the trainer parses it. The training
role's template task runs it as `validate:` before the rendered file replaces the old one,
so a typo in the template stops the play with the file, line and column.

The configs are the role's template rendered with its defaults (test_pipeline_template),
read in a `facekit` subprocess (this process has protobuf's C implementation loaded; see
test_anchors).
"""

import json
import os
import shlex

import pytest
import yaml
from helpers import REPO
from test_anchors import needs_od_protos, run_facekit
from test_pipeline_template import render, role_defaults

pytestmark = needs_od_protos

CONFIG_TASKS = os.path.join(REPO, "roles", "detector_training", "tasks", "config.yml")

# A field that does not exist and a value of the wrong type, as a template edit could make them.
TYPOS = [("depth_multiplier:", "depth_multiplyer:", "depth_multiplyer"),
         ("num_classes: 1", "num_classes: one", "num_classes")]


def write(tmp_path, text):
    path = tmp_path / "pipeline.config"
    path.write_text(text)
    return path


def with_typo(wrong, right):
    """The rendered defaults with the first `wrong` replaced, and the 1-based line and
    column where the replacement starts."""
    text = render()
    assert wrong in text
    start = text.index(wrong)
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    return text.replace(wrong, right, 1), line, column


def test_the_role_defaults_parse_and_are_summarised(tmp_path):
    path = write(tmp_path, render())
    defaults = role_defaults()
    result = run_facekit("model", "config", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "ok: {}: ssd model, 1 class, fixed_shape_resizer 256x256, {} steps".format(
            path, defaults["detector_training_num_steps"]))

    result = run_facekit("model", "config", path, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "config": str(path), "model": "ssd", "num_classes": 1,
        "image_resizer": "fixed_shape_resizer", "image_size": [256, 256],
        "feature_extractor": "embedded_ssd_mobilenet_v1",
        "num_steps": defaults["detector_training_num_steps"],
        "batch_size": defaults["detector_training_batch_size"]}


@pytest.mark.parametrize("wrong,right,named", TYPOS)
def test_a_parse_error_exits_1_naming_file_line_and_column(tmp_path, wrong, right, named):
    text, line, column = with_typo(wrong, right)
    path = write(tmp_path, text)
    for extra in ([], ["--json"]):
        result = run_facekit("model", "config", path, *extra)
        assert result.returncode == 1
        assert result.stdout == ""
        error = result.stderr.strip()
        assert error.startswith("facekit: error: {}:{}:".format(path, line)), error
        assert error.count("\n") == 0
        assert named in error
        assert ("check the field names and value types against the checkout's "
                "object_detection/protos") in error
    if named == "depth_multiplyer":  # an unknown field: protobuf points at its name
        assert "{}:{}:{}: ".format(path, line, column) in error


def test_a_missing_file_exits_1_naming_it(tmp_path):
    path = tmp_path / "nowhere.config"
    result = run_facekit("model", "config", path)
    assert result.returncode == 1
    assert result.stderr.strip() == "facekit: error: cannot use {}: No such file or " \
                                     "directory".format(path)


def role_validate(path):
    """The `facekit` arguments of the role's `validate:` for the rendered file at path (the
    role runs them with the training host's interpreter; Ansible fills %s with a temporary
    copy of the file)."""
    with open(CONFIG_TASKS) as handle:
        tasks = yaml.safe_load(handle)
    template = [task for block in tasks for task in block["block"]
                if "ansible.builtin.template" in task][0]
    command = template["ansible.builtin.template"]["validate"]
    argv = shlex.split(command.replace("{{ __detector_training_python }}", "PYTHON"))
    assert argv[:3] == ["PYTHON", "-m", "facekit.cli"], command
    return [str(path) if arg == "%s" else arg for arg in argv[3:]]


def test_the_roles_validate_accepts_the_defaults_and_stops_a_typo(tmp_path):
    good = write(tmp_path, render())
    assert run_facekit(*role_validate(good)).returncode == 0
    text, line, _ = with_typo(*TYPOS[0][:2])
    bad = tmp_path / "typo.config"
    bad.write_text(text)
    result = run_facekit(*role_validate(bad))
    assert result.returncode == 1
    # The role's rescue shows the last line of stderr.
    last = result.stderr.strip().splitlines()[-1]
    assert "{}:{}:".format(bad, line) in last and "depth_multiplyer" in last
