"""What the dataset and training stages leave on the training host and the controller after
converge (site.yml, 20 steps) and side_effect (raised to RESUME["resume_num_steps"] with the
trainer killed in the middle, then exported, compiled and fetched)."""

import hashlib
import json
import os
import subprocess
import sys

import yaml

testinfra_hosts = ["podman://facekit-site-train"]

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(SCENARIO))
with open(os.path.join(SCENARIO, "vars", "resume.yml")) as _handle:
    RESUME = yaml.safe_load(_handle)
# The lab's dataset settings apply to the scenario (its molecule.yml links inventory/lab's
# group_vars).
with open(os.path.join(REPO, "inventory", "lab", "group_vars", "training_hosts",
                       "widerface_dataset.yml")) as _handle:
    DATASET_VARS = yaml.safe_load(_handle)
EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
STANDINS = os.environ.get("FACEKIT_STANDINS_DIR", "")
ARTIFACTS = os.path.join(EPHEMERAL, "artifacts", "face_ssd_embedded")
STEPS = RESUME["resume_num_steps"]

WORK = "/var/lib/facekit/training/face_ssd_embedded"
DATASET = "/var/lib/facekit/dataset"
UNIT = "facekit-training-face_ssd_embedded.service"
ENV_FILE = "/etc/facekit/training.env"


def _env(host):
    return dict(
        line.split("=", 1)
        for line in host.file(ENV_FILE).content_string.splitlines()
        if line and not line.startswith("#")
    )


def _facekit(host, *args):
    env = _env(host)
    return host.run(
        "PYTHONPATH=%s %s -m facekit.cli " + " ".join(["%s"] * len(args)),
        env["PYTHONPATH"], env["FACEKIT_PYTHON"], *args)


def test_dataset_json_records_the_sources_and_the_lab_filters(host):
    manifest = json.loads(host.file(DATASET + "/dataset.json").content_string)
    with open(os.path.join(STANDINS, "role_vars.json")) as handle:
        standins = json.load(handle)
    checksums = {a["name"]: a["checksum"] for a in standins["widerface_dataset_archives"]}
    for split in ("train", "val"):
        entry = manifest["splits"][split]
        assert entry["inputs"]["sources"] == {
            "WIDER_%s.zip" % split: checksums["WIDER_%s.zip" % split],
            "wider_face_split.zip": checksums["wider_face_split.zip"],
        }
        assert entry["filters"] == {"max_blur": 0, "min_size": 50, "keep_invalid": False,
                                    "keep_empty": False}
        assert entry["images"]["kept"] > 0 and entry["faces"]["kept"] > 0
        # Only what training reads: no VOC tree, no CSV.
        assert "voc" not in entry["outputs"] and "csv" not in entry["outputs"]
        shards = DATASET_VARS["widerface_dataset_shards"][split]
        assert len(entry["outputs"]["tfrecord"]["shards"]) == shards
    assert not host.file(DATASET + "/train_voc").exists
    assert host.file(DATASET + "/label_map.pbtxt").content_string.count("item") == 1


def test_pipeline_config_has_the_embedded_ssd_settings(host):
    config = host.file(WORK + "/pipeline.config").content_string
    for expected in ("num_classes: 1", "embedded_ssd_mobilenet_v1", "depth_multiplier: 0.125",
                     "min_depth: 16", "num_layers: 5", "height: 256", "width: 256",
                     "num_steps: %d" % STEPS, DATASET + "/train.record-"):
        assert expected in config, expected


def test_trainer_unit_is_hardened_and_finished(host):
    unit = host.run("systemctl show %s -p User -p NoNewPrivileges -p ProtectSystem -p PrivateTmp"
                    " -p Restart -p ActiveState -p Result", UNIT).stdout
    props = dict(line.split("=", 1) for line in unit.splitlines())
    assert props["User"] == "facekit-train"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["PrivateTmp"] == "yes"
    assert props["Restart"] == "on-failure"
    # Done with all its steps: it exited on its own, and nothing restarts it.
    assert props["ActiveState"] == "inactive" and props["Result"] == "success"
    assert host.file(WORK + "/train/model.ckpt-%d.index" % STEPS).exists
    # Checkpoints belong to the unprivileged trainer; nothing else is writable for it.
    assert host.file(WORK + "/train").user == "facekit-train"
    assert host.file(WORK + "/pipeline.config").user == "root"


def test_killed_trainer_resumed_from_its_last_checkpoint(host):
    with open(os.path.join(EPHEMERAL, "resume.json")) as handle:
        observed = json.load(handle)
    # Not from 0 and not from where it was killed: from model.ckpt-20 (slim's first log line
    # after a restore says 21 give or take one: it reads the step beside the train op).
    assert observed["restored_from"] == 20 and observed["resumed_at"] in (20, 21, 22)
    assert observed["killed_at"] > observed["resumed_at"]
    log = host.file(WORK + "/train/train.log").content_string
    restore = "Restoring parameters from %s/train/model.ckpt-20" % WORK
    after_kill = log.split("global step %d:" % observed["killed_at"], 1)[1]
    assert restore in after_kill
    assert "global step %d:" % observed["resumed_at"] in after_kill.split(restore, 1)[1]
    assert "global step %d:" % STEPS in log


