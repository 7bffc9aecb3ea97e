"""Model bundles: the training stage's hand-off to the deploy stage.

A bundle is the directory ROOT/NAME/VERSION/ holding the files under fixed names
(FILES) and manifest.json: the sha256 and size of every file, the labels, the anchor
count, training steps, checkpoint and the TensorFlow builds that trained it, the dataset
manifest's sha256 and counts, the pipeline config's sha256, and tool versions (the TensorFlow
that exported the graph among them). Nothing time-dependent is recorded.

VERSION is the first 12 hex digits of the sha256 of the manifest's content without
its name and version (canonical JSON: sorted keys, no spaces). It covers every file's
sha256 and everything else the manifest records, so the same inputs give the same
version and re-running changes nothing, while another model, config, label list,
step count or tool version gives a new one. verify_bundle recomputes it, so an edited
manifest is caught as well as changed files.

A bundle's evaluation (`facekit eval run` on the validation records: eval.json, pr.png,
samples.png, report.html) is attached afterwards with attach_evaluation: the files go into
the bundle and are listed under the manifest's "evaluation" section, which verify_bundle
checks like the model's files. The version leaves that section out: it names the model,
and a measurement of the model (which records its speed) does not change what the model is.

A bundle is written into a hidden temporary directory beside its target and renamed
into place when complete, its files synced first (facekit.files.atomic_directory); an
attached evaluation's files and the new manifest go in the same way, one file at a time.
verify_bundle leaves out the temporaries of a write in progress. An existing bundle of the
same version that verifies is left untouched; one that does not is replaced.

This module runs on the Vision Kit too (verify before deploy): Python 3.5, standard
library only (no f-strings, no variable annotations, no numpy or TensorFlow).
"""

import hashlib
import json
import logging
import os
import platform
import re
import shutil

import facekit
from facekit import files
from facekit.files import sha256_file
from facekit.model.anchors_file import read_anchors
from facekit.model.errors import BundleError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1
VERSION_DIGITS = 12

GRAPH = "frozen_inference_graph.pb"
COMPILED = "model.binaryproto"
CONFIG = "pipeline.config"
ANCHORS = "anchors.txt"
LABELS = "labels.txt"
FILES = (COMPILED, ANCHORS, LABELS, GRAPH, CONFIG)
# The manifest's section of the attached evaluation (left out of the version) and its files,
# as `facekit eval run` names them.
EVALUATION = "evaluation"
EVAL_JSON = "eval.json"
EVAL_FILES = (EVAL_JSON, "pr.png", "samples.png", "report.html")
# Manifest keys the version does not cover.
_UNVERSIONED = ("name", "version", EVALUATION)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def content_version(manifest):
    """The version a manifest's content gives (its name, version and evaluation left out)."""
    content = dict((k, v) for k, v in manifest.items() if k not in _UNVERSIONED)
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:VERSION_DIGITS]


def listed_files(manifest):
    """{file name: entry} of every file a manifest lists: the model's and the evaluation's."""
    listed = dict(manifest.get("files") or {})
    evaluation = manifest.get(EVALUATION)
    if isinstance(evaluation, dict) and isinstance(evaluation.get("files"), dict):
        listed.update(evaluation["files"])
    return listed


def count_anchors(path):
    """Number of rows of an anchors.txt; AnchorsFileError names a malformed line."""
    return len(read_anchors(path))


