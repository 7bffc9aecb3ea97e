"""The quality gate before the kits: may a bundle replace the release a kit runs?

A bundle passes when its gate metric (eval.json, from `facekit eval run` and attached with
`facekit model attach-eval`) is at least the floor, and, when the kit's deployed release
has an evaluation too, not lower than the deployed release's by more than the allowed
drop. A kit that already runs the bundle's version passes; a bundle without an evaluation
is refused (nothing says it is not worse). Forcing deploys a refused bundle and says what
was overridden.

The sentences name the settings to change: the CLI's flags by default, or variables
(`settings_prefix="vision_kit_"`: vision_kit_min_ap, vision_kit_max_ap_drop,
vision_kit_force_deploy, vision_kit_gate_metric) when the kits' play runs it.

Standard library only: the controller runs it for each kit before the rollout.
"""

import json
import os

from facekit.eval.errors import EvalError
from facekit.model.bundle import EVAL_JSON, EVALUATION, MANIFEST

# metric -> (words for it, its place in eval.json)
METRICS = {
    "mean_ap": ("mean AP at IoU 0.5", ("mean_ap",)),
    "wider_easy": ("WIDER FACE easy AP", ("wider", "easy")),
    "wider_medium": ("WIDER FACE medium AP", ("wider", "medium")),
    "wider_hard": ("WIDER FACE hard AP", ("wider", "hard")),
}
DEFAULT_METRIC = "mean_ap"
DEFAULT_MIN = 0.0
DEFAULT_MAX_DROP = 0.02


class GateError(EvalError):
    """A bundle or an eval.json the gate cannot read."""


