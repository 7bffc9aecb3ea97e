"""Tests for the lab's stand-ins: the WIDER FACE sample and the Bonnet compiler stand-in.

Run from the repository root: .venv/bin/pytest molecule/lab/tests -q
"""

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

LAB = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(LAB))
sys.path.insert(0, LAB)
sys.path.insert(0, os.path.join(REPO, "src"))

import bonnet_compiler_standin as compiler  # noqa: E402
import standins  # noqa: E402
import summary  # noqa: E402
import widerface_sample as sample  # noqa: E402

from facekit.dataset import wider  # noqa: E402

COMPILER = os.path.join(LAB, "bonnet_compiler_standin.py")
SMALL = {"train": 9, "val": 3, "heldout": 2}
IMAGE_PATH = re.compile(r"^(\d+)--[A-Za-z_]+/\1_[A-Za-z_]+_[A-Za-z0-9_]+_\d+\.jpg$")


# --- the WIDER FACE sample --------------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A small sample, built once: (folder, what build() returned)."""
    folder = tmp_path_factory.mktemp("sample")
    return folder, sample.build(str(folder), seed=7, **SMALL)


@pytest.fixture(scope="module")
def unpacked(built, tmp_path_factory):
    folder = tmp_path_factory.mktemp("unpacked")
    for name in ("WIDER_train.zip", "WIDER_val.zip", "wider_face_split.zip"):
        with zipfile.ZipFile(str(built[0] / name)) as zf:
            zf.extractall(str(folder))
    return folder


def _tree_bytes(folder):
    return {os.path.relpath(os.path.join(root, name), folder):
            open(os.path.join(root, name), "rb").read()
            for root, _, names in os.walk(folder) for name in names}


def test_same_seed_gives_identical_files_and_another_seed_does_not(built, tmp_path):
    folder, result = built
    again = sample.build(str(tmp_path / "again"), seed=7, **SMALL)
    first, second = _tree_bytes(str(folder)), _tree_bytes(str(tmp_path / "again"))
    assert sorted(first) == sorted(second)
    assert [n for n in first if first[n] != second[n]] == []
    for name, entry in again["archives"].items():
        assert entry["sha256"] == result["archives"][name]["sha256"]
        assert entry["sha256"] == hashlib.sha256(second[name]).hexdigest()
        assert entry["size"] == len(second[name])
    other = sample.build(str(tmp_path / "other"), seed=8, **SMALL)
    assert other["archives"]["WIDER_train.zip"]["sha256"] != \
        result["archives"]["WIDER_train.zip"]["sha256"]


def test_an_image_does_not_depend_on_the_split_sizes(tmp_path):
    small = sample.make_image(7, "train", 4)
    big = sample.build(str(tmp_path), seed=7, train=6, val=0, heldout=0)
    assert big["counts"]["train"]["images"] == 6
    with zipfile.ZipFile(str(tmp_path / "WIDER_train.zip")) as zf:
        assert zf.read("WIDER_train/images/" + small[0]) == small[3]


def test_archives_have_the_real_layout(built):
    folder, _ = built
    with zipfile.ZipFile(str(folder / "wider_face_split.zip")) as zf:
        assert sorted(n for n in zf.namelist() if not n.endswith("/")) == [
            "wider_face_split/readme.txt",
            "wider_face_split/wider_face_test_filelist.txt",
            "wider_face_split/wider_face_train_bbx_gt.txt",
            "wider_face_split/wider_face_val_bbx_gt.txt",
        ]
        for split in ("train", "val"):
            text = zf.read("wider_face_split/wider_face_{}_bbx_gt.txt".format(split)).decode()
            annotated = [line for line in text.splitlines() if line.endswith(".jpg")]
            with zipfile.ZipFile(str(folder / "WIDER_{}.zip".format(split))) as images:
                prefix = "WIDER_{}/images/".format(split)
                files = [n for n in images.namelist() if not n.endswith("/")]
                assert all(n.startswith(prefix) for n in images.namelist()
                           if n != "WIDER_{}/".format(split))
                assert sorted(n[len(prefix):] for n in files) == sorted(annotated)
                assert len(annotated) == SMALL[split]
                for name in annotated:
                    assert IMAGE_PATH.match(name), name
                    with Image.open(io.BytesIO(images.read(prefix + name))) as img:
                        assert img.format == "JPEG" and img.mode == "RGB"
                        assert img.size in sample.SIZES


