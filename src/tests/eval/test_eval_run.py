"""`facekit eval run`: a small real bundle (src/tests/graphs.py's frozen SSD with AIY's
anchor table) on a few TFRecords written in the Object Detection API's format, end to end:
every output file, eval.json's documented keys, the kit's decoding path, WIDER predictions
scored by `facekit eval wider`'s scorer, and clear errors for bad records and images."""

import io
import json
import os
import subprocess
import types

import graphs
import numpy as np
import pytest
from helpers import REPO
from PIL import Image
from test_training_host_stack import PY36, PY36_VENV

from facekit import cli
from facekit.bonnet import models
from facekit.dataset import filters, tfrecord
from facekit.detector import decode
from facekit.eval import records, runner
from facekit.model.bundle import create_bundle

HERE = os.path.dirname(os.path.abspath(__file__))
AIY_ANCHORS = os.path.join(os.path.dirname(HERE), "data", "aiy_anchors_256.txt")
DOCUMENTED_KEYS = {"ap", "mean_ap", "objects", "detections", "curves", "bundle", "records",
                   "images", "input_size", "batch", "score_threshold", "iou_threshold",
                   "nms_iou", "max_detections", "operating_point", "at_operating_point",
                   "at_deploy_threshold", "seconds",
                   "images_per_second", "wider", "dropped_faces", "files"}
KIT_KEYS = {"threshold", "recall", "precision", "true_positives", "false_positives", "missed",
            "false_positives_per_image", "difficult", "ignored", "recall_by_size"}


