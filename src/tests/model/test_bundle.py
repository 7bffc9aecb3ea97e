"""`facekit model bundle` / `verify`: the training stage's hand-off, versioned by content."""

import errno
import json
import os
import subprocess

import graphs
import pytest
from helpers import REPO

from facekit import cli
from facekit.files import sha256_file
from facekit.model import bundle
from facekit.model.anchors import format_anchors, model_anchors
from facekit.model.config import EMBEDDED_SSD_256
from facekit.model.errors import BundleError

PY37 = "/root/.pyenv/versions/3.7.16/bin/python3.7"

DATASET_JSON = {
    "format": 1,
    "splits": {
        "train": {"images": {"kept": 120, "total": 130}, "faces": {"kept": 300, "total": 420}},
        "val": {"images": {"kept": 20, "total": 22}, "faces": {"kept": 41, "total": 60}},
    },
}


class Inputs(object):
    """The files a training run leaves behind, in tmp_path/inputs."""

    def __init__(self, root):
        self.dir = root / "inputs"
        self.dir.mkdir()
        self.graph = self.write("frozen_inference_graph.pb", b"\x0a\x05graph" * 50)
        self.compiled = self.write("model.binaryproto", b"compiled by the bonnet" * 20)
        self.config = self.write("pipeline.config", graphs.pipeline_config().encode("utf-8"))
        self.anchors = self.write(
            "anchors.txt", format_anchors(model_anchors(EMBEDDED_SSD_256)[0]).encode("ascii"))
        self.dataset = self.write("dataset.json", json.dumps(DATASET_JSON).encode("utf-8"))
        self.root = str(root / "artifacts" / "models")

    def write(self, name, data):
        path = self.dir / name
        path.write_bytes(data)
        return str(path)

    def args(self, *extra):
        return ["model", "bundle", "--name", "faces", "--output-root", self.root,
                "--graph", self.graph, "--compiled", self.compiled, "--config", self.config,
                "--anchors", self.anchors, "--dataset-manifest", self.dataset,
                "--steps", "20", "--checkpoint", "train/model.ckpt-20",
                "--models-version", "adfd5a3aca41638aa9fb297c5095f33d64446d8f",
                "--compiler-sha256", "ab" * 32, "--tensorflow-version", "1.7.1"] + list(extra)


@pytest.fixture
def inputs(tmp_path):
    return Inputs(tmp_path)


def run(capsys, args):
    status = cli.main(args)
    out, err = capsys.readouterr()
    return status, out, [line for line in err.splitlines() if line.startswith("facekit: error:")]


def make(capsys, inputs, *extra):
    status, out, errors = run(capsys, inputs.args(*extra))
    assert (status, errors) == (0, []), errors
    return json.loads(out)


def snapshot(directory):
    return {name: os.stat(os.path.join(directory, name)).st_mtime_ns
            for name in sorted(os.listdir(directory))}


def manifest_of(result):
    with open(os.path.join(result["path"], "manifest.json")) as fh:
        return json.load(fh)


def test_bundle_layout_and_manifest(inputs, capsys):
    result = make(capsys, inputs)
    assert result["created"] is True and result["name"] == "faces"
    assert len(result["version"]) == 12
    assert result["path"] == os.path.join(inputs.root, "faces", result["version"])
    assert sorted(os.listdir(result["path"])) == [
        "anchors.txt", "frozen_inference_graph.pb", "labels.txt", "manifest.json",
        "model.binaryproto", "pipeline.config"]
    with open(os.path.join(result["path"], "labels.txt")) as fh:
        assert fh.read() == "face\n"
    manifest = manifest_of(result)
    assert manifest["version"] == result["version"]
    assert manifest["files"]["model.binaryproto"] == {
        "sha256": sha256_file(inputs.compiled)[0],
        "bytes": os.path.getsize(inputs.compiled)}
    assert manifest["config_sha256"] == sha256_file(inputs.config)[0]
    assert manifest["training"] == {"steps": 20, "checkpoint": "train/model.ckpt-20",
                                    "tensorflow": None}
    assert manifest["dataset"]["sha256"] == sha256_file(inputs.dataset)[0]
    assert manifest["dataset"]["counts"] == {"train": {"images": 120, "faces": 300},
                                             "val": {"images": 20, "faces": 41}}
    assert manifest["anchors"] == 1278 and manifest["labels"] == ["face"]
    assert manifest["tools"]["tensorflow"] == "1.7.1"
    assert manifest["tools"]["compiler_sha256"] == "ab" * 32
    assert manifest["tools"]["models_version"].startswith("adfd5a3")
    # Nothing of the temporary directory is left beside the bundle.
    assert os.listdir(os.path.join(inputs.root, "faces")) == [result["version"]]