def read_labels(path):
    """Labels of a labels.txt, one a line; BundleError on an empty file or a blank line."""
    with open(path, "r", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise BundleError("{}: no labels: write one class name a line, in class id order "
                          "(id 1 first)".format(path))
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            raise BundleError("{}:{}: blank line: each line is the name of class id {}".format(
                path, lineno, lineno))
    return [line.strip() for line in lines]


def dataset_summary(path):
    """sha256, size and kept counts per split of a facekit dataset.json."""
    sha256, size = sha256_file(path)
    summary = {"sha256": sha256, "bytes": size, "counts": None}
    try:
        with open(path, "r", encoding="utf-8") as fh:
            doc = json.load(fh)
        summary["counts"] = dict(
            (split, {"images": entry["images"]["kept"], "faces": entry["faces"]["kept"]})
            for split, entry in doc["splits"].items())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("%s: counts not recorded, not a facekit dataset.json (%s: %s)",
                    path, type(exc).__name__, exc)
    return summary


def _check_inputs(name, sources, compiler_sha256, steps):
    if not _NAME.match(name):
        raise BundleError("bundle name {!r}: use letters, digits, '.', '_' and '-', starting "
                          "with a letter or digit".format(name))
    if compiler_sha256 is not None and not _SHA256.match(compiler_sha256):
        raise BundleError("compiler sha256 {!r}: expected 64 lowercase hex digits".format(
            compiler_sha256))
    if steps is not None and steps < 0:
        raise BundleError("training steps {}: must be >= 0".format(steps))
    for target, source in sorted(sources.items()):
        if not os.path.isfile(source):
            raise BundleError("{}: no such file (given for {})".format(source, target))
        if os.path.getsize(source) == 0:
            raise BundleError("{}: empty file (given for {})".format(source, target))


def build_manifest(name, sources, labels, anchors, *, training=None, dataset=None, tools=None,
                   extra=None):
    """The manifest for files `sources` ({bundle file name: source path}), version included."""
    entries = {}
    for target in sorted(sources):
        sha256, size = sha256_file(sources[target])
        entries[target] = {"sha256": sha256, "bytes": size}
    labels_text = "".join(label + "\n" for label in labels).encode("utf-8")
    entries[LABELS] = {"sha256": hashlib.sha256(labels_text).hexdigest(),
                       "bytes": len(labels_text)}
    manifest = {
        "format": FORMAT,
        "name": name,
        "files": entries,
        "labels": list(labels),
        "anchors": anchors,
        "config_sha256": entries[CONFIG]["sha256"],
        "training": training or {"steps": None, "checkpoint": None},
        "dataset": dataset,
        "tools": tools or {},
        "extra": extra or {},
    }
    manifest["version"] = content_version(manifest)
    return manifest


def _fill_bundle(directory, sources, labels, manifest):
    """Write a new bundle's files into `directory` (files.atomic_directory syncs them)."""
    for target, source in sorted(sources.items()):
        shutil.copyfile(source, os.path.join(directory, target))
    with open(os.path.join(directory, LABELS), "w", encoding="utf-8", newline="\n") as fh:
        fh.write("".join(label + "\n" for label in labels))
    with open(os.path.join(directory, MANIFEST), "w", encoding="utf-8", newline="\n") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.write("\n")
    problems = verify_bundle(directory)["problems"]
    if problems:
        raise BundleError("the bundle written to {} does not verify: {}".format(
            directory, "; ".join(problems)))


def create_bundle(name, output_root, *, graph, compiled, config, anchors, labels=("face",),
                  dataset_manifest=None, steps=None, checkpoint=None, models_version=None,
                  compiler_sha256=None, tensorflow_version=None, tensorflow_build=None,
                  trained_with=None, extra=None):
    """Create ROOT/NAME/VERSION/ (see the module docstring); returns a dict for the CLI.

    labels: class names in id order (id 1 first), written as labels.txt.
    tensorflow_version, tensorflow_build: the TensorFlow that exported the graph ("1.13.1",
    "intel-tensorflow==1.13.1"); trained_with: the TensorFlow builds that trained the
    checkpoint, in the order they did (None: not known). Both go into the manifest.
    Returns {"name", "version", "path", "created"}; created is False when an identical
    bundle was already in place.
    """
    sources = {GRAPH: graph, COMPILED: compiled, CONFIG: config, ANCHORS: anchors}
    _check_inputs(name, sources, compiler_sha256, steps)
    labels = list(labels)
    if not labels or not all(label.strip() and "\n" not in label for label in labels):
        raise BundleError("labels {!r}: give one or more non-empty class names".format(labels))
    tools = {"facekit": facekit.__version__, "python": platform.python_version(),
             "tensorflow": tensorflow_version, "tensorflow_build": tensorflow_build,
             "models_version": models_version, "compiler_sha256": compiler_sha256}
    manifest = build_manifest(
        name, sources, labels, count_anchors(anchors),
        training={"steps": steps, "checkpoint": checkpoint,
                  "tensorflow": list(trained_with) if trained_with is not None else None},
        dataset=dataset_summary(dataset_manifest) if dataset_manifest else None,
        tools=tools, extra=dict(extra or {}))
    version = manifest["version"]
    parent = os.path.join(output_root, name)
    target = os.path.join(parent, version)
    result = {"name": name, "version": version, "path": target, "created": False}
    if os.path.exists(target):
        check = verify_bundle(target)
        if check["ok"] and check["version"] == version:
            log.info("%s already holds this bundle and verifies: left untouched", target)
            return result
        log.warning("%s exists but does not verify (%s): replacing it", target,
                    "; ".join(check["problems"]))
    if not os.path.isdir(parent):
        os.makedirs(parent)
    try:
        with files.atomic_directory(target) as tmp:
            _fill_bundle(tmp, sources, labels, manifest)
    except OSError:
        # Same version = same content: an identical bundle put there meanwhile won the race.
        if os.path.isdir(target) and verify_bundle(target)["ok"]:
            return result
        raise
    result["created"] = True
    return result


def _load_manifest(path, problems):
    try:
        with open(path, "r", encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (IOError, OSError) as exc:
        problems.append("{}: cannot read: {}".format(MANIFEST, exc.strerror or exc))
        return None
    except ValueError as exc:
        problems.append("{}: not valid JSON: {}".format(MANIFEST, exc))
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        problems.append("{}: no \"files\" mapping: not a facekit model manifest".format(MANIFEST))
        return None
    return manifest


def _check_file(directory, filename, entry):
    """(status, problem or None) of one file listed in the manifest."""
    if os.sep in filename or filename in (".", "..") or filename == MANIFEST:
        return "invalid", "{}: lists {!r}, which is not a plain file name".format(
            MANIFEST, filename)
    path = os.path.join(directory, filename)
    if not os.path.isfile(path):
        return "missing", "missing file {} (listed in {})".format(filename, MANIFEST)
    if not isinstance(entry, dict):
        return "invalid", "{}: the entry of {} is not an object".format(MANIFEST, filename)
    sha256, size = sha256_file(path)
    if size != entry.get("bytes"):
        return "changed", "{} has {} bytes, {} says {}".format(
            filename, size, MANIFEST, entry.get("bytes"))
    if sha256 != entry.get("sha256"):
        return "changed", "{} has sha256 {}, {} says {}".format(
            filename, sha256, MANIFEST, entry.get("sha256"))
    return "ok", None


def verify_bundle(directory):
    """Recompute every file's sha256 and size against manifest.json.

    Returns {"path", "ok", "name", "version", "problems": [...], "files": {name: status},
    "listed": {name: {"sha256", "bytes"}}, "bytes"} with status ok, missing, changed, extra
    or invalid; listed is every file the manifest lists (the model's and the evaluation's,
    listed_files) and bytes their total: what a copy of the bundle moves, besides
    manifest.json. The roles read the bundle's files from here (`facekit model verify
    --json`) instead of reading the manifest again. BundleError if `directory` is not a
    directory.
    """
    if not os.path.isdir(directory):
        raise BundleError("{}: no such bundle directory".format(directory))
    problems = []
    manifest = _load_manifest(os.path.join(directory, MANIFEST), problems)
    result = {"path": directory, "ok": False, "name": None, "version": None,
              "problems": problems, "files": {}, "listed": {}, "bytes": 0}
    if manifest is None:
        return result
    result["name"], result["version"] = manifest.get("name"), manifest.get("version")
    listed = listed_files(manifest)
    result["listed"] = listed
    result["bytes"] = sum(entry.get("bytes") or 0 for entry in listed.values()
                          if isinstance(entry, dict) and isinstance(entry.get("bytes"), int))
    evaluation = manifest.get(EVALUATION)
    if evaluation is not None and not (isinstance(evaluation, dict)
                                       and isinstance(evaluation.get("files"), dict)):
        problems.append("{}: \"{}\" has no \"files\" mapping".format(MANIFEST, EVALUATION))
    for filename in sorted(set(manifest["files"]) & set(listed_files({EVALUATION: evaluation}))):
        problems.append("{}: {} is listed both as a model file and as an evaluation file".format(
            MANIFEST, filename))
    for filename in sorted(listed):
        status, problem = _check_file(directory, filename, listed[filename])
        result["files"][filename] = status
        if problem:
            problems.append(problem)
    for filename in FILES:
        if filename not in listed:
            problems.append("{} does not list {}, which every bundle holds".format(
                MANIFEST, filename))
    for entry in sorted(os.listdir(directory)):
        if entry != MANIFEST and entry not in listed and not files.live_temporary(entry):
            kind = "directory" if os.path.isdir(os.path.join(directory, entry)) else "file"
            result["files"][entry] = "extra"
            problems.append("extra {} {} (not in {})".format(kind, entry, MANIFEST))
    expected = content_version(manifest)
    if manifest.get("version") != expected:
        problems.append("{}: version {} does not match its content ({}): the manifest was "
                        "edited after the bundle was made".format(
                            MANIFEST, manifest.get("version"), expected))
    result["ok"] = not problems
    return result


def _read_evaluation(eval_dir, version):
    """eval.json of `eval_dir`, checked to be an evaluation of bundle `version`."""
    path = os.path.join(eval_dir, EVAL_JSON)
    try:
        with open(path, "r", encoding="utf-8") as fh:
            doc = json.load(fh)
    except (IOError, OSError) as exc:
        raise BundleError("{}: cannot read: {}: run `facekit eval run BUNDLE --records ... "
                          "--output {}` first".format(path, exc.strerror or exc, eval_dir)) from exc
    except ValueError as exc:
        raise BundleError("{}: not valid JSON: {}".format(path, exc)) from exc
    evaluated = (doc.get("bundle") or {}).get("version") if isinstance(doc, dict) else None
    if evaluated != version:
        raise BundleError("{} is an evaluation of bundle version {}, not of this bundle ({}): "
                          "evaluate this bundle".format(path, evaluated, version))
    return doc


def _verified_model(directory):
    """The manifest of a bundle whose model files verify (its evaluation aside)."""
    if not os.path.isdir(directory):
        raise BundleError("{}: no such bundle directory".format(directory))
    problems = []
    manifest = _load_manifest(os.path.join(directory, MANIFEST), problems)
    if manifest is None:
        raise BundleError("{}: {}".format(directory, "; ".join(problems)))
    version = manifest.get("version")
    if version != content_version(manifest):
        problems.append("{}: version {} does not match its content".format(MANIFEST, version))
    for filename in sorted(manifest["files"]):
        problem = _check_file(directory, filename, manifest["files"][filename])[1]
        if problem:
            problems.append(problem)
    if problems:
        raise BundleError("{}: the model's files do not verify, so its evaluation is not "
                          "attached: {}".format(directory, "; ".join(problems)))
    return manifest


def attach_evaluation(directory, eval_dir):
    """Copy `facekit eval run`'s eval.json, pr.png, samples.png and report.html from
    `eval_dir` into the bundle and list them under the manifest's "evaluation" section.

    The model's files must verify and eval.json must name this bundle's version. An
    evaluation already attached is replaced; the same files again change nothing.
    Returns {"path", "version", "changed", "files"}. Files are copied before the
    manifest is replaced (one rename): an interrupted attach leaves a bundle that does
    not verify until attach runs again, never a manifest that lists absent files as
    good.
    """
    manifest = _verified_model(directory)
    version = manifest["version"]
    _read_evaluation(eval_dir, version)
    entries = {}
    for filename in EVAL_FILES:
        source = os.path.join(eval_dir, filename)
        if not os.path.isfile(source):
            raise BundleError("{}: no such file: `facekit eval run` writes {} into its "
                              "--output".format(source, ", ".join(EVAL_FILES)))
        sha256, size = sha256_file(source)
        entries[filename] = {"sha256": sha256, "bytes": size}
    section = {"files": entries}
    result = {"path": directory, "version": version, "changed": False,
              "files": sorted(entries)}
    if manifest.get(EVALUATION) == section and all(
            _check_file(directory, f, entries[f])[0] == "ok" for f in entries):
        return result
    for filename in EVAL_FILES:
        files.atomic_copy(os.path.join(eval_dir, filename), os.path.join(directory, filename))
    manifest[EVALUATION] = section
    files.write_json(os.path.join(directory, MANIFEST), manifest)
    result["changed"] = True
    return result