def _picture(seed, width, height, fmt):
    rng = np.random.RandomState(seed)
    pixels = (rng.rand(height // 8, width // 8, 3) * 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB").resize((width, height), Image.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def write_records(path, items):
    """items: (filename, bytes, width, height, fmt, [(x, y, w, h)] pixel boxes)."""
    tf = tfrecord._tf()
    with tfrecord.writer_class(tf)(str(path)) as writer:
        for filename, data, width, height, fmt, faces in items:
            info = types.SimpleNamespace(width=width, height=height, format=fmt, data=data)
            boxes = [filters.Box(x, y, x + w, y + h, False) for x, y, w, h in faces]
            writer.write(tfrecord.make_example(tf, filename, info, boxes)
                         .SerializeToString(deterministic=True))
    return str(path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, synthetic_gt):
    root = tmp_path_factory.mktemp("evalrun")
    config = root / "pipeline.config"
    config.write_text(graphs.pipeline_config())
    graph = graphs.write_graph(root / "face.pb", seed=3)
    compiled = root / "face.binaryproto"
    compiled.write_bytes(b"facekit test stand-in for the Bonnet compiler's output\n" +
                         graph.read_bytes())
    made = create_bundle("face", str(root / "models"), graph=str(graph), compiled=str(compiled),
                         config=str(config), anchors=AIY_ANCHORS)
    # WIDER-named JPEGs: the first 7 images of the synthetic ground truth, its boxes as
    # (x, y, w, h) pixels; split over two files.
    items = []
    for number, (event, image) in enumerate(synthetic_gt.images[:7]):
        start, stop = synthetic_gt.face_start[number], synthetic_gt.face_start[number + 1]
        faces = [tuple(float(v) for v in box) for box in synthetic_gt.boxes[start:stop]]
        items.append(("{}/{}.jpg".format(event, image), _picture(number, 1024, 768, "JPEG"),
                      1024, 768, "jpeg", faces))
    wider_files = [write_records(root / "val.record-00000-of-00002", items[:4]),
                   write_records(root / "val.record-00001-of-00002", items[4:])]
    pngs = [("cam/{}.png".format(i), _picture(10 + i, 320, 240, "PNG"), 320, 240, "png",
             [(40.0, 30.0, 60.0, 80.0), (200.0, 100.0, 20.0, 20.0)]) for i in range(3)]
    png_file = write_records(root / "png.record", pngs)
    return types.SimpleNamespace(root=root, bundle=made["path"], graph=str(graph),
                                 wider_files=wider_files, png_file=png_file, pngs=pngs)


@pytest.fixture(scope="module")
def wider_run(lab, synthetic_gt_dir):
    out = str(lab.root / "out")
    code = cli.main(["eval", "run", lab.bundle, "--records", str(lab.root / "val.record-*"),
                     "--output", out, "--wider-ground-truth", synthetic_gt_dir])
    assert code == 0
    with open(os.path.join(out, "eval.json"), encoding="utf-8") as fh:
        return out, json.load(fh)


def test_writes_every_file_and_the_documented_keys(lab, wider_run):
    out, doc = wider_run
    assert set(doc) == DOCUMENTED_KEYS
    assert set(doc["at_deploy_threshold"]) == KIT_KEYS
    assert set(doc["at_deploy_threshold"]["recall_by_size"]) == {"small", "medium", "large"}
    assert doc["images"] == 7 and doc["input_size"] == [256, 256]
    assert doc["bundle"]["version"] == os.path.basename(lab.bundle)
    assert [r["path"] for r in doc["records"]] == lab.wider_files
    assert all(len(r["sha256"]) == 64 for r in doc["records"])
    assert doc["images_per_second"] > 0
    assert 0.0 <= doc["mean_ap"] <= 1.0 and doc["ap"]["face"] == doc["mean_ap"]
    assert set(doc["wider"]) >= {"easy", "medium", "hard"}
    for name in ("pr.png", "samples.png"):
        with Image.open(os.path.join(out, name)) as image:
            assert image.format == "PNG" and image.width >= 320
    with open(os.path.join(out, "report.html"), encoding="utf-8") as fh:
        page = fh.read()
    assert 'src="pr.png"' in page and 'src="samples.png"' in page
    assert "{:.4f}".format(doc["mean_ap"]) in page
    kit = doc["at_deploy_threshold"]
    faces = sum(doc["objects"].values())
    assert kit["true_positives"] + kit["missed"] == faces
    assert sum(s["faces"] for s in kit["recall_by_size"].values()) == faces


def test_the_operating_point_is_chosen_on_the_records_and_shown(wider_run):
    out, doc = wider_run
    point = doc["operating_point"]
    assert point["rule"] == "max_f1" and point["min_precision"] is None
    assert point["floor"] == doc["score_threshold"]
    face = point["classes"]["face"]
    kit = doc["at_operating_point"]
    assert set(kit) == KIT_KEYS
    if face["threshold"] is None:
        assert face["reason"] and kit["threshold"] == {"face": 0.5}
        return
    assert point["thresholds"] == {"face": face["threshold"]}
    assert kit["threshold"] == {"face": face["threshold"]}
    # The kit's figures at that threshold are the ones the choice was made on.
    assert kit["true_positives"] == face["true_positives"]
    assert kit["true_positives"] + kit["false_positives"] == face["detections"]
    assert kit["recall"] == pytest.approx(face["recall"])
    # Nothing the fixed 0.5 finds beats max F1.
    fixed = doc["at_deploy_threshold"]
    f1 = 2.0 * fixed["true_positives"] / (fixed["true_positives"] + fixed["false_positives"]
                                          + sum(doc["objects"].values()))
    assert face["f1"] >= f1 - 1e-12
    with open(os.path.join(out, "report.html"), encoding="utf-8") as fh:
        page = fh.read()
    assert "operating point (max F1): face" in page
    assert "score &gt; {}".format(face["threshold"]) in page
    assert "recall at score &gt; 0.5" in page


def test_wider_predictions_score_as_eval_wider_scores_them(wider_run, synthetic_gt_dir,
                                                          synthetic_gt):
    out, doc = wider_run
    folder = os.path.join(out, "predictions")
    event, image = synthetic_gt.images[0]
    with open(os.path.join(folder, event, image + ".txt"), encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    assert lines[0] == image and int(lines[1]) == len(lines) - 2
    assert doc["wider"]["missing_prediction_files"] == len(synthetic_gt.images) - 7
    scored = os.path.join(out, "wider.json")
    assert cli.main(["eval", "wider", folder, "--ground-truth", synthetic_gt_dir,
                     "--json", scored]) == 0
    with open(scored, encoding="utf-8") as fh:
        wider = json.load(fh)
    for setting in ("easy", "medium", "hard"):
        assert doc["wider"][setting] == wider[setting]


def test_detections_are_the_kits_decoding_of_the_graph(lab, tmp_path):
    """PNG records (no draft decoding): each image's detections are decode_dense of the
    graph's tensors on the whole image resized to 256x256, as the kit and bonnet do."""
    kit_model, graph = runner.open_model(lab.bundle)
    tf = models.load_tensorflow()[0]
    try:
        results = list(runner.run(kit_model, graph, records.read_records(tf, [lab.png_file])))
    finally:
        graph.close()
    assert [r.record.filename for r in results] == [p[0] for p in lab.pngs]
    v1 = graphs._tf()
    graph_def = v1.GraphDef()
    with open(lab.graph, "rb") as fh:
        graph_def.ParseFromString(fh.read())
    with v1.Graph().as_default() as direct:
        v1.import_graph_def(graph_def, name="")
    with v1.Session(graph=direct) as session:
        for result, item in zip(results, lab.pngs):
            image = Image.open(io.BytesIO(item[1])).convert("RGB")
            pixels = np.asarray(image.resize((256, 256), Image.BILINEAR), np.float32)
            boxes, logits = session.run(["concat:0", "concat_1:0"], feed_dict={
                "Preprocessor/sub:0": ((pixels - 128.0) / 128.0)[np.newaxis]})
            expected = decode.decode_dense(boxes.reshape(-1, 4), logits.reshape(-1, 2),
                                           kit_model.anchors, score_threshold=0.02)
            assert len(expected) > 0
            np.testing.assert_allclose(result.scores, [d.score for d in expected], atol=1e-5)
            np.testing.assert_allclose(
                result.boxes, [[d.ymin, d.xmin, d.ymax, d.xmax] for d in expected], atol=1e-5)
    # Not WIDER names: no predictions folder; an earlier run's is removed, not left to
    # pass for this run's.
    out = tmp_path / "out"
    (out / "predictions" / "0--Parade").mkdir(parents=True)
    (out / "predictions" / "0--Parade" / "0_Parade_1.txt").write_text("0_Parade_1\n0\n")
    assert cli.main(["eval", "run", lab.bundle, "--records", lab.png_file,
                     "--output", str(out)]) == 0
    assert not (out / "predictions").exists()
    doc = json.loads((out / "eval.json").read_text())
    assert doc["wider"] is None and doc["files"]["predictions"] is None
    assert doc["images"] == 3


def _fails(capsys, *args):
    assert cli.main(["eval", "run"] + list(args)) == 1
    return capsys.readouterr().err


def test_missing_corrupt_records_and_images_are_named(lab, tmp_path, capsys):
    out = str(tmp_path / "out")
    err = _fails(capsys, lab.bundle, "--records", str(tmp_path / "nothing*.record"),
                 "--output", out)
    assert "nothing*.record: no file matches" in err
    truncated = tmp_path / "truncated.record"
    with open(lab.wider_files[0], "rb") as fh:
        data = fh.read()
    truncated.write_bytes(data[:len(data) - 100])
    err = _fails(capsys, lab.bundle, "--records", str(truncated), "--output", out)
    assert str(truncated) in err and "record 3 cannot be read" in err and "corrupt" in err
    garbage = tmp_path / "garbage.record"
    garbage.write_bytes(b"this is not a TFRecord file at all, just text\n" * 4)
    err = _fails(capsys, lab.bundle, "--records", str(garbage), "--output", out)
    assert str(garbage) in err and "record 0 cannot be read" in err
    bad_image = write_records(tmp_path / "bad.record", [
        ("cam/ok.png", lab.pngs[0][1], 320, 240, "png", []),
        ("cam/broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", 320, 240, "jpeg", [])])
    err = _fails(capsys, lab.bundle, "--records", bad_image, "--output", out)
    assert "bad.record: record 1 (cam/broken.jpg)" in err and "does not decode" in err
    assert not os.path.exists(os.path.join(out, "eval.json"))


def test_a_batchable_graph_gives_each_image_its_own_detections(lab, tmp_path):
    """A graph with an unknown batch size (an export's image_tensor input) runs images 8 at a
    time; each image's detections are those of running it alone."""
    config = tmp_path / "pipeline.config"
    config.write_text(graphs.pipeline_config())
    graph = graphs.write_graph(tmp_path / "dynamic.pb", seed=3, dynamic_input=True)
    made = create_bundle("dynamic", str(tmp_path / "models"), graph=str(graph),
                         compiled=str(graph), config=str(config), anchors=AIY_ANCHORS)
    kit_model, model = runner.open_model(made["path"])
    tf = models.load_tensorflow()[0]
    try:
        assert model.batchable
        every = lab.wider_files + [lab.png_file]
        batched = list(runner.run(kit_model, model, records.read_records(tf, every), batch=8))
        alone = list(runner.run(kit_model, model, records.read_records(tf, every), batch=1))
    finally:
        model.close()
    assert len(batched) == len(alone) == 10
    for one, other in zip(batched, alone):
        assert one.record.filename == other.record.filename
        assert one.labels.tolist() == other.labels.tolist()
        np.testing.assert_allclose(one.scores, other.scores, atol=1e-5)
        np.testing.assert_allclose(one.boxes, other.boxes, atol=1e-5)


@pytest.mark.skipif(not os.path.exists(PY36), reason="no Python 3.6 env at {} (tools/py36-env.sh "
                    "builds it; set FACEKIT_PY36_VENV to use another)".format(PY36_VENV))
def test_runs_on_the_training_hosts_stack(lab, tmp_path):
    """Python 3.6 + TensorFlow 1.7.1 + its Pillow (where the training stage will run it),
    on a graph TensorFlow 1.7 built (one written by 2.x imports there but does not run: its
    Conv2D nodes carry explicit_paddings): the same files and keys."""
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"), TF_CPP_MIN_LOG_LEVEL="2")

    def run36(*args):
        done = subprocess.run([PY36] + [str(a) for a in args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, env=env,
                              timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        return done

    graph = tmp_path / "face17.pb"
    run36(graphs.__file__, graph, "--seed", "3")
    config = tmp_path / "pipeline.config"
    config.write_text(graphs.pipeline_config())
    made = create_bundle("face17", str(tmp_path / "models"), graph=str(graph),
                         compiled=str(graph), config=str(config), anchors=AIY_ANCHORS)
    out = tmp_path / "out36"
    run36("-m", "facekit.cli", "eval", "run", made["path"], "--records",
          lab.root / "val.record-*", "--output", out)
    doc = json.loads((out / "eval.json").read_text())
    assert set(doc) == DOCUMENTED_KEYS and doc["images"] == 7
    assert sorted(os.listdir(str(out))) == ["eval.json", "pr.png", "predictions", "report.html",
                                           "samples.png"]
    assert doc["detections"] > 0 and 0.0 <= doc["mean_ap"] <= 1.0


def test_min_precision_chooses_the_lowest_threshold_reaching_it(lab, tmp_path, capsys):
    out = str(tmp_path / "strict")
    code = cli.main(["eval", "run", lab.bundle, "--records", str(lab.root / "val.record-*"),
                     "--output", out, "--min-precision", "0.99"])
    assert code == 0
    with open(os.path.join(out, "eval.json"), encoding="utf-8") as fh:
        doc = json.load(fh)
    point = doc["operating_point"]
    assert point["rule"] == "min_precision" and point["min_precision"] == 0.99
    face = point["classes"]["face"]
    # The random-weight lab graph never reaches 0.99: no point, the sentence says why, and the
    # kit's view falls back to the fixed score.
    assert face["threshold"] is None and "never reaches 0.99" in face["reason"]
    assert doc["at_operating_point"]["threshold"] == {"face": 0.5}
    assert "operating point (precision >= 0.99): face score > 0.5 (none: precision never " \
        "reaches 0.99" in capsys.readouterr().out


def test_wider_annotations_set_the_dropped_faces_aside(lab, wider_run, synthetic_gt, tmp_path,
                                                       capsys):
    # The records' own faces plus one blurred face per image that the dataset's filters
    # would have dropped (blur 2), and a zero-size one (no region: nothing to set aside).
    lines = []
    for number, (event, image) in enumerate(synthetic_gt.images[:7]):
        start, stop = synthetic_gt.face_start[number], synthetic_gt.face_start[number + 1]
        faces = ["{} {} {} {} 0 0 0 0 0 0 ".format(*(int(round(v)) for v in box))
                 for box in synthetic_gt.boxes[start:stop]]
        faces += ["900 600 60 60 2 0 0 0 0 0 ", "5 5 0 0 0 0 0 0 0 0 "]
        lines += ["{}/{}.jpg".format(event, image), str(len(faces))] + faces
    annotations = tmp_path / "wider_face_val_bbx_gt.txt"
    annotations.write_text("\n".join(lines) + "\n")
    out = str(tmp_path / "aside")
    code = cli.main(["eval", "run", lab.bundle, "--records", str(lab.root / "val.record-*"),
                     "--output", out, "--wider-annotations", str(annotations)])
    assert code == 0
    with open(os.path.join(out, "eval.json"), encoding="utf-8") as fh:
        doc = json.load(fh)
    assert doc["dropped_faces"]["faces"] == 7
    assert doc["dropped_faces"]["annotations"]["path"] == str(annotations)
    # The faces to find are the records' own; the dropped ones are not among them.
    assert doc["objects"] == wider_run[1]["objects"]
    assert doc["at_deploy_threshold"]["difficult"] == 7
    assert wider_run[1]["dropped_faces"] is None
    assert "not scored: 7 faces of {} that the records leave out".format(annotations) \
        in capsys.readouterr().out