def test_annotations_have_wider_quirks_and_parse(built, unpacked):
    path = unpacked / "wider_face_split" / "wider_face_train_bbx_gt.txt"
    raw = path.read_text()
    box_lines = [line for line in raw.split("\n") if len(line.split()) == 10]
    assert box_lines and all(line.endswith(" ") for line in box_lines)
    assert "\n0\n0 0 0 0 0 0 0 0 0 0 \n" in raw
    images = list(wider.parse_annotations(str(path)))
    assert len(images) == SMALL["train"]
    seen = dict.fromkeys(("empty", "zero_size", "past_edge", "invalid", "blur1", "blur2",
                          "tiny"), 0)
    for image in images:
        with Image.open(str(unpacked / "WIDER_train" / "images" / image.path)) as img:
            width, height = img.size
        seen["empty"] += not image.faces
        for face in image.faces:
            assert face.x >= 0 and face.y >= 0 and face.x < width and face.y < height
            seen["zero_size"] += face.w == 0 or face.h == 0
            seen["past_edge"] += face.x + face.w > width or face.y + face.h > height
            seen["invalid"] += face.invalid == 1
            seen["blur1"] += face.blur == 1
            seen["blur2"] += face.blur == 2
            seen["tiny"] += face.w > 0 and face.h > 0 and max(face.w, face.h) < 50
    assert all(seen.values()), seen
    counts = built[1]["counts"]["train"]
    assert counts["empty_images"] == seen["empty"]
    assert counts["quirks"]["zero_size"] == seen["zero_size"]
    assert counts["quirks"]["invalid"] == seen["invalid"]


def _sharpness(gray, box):
    x, y, w, h = box
    region = gray[y:y + h, x:x + w]
    return float(np.percentile(np.abs(np.diff(region, axis=1)), 99.5))


def test_faces_labelled_blurred_are_drawn_blurred():
    clear, blurred = [], []
    for index in range(40):
        _, width, height, data, labels, _ = sample.make_image(11, "train", index)
        gray = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float32)
        for x, y, w, h, blur, _, _, invalid, _, _ in labels:
            if invalid or min(w, h) < 50:
                continue
            box = (x, y, min(w, width - x), min(h, height - y))
            (blurred if blur else clear).append(_sharpness(gray, box))
    assert len(blurred) >= 3 and len(clear) >= 30
    assert max(blurred) < np.median(clear)
    assert np.median(blurred) < 0.4 * np.median(clear)


def test_faces_are_sized_for_a_256_input():
    sizes = []
    for index in range(30):
        _, width, height, _, _, faces = sample.make_image(5, "val", index)
        for face in faces:
            if face["kind"] != "tiny":
                sizes.append(2 * 256.0 * max(face["hw"] / width, face["hh"] / height))
    assert sizes and min(sizes) >= sample.FACE_MIN_256 - 1
    assert max(sizes) <= sample.FACE_MAX_256 * 1.1