def test_exported_graph_passes_the_check_with_the_bonnet_names(host):
    link = host.file(WORK + "/export")
    assert link.is_symlink and "/exports/ckpt-%d-" % STEPS in link.linked_to
    # Only the current export is kept.
    assert host.check_output("ls %s/exports", WORK).split() == [os.path.basename(link.linked_to)]
    result = _facekit(host, "model", "check", WORK + "/export/frozen_inference_graph.pb",
                      "--config", WORK + "/pipeline.config", "--json")
    assert result.rc == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    text = json.dumps(report)
    assert "Preprocessor/sub" in text and "AddV2" not in text
    assert "1278" in text


def _current():
    with open(os.path.join(ARTIFACTS, "current.json")) as handle:
        return json.load(handle)


def test_fetched_bundle_matches_its_manifest():
    current = _current()
    bundle = os.path.join(ARTIFACTS, current["version"])
    with open(os.path.join(bundle, "manifest.json")) as handle:
        manifest = json.load(handle)
    assert current["steps"] == STEPS and manifest["version"] == current["version"]
    assert sorted(manifest["files"]) == sorted(
        ["model.binaryproto", "anchors.txt", "labels.txt", "frozen_inference_graph.pb",
         "pipeline.config"])
    for name, entry in manifest["files"].items():
        with open(os.path.join(bundle, name), "rb") as handle:
            data = handle.read()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
    # facekit's own verifier agrees, on the controller.
    verify = subprocess.run([sys.executable, "-m", "facekit.cli", "model", "verify", bundle],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, check=False)
    assert verify.returncode == 0, verify.stdout
    with open(os.path.join(bundle, "labels.txt")) as handle:
        assert handle.read() == "face\n"
    with open(os.path.join(bundle, "anchors.txt")) as handle:
        assert len(handle.read().splitlines()) == 1278


def test_the_training_stage_evaluated_the_bundle_and_attached_the_report():
    current = _current()
    bundle = os.path.join(ARTIFACTS, current["version"])
    with open(os.path.join(bundle, "manifest.json")) as handle:
        manifest = json.load(handle)
    assert sorted(manifest["evaluation"]["files"]) == [
        "eval.json", "pr.png", "report.html", "samples.png"]
    for name, entry in manifest["evaluation"]["files"].items():
        with open(os.path.join(bundle, name), "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == entry["sha256"], name
    with open(os.path.join(bundle, "eval.json")) as handle:
        doc = json.load(handle)
    # The bundle itself, on every image of the val records, as the kit runs it.
    assert doc["bundle"]["version"] == current["version"]
    assert doc["images"] > 0 and doc["input_size"] == [256, 256]
    assert doc["records"] and all(r["path"].startswith(
        "/var/lib/facekit/dataset/") for r in doc["records"])
    assert doc["mean_ap"] is not None and 0.0 <= doc["mean_ap"] <= 1.0
    assert doc["at_deploy_threshold"]["threshold"] == 0.5
    # The faces the dataset's filters dropped (the sample's blurred and invalid ones) are set
    # aside, read from the val annotation file dataset.json names.
    aside = doc["dropped_faces"]
    assert aside["annotations"]["path"] == (
        "/var/lib/facekit/widerface/wider_face_split/wider_face_val_bbx_gt.txt"), aside
    assert aside["faces"] > 0 and doc["at_deploy_threshold"]["difficult"] == aside["faces"]
    point = doc["operating_point"]
    assert point["rule"] == "max_f1" and point["floor"] == 0.02
    face = point["classes"]["face"]
    assert face["threshold"] is None or 0.02 <= face["threshold"] < 1.0, face
    assert doc["at_operating_point"]["threshold"] == {"face": face["threshold"] or 0.5}
    with open(os.path.join(bundle, "report.html")) as handle:
        report = handle.read()
    assert 'src="pr.png"' in report and 'src="samples.png"' in report
    with open(os.path.join(bundle, "pr.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_both_runs_left_distinct_bundles():
    # The 20-step bundle of converge (the one the kits ran) stays beside the longer run's.
    versions = sorted(d for d in os.listdir(ARTIFACTS) if os.path.isdir(os.path.join(ARTIFACTS, d)))
    steps = {}
    for version in versions:
        with open(os.path.join(ARTIFACTS, version, "manifest.json")) as handle:
            steps.setdefault(json.load(handle)["training"]["steps"], []).append(version)
    assert {20, STEPS} <= set(steps), steps
    assert set(steps[20]).isdisjoint(steps[STEPS])


def test_compiled_model_comes_from_the_exported_graph(host):
    graph = host.file(WORK + "/export/frozen_inference_graph.pb").sha256sum
    compiled = host.file("%s/compiled/%s/model.binaryproto" % (WORK, graph[:16]))
    assert compiled.exists
    # The compiler stand-in records the graph it compiled (the real compiler's output is opaque).
    assert graph.encode() in compiled.content[:200]
