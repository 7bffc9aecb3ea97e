#!/usr/bin/env python3
"""The summary `make lab` prints after site.yml: where the bundle is, what it holds, what each
Vision Kit runs and detects, what ran for real in the lab, and which stand-ins served what this
machine cannot reach.

    summary.py --standins .cache/lab/standins [--artifacts artifacts/models] [--seconds N]
               [--kits facekit-lab-kit1,facekit-lab-kit2] [--tensorflow stock|mkl]

Reads the role variables standins.py wrote (role_vars.json, server.json) and the bundle the
training stage fetched (artifacts/models/<name>/current.json and its manifest.json).
"""

import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _load(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _duration(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    return "{}m{:02d}s".format(minutes, seconds) if minutes else "{}s".format(seconds)


def bundle_lines(artifacts):
    lines = []
    for current_file in sorted(glob.glob(os.path.join(artifacts, "*", "current.json"))):
        current = _load(current_file)
        if not current:
            continue
        bundle = os.path.join(os.path.dirname(current_file), current["version"])
        manifest = _load(os.path.join(bundle, "manifest.json")) or {}
        files = manifest.get("files", {})
        lines.append("bundle {} {}: {}".format(
            current["name"], current["version"], os.path.relpath(bundle, REPO)))
        lines.append("  trained {} steps; {} files, sha256 of each in manifest.json".format(
            current.get("steps"), len(files)))
        trained = (manifest.get("training") or {}).get("tensorflow")
        lines.append("  trained with {}; exported with {}".format(
            ", then ".join(trained) if trained else "(not recorded)",
            (manifest.get("tools") or {}).get("tensorflow_build") or "(not recorded)"))
        for name in sorted(files):
            lines.append("    {:28s} {:>10,d} bytes  {}".format(
                name, files[name].get("bytes", 0), files[name].get("sha256", "")[:16]))
        lines += evaluation_lines(bundle, manifest)
        tools = manifest.get("tools", {})
        if tools:
            lines.append("  tools: " + ", ".join(
                "{} {}".format(k, tools[k]) for k in sorted(tools) if tools[k]))
    return lines or ["no bundle under {}: the training stage has not finished (run make lab "
                     "again to pick it up)".format(os.path.relpath(artifacts, REPO))]


def _figure(value):
    return "n/a" if value is None else "{:.3f}".format(value)


def evaluation_lines(bundle, manifest):
    """The bundle's own evaluation (the training stage's `facekit eval run` on the val split)."""
    if "eval.json" not in ((manifest.get("evaluation") or {}).get("files") or {}):
        return ["  not evaluated: no eval.json in its manifest (the quality gate refuses it)"]
    doc = _load(os.path.join(bundle, "eval.json")) or {}
    fixed = doc.get("at_deploy_threshold") or {}
    lines = ["  evaluated on {} val images as the kit runs it: AP@0.5 {} (mean {}); {} "
             "images/s".format(
                 doc.get("images"), ", ".join("{} {}".format(label, _figure(ap)) for label, ap
                                              in sorted((doc.get("ap") or {}).items())),
                 _figure(doc.get("mean_ap")), doc.get("images_per_second"))]
    if doc.get("dropped_faces"):
        lines.append("  not scored on val: {} faces the dataset's filters dropped (blurred, "
                     "invalid, small)".format(doc["dropped_faces"]["faces"]))
    point = doc.get("operating_point") or {}
    kit = doc.get("at_operating_point")
    if kit:
        lines.append("  operating point ({}): {}: recall {}, precision {}".format(
            point.get("rule"), ", ".join(
                "{} {}".format(label, "none" if t is None else t)
                for label, t in sorted((point.get("thresholds") or {}).items())),
            _figure(kit.get("recall")), _figure(kit.get("precision"))))
    lines.append("  at score {}: recall {}, precision {}".format(
        fixed.get("threshold"), _figure(fixed.get("recall")), _figure(fixed.get("precision"))))
    wider = doc.get("wider")
    if wider:
        lines.append("  WIDER FACE easy {} medium {} hard {}".format(
            *(_figure(wider.get(s)) for s in ("easy", "medium", "hard"))))
    lines.append("  report (pictures, PR curves): {}".format(
        os.path.relpath(os.path.join(bundle, "report.html"), REPO)))
    return lines


def kit_lines(kits, frames_dir):
    """Each kit's release, service, faces, and its detections against the held-out images."""
    if not kits:
        return []
    import kit_report  # noqa: PLC0415 - next to this file

    if not os.path.isfile(os.path.join(frames_dir, "ground_truth.json")):
        return ["kits: no held-out images at {}".format(frames_dir)]
    lines = ["Vision Kits (software bonnets cycling {} held-out images; a detection "
             "matches at IoU 0.5):".format(len(kit_report.frame_names(frames_dir)))]
    for state in kit_report.report(kits, frames_dir):
        status = state["status"] or {}
        det = state["detections"]
        lines.append("  {}  release {}  service {}  {}".format(
            state["kit"], state["release"] or "-", state["active"] or "?",
            "healthy" if status.get("healthy") else "NOT healthy: {}".format(
                status.get("reason") or status.get("error") or "no status endpoint")))
        if status.get("thresholds"):
            lines.append("    thresholds " + ", ".join(
                "{} {} ({})".format(label, entry.get("score"), entry.get("from"))
                for label, entry in sorted(status["thresholds"].items())))
        if status:
            last = status.get("last") or {}
            lines.append("    {} frames, {:.1f} fps, {} detections reported; last frame: {}".format(
                status.get("frames", 0), status.get("fps") or 0.0, status.get("faces_seen", 0),
                ", ".join("{} {:.2f} at {}".format(f["label"], f["score"], f["box"])
                          for f in last.get("detections", last.get("faces")) or []) or "nothing"))
        if det["faces"]:
            what = "faces" if set(det["classes"]) <= {"face"} else "objects"
            lines.append("    held-out images: {} shown, {} {}: recall {}, precision {} "
                         "({} true, {} false positives)".format(
                             det["images"], det["faces"], what, det["recall"], det["precision"],
                             det["true_positives"], det["false_positives"]))
            if len(det["classes"]) > 1:
                for label, entry in det["classes"].items():
                    lines.append("      {}: {} objects, recall {}, precision {} ({} true, {} "
                                 "false positives)".format(
                                     label, entry["objects"], entry["recall"],
                                     entry["precision"], entry["true_positives"],
                                     entry["false_positives"]))
    return lines


def real_lines(role_vars, tensorflow=None):
    import standins  # noqa: PLC0415 - next to this file: the role's package lists

    python = role_vars.get("training_host_venv_python", "Python 3.6")
    packages = role_vars.get("training_host_venv_packages", [])
    if tensorflow == "mkl":
        # What the role installs for mkl: the listed pins composed with the mkl ones.
        defaults = standins.role_defaults()
        packages = standins.mkl_lists(
            role_vars.get("training_host_venv_build_packages", []), packages,
            defaults["training_host_tensorflow_mkl_packages"],
            defaults["training_host_tensorflow_mkl_pip"])[1]
    tf = next((p for p in packages if standins.dist_name(p) in standins.TENSORFLOW_NAMES),
              "tensorflow")
    return [
        "ran for real:",
        "  provision  Debian 12 container; venv from {} with the role's conda pins ({}, {} "
        "packages) from a wheelhouse; protoc {}; the models checkout at its pin, protos "
        "compiled, model_builder_test.py".format(
            python, tf, len(packages), role_vars.get("training_host_protoc_version", "?")),
        "  dataset    download with checksums, unzip, facekit dataset convert (train, val)",
        "  training   the Object Detection API's own trainer as a systemd unit, "
        "export_inference_graph.py, facekit model check / anchors / bundle, fetch + verify",
        "  kits       roles/vision_kit: AIY's client library 1.4, the detector service, releases, "
        "health gate; the bonnet runs the bundle's frozen graph with TensorFlow",
    ]


def standin_lines(role_vars, built):
    counts = (built or {}).get("widerface_counts", {})
    sample = ", ".join("{} {} images".format(split, counts[split].get("images", "?"))
                       for split in ("train", "val") if split in counts)
    return [
        "stand-ins (this machine cannot reach the real ones):",
        "  Anaconda installer       -> this machine's Python 3.6, bind-mounted, as the venv "
        "flavour's interpreter",
        "  PyPI for the host        -> a wheelhouse of the same pins: {}".format(
            ", ".join(role_vars.get("training_host_pip_find_links", [])) or "-"),
        "  protoc release (GitHub)  -> {}".format(role_vars.get("training_host_protoc_url", "-")),
        "  tensorflow/models        -> {} at {} (the 2018 Object Detection API snapshot from "
        "PyPI + slim, TF 1.7 edits)".format(role_vars.get("training_host_models_repo", "-"),
                                            role_vars.get("training_host_models_version", "-")),
        "  WIDER FACE archives      -> a generated sample with drawn faces ({}) at {}".format(
            sample or "?", ", ".join(role_vars.get("widerface_dataset_mirrors", [])) or "-"),
        "  Bonnet compiler (Google) -> molecule/lab/bonnet_compiler_standin.py at {}: checks "
        "the arguments and the graph, writes a file that names the graph".format(
            role_vars.get("detector_training_compiler_url", "-")),
        "  Raspberry Pi Zero W      -> a Debian 12 container per kit (x86_64)",
        "  Vision Bonnet            -> `facekit bonnet serve` per kit on loopback: AIY's "
        "protocol over TCP, frames from the held-out images",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--standins", required=True,
                        help="standins.py's --dir (role_vars.json, server.json)")
    parser.add_argument("--artifacts", default=os.path.join(REPO, "artifacts", "models"),
                        help="where the training stage fetches bundles (default: artifacts/models)")
    parser.add_argument("--seconds", type=int, help="how long site.yml took")
    parser.add_argument("--kits", default="", help="the kit containers, comma-separated")
    parser.add_argument("--frames", help="the bonnets' frames (default: the stand-ins' held-out "
                                         "images)")
    parser.add_argument("--tensorflow", choices=("stock", "mkl"),
                        help="the training host's training_host_tensorflow (lab.sh's choice)")
    args = parser.parse_args(argv)
    role_vars = _load(os.path.join(args.standins, "role_vars.json")) or {}
    server = _load(os.path.join(args.standins, "server.json")) or {}
    lines = ["", "== facekit lab" + (": site.yml took {}".format(_duration(args.seconds))
                                     if args.seconds is not None else "") + " =="]
    lines += bundle_lines(args.artifacts)
    frames = args.frames or os.path.join(args.standins, "www", "widerface", "heldout")
    lines += kit_lines([k for k in args.kits.split(",") if k], frames)
    if role_vars:
        lines += real_lines(role_vars, args.tensorflow)
        lines += standin_lines(role_vars, server.get("built"))
    else:
        lines.append("sources: the real ones (LAB_SOURCES=real); stand-ins only for the Raspberry "
                     "Pi (containers) and the Vision Bonnet (facekit bonnet serve)")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