def metric_value(doc, metric):
    """The metric's value in an eval.json document, or None when it has none."""
    value = doc
    for key in METRICS[metric][1]:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read_bundle_evaluation(bundle_dir):
    """(version, eval.json document or None) of a bundle: the evaluation its manifest lists."""
    path = os.path.join(bundle_dir, MANIFEST)
    try:
        with open(path, "r", encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (IOError, OSError, ValueError) as exc:
        raise GateError("{}: cannot read the bundle's manifest: {}".format(path, exc)) from exc
    listed = (manifest.get(EVALUATION) or {}).get("files") or {}
    if EVAL_JSON not in listed:
        return manifest.get("version"), None
    return manifest.get("version"), parse_evaluation(
        read_text(os.path.join(bundle_dir, EVAL_JSON)), os.path.join(bundle_dir, EVAL_JSON))


def read_text(path):
    try:
        with open(path, "r", encoding="utf-8") as fh:
            return fh.read()
    except (IOError, OSError) as exc:
        raise GateError("{}: cannot read: {}".format(path, exc)) from exc


def parse_evaluation(text, where):
    """An eval.json's text as a document; None for empty text (no evaluation)."""
    if not text.strip():
        return None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise GateError("{}: not valid JSON: {}".format(where, exc)) from exc
    if not isinstance(doc, dict):
        raise GateError("{}: not an eval.json document (a JSON object)".format(where))
    return doc


def _scored_on(doc):
    """What an evaluation scored: its records' sha256s, and the annotation file whose dropped
    faces it set aside (facekit.eval.dropped), if any."""
    aside = doc.get("dropped_faces")
    return (sorted(r.get("sha256") for r in doc.get("records") or [] if isinstance(r, dict)),
            (aside.get("annotations") or {}).get("sha256") if isinstance(aside, dict) else None)


def _comparison_note(candidate, deployed, bundle, running):
    """'' when the two evaluations scored the same way; else the sentence that says how not."""
    (records, aside), (records_then, aside_then) = _scored_on(candidate), _scored_on(deployed)
    if records != records_then:
        return ("{} and {} were measured on different records: the comparison is only as fair "
                "as the two sets are alike".format(bundle, running))
    if aside == aside_then:
        return ""
    if aside and aside_then:
        how = "{} and {} set aside the dropped faces of different annotation files".format(
            bundle, running)
    else:
        how = "{} set aside the faces the dataset's filters dropped and {} did not".format(
            *((bundle, running) if aside else (running, bundle)))
    return ("{} (facekit eval run --wider-annotations): the comparison is only as fair as the "
            "two scorings are alike".format(how))


def _names(prefix):
    if prefix:
        return {key: prefix + key for key in
                ("min_ap", "max_ap_drop", "force_deploy", "gate_metric")}
    return {"min_ap": "--min-ap", "max_ap_drop": "--max-ap-drop",
            "force_deploy": "--force-deploy", "gate_metric": "--gate-metric"}


def _force(names, prefix):
    return "set {}=true".format(names["force_deploy"]) if prefix else "give {}".format(
        names["force_deploy"])


def _figure(value):
    return "{:.4f}".format(value)


def decide(candidate, deployed=None, *, candidate_version=None, deployed_version=None,
           metric=DEFAULT_METRIC, min_ap=DEFAULT_MIN, max_drop=DEFAULT_MAX_DROP, force=False,
           settings_prefix=""):
    """Whether a bundle may replace a kit's release.

    candidate, deployed: eval.json documents (None: no evaluation; deployed None also when
    the kit runs nothing yet). Returns {"ok", "decision" (pass, same, refused, forced),
    "reason", "metric", "candidate", "deployed", "candidate_version", "deployed_version",
    "note"}: candidate and deployed are the metric's values (None where unknown); note
    says when the two were measured on different records.
    """
    if metric not in METRICS:
        raise GateError("gate metric {!r}: choose one of {}".format(
            metric, ", ".join(sorted(METRICS))))
    words = METRICS[metric][0]
    names = _names(settings_prefix)
    value = metric_value(candidate, metric) if candidate is not None else None
    before = metric_value(deployed, metric) if deployed is not None else None
    result = {"ok": True, "decision": "pass", "reason": "", "metric": metric,
              "candidate": value, "deployed": before, "candidate_version": candidate_version,
              "deployed_version": deployed_version, "note": ""}
    bundle = "bundle {}".format(candidate_version or "(no version)")
    running = "the deployed release {}".format(deployed_version or "")
    if deployed_version and deployed_version == candidate_version:
        result.update(decision="same", reason="the kit already runs {}".format(candidate_version))
        return result
    refusal = None
    if candidate is None:
        refusal = ("{} has no evaluation (eval.json): `facekit eval run` it and `facekit model "
                   "attach-eval` the result (the training stage does both), or {}".format(
                       bundle, _force(names, settings_prefix)))
    elif value is None:
        refusal = ("the eval.json of {} has no {} ({}): choose another {}, or {}".format(
            bundle, words, metric, names["gate_metric"],
            _force(names, settings_prefix)))
    elif value < min_ap:
        refusal = ("{}: {} {} is below {} {}: lower {} or {}".format(
            bundle, words, _figure(value), names["min_ap"], min_ap, names["min_ap"],
            _force(names, settings_prefix)))
    elif before is not None and value < before - max_drop:
        refusal = ("{}: {} {} is {} below {}'s {}, more than {} {}: raise {} or {}".format(
            bundle, words, _figure(value), _figure(before - value), running.strip(),
            _figure(before), names["max_ap_drop"], max_drop, names["max_ap_drop"],
            _force(names, settings_prefix)))
    if candidate is not None and deployed is not None:
        result["note"] = _comparison_note(candidate, deployed, bundle, running.strip())
    if refusal is None:
        if before is None:
            result["reason"] = "{}: {} {} (floor {}; {})".format(
                bundle, words, _figure(value), min_ap,
                "{} has no evaluation to compare".format(running.strip()) if deployed_version
                else "the kit runs no release yet")
        else:
            result["reason"] = "{}: {} {} against {} on {} (floor {}, allowed drop {})".format(
                bundle, words, _figure(value), _figure(before), running.strip(), min_ap,
                max_drop)
        return result
    if force:
        result.update(decision="forced", reason="{} is true, so deploying although {}".format(
            names["force_deploy"], refusal))
        return result
    result.update(ok=False, decision="refused", reason=refusal)
    return result
