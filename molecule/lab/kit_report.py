"""What the lab's Vision Kits run and how well they detect: read from the kit containers.

For each kit container: the release `current` points to, the detector unit's state, its status
endpoint (/status on the port the unit was given), and the JSON lines it logged since it last
started. Each line carries the bonnet's camera frame index; the software bonnet cycles through
the sorted images of its --frames folder, so a line belongs to image index % count. With the
held-out images' ground_truth.json (widerface_sample.py) that gives recall and precision at
IoU 0.5 of what the kit itself reported.

    kit_report.py --frames DIR KIT [KIT ...]     # prints JSON, one entry per kit
"""

import argparse
import json
import re
import subprocess
import sys
import time

UNIT = "facekit-detector.service"
MODELS = "/opt/facekit/models"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _exec(kit, *argv):
    """stdout of argv in the kit's container ('' when it fails)."""
    try:
        return subprocess.run(["podman", "exec", kit] + list(argv), check=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _show(kit, *props):
    out = _exec(kit, "systemctl", "show", UNIT, "--property", ",".join(props))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def status(kit, port):
    out = _exec(kit, "python3", "-c",
                "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen("
                "'http://127.0.0.1:{}/status', timeout=5).read().decode())".format(port))
    try:
        return json.loads(out)
    except ValueError:
        return None


def kit_state(kit):
    """Release, unit state, status and this run's JSON lines of one kit."""
    unit = _show(kit, "ActiveState", "SubState", "InvocationID", "ExecStart")
    port = re.search(r"--status-port (\d+)", unit.get("ExecStart", ""))
    lines = []
    if unit.get("InvocationID"):
        journal = _exec(kit, "journalctl", "--no-pager", "--output", "cat",
                        "_SYSTEMD_INVOCATION_ID=" + unit["InvocationID"])
        for line in journal.splitlines():
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    pass
    release = _exec(kit, "readlink", MODELS + "/current").strip()
    return {"kit": kit, "release": release.rsplit("/", 1)[-1] if release else None,
            "active": unit.get("ActiveState"), "sub": unit.get("SubState"),
            "status_port": int(port.group(1)) if port else None,
            "status": status(kit, port.group(1)) if port else None, "lines": lines}


def iou(a, b):
    """IoU of two [xmin, ymin, xmax, ymax] boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def evaluate(lines, truth, names, version, threshold=0.5):
    """Recall and precision at IoU `threshold` of the kit's last detections per image.

    lines: the kit's JSON lines (frames with faces only); an image the camera showed with no
    line had no detections. names: the bonnet's frames in its order. Faces in 'ignore'
    (blurred) count neither as hits nor as false positives."""
    by_name = {image["file"]: image for image in truth["images"]}
    last = {}
    shown = set()
    for line in lines:
        if line.get("version") != version or line.get("camera_frame") is None:
            continue
        name = names[line["camera_frame"] % len(names)]
        # Schema 2 names the list "detections"; schema 1 lines only have "faces".
        last[name] = line["detections"] if "detections" in line else line["faces"]
        shown.add(name)
    frames = max((line.get("camera_frame", -1) for line in lines
                  if line.get("version") == version), default=-1) + 1
    if frames >= len(names):
        shown = set(names)
    tp = fp = faces = 0
    # Per class (the VOC sample's boxes carry a label; WIDER's are all "face"): a detection
    # matches only a box of its own class.
    classes = {}

    def tally(label):
        return classes.setdefault(label, {"objects": 0, "true_positives": 0,
                                          "false_positives": 0})

    for name in shown:
        image = by_name.get(name)
        if image is None:
            continue
        gts = [(face["box"], face.get("label", "face")) for face in image["faces"]]
        ignore = [face["box"] for face in image["ignore"]]
        faces += len(gts)
        for _, label in gts:
            tally(label)["objects"] += 1
        matched = set()
        for det in sorted(last.get(name, []), key=lambda d: -d["score"]):
            x, y, w, h = det["box"]
            box = [x, y, x + w, y + h]
            label = det.get("label", "face")
            best, best_iou = None, threshold
            for i, (gt, gt_label) in enumerate(gts):
                overlap = iou(box, gt)
                if i not in matched and gt_label == label and overlap >= best_iou:
                    best, best_iou = i, overlap
            if best is not None:
                matched.add(best)
                tp += 1
                tally(label)["true_positives"] += 1
            elif not any(iou(box, other) >= threshold for other in ignore):
                fp += 1
                tally(label)["false_positives"] += 1
    for entry in classes.values():
        hits, wrong = entry["true_positives"], entry["false_positives"]
        entry["recall"] = round(hits / entry["objects"], 3) if entry["objects"] else None
        entry["precision"] = round(hits / (hits + wrong), 3) if hits + wrong else None
    return {"images": len(shown), "faces": faces, "true_positives": tp,
            "false_positives": fp,
            "recall": round(tp / faces, 3) if faces else None,
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "classes": {k: classes[k] for k in sorted(classes)}}


def frame_names(frames_dir):
    import os  # noqa: PLC0415

    return sorted(n for n in os.listdir(frames_dir) if n.lower().endswith(IMAGE_SUFFIXES))


def report(kits, frames_dir, wait=30.0):
    """One entry per kit; waits up to `wait` s for every kit to have shown each frame once."""
    import os  # noqa: PLC0415

    names = frame_names(frames_dir)
    with open(os.path.join(frames_dir, "ground_truth.json")) as fh:
        truth = json.load(fh)
    deadline = time.time() + wait
    while True:
        states = [kit_state(kit) for kit in kits]
        behind = [s for s in states if s["status"] and s["status"].get("frames", 0) < len(names)
                  and s["active"] == "active"]
        if not behind or time.time() >= deadline:
            break
        time.sleep(2)
    for state in states:
        version = (state["status"] or {}).get("model", {}).get("version") or state["release"]
        state["detections"] = evaluate(state.pop("lines"), truth, names, version)
    return states


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", required=True,
                        help="the bonnets' --frames folder, with ground_truth.json")
    parser.add_argument("--wait", type=float, default=30.0)
    parser.add_argument("kits", nargs="+")
    args = parser.parse_args(argv)
    json.dump(report(args.kits, args.frames, args.wait), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
