"""facekit.eval.records reads VOC's difficult flag the way facekit.dataset.tfrecord writes it."""

import pytest

from facekit.eval import records

tf = pytest.importorskip("tensorflow")


def example(boxes, difficult=None):
    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"jpeg"])),
        "image/filename": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a.jpg"])),
        "image/width": ints([640]), "image/height": ints([480]),
        "image/object/class/label": ints([1] * len(boxes)),
    }
    for number, key in enumerate(("ymin", "xmin", "ymax", "xmax")):
        feature["image/object/bbox/" + key] = floats([b[number] for b in boxes])
    if difficult is not None:
        feature["image/object/difficult"] = ints(difficult)
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


BOXES = [(0.1, 0.1, 0.2, 0.2), (0.5, 0.5, 0.9, 0.9)]


def test_the_difficult_flags_are_read_and_absent_ones_are_false():
    record = records.parse_example(tf, example(BOXES, [0, 1]), "v.record", 3, 7)
    assert record.difficult.tolist() == [False, True]
    assert records.parse_example(tf, example(BOXES), "v.record", 0, 0).difficult.tolist() == [
        False, False]


def test_flags_that_do_not_fit_the_boxes_name_the_record():
    with pytest.raises(records.RecordError, match=r"v.record: record 3 \(a.jpg\): 2 boxes but "
                                                  r"1 image/object/difficult flags"):
        records.parse_example(tf, example(BOXES, [1]), "v.record", 3, 7)