def test_converter_takes_the_sample_and_drops_what_the_labels_say(built, unpacked, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"), TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run(
        [sys.executable, "-m", "facekit.cli", "dataset", "convert", "--no-progress",
         "--annotations", str(unpacked / "wider_face_split" / "wider_face_train_bbx_gt.txt"),
         "--images", str(unpacked / "WIDER_train" / "images"), "--output-dir", str(out)],
        check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    split = json.loads((out / "dataset.json").read_text())["splits"]["train"]
    counts = built[1]["counts"]["train"]
    assert split["faces"]["total"] == counts["face_lines"]
    dropped = split["faces"]["dropped"]
    assert dropped["invalid"] == counts["quirks"]["invalid"]
    assert dropped["degenerate"] == counts["quirks"]["zero_size"]
    assert dropped["blur"] == counts["quirks"]["blur_1"] + counts["quirks"]["blur_2"]
    assert dropped["image_missing"] == dropped["image_corrupt"] == 0
    assert split["faces"]["kept"] > 0


def test_heldout_ground_truth_matches_its_images(built):
    folder, result = built
    truth = json.loads((folder / "heldout" / "ground_truth.json").read_text())
    assert len(truth["images"]) == SMALL["heldout"] == result["counts"]["heldout"]["images"]
    for entry in truth["images"]:
        data = (folder / "heldout" / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        with Image.open(io.BytesIO(data)) as img:
            assert img.size == (entry["width"], entry["height"]) == sample.HELDOUT_SIZE
        for face in entry["faces"] + entry["ignore"]:
            xmin, ymin, xmax, ymax = face["box"]
            assert 0 <= xmin < xmax <= entry["width"] and 0 <= ymin < ymax <= entry["height"]
    assert sum(len(e["faces"]) for e in truth["images"]) > 0


# --- the Bonnet compiler stand-in -------------------------------------------------------

def _graph_bytes(variant):
    """A tiny GraphDef shaped like the exported SSD's ends (built with tf.compat.v1)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf  # noqa: PLC0415 - slow import, only for these tests

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        image = v1.placeholder(tf.float32, [1, 8, 8, 3], name="image_tensor")
        sub = tf.subtract(image, 128.0, name="Preprocessor/sub")
        flat = tf.reshape(sub, [1, 48, 4])
        if variant == "addv2":
            flat = tf.add(flat, 1.0, name="BoxPredictor/add")
        tf.concat([flat, flat], axis=1, name="concat")
        if variant == "unrelated":
            tf.concat([tf.zeros([1, 4, 2]), tf.ones([1, 4, 2])], axis=1, name="concat_1")
        elif variant != "missing":
            tf.concat([flat[..., :2], flat[..., 2:]], axis=1, name="concat_1")
    return graph.as_graph_def(), graph.as_graph_def().SerializeToString()


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("graphs")
    paths, defs = {}, {}
    for variant in ("good", "addv2", "missing", "unrelated"):
        defs[variant], data = _graph_bytes(variant)
        paths[variant] = folder / (variant + ".pb")
        paths[variant].write_bytes(data)
    paths["text"] = folder / "text.pb"
    paths["text"].write_text("this is not a graph\n")
    paths["savedmodel"] = folder / "saved_model.pb"
    paths["savedmodel"].write_bytes(b"\x08\x01\x12\x04abcd")  # schema version 1, ...
    return paths, defs


def _compile(graph, out, python=sys.executable, **changes):
    flags = {"frozen_graph_path": str(graph), "output_graph_path": str(out),
             "input_tensor_name": "Preprocessor/sub", "output_tensor_names": "concat,concat_1",
             "input_tensor_size": "256"}
    flags.update(changes)
    argv = ["--{}={}".format(k, v) for k, v in flags.items() if v is not None]
    return subprocess.run([python, COMPILER] + argv, check=False, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60, universal_newlines=True,
                          env=dict(os.environ, LC_ALL="C.UTF-8"))


def test_parser_lists_the_nodes_tensorflow_wrote(graphs):
    paths, defs = graphs
    for variant, graph_def in defs.items():
        ours = compiler.parse_graph_nodes(paths[variant].read_bytes())
        theirs = [(n.name, n.op, tuple(n.input)) for n in graph_def.node]
        assert [tuple(n) for n in ours] == theirs
    assert "AddV2" in {n.op for n in compiler.parse_graph_nodes(paths["addv2"].read_bytes())}


OLD_PYTHON = "/root/.pyenv/versions/3.6.15/bin/python3.6"


@pytest.mark.parametrize("python", [sys.executable, OLD_PYTHON])
def test_compiles_a_good_graph_into_the_standin_format(graphs, tmp_path, python):
    if not os.path.exists(python):
        pytest.skip("{} is not installed".format(python))
    paths, _ = graphs
    out = tmp_path / "model.binaryproto"
    run = _compile(paths["good"], out, python=python)
    assert run.returncode == 0, run.stderr
    graph = paths["good"].read_bytes()
    data = out.read_bytes()
    header, digest, rest = data.split(b"\n", 2)
    assert header == (b"facekit-standin-binaryproto 1 input=Preprocessor/sub "
                      b"outputs=concat,concat_1 size=256")
    assert digest == hashlib.sha256(graph).hexdigest().encode()
    assert rest == graph
    again = _compile(paths["good"], tmp_path / "again.binaryproto", python=python, debug=None)
    assert again.returncode == 0 and (tmp_path / "again.binaryproto").read_bytes() == data


# (graph, flag changes, exit status, what stderr must say)
@pytest.mark.parametrize("case", ids=lambda case: case[3], argvalues=[
    ("good", {"output_tensor_names": "concat1"}, 1, "'concat1' has no underscore"),
    ("good", {"output_tensor_names": "concat,concat1"}, 1, "'concat1' has no underscore"),
    ("good", {"output_tensor_names": "concat, concat_1"}, 1, "no spaces around the comma"),
    ("good", {"output_tensor_names": "\u201cconcat,concat_1\u201d"}, 1, "curly quotes"),
    ("good", {"input_tensor_name": "\u201cPreprocessor/sub\u201d"}, 1, "curly quotes"),
    ("good", {"input_tensor_name": "image_tensor"}, 1, "TensorArray"),
    ("good", {"input_tensor_name": "input"}, 1, "use --input_tensor_name=Preprocessor/sub"),
    ("good", {"input_tensor_size": "big"}, 1, "positive whole number"),
    ("addv2", {}, 1, "AddV2 op(s) (e.g. BoxPredictor/add)"),
    ("missing", {}, 1, "no node named 'concat_1'"),
    ("unrelated", {}, 1, "'concat_1' does not depend on the input"),
    ("text", {}, 1, "not a serialized GraphDef"),
    ("savedmodel", {}, 1, "SavedModel"),
    ("nonexistent", {}, 1, "cannot read it"),
    ("good", {"output_graph_path": "/nonexistent-dir/m.binaryproto"}, 1, "does not exist"),
    ("good", {"input_tensor_size": None}, 2, "--input_tensor_size"),
    ("good", {"output_tensor": "concat"}, 2, "unrecognized arguments"),
])
def test_refuses_what_the_real_compiler_refuses(graphs, tmp_path, case):
    graph, changes, status, message = case
    paths, _ = graphs
    out = tmp_path / "model.binaryproto"
    source = paths.get(graph, tmp_path / "nonexistent.pb")
    run = _compile(source, out, **changes)
    assert run.returncode == status
    assert message in run.stderr
    assert not out.exists()


def test_curly_quotes_are_found_when_the_locale_cannot_decode_them(graphs, tmp_path):
    paths, _ = graphs
    out = tmp_path / "m.binaryproto"
    arg = "--output_tensor_names=\u201cconcat,concat_1\u201d".encode("utf-8")
    run = subprocess.run(
        [sys.executable, COMPILER, b"--frozen_graph_path=" + bytes(paths["good"]),
         b"--output_graph_path=" + bytes(out), b"--input_tensor_name=Preprocessor/sub",
         arg, b"--input_tensor_size=256"],
        check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
        env=dict(os.environ, LC_ALL="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0"))
    assert run.returncode == 1
    assert b"curly quotes" in run.stderr
    assert not out.exists()


def test_tgz_is_stable_and_holds_a_runnable_par(graphs, tmp_path):
    paths, _ = graphs
    name, digest = compiler.make_tgz(str(tmp_path / "a"))
    assert name == "bonnet_model_compiler_latest.tgz"
    again = subprocess.run([sys.executable, COMPILER, "make-tgz", str(tmp_path / "b")],
                           stdout=subprocess.PIPE, timeout=60, check=True)
    printed = json.loads(again.stdout.decode())
    assert printed["sha256"] == digest
    assert printed["member"] == "bonnet_model_compiler.par"
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    with tarfile.open(str(tmp_path / "a" / name)) as tar:
        members = tar.getmembers()
        assert [(m.name, m.mode, m.uid, m.gid) for m in members] == \
            [("bonnet_model_compiler.par", 0o755, 0, 0)]
        script = tar.extractfile(members[0]).read()
    assert script == open(COMPILER, "rb").read()
    par = tmp_path / "bonnet_model_compiler.par"
    par.write_bytes(script)
    par.chmod(members[0].mode)
    run = subprocess.run(
        [str(par), "--frozen_graph_path={}".format(paths["good"]),
         "--output_graph_path={}".format(tmp_path / "m.binaryproto"),
         "--input_tensor_name=Preprocessor/sub", "--output_tensor_names=concat,concat_1",
         "--input_tensor_size=256"],
        check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "m.binaryproto").read_bytes().startswith(compiler.MAGIC)


def test_summary_shows_the_bundles_evaluation_and_where_its_report_is(tmp_path):
    bundle = tmp_path / "abc"
    bundle.mkdir()
    manifest = {"files": {}, "evaluation": {"files": {"eval.json": {}, "report.html": {}}}}
    (bundle / "eval.json").write_text(json.dumps({
        "images": 60, "ap": {"face": 0.8123}, "mean_ap": 0.8123, "images_per_second": 140.5,
        "at_deploy_threshold": {"threshold": 0.5, "recall": 0.81, "precision": 0.9},
        "operating_point": {"rule": "max_f1", "thresholds": {"face": 0.31}},
        "at_operating_point": {"threshold": {"face": 0.31}, "recall": 0.923, "precision": 0.973},
        "wider": None}))
    lines = summary.evaluation_lines(str(bundle), manifest)
    assert lines[:3] == [
        "  evaluated on 60 val images as the kit runs it: AP@0.5 face 0.812 (mean 0.812); "
        "140.5 images/s",
        "  operating point (max_f1): face 0.31: recall 0.923, precision 0.973",
        "  at score 0.5: recall 0.810, precision 0.900"]
    lines = lines[2:]
    assert lines[1].startswith("  report (pictures, PR curves): ")
    assert lines[1].endswith(os.path.join("abc", "report.html"))
    assert "not evaluated" in summary.evaluation_lines(str(bundle), {"files": {}})[0]


def test_summary_says_which_tensorflow_trained_and_exported(tmp_path):
    model = tmp_path / "face_ssd_embedded"
    (model / "abc").mkdir(parents=True)
    (model / "current.json").write_text(json.dumps(
        {"name": "face_ssd_embedded", "version": "abc", "steps": 1500}))
    manifest = {"files": {}, "training": {"tensorflow": ["intel-tensorflow==1.13.1"]},
                "tools": {"tensorflow": "1.13.1", "tensorflow_build": "intel-tensorflow==1.13.1"}}
    (model / "abc" / "manifest.json").write_text(json.dumps(manifest))
    lines = summary.bundle_lines(str(tmp_path))
    assert ("  trained with intel-tensorflow==1.13.1; exported with intel-tensorflow==1.13.1"
            in lines)
    manifest["training"]["tensorflow"] = None
    (model / "abc" / "manifest.json").write_text(json.dumps(manifest))
    assert "  trained with (not recorded); exported with intel-tensorflow==1.13.1" in \
        summary.bundle_lines(str(tmp_path))


def test_summary_counts_what_the_role_installs_for_each_tensorflow():
    listed = ["tensorflow==1.7.1", "numpy==1.16.6", "pillow==8.4.0"]
    role_vars = {"training_host_venv_packages": listed,
                 "training_host_venv_build_packages": ["pip==21.3.1"]}
    stock = summary.real_lines(role_vars, "stock")[1]
    assert "(tensorflow==1.7.1, 3 packages)" in stock
    mkl = summary.real_lines(role_vars, "mkl")[1]
    assert "intel-tensorflow==1.13.1" in mkl and "tensorflow==1.7.1" not in mkl
    # pillow stays; tensorflow and numpy give way to the mkl list's pins.
    defaults = standins.role_defaults()
    assert "{} packages".format(1 + len(defaults["training_host_tensorflow_mkl_packages"])) in mkl
