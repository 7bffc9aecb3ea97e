"""A plain-loop reference of facekit.eval.voc, written from the definitions: the VOC
devkit's all-point AP (precision envelope, area where recall changes) and the Object
Detection API's greedy matching (best score first, each detection to its highest-IoU box,
a box found once). Python floats and lists only, no numpy, so it shares no code with the
module it checks."""


def iou(a, b):
    ymin, xmin = max(a[0], b[0]), max(a[1], b[1])
    ymax, xmax = min(a[2], b[2]), min(a[3], b[3])
    inter = max(ymax - ymin, 0.0) * max(xmax - xmin, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def all_point_ap(recall, precision):
    mrec = [0.0] + list(recall) + [1.0]
    mpre = [0.0] + list(precision) + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec))
               if mrec[i] != mrec[i - 1])


def class_ap(images, cls, threshold=0.5):
    """images: [(gt [(box, label)], dets [(box, score, label)])]; the AP of class cls."""
    ranked = []  # (score, order, is true positive)
    objects = 0
    order = 0
    for gts, dets in images:
        boxes = [box for box, label in gts if label == cls]
        objects += len(boxes)
        taken = [False] * len(boxes)
        mine = [(score, box) for box, score, label in dets if label == cls]
        # Stable: equal scores keep their order (as the ranking below does).
        mine = sorted(enumerate(mine), key=lambda item: -item[1][0])
        for _, (score, box) in mine:
            best, best_iou = -1, -1.0
            for j, gt in enumerate(boxes):
                value = iou(box, gt)
                if value > best_iou:
                    best, best_iou = j, value
            hit = best >= 0 and best_iou >= threshold and not taken[best]
            if hit:
                taken[best] = True
            ranked.append((score, order, hit))
            order += 1
    if not objects:
        return float("nan")
    # Ranked over all images as the module does: stable by score, highest first, where
    # ties keep image order, then the within-image order of the matching above.
    ranked.sort(key=lambda item: (-item[0], item[1]))
    tp = 0
    recall, precision = [], []
    for count, (_, _, hit) in enumerate(ranked, start=1):
        tp += hit
        recall.append(tp / objects)
        precision.append(tp / count)
    return all_point_ap(recall, precision)