def test_same_inputs_same_version_and_nothing_touched(inputs, capsys):
    first = make(capsys, inputs)
    before = snapshot(first["path"])
    dir_mtime = os.stat(first["path"]).st_mtime_ns
    second = make(capsys, inputs)
    assert second == dict(first, created=False)
    assert snapshot(second["path"]) == before
    assert os.stat(second["path"]).st_mtime_ns == dir_mtime


def test_other_content_other_version(inputs, capsys):
    first = make(capsys, inputs)
    with open(inputs.compiled, "ab") as fh:
        fh.write(b"!")
    other_model = make(capsys, inputs)
    other_steps = make(capsys, inputs, "--steps", "21")
    versions = {first["version"], other_model["version"], other_steps["version"]}
    assert len(versions) == 3
    assert all(r["created"] for r in (other_model, other_steps))
    assert sorted(os.listdir(os.path.join(inputs.root, "faces"))) == sorted(versions)


def test_verify_passes_then_names_each_problem(inputs, capsys):
    path = make(capsys, inputs)["path"]
    status, out, errors = run(capsys, ["model", "verify", path])
    assert (status, errors) == (0, [])
    assert out.startswith("ok: {}: bundle faces version".format(path))

    compiled = os.path.join(path, "model.binaryproto")
    with open(compiled, "r+b") as fh:
        first = fh.read(1)
        fh.seek(0)
        fh.write(bytes([first[0] ^ 1]))
    os.remove(os.path.join(path, "anchors.txt"))
    with open(os.path.join(path, "notes.txt"), "w") as fh:
        fh.write("left here by hand\n")
    status, out, errors = run(capsys, ["model", "verify", path, "--json"])
    result = json.loads(out)
    assert status == 1 and result["ok"] is False
    prefix = "facekit: error: {}: ".format(path)
    assert errors == [prefix + p for p in result["problems"]]
    assert result["problems"] == [
        "missing file anchors.txt (listed in manifest.json)",
        "model.binaryproto has sha256 {}, manifest.json says {}".format(
            sha256_file(compiled)[0], sha256_file(inputs.compiled)[0]),
        "extra file notes.txt (not in manifest.json)",
    ]
    assert result["files"]["anchors.txt"] == "missing"
    assert result["files"]["model.binaryproto"] == "changed"
    assert result["files"]["labels.txt"] == "ok"


def test_verify_catches_a_changed_size_and_an_edited_manifest(inputs, capsys):
    path = make(capsys, inputs)["path"]
    with open(os.path.join(path, "labels.txt"), "a") as fh:
        fh.write("person\n")
    manifest_path = os.path.join(path, "manifest.json")
    with open(manifest_path) as fh:
        manifest = json.load(fh)
    manifest["training"]["steps"] = 200000
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh)
    result = bundle.verify_bundle(path)
    assert result["problems"][0] == "labels.txt has 12 bytes, manifest.json says 5"
    assert result["problems"][1].startswith("manifest.json: version {} does not match its "
                                            "content".format(manifest["version"]))
    os.remove(manifest_path)
    assert bundle.verify_bundle(path)["problems"][0].startswith("manifest.json: cannot read")
    with pytest.raises(BundleError, match="no such bundle directory"):
        bundle.verify_bundle(os.path.join(path, "absent"))


def test_a_broken_bundle_of_the_same_version_is_replaced(inputs, capsys):
    first = make(capsys, inputs)
    os.remove(os.path.join(first["path"], "model.binaryproto"))
    again = make(capsys, inputs)
    assert again == dict(first, created=True)
    assert bundle.verify_bundle(first["path"])["ok"]
    assert os.listdir(os.path.join(inputs.root, "faces")) == [first["version"]]


