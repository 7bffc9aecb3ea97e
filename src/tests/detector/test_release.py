"""facekit.detector.release through facekit-detector: a missing, dangling or unverifiable
release is exit 4 with a message that says what to do."""

import json
import os
import subprocess

from detector_fakes import (
    KIT_PYTHON,
    SRC,
    deploy,
    make_bundle,
    needs_kit,
    run_main,
)

from facekit.detector import release
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


def misstate_anchors(made, count=1917):
    """Make the bundle's manifest claim another anchor count, its version made to fit: the
    files still verify, but the table does not describe the model."""
    manifest_path = os.path.join(made["path"], "manifest.json")
    with open(manifest_path) as fh:
        manifest = json.load(fh)
    manifest["anchors"] = count
    manifest["version"] = bundle.content_version(manifest)
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh)


def test_anchor_count_must_match_the_manifest(tmp_path, capsys, quiet_root):
    made = make_bundle(tmp_path)
    misstate_anchors(made)
    assert bundle.verify_bundle(made["path"])["ok"]
    status, _, errors = run_main(capsys, "--release", made["path"])
    assert status == 4
    assert "anchors.txt has 1278 anchors but manifest.json says 1917" in errors[0]


@needs_kit
def test_the_kits_release_check_agrees_with_verify_and_needs_no_controller_code(tmp_path):
    """`python -m facekit.detector.release DIR` is what roles/vision_kit runs on the kit before
    a copy becomes a release: on the kit's stack it reports what verify_bundle reports and
    imports neither the training stack nor the controller's packages."""
    made = make_bundle(tmp_path)
    code = ("import json, sys, runpy; sys.argv = ['release', sys.argv[1]]\n"
            "try:\n    runpy.run_module('facekit.detector.release', run_name='__main__')\n"
            "except SystemExit as exc:\n    status = exc.code\n"
            "heavy = ('tensorflow', 'google.protobuf', 'pandas', 'lxml', 'PIL', 'tqdm', "
            "'facekit.cli', 'facekit.eval', 'facekit.dataset')\n"
            "print(json.dumps([status, sorted(m for m in sys.modules if m.startswith(heavy))]))")
    result = subprocess.run([KIT_PYTHON, "-c", code, made["path"]], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, check=False,
                            env=dict(os.environ, PYTHONPATH=SRC))
    assert result.returncode == 0, result.stderr
    *report, imported = result.stdout.splitlines()
    assert json.loads("\n".join(report)) == bundle.verify_bundle(made["path"])
    assert json.loads(imported) == [0, []]


def test_the_release_check_reports_what_the_detector_would_refuse(tmp_path, capsys):
    made = make_bundle(tmp_path)
    assert release.main([made["path"]]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    # Files that verify, but an anchor table the manifest does not describe: the detector
    # would refuse it at start, so the check refuses it before the switch.
    misstate_anchors(made)
    assert release.main([made["path"]]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["files"]["anchors.txt"] == "ok"
    assert "anchors.txt has 1278 anchors but manifest.json says 1917" in report["problems"][0]
    assert release.main([str(tmp_path / "nowhere")]) == 1
    assert json.loads(capsys.readouterr().out)["problems"] == [
        "{}: no such bundle directory".format(tmp_path / "nowhere")]
