"""The release the detector runs: which bundle directory, verified, and what it holds.

resolve_release finds the bundle (--release, or the kit's MODELS/current link that
roles/vision_kit switches), open_bundle verifies it against its manifest and reads the
labels, the anchor table, the compiled graph and the operating point of its evaluation
(facekit.detector.thresholds) into a Model. Every failure is a
DetectorError with exit status 4 (EXIT_BUNDLE), naming the file and what to do.

`python -m facekit.detector.release DIR` checks a release as the service will open it and
prints the report as JSON (exit 0 when it would open, 1 when not): roles/vision_kit runs it
on the kit before a copy becomes a release, so the kit needs no controller command for it.
Python 3.5; the standard library, numpy (through decode) and facekit.model.bundle.
"""

import argparse
import json
import os
import sys

from facekit.detector import decode, thresholds
from facekit.detector.exits import EXIT_BUNDLE, DetectorError
from facekit.model import bundle
from facekit.model.errors import ModelError

DEFAULT_INPUT_SIZE = 256


class Model(object):
    """A verified bundle as the service uses it."""

    def __init__(self, path, *, name, version, labels, anchors, input_size, compute_graph,
                 operating_point=None):
        self.path = path
        self.name = name
        self.version = version
        self.labels = labels
        self.anchors = anchors
        self.input_size = input_size
        self.compute_graph = compute_graph
        # (rule, {label: threshold or None}) of the bundle's evaluation, or None.
        self.operating_point = operating_point

    @property
    def bonnet_name(self):
        """The name the model is loaded under on the bonnet: unique per version."""
        return "{}-{}".format(self.name, self.version)

    @property
    def compiled_path(self):
        return os.path.join(self.path, bundle.COMPILED)

    @property
    def num_anchors(self):
        return len(self.anchors)


def resolve_release(models_dir, release=None):
    """The real path of the bundle to run: `release` when given, else MODELS/current."""
    if release:
        if not os.path.isdir(release):
            raise DetectorError("--release {}: no such directory: give the directory of a "
                                "model bundle (it holds {})".format(release, bundle.MANIFEST),
                                EXIT_BUNDLE)
        return os.path.realpath(release)
    current = os.path.join(models_dir, "current")
    releases = os.path.join(models_dir, "releases")
    if os.path.islink(current) and not os.path.exists(current):
        raise DetectorError(
            "{} points to {}, which does not exist (a removed release?): deploy the model "
            "again (the vision_kit role switches the link to a release under {}), or pass "
            "--release DIR".format(current, os.readlink(current), releases), EXIT_BUNDLE)
    if not os.path.lexists(current):
        raise DetectorError(
            "{} does not exist: the vision_kit role creates it as a link to a release under "
            "{} when it deploys a model; deploy one, or pass --models DIR or --release DIR"
            .format(current, releases), EXIT_BUNDLE)
    if not os.path.isdir(current):
        raise DetectorError("{} is not a directory or a link to one: deploy the model again, "
                            "or pass --release DIR".format(current), EXIT_BUNDLE)
    return os.path.realpath(current)


def _manifest_input_size(manifest, path):
    value = (manifest.get("extra") or {}).get("input_size")
    if value is None:
        return None
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if size <= 0:
        raise DetectorError("{}: extra.input_size {!r} is not a positive whole number: fix the "
                            "bundle, or pass --input-size".format(
                                os.path.join(path, bundle.MANIFEST), value), EXIT_BUNDLE)
    return size


def open_bundle(path, input_size=None):
    """Verify the bundle at `path` and read what the service needs: a Model.

    input_size: the model's input side; None takes the manifest's extra.input_size, else
    DEFAULT_INPUT_SIZE. DetectorError (exit 4) names the bundle and every problem.
    """
    try:
        check = bundle.verify_bundle(path)
    except ModelError as exc:
        raise DetectorError(str(exc), EXIT_BUNDLE) from None
    if not check["ok"]:
        raise DetectorError(
            "the model bundle {} does not verify against its {}: {}: deploy the release "
            "again (the vision_kit role copies it from the controller's artifacts)".format(
                path, bundle.MANIFEST, "; ".join(check["problems"])), EXIT_BUNDLE)
    return _read_verified(path, check, input_size)


def _read_verified(path, check, input_size):
    """The Model of a bundle whose files verified (check: verify_bundle's report)."""
    manifest_path = os.path.join(path, bundle.MANIFEST)
    try:
        with open(manifest_path, "r", encoding="utf-8") as fh:
            manifest = json.load(fh)
        labels = bundle.read_labels(os.path.join(path, bundle.LABELS))
        anchors = decode.load_anchors(os.path.join(path, bundle.ANCHORS))
        with open(os.path.join(path, bundle.COMPILED), "rb") as fh:
            compute_graph = fh.read()
    except ModelError as exc:
        raise DetectorError("model bundle {}: {}".format(path, exc), EXIT_BUNDLE) from None
    except (OSError, ValueError) as exc:
        raise DetectorError("model bundle {}: cannot read it: {}".format(path, exc),
                            EXIT_BUNDLE) from None
    if manifest.get("anchors") != len(anchors):
        raise DetectorError(
            "model bundle {}: {} has {} anchors but {} says {}: the bundle was assembled from "
            "files of different models; rebuild it with `facekit model bundle`".format(
                path, bundle.ANCHORS, len(anchors), bundle.MANIFEST, manifest.get("anchors")),
            EXIT_BUNDLE)
    if input_size is None:
        input_size = _manifest_input_size(manifest, path) or DEFAULT_INPUT_SIZE
    return Model(path, name=check["name"], version=check["version"], labels=labels,
                 anchors=anchors, input_size=input_size, compute_graph=compute_graph,
                 operating_point=thresholds.bundle_operating_point(path, manifest))


def check_release(path):
    """verify_bundle's report of the bundle at `path` ({"path", "ok", "name", "version",
    "problems", "files"}), with what open_bundle would refuse besides the files (labels,
    an anchor table that does not fit the manifest) among the problems."""
    try:
        report = bundle.verify_bundle(path)
    except ModelError as exc:
        return {"path": path, "ok": False, "name": None, "version": None,
                "problems": [str(exc)], "files": {}}
    if report["ok"]:
        try:
            _read_verified(path, report, None)
        except DetectorError as exc:
            report["problems"].append(str(exc))
            report["ok"] = False
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m facekit.detector.release",
        description="Check a model release as facekit-detector opens it: every file against "
                    "its manifest.json, the labels and the anchor table. Prints the report as "
                    "JSON {path, ok, name, version, problems, files} and exits 0 when the "
                    "detector would run it, 1 when not (2 for bad options).")
    parser.add_argument("release", metavar="DIR", help="a release (bundle) directory")
    args = parser.parse_args(argv)
    report = check_release(args.release)
    sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
