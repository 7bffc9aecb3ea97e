"""VOC all-point average precision: the area under the precision envelope.

Sentinels (recall 0 and 1, precision 0) close the curve; each precision is raised to the
best precision at any higher recall; the area is summed where recall changes. This is the
VOC 2010+ measure the WIDER FACE tools use. A precision of NaN (0/0: no prediction at that
point) propagates through the envelope as it does in the tools; it only ever sits where
recall is still 0, so it does not reach the area.
"""

import numpy as np


def voc_ap(recall, precision):
    """AP of a PR curve given as arrays of recall (non-decreasing) and precision."""
    mrec = np.concatenate(([0.0], np.asarray(recall, dtype=np.float64), [1.0]))
    mpre = np.concatenate(([0.0], np.asarray(precision, dtype=np.float64), [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    changes = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[changes + 1] - mrec[changes]) * mpre[changes + 1]))
