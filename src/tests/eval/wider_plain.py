"""The WIDER FACE protocol as a plain Python loop over images, predictions and thresholds:
the reference facekit.eval.wider is checked against (tests) and timed against
(benchmarks/bench_eval.py). Written from the protocol's description, on Python floats.

Inputs are plain lists: `images` [(faces [(x, y, w, h)], {setting: set of 0-based counted
faces})], `face_counts` {setting: faces counted}, `predictions` [[(x, y, w, h, score)]] in
the same image order.
"""

SETTINGS = ("easy", "medium", "hard")


def normalise(predictions):
    low, high = 1.0, 0.0
    for rows in predictions:
        for row in rows:
            low = min(low, row[4])
            high = max(high, row[4])
    out = []
    for rows in predictions:
        image = []
        for x, y, w, h, score in rows:
            try:
                image.append((x, y, w, h, (score - low) / (high - low)))
            except ZeroDivisionError:
                image.append((x, y, w, h, float("nan")))
        out.append(image)
    return out


def iou(pred, face):
    px1, py1 = pred[0], pred[1]
    px2, py2 = px1 + pred[2], py1 + pred[3]
    fx1, fy1 = face[0], face[1]
    fx2, fy2 = fx1 + face[2], fy1 + face[3]
    iw = min(px2, fx2) - max(px1, fx1) + 1
    if iw <= 0:
        return 0.0
    ih = min(py2, fy2) - max(py1, fy1) + 1
    if ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((px2 - px1 + 1) * (py2 - py1 + 1) + (fx2 - fx1 + 1) * (fy2 - fy1 + 1)
                    - inter)


def image_walk(rows, faces, counted, iou_threshold=0.5):
    """Per prediction (file order): (proposals so far, faces found so far)."""
    found = set()
    proposals = 0
    out = []
    for row in rows:
        best, best_iou = 0, -1.0
        for k, face in enumerate(faces):
            value = iou(row, face)
            if value > best_iou:
                best, best_iou = k, value
        ignored = False
        if best_iou >= iou_threshold:
            if best in counted:
                found.add(best)
            else:
                ignored = True
        if not ignored:
            proposals += 1
        out.append((proposals, len(found)))
    return out


def voc_ap(recall, precision):
    mrec = [0.0] + list(recall) + [1.0]
    mpre = [0.0] + list(precision) + [0.0]
    for i in range(len(mpre) - 1, 0, -1):
        # NaN (0/0) wins, as numpy's maximum makes it win.
        if mpre[i] != mpre[i] or mpre[i - 1] != mpre[i - 1]:
            mpre[i - 1] = float("nan")
        else:
            mpre[i - 1] = max(mpre[i - 1], mpre[i])
    ap = 0.0
    for i in range(len(mrec) - 1):
        if mrec[i + 1] != mrec[i]:
            ap += (mrec[i + 1] - mrec[i]) * mpre[i + 1]
    return ap


def evaluate(images, face_counts, predictions, thresholds=1000):
    """{setting: AP}, {setting: (precision list, recall list)}."""
    predictions = normalise(predictions)
    aps, curves = {}, {}
    for setting in SETTINGS:
        proposed = [0] * thresholds
        found = [0] * thresholds
        for (faces, counted), rows in zip(images, predictions):
            if not faces or not rows:
                continue
            walk = image_walk(rows, faces, counted[setting])
            for t in range(thresholds):
                limit = 1 - (t + 1) / thresholds
                for h in range(len(rows) - 1, -1, -1):
                    if rows[h][4] >= limit:
                        proposed[t] += walk[h][0]
                        found[t] += walk[h][1]
                        break
        precision = [f / p if p else float("nan") for f, p in zip(found, proposed)]
        recall = [f / face_counts[setting] if face_counts[setting] else float("nan")
                  for f in found]
        aps[setting] = voc_ap(recall, precision)
        curves[setting] = (precision, recall)
    return aps, curves


def from_arrays(truth, preds):
    """The plain lists of a facekit GroundTruth and Predictions."""
    images = []
    for i in range(len(truth.images)):
        lo, hi = int(truth.face_start[i]), int(truth.face_start[i + 1])
        faces = [tuple(float(v) for v in box) for box in truth.boxes[lo:hi]]
        counted = {s: {k for k in range(hi - lo) if truth.kept[s][lo + k]} for s in SETTINGS}
        images.append((faces, counted))
    rows = []
    for i in range(len(truth.images)):
        lo, hi = int(preds.pred_start[i]), int(preds.pred_start[i + 1])
        rows.append([tuple(float(v) for v in box) + (float(score),)
                     for box, score in zip(preds.boxes[lo:hi], preds.scores[lo:hi])])
    return images, dict(truth.face_counts), rows
