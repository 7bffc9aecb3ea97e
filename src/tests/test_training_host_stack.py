"""The dataset tools on the training host's own stack: Python 3.6 + TensorFlow 1.7.1.

vermin only proves the syntax; this runs the code. tools/py36-env.sh (run by
`make pytest`) builds a Python 3.6 virtualenv with the pins of the role's conda env;
each test runs the CLI there in a subprocess and compares what it wrote with what
the modern stack of this test process writes from the same inputs: the files must
be byte-identical, so a model trained on either host's records sees the same data.
"""

import json
import os
import subprocess

import pytest
from helpers import REPO, face, raw_records, tree_bytes
from vocfolder import quirky

from facekit.dataset.convert import convert
from facekit.dataset.steps import to_csv, to_tfrecord, to_voc
from facekit.dataset.vocconvert import convert_voc

PY36_VENV = os.environ.get("FACEKIT_PY36_VENV", os.path.join(REPO, ".venv-py36"))
PY36 = os.path.join(PY36_VENV, "bin", "python")

pytestmark = pytest.mark.skipif(
    not os.path.exists(PY36),
    reason="no Python 3.6 env at {} (tools/py36-env.sh builds it when a Python 3.6 "
           "interpreter exists; set FACEKIT_PY36_VENV to use another)".format(PY36_VENV))


def facekit36(*args):
    """Run `facekit ARGS` with Python 3.6 + TF 1.7 on the checkout's src/ (not installed)."""
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [PY36, "-m", "facekit.cli"] + [str(a) for a in args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env,
        timeout=300, check=False)


def manifest(directory):
    with open(os.path.join(str(directory), "dataset.json")) as fh:
        return json.load(fh)


def test_the_env_is_the_training_hosts():
    result = subprocess.run(
        [PY36, "-c", "import sys, tensorflow as tf; print(sys.version_info[:2], tf.__version__)"],
        stdout=subprocess.PIPE, universal_newlines=True, check=True)
    assert result.stdout.strip() == "(3, 6) 1.7.1"


def test_convert_is_byte_identical_to_the_modern_stack(wider, tmp_path):
    old, new = tmp_path / "py36", tmp_path / "modern"
    result = facekit36("-q", "dataset", "convert", "--annotations", wider.annotations,
                       "--images", wider.images, "--output-dir", old, "--shards", 2,
                       "--workers", 2)
    assert result.returncode == 0, result.stderr
    convert(wider.annotations, wider.images, str(new), shards=2, progress=False)

    old_files, new_files = tree_bytes(old), tree_bytes(new)
    assert sorted(old_files) == sorted(new_files)
    for name in old_files:
        if name != "dataset.json":
            assert old_files[name] == new_files[name], name
    assert len(raw_records([old / "val.record-00000-of-00002"])) == 2

    old_entry, new_entry = (manifest(d)["splits"]["val"] for d in (old, new))
    assert old_entry["tool"]["tensorflow"] == "1.7.1"
    assert old_entry["tool"]["python"].startswith("3.6.")
    del old_entry["tool"], new_entry["tool"]
    assert old_entry == new_entry


def test_seed_steps_chain_on_python36(wider, tmp_path):
    old = tmp_path / "py36"
    for args in (
            ["dataset", "to-voc", "--annotations", wider.annotations, "--images",
             wider.images, "--output-dir", old / "voc"],
            ["dataset", "to-csv", "--voc-dir", old / "voc", "--output", old / "val.csv"],
            ["dataset", "to-tfrecord", "--csv", old / "val.csv", "--images", wider.images,
             "--output-dir", old, "--split", "val"]):
        result = facekit36("-q", *args)
        assert result.returncode == 0, (args, result.stderr)

    new = tmp_path / "modern"
    to_voc(wider.annotations, wider.images, str(new / "voc"), progress=False)
    to_csv(str(new / "voc"), str(new / "val.csv"))
    to_tfrecord(str(new / "val.csv"), wider.images, str(new), "val", progress=False)
    for name in ("val.csv", "val.record", "label_map.pbtxt"):
        assert (old / name).read_bytes() == (new / name).read_bytes(), name


def test_bad_input_is_reported_the_same_way_on_python36(make_tree, tmp_path):
    tree = make_tree()
    tree.add_image("0--Parade/a.jpg", 100, 80)
    path = tree.write_annotations([], text="0--Parade/a.jpg\n2\n1 2 60 60 0 0 0 0 0 0 \n")
    result = facekit36("dataset", "convert", "--annotations", path, "--images", tree.images,
                       "--output-dir", tmp_path / "out")
    assert result.returncode == 1
    assert "{}:4: unexpected end of file: expected 10 integers for face 2".format(path) \
        in result.stderr
    assert not (tmp_path / "out" / "val.record").exists()

    missing = make_tree()
    missing.write_annotations([("0--Parade/gone.jpg", [face(1, 1, 60, 60)])])
    result = facekit36("dataset", "convert", "--strict", "--annotations", missing.annotations,
                       "--images", missing.images, "--output-dir", tmp_path / "out2")
    assert result.returncode == 1
    assert "no such file" in result.stderr and "line 1 of" in result.stderr


def test_voc_convert_on_python36(tmp_path):
    quirky(tmp_path / "voc")
    old, new = tmp_path / "py36", tmp_path / "modern"
    result = facekit36("-q", "dataset", "convert", "--format", "voc", "--annotations",
                       tmp_path / "voc", "--output-dir", old, "--shards", 2, "--workers", 2)
    assert result.returncode == 0, result.stderr
    convert_voc(str(tmp_path / "voc"), str(new), shards=2, progress=False)
    old_files, new_files = tree_bytes(old), tree_bytes(new)
    assert sorted(old_files) == sorted(new_files)
    for name in old_files:
        if name != "dataset.json":
            assert old_files[name] == new_files[name], name
    old_entry, new_entry = (manifest(d)["splits"]["train"] for d in (old, new))
    assert old_entry["tool"]["tensorflow"] == "1.7.1"
    del old_entry["tool"], new_entry["tool"]
    assert old_entry == new_entry