def test_verify_lists_every_file_the_roles_copy_with_their_sizes(inputs, capsys, tmp_path):
    """The roles take the bundle's files from `verify --json` (listed, bytes): the model's, and
    the evaluation's once attached."""
    made = make(capsys, inputs)
    status, out, _ = run(capsys, ["model", "verify", made["path"], "--json"])
    result = json.loads(out)
    assert status == 0 and sorted(result["listed"]) == sorted(bundle.FILES)
    assert result["listed"]["model.binaryproto"] == {
        "sha256": sha256_file(inputs.compiled)[0], "bytes": os.path.getsize(inputs.compiled)}
    assert result["bytes"] == sum(os.path.getsize(os.path.join(made["path"], name))
                                  for name in bundle.FILES)
    evaluation = write_evaluation(str(tmp_path / "eval"), made["version"])
    run(capsys, ["model", "attach-eval", made["path"], evaluation])
    result = bundle.verify_bundle(made["path"])
    assert sorted(result["listed"]) == sorted(bundle.FILES + bundle.EVAL_FILES)
    assert result["bytes"] == sum(os.path.getsize(os.path.join(made["path"], name))
                                  for name in bundle.FILES + bundle.EVAL_FILES)


def test_verify_leaves_out_a_write_in_progress_but_not_a_left_over(inputs, capsys):
    path = make(capsys, inputs)["path"]
    # The temporary name facekit.files gives a file this process writes: in progress.
    with open(os.path.join(path, ".manifest.json.tmp-{}".format(os.getpid())), "w") as fh:
        fh.write("{}")
    assert bundle.verify_bundle(path)["ok"]
    # One of a process that is gone: left behind by an interrupted run, reported.
    dead = subprocess.run(["sh", "-c", "echo $$"], stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout.strip()
    with open(os.path.join(path, ".eval.json.tmp-{}".format(dead)), "w") as fh:
        fh.write("{}")
    assert bundle.verify_bundle(path)["problems"] == [
        "extra file .eval.json.tmp-{} (not in manifest.json)".format(dead)]


def test_a_bundle_another_run_put_in_place_meanwhile_is_taken(inputs, capsys, monkeypatch):
    """Two runs of the same inputs at once: the second rename fails, and the bundle the first
    one renamed into place, identical, is taken (created: false), nothing left behind."""
    first = make(capsys, inputs)
    parked = first["path"] + ".parked"
    os.rename(first["path"], parked)

    def race(tmp, path):
        # The other run renames its bundle into place first; this run's rename then fails as
        # rename(2) does onto a directory that is not empty.
        os.rename(parked, path)
        raise OSError(errno.ENOTEMPTY, "Directory not empty", tmp)

    monkeypatch.setattr(bundle.files, "commit", race)
    assert make(capsys, inputs) == dict(first, created=False)
    assert os.listdir(os.path.join(inputs.root, "faces")) == [first["version"]]
    assert bundle.verify_bundle(first["path"])["ok"]


def two_classes(inputs):
    """The inputs' pipeline.config made a two-class model's."""
    with open(inputs.config) as fh:
        text = fh.read()
    assert text.count("num_classes: 1") == 1
    with open(inputs.config, "w") as fh:
        fh.write(text.replace("num_classes: 1", "num_classes: 2"))


def test_labels_that_do_not_fit_the_config_are_refused_naming_both(inputs, capsys, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("ball\nblock\ncone\n")
    status, _, errors = run(capsys, inputs.args("--labels", str(labels)))
    assert status == 1
    assert "{} has num_classes 1 but {} gives 3 labels (ball, block, cone)".format(
        inputs.config, labels) in errors[0]
    assert not os.path.exists(os.path.join(inputs.root, "faces"))
    two_classes(inputs)
    status, _, errors = run(capsys, inputs.args())
    assert status == 1 and "has num_classes 2 but the default gives 1 label (face)" in errors[0]


def test_labels_from_a_file_or_a_label_map(inputs, capsys, tmp_path):
    two_classes(inputs)
    label_map = tmp_path / "label_map.pbtxt"
    label_map.write_text("# two classes\nitem {\n  id: 2\n  name: 'person'\n}\n"
                         "item { id: 1 name: \"face\" display_name: 'Face' }\n")
    result = make(capsys, inputs, "--labels-from", str(label_map))
    with open(os.path.join(result["path"], "labels.txt")) as fh:
        assert fh.read() == "Face\nperson\n"
    labels = tmp_path / "labels.txt"
    labels.write_text("face\nperson\n\n")
    assert manifest_of(make(capsys, inputs, "--labels", str(labels)))["labels"] == [
        "face", "person"]

    label_map.write_text("item {\n  id: 2\n  name: 'person'\n}\n")
    status, _, errors = run(capsys, inputs.args("--labels-from", str(label_map)))
    assert status == 1 and "ids are [2]: they must be 1..1" in errors[0]
    label_map.write_text("item {\n  id: 1\n  name: 'face'\n  frequency: FREQUENT\n}\n")
    status, _, errors = run(capsys, inputs.args("--labels-from", str(label_map)))
    assert status == 1 and "{}:4: field 'frequency' is not read here".format(label_map) \
        in errors[0]
    labels.write_text("face\n\nperson\n")
    status, _, errors = run(capsys, inputs.args("--labels", str(labels)))
    assert status == 1 and "{}:2: blank line".format(labels) in errors[0]


# "0.1 nan 0.3 inf": one reader of anchors.txt, so bundling refuses a table the kit's decoder
# would refuse.
@pytest.mark.parametrize("bad_row", ["0.1 0.2 0.3", "0.1 nan 0.3 inf"])
def test_bad_inputs_are_refused_before_anything_is_written(inputs, capsys, bad_row):
    with open(inputs.anchors, "a") as fh:
        fh.write(bad_row + "\n")
    status, _, errors = run(capsys, inputs.args())
    assert status == 1
    assert errors == ["facekit: error: {}:1279: expected 4 finite numbers (ymin xmin ymax "
                      "xmax), got '{}': write it with `facekit model anchors CONFIG "
                      "--output anchors.txt`".format(inputs.anchors, bad_row)]
    for extra, message in ((["--name", "../x"], "bundle name '../x'"),
                           (["--compiler-sha256", "XYZ"], "expected 64 lowercase hex digits"),
                           (["--graph", inputs.dir / "none.pb"], "none.pb: no such file")):
        status, _, errors = run(capsys, inputs.args(*[str(e) for e in extra]))
        assert status == 1 and message in errors[0], errors
    assert not os.path.exists(inputs.root)
    with pytest.raises(SystemExit):
        cli.main(inputs.args("--extra", "no-equals-sign"))
    assert "expected key=value" in capsys.readouterr().err


def test_the_tensorflow_builds_that_trained_and_exported_are_recorded(inputs, capsys):
    plain = make(capsys, inputs)
    trained = inputs.write("trained_with.txt", b"tensorflow==1.7.1\n# resumed on MKL\n\n"
                                               b"intel-tensorflow==1.13.1\ntensorflow==1.7.1\n")
    result = make(capsys, inputs, "--trained-with", trained,
                  "--tensorflow-build", "intel-tensorflow==1.13.1")
    manifest = manifest_of(result)
    # In the order they trained, each once.
    assert manifest["training"]["tensorflow"] == ["tensorflow==1.7.1", "intel-tensorflow==1.13.1"]
    assert manifest["tools"]["tensorflow_build"] == "intel-tensorflow==1.13.1"
    # Which TensorFlow trained is part of what the model is: another version.
    assert result["version"] != plain["version"]


def test_the_installed_tensorflow_build_is_the_default(inputs, capsys):
    from facekit.model import versions  # noqa: PLC0415

    manifest = manifest_of(make(capsys, inputs))
    assert manifest["tools"]["tensorflow_build"] == versions.tensorflow_build()
    assert versions.tensorflow_build().split("==")[0] in (
        versions.TENSORFLOW_BUILDS + versions.TENSORFLOW_DISTRIBUTIONS)


def test_a_bad_line_of_trained_with_is_named_and_nothing_is_written(inputs, capsys):
    trained = inputs.write("trained_with.txt", b"tensorflow==1.7.1\nintel tensorflow 1.13\n")
    status, _, errors = run(capsys, inputs.args("--trained-with", trained))
    assert status != 0
    assert errors and trained + ":2:" in errors[0] and "name==version" in errors[0]
    assert not os.path.exists(inputs.root)


def test_extra_values_are_recorded(inputs, capsys):
    manifest = manifest_of(make(capsys, inputs, "--extra", "run=lab", "--extra", "note=a=b"))
    assert manifest["extra"] == {"run": "lab", "note": "a=b"}


def on_kit_python(code, *argv):
    """stdout of `code` run by the Vision Kit's Python (3.7) on this checkout's src."""
    result = subprocess.run([PY37, "-c", code] + list(argv), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, check=False,
                            env=dict(os.environ, PYTHONPATH=os.path.join(REPO, "src")))
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(not os.path.exists(PY37), reason="no Python 3.7 at " + PY37)
def test_verify_runs_on_the_vision_kits_python(inputs, capsys):
    """bundle.py and what it imports run on the kit: vermin checks 3.5, this runs 3.7."""
    path = make(capsys, inputs)["path"]
    out = on_kit_python("import json, sys; from facekit.model.bundle import verify_bundle; "
                        "print(json.dumps(verify_bundle(sys.argv[1])))", path)
    assert json.loads(out) == bundle.verify_bundle(path)
    out = on_kit_python("import sys, facekit.model.bundle; "
                        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                        "('numpy', 'tensorflow', 'google')))")
    assert out.strip() == "[]"


def write_evaluation(directory, version, marker="first"):
    """What `facekit eval run` leaves in its --output (only the files attach-eval reads)."""
    os.makedirs(directory, exist_ok=True)
    doc = {"bundle": {"name": "faces", "version": version}, "mean_ap": 0.5,
           "images_per_second": 120.0, "marker": marker}
    with open(os.path.join(directory, "eval.json"), "w") as fh:
        json.dump(doc, fh)
    for name in ("pr.png", "samples.png", "report.html"):
        with open(os.path.join(directory, name), "w") as fh:
            fh.write("{} {}\n".format(name, marker))
    os.makedirs(os.path.join(directory, "predictions", "0--Parade"), exist_ok=True)
    return directory


def test_attach_eval_lists_the_report_keeps_the_version_and_verify_covers_it(
        inputs, capsys, tmp_path):
    made = make(capsys, inputs)
    path, version = made["path"], made["version"]
    evaluation = write_evaluation(str(tmp_path / "eval"), version)
    status, out, errors = run(capsys, ["model", "attach-eval", path, evaluation])
    assert (status, errors) == (0, [])
    assert json.loads(out) == {"path": path, "version": version, "changed": True,
                               "files": ["eval.json", "pr.png", "report.html", "samples.png"]}
    manifest = manifest_of(made)
    assert manifest["version"] == version == bundle.content_version(manifest)
    assert manifest["evaluation"]["files"]["eval.json"]["sha256"] == sha256_file(
        os.path.join(evaluation, "eval.json"))[0]
    # predictions/ stays in the evaluation's folder: thousands of files, not for the kits.
    assert "predictions" not in os.listdir(path)
    assert bundle.verify_bundle(path)["ok"]
    # The same files again: nothing changes; the same model bundled again: left untouched.
    before = snapshot(path)
    status, out, _ = run(capsys, ["model", "attach-eval", path, evaluation])
    assert status == 0 and json.loads(out)["changed"] is False
    assert make(capsys, inputs) == dict(made, created=False)
    assert snapshot(path) == before

    # A changed report file is caught like a changed model file.
    with open(os.path.join(path, "samples.png"), "a") as fh:
        fh.write("edited\n")
    problems = bundle.verify_bundle(path)["problems"]
    assert len(problems) == 1 and problems[0].startswith("samples.png has")
    # A new evaluation of the same model replaces the old one, version unchanged.
    write_evaluation(evaluation, version, marker="second")
    status, out, _ = run(capsys, ["model", "attach-eval", path, evaluation])
    assert status == 0 and json.loads(out)["changed"] is True
    assert bundle.verify_bundle(path)["ok"] and manifest_of(made)["version"] == version
    with open(os.path.join(path, "pr.png")) as fh:
        assert fh.read() == "pr.png second\n"


def test_attach_eval_refuses_another_bundles_evaluation_and_a_broken_bundle(
        inputs, capsys, tmp_path):
    made = make(capsys, inputs)
    path = made["path"]
    other = write_evaluation(str(tmp_path / "other"), "0123456789ab")
    status, _, errors = run(capsys, ["model", "attach-eval", path, other])
    assert status == 1
    assert errors == ["facekit: error: {} is an evaluation of bundle version 0123456789ab, "
                      "not of this bundle ({}): evaluate this bundle".format(
                          os.path.join(other, "eval.json"), made["version"])]
    evaluation = write_evaluation(str(tmp_path / "eval"), made["version"])
    os.remove(os.path.join(evaluation, "report.html"))
    status, _, errors = run(capsys, ["model", "attach-eval", path, evaluation])
    assert status == 1 and "report.html: no such file" in errors[0]
    assert "evaluation" not in manifest_of(made)
    write_evaluation(evaluation, made["version"])
    with open(os.path.join(path, "model.binaryproto"), "ab") as fh:
        fh.write(b"!")
    status, _, errors = run(capsys, ["model", "attach-eval", path, evaluation])
    assert status == 1 and "the model's files do not verify" in errors[0]
    assert "model.binaryproto has" in errors[0]
    assert sorted(os.listdir(path)) == sorted(bundle.FILES + ("manifest.json",))
