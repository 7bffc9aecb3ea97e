"""The score thresholds the detector runs, one per class, and where each came from.

In order, for each label of the bundle:
- "bundle": the operating point of the bundle's evaluation (eval.json's
  operating_point.thresholds, from `facekit eval run`; the file is verified with the
  bundle's other files);
- DEFAULT (0.5, "default") where the bundle has no evaluation, or its evaluation gives
  the class no operating point;
- replaced by --threshold SCORE (every class) or --threshold LABEL=SCORE (one class),
  whose origin is --threshold-origin ("command line" unless the unit says, e.g.
  "inventory" when roles/vision_kit renders vision_kit_score_threshold into it).

The bonnet thresholds on the device at the lowest of them; the decoder applies each
class's own (facekit.detector.decode). Python 3.5, standard library only.
"""

import collections
import json
import os

from facekit.detector.exits import EXIT_BUNDLE, EXIT_USAGE, DetectorError
from facekit.model import bundle

DEFAULT = 0.5
BUNDLE = "bundle"
DEFAULT_ORIGIN = "default"
COMMAND_LINE = "command line"


def bundle_operating_point(path, manifest):
    """(rule, {label: threshold or None}) of the evaluation a verified bundle carries, or
    None when it has none (or one written before eval.json had operating points)."""
    listed = ((manifest.get(bundle.EVALUATION) or {}).get("files") or {})
    if bundle.EVAL_JSON not in listed:
        return None
    eval_path = os.path.join(path, bundle.EVAL_JSON)
    try:
        with open(eval_path, "r", encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise DetectorError("model bundle {}: cannot read {}: {}".format(
            path, eval_path, exc), EXIT_BUNDLE) from None
    section = doc.get("operating_point") if isinstance(doc, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("thresholds"), dict):
        return None
    found = {}
    for label, value in section["thresholds"].items():
        if value is not None and not (isinstance(value, (int, float))
                                      and not isinstance(value, bool) and 0.0 < value < 1.0):
            raise DetectorError(
                "model bundle {}: {} gives class {} the threshold {!r}, not a score in (0, 1): "
                "evaluate the bundle again (facekit eval run) and attach it".format(
                    path, eval_path, label, value), EXIT_BUNDLE)
        found[label] = value
    return section.get("rule"), found


def in_force(labels, operating_point, options, origin=COMMAND_LINE):
    """{label: {"score", "from"}} in labels' order (an OrderedDict). operating_point:
    bundle_operating_point's (rule, thresholds) or None; options: --threshold's
    (label or None, score) pairs, applied in order. DetectorError (exit 2) for a label the
    model does not have."""
    found = (operating_point or (None, {}))[1]
    chosen = collections.OrderedDict()
    for label in labels:
        score = found.get(label)
        chosen[label] = ({"score": score, "from": BUNDLE} if score is not None
                         else {"score": DEFAULT, "from": DEFAULT_ORIGIN})
    for label, score in options or ():
        if label is None:
            for entry in chosen.values():
                entry.update(score=score, **{"from": origin})
        elif label in chosen:
            chosen[label] = {"score": score, "from": origin}
        else:
            raise DetectorError("--threshold {}={}: the model has no class {!r} (its labels: "
                                "{})".format(label, score, label, ", ".join(labels)), EXIT_USAGE)
    return chosen


def scores(chosen):
    """The decoder's score_threshold of in_force's result: one number when every class has
    the same, else one per class in labels' order."""
    values = [entry["score"] for entry in chosen.values()]
    return values[0] if len(set(values)) == 1 else tuple(values)


def lowest(chosen):
    """The bonnet's threshold: the lowest of in_force's."""
    return min(entry["score"] for entry in chosen.values())


def describe(chosen):
    """'face 0.31 (bundle)' for the log."""
    return ", ".join("{} {:g} ({})".format(label, entry["score"], entry["from"])
                     for label, entry in chosen.items())
