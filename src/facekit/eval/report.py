"""The pictures and page of `facekit eval run`: pr.png (precision-recall curve per class),
samples.png (a contact sheet: true positives, false positives and missed faces in three
colours) and report.html, which shows both beside the figures and reads offline (the
pictures are referenced relatively, in the same directory).

Drawn with Pillow only (no plotting library on the training host). Python 3.6.
"""

import html
import io

import numpy as np

from facekit import files
from facekit.eval import metrics

TRUE_POSITIVE = (0, 170, 0)
FALSE_POSITIVE = (220, 0, 0)
MISSED = (0, 90, 255)
DIFFICULT = (150, 150, 150)
CURVE_COLOURS = ((0, 90, 200), (220, 120, 0), (0, 150, 60), (160, 0, 160), (90, 90, 90))
THUMB = 320
COLUMNS = 3
SAMPLES = 9


def _font():
    from PIL import ImageFont  # noqa: PLC0415

    return ImageFont.load_default()


def draw_pr(per_class, labels, marks, path, size=(640, 480)):
    """pr.png: precision (y) over recall (x) per class, each class's points at the kit's
    thresholds marked. `marks`: [(legend, {class id: (recall, precision)})], the first
    drawn as a filled disc (the operating point), the others as rings (the fixed 0.5)."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    width, height = size
    left, right, top, bottom = 60, 20, 20, 50 + 14 * max(len(marks) - 1, 0)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = _font()

    def xy(recall, precision):
        return (left + recall * (width - left - right),
                height - bottom - precision * (height - top - bottom))

    for tick in range(11):
        value = tick / 10.0
        x, _ = xy(value, 0)
        _, y = xy(0, value)
        draw.line([xy(value, 0), xy(value, 1)], fill=(230, 230, 230))
        draw.line([xy(0, value), xy(1, value)], fill=(230, 230, 230))
        draw.text((x - 8, height - bottom + 6), "{:.1f}".format(value), fill="black", font=font)
        draw.text((left - 30, y - 6), "{:.1f}".format(value), fill="black", font=font)
    draw.rectangle([xy(0, 1), xy(1, 0)], outline="black")
    draw.text((width // 2 - 20, height - bottom + 20), "recall", fill="black", font=font)
    draw.text((4, top - 16 if top > 16 else 2), "precision", fill="black", font=font)
    for number, (cls, result) in enumerate(sorted(per_class.items())):
        colour = CURVE_COLOURS[number % len(CURVE_COLOURS)]
        if len(result.recall) and result.objects:
            # The envelope the AP integrates, as a step curve (at most ~2,000 steps).
            envelope = np.maximum.accumulate(result.precision[::-1])[::-1]
            keep = np.unique(np.linspace(0, len(envelope) - 1, 2000).round().astype(int))
            points = [xy(0, envelope[0])]
            for recall, precision in zip(result.recall[keep], envelope[keep]):
                x, y = xy(recall, precision)
                points.append((points[-1][0], y))
                points.append((x, y))
            draw.line(points, fill=colour, width=2)
        ap = "n/a" if not result.objects else "{:.3f}".format(result.ap)
        texts = []
        for mark_number, (legend, found) in enumerate(marks):
            point = found.get(cls)
            if not (point and point[0] is not None and point[1] is not None):
                continue
            x, y = xy(*point)
            box = [x - 4, y - 4, x + 4, y + 4]
            if mark_number == 0:
                draw.ellipse(box, fill=colour, outline="black")
            else:
                draw.ellipse(box, outline=colour, width=2)
            texts.append("{}: R {:.3f} P {:.3f}".format(legend, *point))
        draw.text((left + 8, height - bottom - 34 - 14 * number),
                  "  |  ".join(["{} AP@0.5 {}".format(labels[cls - 1], ap)] + texts), fill=colour,
                  font=font)
    for mark_number, (legend, _) in enumerate(marks):
        draw.text((left + 8, height - 18 - 14 * (len(marks) - 1 - mark_number)),
                  "{}: {}".format("filled disc" if mark_number == 0 else "ring", legend),
                  fill="black", font=font)
    with files.atomic_open(path, "wb") as fh:
        image.save(fh, "PNG")


def pick_samples(matches, count=SAMPLES):
    """Indexes of the images to show: those with the most errors (false positives plus
    missed faces) at the kit's thresholds, then those with the most faces found."""
    def errors(m):
        return (int((~m.det_true_positive & ~m.det_ignored).sum())
                + int((~m.gt_found & ~m.gt_difficult).sum()))

    ranked = sorted(range(len(matches)), key=lambda i: (
        -errors(matches[i]), -int(matches[i].gt_found.sum()), i))
    return sorted(ranked[:count])


def _thumbnail(encoded):
    from PIL import Image  # noqa: PLC0415

    image = Image.open(io.BytesIO(encoded))
    original = image.size
    image.draft("RGB", (THUMB, THUMB))
    image = image.convert("RGB")
    image.thumbnail((THUMB, THUMB))
    return image, original


