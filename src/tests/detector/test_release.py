"""facekit.detector.release through facekit-detector: a missing, dangling or unverifiable
release is exit 4 with a message that says what to do."""

import json
import os

from detector_fakes import (
    deploy,
    make_bundle,
    run_main,
)

from facekit.model import bundle


def test_missing_current_link_says_who_makes_it(tmp_path, capsys, quiet_root):
    models = str(tmp_path / "models")
    status, out, errors = run_main(capsys, "--models", models)
    assert (status, out) == (4, "")
    assert errors == ["facekit-detector: error: {0}/current does not exist: the vision_kit "
                      "role creates it as a link to a release under {0}/releases when it "
                      "deploys a model; deploy one, or pass --models DIR or --release DIR"
                      .format(models)]


def test_dangling_current_link_names_its_target(tmp_path, capsys, quiet_root):
    models = tmp_path / "models"
    models.mkdir()
    os.symlink("releases/0123456789ab", str(models / "current"))
    status, _, errors = run_main(capsys, "--models", str(models))
    assert status == 4
    assert errors[0].startswith("facekit-detector: error: {}/current points to "
                                "releases/0123456789ab, which does not exist".format(models))


def test_a_release_that_does_not_verify_is_exit_4(tmp_path, capsys, quiet_root):
    release = deploy(make_bundle(tmp_path), str(tmp_path / "models"))
    with open(os.path.join(release, "model.binaryproto"), "ab") as fh:
        fh.write(b"tampered")
    os.remove(os.path.join(release, "labels.txt"))
    status, _, errors = run_main(capsys, "--models", str(tmp_path / "models"))
    assert status == 4 and len(errors) == 1
    assert errors[0].startswith("facekit-detector: error: the model bundle {} does not verify "
                                "against its manifest.json: ".format(release))
    assert "missing file labels.txt" in errors[0]
    assert "model.binaryproto has 28 bytes, manifest.json says 20" in errors[0]
    status, _, errors = run_main(capsys, "--release", str(tmp_path / "nowhere"))
    assert status == 4 and "--release {}: no such directory".format(
        tmp_path / "nowhere") in errors[0]


def test_anchor_count_must_match_the_manifest(tmp_path, capsys, quiet_root):
    made = make_bundle(tmp_path)
    manifest_path = os.path.join(made["path"], "manifest.json")
    with open(manifest_path) as fh:
        manifest = json.load(fh)
    manifest["anchors"] = 1917
    manifest["version"] = bundle.content_version(manifest)
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh)
    assert bundle.verify_bundle(made["path"])["ok"]
    status, _, errors = run_main(capsys, "--release", made["path"])
    assert status == 4
    assert "anchors.txt has 1278 anchors but manifest.json says 1917" in errors[0]
