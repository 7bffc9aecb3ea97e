"""`facekit eval wider` as a user runs it: printed APs, --json, exit statuses and messages."""

import json

import numpy as np
import wider_synthetic

from facekit.cli import main


def _prediction_dir(tmp_path, truth, skip=0):
    rows = wider_synthetic.prediction_set(np.random.default_rng(5), truth)
    directory = tmp_path / "preds"
    wider_synthetic.write_predictions(str(directory), rows,
                                      skip={key for key, _ in rows[:skip]})
    return str(directory)


def test_wider_prints_three_aps_and_writes_json(tmp_path, synthetic_gt, synthetic_gt_dir, capsys):
    from facekit.eval import predictions, wider  # noqa: PLC0415

    pred_dir = _prediction_dir(tmp_path, synthetic_gt)
    out = tmp_path / "wider.json"
    assert main(["eval", "wider", pred_dir, "--ground-truth", synthetic_gt_dir,
                 "--json", str(out)]) == 0
    expected = wider.evaluate(synthetic_gt,
                              predictions.read_predictions(pred_dir, synthetic_gt.images)).aps
    printed = capsys.readouterr().out
    for setting in ("easy", "medium", "hard"):
        assert "{:<6} AP {:.4f}".format(setting, expected[setting]) in printed
    assert "0 images without a prediction file" in printed
    doc = json.loads(out.read_text())
    assert {k: doc[k] for k in ("easy", "medium", "hard")} == expected
    assert len(doc["curves"]["hard"]["precision"]) == len(doc["thresholds"]) == 1000
    assert doc["curves"]["easy"]["recall"][-1] <= 1.0
    assert doc["missing_prediction_files"] == 0


def test_missing_files_are_counted_as_no_detections_and_reported(
        tmp_path, synthetic_gt, synthetic_gt_dir, capsys):
    pred_dir = _prediction_dir(tmp_path, synthetic_gt, skip=3)
    out = tmp_path / "wider.json"
    assert main(["eval", "wider", pred_dir, "--ground-truth", synthetic_gt_dir,
                 "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "3 images without a prediction file" in captured.out
    assert "3 of {} images have no prediction file".format(len(synthetic_gt.images)) \
        in captured.err
    doc = json.loads(out.read_text())
    assert doc["missing_prediction_files"] == 3
    assert doc["missing"][0] == "/".join(synthetic_gt.images[0])


def test_a_bad_prediction_file_exits_1_naming_file_and_line(
        tmp_path, synthetic_gt, synthetic_gt_dir, capsys):
    pred_dir = _prediction_dir(tmp_path, synthetic_gt)
    event, image = synthetic_gt.images[1]
    path = "{}/{}/{}.txt".format(pred_dir, event, image)
    with open(path, "a") as fh:
        fh.write("1 2 3 4 high\n")
    assert main(["eval", "wider", pred_dir, "--ground-truth", synthetic_gt_dir]) == 1
    err = capsys.readouterr().err
    assert err.startswith("facekit: error: {}:2: says ".format(path))


def test_a_wrong_ground_truth_folder_exits_1(tmp_path, scipy_io, capsys):
    assert main(["eval", "wider", str(tmp_path), "--ground-truth", str(tmp_path)]) == 1
    assert "wider_face_val.mat does not exist" in capsys.readouterr().err