def draw_samples(samples, path):
    """samples.png from [(encoded image bytes, title, voc.ImageDetections in pixels of the
    original image, voc.ImageMatch)]; VOC's difficult boxes and their detections in grey."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    font = _font()
    thumbs = [_thumbnail(encoded) for encoded, _, _, _ in samples]
    cell = THUMB + 8
    # Each row as tall as its tallest picture, plus its captions.
    heights = [max([t.height for t, _ in thumbs[i:i + COLUMNS]] or [THUMB]) + 22
               for i in range(0, max(len(thumbs), 1), COLUMNS)]
    sheet = Image.new("RGB", (COLUMNS * cell, sum(heights) + 28), "white")
    draw = ImageDraw.Draw(sheet)
    for number, ((_, title, image, matched), (thumb, (width, height))) in enumerate(
            zip(samples, thumbs)):
        scale = np.array([thumb.height / float(height), thumb.width / float(width)] * 2)
        tdraw = ImageDraw.Draw(thumb)
        for box, ok, difficult in zip(image.gt_boxes, matched.gt_found, matched.gt_difficult):
            if difficult:
                _box(tdraw, box * scale, DIFFICULT)
            elif not ok:
                _box(tdraw, box * scale, MISSED)
        for box, ok, ignored in zip(image.det_boxes, matched.det_true_positive,
                                    matched.det_ignored):
            _box(tdraw, box * scale, DIFFICULT if ignored
                 else TRUE_POSITIVE if ok else FALSE_POSITIVE)
        x = (number % COLUMNS) * cell + 4
        y = sum(heights[:number // COLUMNS]) + 4
        sheet.paste(thumb, (x, y))
        draw.text((x, y + thumb.height + 2), title[-52:], fill="black", font=font)
    legend_y = sheet.height - 18
    for number, (name, colour) in enumerate((("true positive", TRUE_POSITIVE),
                                             ("false positive", FALSE_POSITIVE),
                                             ("missed face", MISSED),
                                             ("not scored (difficult, left out)", DIFFICULT))):
        x = 8 + number * 150
        draw.rectangle([x, legend_y, x + 12, legend_y + 12], outline=colour, width=3)
        draw.text((x + 18, legend_y), name, fill="black", font=font)
    with files.atomic_open(path, "wb") as fh:
        sheet.save(fh, "PNG")


def _box(draw, box, colour):
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    draw.rectangle([xmin, ymin, max(xmax, xmin + 1), max(ymax, ymin + 1)], outline=colour,
                   width=2)


def _figure(value, digits=4):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "{:.{}f}".format(value, digits)
    return html.escape(str(value))


def _point_rows(doc):
    """The report's rows of the kit's view: the operating point beside the fixed score."""
    fixed = doc["at_deploy_threshold"]
    section = doc.get("operating_point") or {}
    chosen = doc.get("at_operating_point")
    views = [("at score > {}".format(fixed["threshold"]), fixed)]
    rows = []
    if chosen:
        rule = section.get("rule")
        rule = ("max F1" if rule == "max_f1" else
                "precision >= {}".format(section.get("min_precision")))
        for label, point in sorted((section.get("classes") or {}).items()):
            rows.append(("operating point ({}): {}".format(rule, label),
                         "score > {}".format(point["threshold"]) if point["threshold"]
                         is not None else "none: {}; the kit uses {}".format(
                             point["reason"], fixed["threshold"])))
        views.insert(0, ("at the operating point", chosen))
    for words, view in views:
        rows += [("recall " + words, view["recall"]), ("precision " + words, view["precision"]),
                 ("false positives per image " + words, view["false_positives_per_image"])]
    kit = views[0][1]
    for name, _, _ in metrics.SIZE_BOUNDS:
        entry = kit["recall_by_size"][name]
        bounds = ("{:g} px and larger".format(entry["min_px"]) if entry["max_px"] is None
                  else "{:g} to under {:g} px".format(entry["min_px"], entry["max_px"]))
        rows.append(("recall {}, {} faces ({}, {} faces)".format(views[0][0], name, bounds,
                                                               entry["faces"]),
                     entry["recall"]))
    return rows


def write_html(doc, path):
    """report.html of an eval.json document `doc`, pictures beside it by relative name."""
    rows = [("bundle", "{} {}".format(doc["bundle"]["name"], doc["bundle"]["version"])),
            ("images", doc["images"]), ("mean AP at IoU 0.5", doc["mean_ap"])]
    rows += [("AP at IoU 0.5: " + label, ap) for label, ap in sorted(doc["ap"].items())]
    if doc.get("wider"):
        rows += [("WIDER FACE " + s, doc["wider"][s]) for s in ("easy", "medium", "hard")]
    rows += _point_rows(doc)
    table = "\n".join("<tr><th>{}</th><td>{}</td></tr>".format(html.escape(name), _figure(value))
                      for name, value in rows)
    records = "\n".join("<li><code>{}</code> sha256 {}</li>".format(
        html.escape(r["path"]), r["sha256"]) for r in doc["records"])
    page = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>facekit eval: {title}</title>
<style>body{{font-family:sans-serif;margin:2em}} th{{text-align:left;padding-right:2em}}
td{{font-family:monospace}} img{{max-width:100%;border:1px solid #ccc}}</style></head>
<body><h1>facekit eval: {title}</h1>
<table>
{table}
</table>
<h2>Precision and recall</h2>
<p>Every detection the kit's decoder gives above {low} (so the ranking is whole); the
disc marks the operating point the kits run (eval.json's operating_point, carried with the
bundle), the ring the fixed score {fixed} for comparison.</p>
<img src="pr.png" alt="precision-recall curve">
<h2>Samples</h2>
<p>Green: true positive, red: false positive, blue: missed face, at the operating point;
the images with the most errors.</p>
<img src="samples.png" alt="contact sheet of sample images">
<h2>Records</h2>
<ul>
{records}
</ul>
</body></html>
""".format(title=html.escape("{} {}".format(doc["bundle"]["name"], doc["bundle"]["version"])),
           table=table, low=doc["score_threshold"], records=records,
           fixed=doc["at_deploy_threshold"]["threshold"])
    with files.atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(page)
