"""The SSD decoder's inputs, read in every form the bonnet and its callers give them.

Dense: the box encodings [N, 4] (concat) and the class logits [N, 1 + C] (concat_1) as
arrays, nested lists or the flat `data` of the FloatTensors (only the rows a frame needs
are converted: struct, not np.asarray, on lists). Sparse: the logits' hits as (anchor,
class, logit) and the box encodings of those anchors. Also the anchor table, and
DecodeError, which every part of the decoder raises for inputs it cannot use.

The public functions here are the decoder's parts (facekit.detector.decode and boxes
call them; other code calls decode_dense and decode_sparse); the names with an underscore
stay in this module. Python 3.5 and numpy only: this runs on the kit.
"""

import struct

import numpy as np

from facekit.model.anchors_file import read_anchors
from facekit.model.errors import ModelError


class DecodeError(ModelError):
    """Output tensors or an anchor table the decoder cannot use."""


def load_anchors(path):
    """The anchor table of an anchors.txt as a float32 array [N, 4] (ymin xmin ymax xmax).

    AnchorsFileError (facekit.model.anchors_file) names the file and line of a malformed
    row.
    """
    return np.array(read_anchors(path), dtype=np.float32)


def anchor_table(anchors):
    """anchors as an array [N, 4] (a float array as given, anything else as float64);
    DecodeError if it is not such a table. Callers convert the rows they use."""
    if isinstance(anchors, np.ndarray) and anchors.dtype.kind == "f":
        table = anchors
    else:
        table = np.asarray(anchors, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != 4 or not table.shape[0]:
        raise DecodeError("anchors: expected an array [N, 4] (ymin xmin ymax xmax), got shape "
                          "{}: load it with load_anchors(path)".format(table.shape))
    return table


def _packed(values):
    """A flat sequence of numbers (a list, a tuple, a FloatTensor's repeated `data`) as a
    float64 array, or None if it is not one. Much faster than np.asarray on a list."""
    try:
        count = len(values)
        if not count:
            return None
        return np.frombuffer(struct.pack("{}d".format(count), *values), dtype=np.float64)
    except (struct.error, TypeError, ValueError, OverflowError):
        return None


def _flat_floats(values):
    """A flat sequence of numbers as a tuple of Python floats, or None if it is not one
    (struct converts them all in C: numpy scalars and ints too)."""
    try:
        fmt = "{}d".format(len(values))
        return struct.unpack(fmt, struct.pack(fmt, *values))
    except (struct.error, TypeError, ValueError, OverflowError):
        return None


def encodings_array(box_encodings, count):
    """box_encodings as float64 [count, 4]; a flat list of 4 * count floats is accepted."""
    enc = None if isinstance(box_encodings, np.ndarray) else _packed(box_encodings)
    if enc is None:
        enc = np.asarray(box_encodings, dtype=np.float64)
    if enc.ndim == 1 and enc.size == 4 * count:
        enc = enc.reshape(count, 4)
    if enc.ndim != 2 or enc.shape != (count, 4):
        _bad_box_encodings(count, enc.shape)
    return enc


def _bad_box_encodings(count, shape):
    raise DecodeError(
        "box_encodings: expected shape ({}, 4) (one (ty, tx, th, tw) per anchor) or {} "
        "flat floats, got shape {}: the anchors table does not belong to this model; "
        "use the anchors.txt of the same bundle".format(count, 4 * count, shape))


def encoding_source(box_encodings, count):
    """What encoding_rows reads: an array [count, 4] as given, or a flat sequence of
    4 * count numbers left as it is (only the candidates' rows get converted). Checks the
    shape only; DecodeError as box_encodings."""
    if isinstance(box_encodings, np.ndarray):
        enc = box_encodings
        if enc.ndim == 1 and enc.size == 4 * count:
            enc = enc.reshape(count, 4)
        if enc.ndim != 2 or enc.shape != (count, 4):
            _bad_box_encodings(count, enc.shape)
        return enc
    try:
        flat = len(box_encodings) == 4 * count
    except TypeError:
        flat = False
    return box_encodings if flat else encodings_array(box_encodings, count)


def encoding_rows(source, rows):
    """float64 [len(rows), 4]: the rows (anchor numbers, a list of ints) of an
    encoding_source."""
    if not isinstance(source, np.ndarray):
        flat = []
        extend = flat.extend
        for row in rows:
            start = 4 * row
            extend(source[start:start + 4])
        enc = _packed(flat)
        if enc is not None and enc.size == 4 * len(rows):
            return enc.reshape(-1, 4)
        source = encodings_array(source, len(source) // 4)
    return source.take(rows, 0).astype(np.float64)


def flat_encoding_rows(source, rows):
    """The encodings of rows (anchor numbers) of an encoding_source as one flat tuple of
    Python floats, or None if they do not convert (the numpy way then says why)."""
    if isinstance(source, np.ndarray):
        return tuple(source.take(rows, 0).astype(np.float64).ravel().tolist())
    flat = []
    extend = flat.extend
    for row in rows:
        start = 4 * row
        extend(source[start:start + 4])
    if len(flat) != 4 * len(rows):
        return None
    return _flat_floats(flat)


def _class_logits(class_logits, count):
    """class_logits as float64 [count, 1 + C]; a flat list of count * (1 + C) is accepted."""
    logits = None if isinstance(class_logits, np.ndarray) else _packed(class_logits)
    if logits is None:
        logits = np.asarray(class_logits, dtype=np.float64)
    if logits.ndim == 1 and logits.size and logits.size % count == 0:
        logits = logits.reshape(count, -1)
    if logits.ndim != 2 or logits.shape[0] != count or logits.shape[1] < 2:
        raise DecodeError(
            "class_logits: expected shape ({}, 1 + classes) with the background first, got "
            "shape {}: the anchors table does not belong to this model, or the tensor is not "
            "the class logits (concat_1)".format(count, logits.shape))
    return logits


def _array_if_cheap(values):
    """values as an array when they convert to one cheaply (they have __array__, as the
    repeated fields of protobuf >= 4 do: a copy of their float32 buffer), else as given
    (a list, or the repeated field of an older protobuf, is read element by element)."""
    if hasattr(values, "__array__") and not isinstance(values, np.ndarray):
        return np.asarray(values)
    return values


def best_logits(class_logits, count):
    """(best non-background logit per anchor, float64 [count]; the logits float64
    [count, 1 + C], or None for a one-class model) of the class logits of a frame of count
    anchors (an array, nested lists or a flat sequence). Of a flat list of a one-class
    model only the class column is converted."""
    class_logits = _array_if_cheap(class_logits)
    if not isinstance(class_logits, np.ndarray):
        try:
            column = class_logits[1::2] if len(class_logits) == 2 * count else None
        except (TypeError, ValueError, KeyError):
            column = None
        best = None if column is None else _packed(column)
        if best is not None and best.shape[0] == count:
            return best, None
    logits = _class_logits(class_logits, count)
    if logits.shape[1] == 2:
        return logits[:, 1], None
    return logits[:, 1:].max(axis=1), logits


def best_hits(hits, count):
    """{anchor: (class, logit)} of the best non-background hit of each anchor; DecodeError
    names a hit that is not (anchor, class, logit) or whose anchor is out of range."""
    best = {}
    for number, hit in enumerate(hits):
        try:
            anchor, class_id, logit = hit
            anchor, class_id, logit = int(anchor), int(class_id), float(logit)
        except (TypeError, ValueError):
            raise DecodeError("hits[{}]: expected (anchor, class, logit), got {!r}".format(
                number, hit)) from None
        if not 0 <= anchor < count:
            raise DecodeError("hits[{}]: anchor {} out of range: the anchors table has {} rows; "
                              "use the anchors.txt of the same bundle".format(
                                  number, anchor, count))
        if class_id < 1:
            continue
        current = best.get(anchor)
        # Lowest class on equal logits, as the dense path's argmax.
        if (current is None or logit > current[1]
                or (logit == current[1] and class_id < current[0])):
            best[anchor] = (class_id, logit)
    return best


def sparse_flat_encodings(ids, encodings):
    """The encodings of anchors ids as one flat tuple of Python floats; DecodeError names
    an anchor without one; None if one is not 4 numbers (sparse_encodings says why)."""
    flat = []
    extend = flat.extend
    for anchor in ids:
        row = encodings.get(anchor)
        if row is None:
            _missing_encoding(anchor)
        try:
            if len(row) != 4:
                return None
        except TypeError:
            return None
        extend(row)
    return _flat_floats(flat)


def _missing_encoding(anchor):
    raise DecodeError("box_encodings_by_anchor: no encoding for anchor {}, which has a "
                      "class hit: the boxes' sparse config must select the same anchors "
                      "as the logits' thresholding".format(anchor))


def sparse_encodings(ids, encodings):
    """float64 [K, 4] of the encodings of anchors ids (a list), from encodings {anchor:
    (ty, tx, th, tw)}; DecodeError names an anchor without one, or whose encoding is not 4
    floats."""
    rows = []
    for anchor in ids:
        row = encodings.get(anchor)
        if row is None:
            _missing_encoding(anchor)
        rows.append(row)
    try:
        fast = all(len(row) == 4 for row in rows)
    except TypeError:
        fast = False
    if fast:
        flat = []
        for row in rows:
            flat.extend(row)
        enc = _packed(flat)
        if enc is not None:
            return enc.reshape(-1, 4)
    checked = []
    for anchor, row in zip(ids, rows):
        encoding = np.asarray(row, dtype=np.float64).reshape(-1)
        if encoding.size != 4:
            raise DecodeError("box_encodings_by_anchor[{}]: expected 4 floats (ty, tx, th, tw), "
                              "got {}".format(anchor, encoding.size))
        checked.append(encoding)
    return np.array(checked)
