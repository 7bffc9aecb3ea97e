"""`convert`: what it writes (CSV, VOC, TFRecord, label map, manifest), what it drops and why."""

import errno
import hashlib
import json
import logging
import os

import pytest
from helpers import STANDARD, face, raw_records, read_records, tree_bytes

from facekit import files
from facekit.dataset import tfrecord, voc
from facekit.dataset.convert import convert
from facekit.dataset.errors import AnnotationError, ImageError
from facekit.dataset.filters import DEFAULT_FILTERS, FilterConfig
from facekit.dataset.voc import read_annotation

A, B, C, D, E, F = (path for path, _, _ in STANDARD)

# What the default filters keep of STANDARD, as clipped pixel-edge boxes.
EXPECTED_BOXES = {
    A: [(10, 20, 70, 90), (280, 200, 320, 240)],
    D: [(0, 100, 90, 220)],
    F: [(0, 0, 256, 256)],
}
EXPECTED_CSV = (
    "filename,width,height,class,xmin,ymin,xmax,ymax\n"
    "0--Parade/0_Parade_a.jpg,320,240,face,10,20,70,90\n"
    "0--Parade/0_Parade_a.jpg,320,240,face,280,200,320,240\n"
    "1--Handshaking/1_Handshaking_d.jpg,400,300,face,0,100,90,220\n"
    "2--Demonstration/2_Demonstration_f.png,256,256,face,0,0,256,256\n"
)


def run(wider, out, **kwargs):
    kwargs.setdefault("progress", False)
    return convert(wider.annotations, wider.images, str(out), **kwargs)


def assert_counts_add_up(entry):
    for what in ("images", "faces"):
        part = entry[what]
        assert part["kept"] + sum(part["dropped"].values()) == part["total"], what


def test_counts_by_reason(wider, tmp_path):
    entry = run(wider, tmp_path / "out")
    assert entry["images"] == {
        "total": 6, "kept": 3,
        "dropped": {"missing": 0, "unreadable": 0, "corrupt": 0, "no_faces": 3}}
    assert entry["faces"] == {
        "total": 10, "kept": 4,
        "dropped": {"invalid": 1, "blur": 2, "degenerate": 2, "small": 1, "image_missing": 0,
                    "image_unreadable": 0, "image_corrupt": 0}}
    assert_counts_add_up(entry)


def test_csv_rows(wider, tmp_path):
    run(wider, tmp_path / "out")
    assert (tmp_path / "out" / "val_labels.csv").read_text() == EXPECTED_CSV


def test_voc_xml_parses_back(wider, tmp_path):
    run(wider, tmp_path / "out")
    voc = tmp_path / "out" / "val_voc"
    ids = (voc / "ImageSets" / "Main" / "val.txt").read_text().split()
    assert ids == [os.path.splitext(p)[0] for p in (A, D, F)]
    for path in (A, D, F):
        xml = voc / "Annotations" / (os.path.splitext(path)[0] + ".xml")
        filename, width, height, objects = read_annotation(str(xml))
        assert filename == path
        assert (width, height) == wider.sizes[path]
        assert [o[1:] for o in objects] == EXPECTED_BOXES[path]
        assert {o[0] for o in objects} == {"face"}
    # the clipped box says so
    text = (voc / "Annotations" / "0--Parade" / "0_Parade_a.xml").read_text()
    assert text.count("<truncated>1</truncated>") == 1


def test_label_map(wider, tmp_path):
    run(wider, tmp_path / "out")
    assert (tmp_path / "out" / "label_map.pbtxt").read_text() == (
        "item {\n  id: 1\n  name: 'face'\n}\n")


def test_tfrecord_round_trip(wider, tmp_path):
    run(wider, tmp_path / "out")
    records = read_records([tmp_path / "out" / "val.record"])
    assert [r["image/filename"] for r in records] == [p.encode() for p in (A, D, F)]
    for record, path in zip(records, (A, D, F)):
        width, height = wider.sizes[path]
        assert (record["image/width"], record["image/height"]) == (width, height)
        assert record["image/source_id"] == path.encode()
        assert record["image/encoded"] == wider.read(path)
        assert record["image/format"] == (b"png" if path.endswith(".png") else b"jpeg")
        boxes = EXPECTED_BOXES[path]
        assert record["image/object/class/text"] == [b"face"] * len(boxes)
        assert record["image/object/class/label"] == [1] * len(boxes)
        for key, index, size in (("xmin", 0, width), ("ymin", 1, height),
                                 ("xmax", 2, width), ("ymax", 3, height)):
            got = record["image/object/bbox/" + key]
            assert got == pytest.approx([b[index] / size for b in boxes], abs=1e-6), key
            assert all(0.0 <= v <= 1.0 for v in got)


def test_manifest(wider, tmp_path):
    entry = run(wider, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert manifest["splits"]["val"] == json.loads(json.dumps(entry))
    assert entry["filters"] == {"max_blur": 0, "min_size": 50, "keep_invalid": False,
                                "keep_empty": False}
    with open(wider.annotations, "rb") as fh:
        assert entry["inputs"]["annotations"]["sha256"] == hashlib.sha256(fh.read()).hexdigest()
    images = entry["inputs"]["images"]
    # c (0 faces) and b (all filtered) are never opened; e is opened, then left empty.
    assert images["images"] == 4
    expected = hashlib.sha256()
    for path in (A, D, E, F):
        data = wider.read(path)
        expected.update("{}\t{}\t{}\n".format(
            path, len(data), hashlib.sha256(data).hexdigest()).encode())
    assert images["sha256"] == expected.hexdigest()
    tfrecord = entry["outputs"]["tfrecord"]
    assert tfrecord["glob"] == "val.record"
    assert tfrecord["shards"] == [{"name": "val.record", "records": 3, "bytes": os.path.getsize(
        str(tmp_path / "out" / "val.record"))}]
    assert entry["tool"]["facekit"]
    assert entry["tool"]["tensorflow"]


def test_manifest_keeps_other_splits(wider, tmp_path):
    out = tmp_path / "out"
    run(wider, out)
    run(wider, out, split="train")
    manifest = json.loads((out / "dataset.json").read_text())
    assert sorted(manifest["splits"]) == ["train", "val"]
    assert (out / "train.record").is_file() and (out / "val.record").is_file()


def test_shards_round_robin_and_stale_shards_removed(wider, tmp_path):
    out = tmp_path / "out"
    run(wider, out)
    entry = run(wider, out, shards=2)
    names = ["val.record-00000-of-00002", "val.record-00001-of-00002"]
    assert [s["name"] for s in entry["outputs"]["tfrecord"]["shards"]] == names
    assert [s["records"] for s in entry["outputs"]["tfrecord"]["shards"]] == [2, 1]
    assert entry["outputs"]["tfrecord"]["glob"] == "val.record-?????-of-00002"
    assert [r["image/filename"] for r in read_records([out / names[0]])] == [
        A.encode(), F.encode()]
    assert [r["image/filename"] for r in read_records([out / names[1]])] == [D.encode()]
    # the single-shard file of the first run would match val.record* and be read twice
    assert not (out / "val.record").exists()


def test_deterministic_and_independent_of_workers(wider, tmp_path):
    run(wider, tmp_path / "one", shards=2)
    run(wider, tmp_path / "two", shards=2)
    run(wider, tmp_path / "par", shards=2, workers=2)
    one = tree_bytes(tmp_path / "one")
    assert one == tree_bytes(tmp_path / "two")
    assert one == tree_bytes(tmp_path / "par")
    assert not [name for name in one if ".tmp-" in name]


def test_early_writeback_does_not_change_the_records(wider, tmp_path, monkeypatch):
    run(wider, tmp_path / "plain", shards=2)
    calls = []
    real = files.start_writeback
    monkeypatch.setattr(tfrecord, "WRITEBACK_EVERY", 1)
    monkeypatch.setattr(files, "start_writeback", lambda path: calls.append(path) or real(path))
    run(wider, tmp_path / "nudged", shards=2)
    assert len(calls) == 3  # after every record: 2 in shard 0, 1 in shard 1
    assert tree_bytes(tmp_path / "nudged") == tree_bytes(tmp_path / "plain")


def test_records_are_serialized_with_sorted_feature_keys(wider, tmp_path):
    # The feature map's order is up to the protobuf runtime unless deterministic=True;
    # the training host's (protobuf 3.x C++) changes it from run to run.
    import tensorflow as tf  # noqa: PLC0415

    run(wider, tmp_path / "out")
    raws = raw_records([tmp_path / "out" / "val.record"])
    assert len(raws) == 3
    for raw in raws:
        assert raw == tf.train.Example.FromString(raw).SerializeToString(deterministic=True)


def test_filter_flags(wider, tmp_path):
    config = FilterConfig(max_blur=2, min_size=0, keep_invalid=True, keep_empty=False)
    entry = run(wider, tmp_path / "out", config=config)
    assert entry["faces"]["kept"] == 8  # all but the two degenerate boxes
    assert entry["faces"]["dropped"]["degenerate"] == 2
    assert entry["images"]["kept"] == 4  # a, b, d, f
    assert entry["images"]["dropped"]["no_faces"] == 2  # c (no faces), e (box off the image)
    assert_counts_add_up(entry)


def test_keep_empty_writes_negatives(wider, tmp_path):
    config = DEFAULT_FILTERS._replace(keep_empty=True)
    entry = run(wider, tmp_path / "out", config=config)
    assert entry["images"]["kept"] == 6
    assert entry["images"]["dropped"]["no_faces"] == 0
    assert entry["faces"]["kept"] == 4
    records = read_records([tmp_path / "out" / "val.record"])
    by_name = {r["image/filename"].decode(): r for r in records}
    assert [r["image/filename"].decode() for r in records] == [A, B, C, D, E, F]
    for empty in (B, C, E):
        assert by_name[empty]["image/object/bbox/xmin"] == []
        assert by_name[empty]["image/object/class/label"] == []
        assert by_name[empty]["image/encoded"] == wider.read(empty)
    csv = (tmp_path / "out" / "val_labels.csv").read_text()
    assert "0--Parade/0_Parade_b.jpg,200,150,,,,,\n" in csv


def test_missing_and_corrupt_images_are_counted_and_logged(wider, tmp_path, caplog):
    os.remove(os.path.join(wider.images, D))
    with open(os.path.join(wider.images, A), "r+b") as fh:
        # cut inside the image data: the header still reads, the end marker is gone
        fh.truncate(len(wider.read(A)) - 200)
    caplog.set_level(logging.WARNING, logger="facekit")
    entry = run(wider, tmp_path / "out")
    assert entry["images"]["kept"] == 1
    assert entry["images"]["dropped"]["missing"] == 1
    assert entry["images"]["dropped"]["corrupt"] == 1
    assert entry["faces"]["dropped"]["image_missing"] == 1  # d's one surviving face
    assert entry["faces"]["dropped"]["image_corrupt"] == 2  # a's two faces
    # d's zero-size box (on the annotation, before the image is opened) and e's box
    assert entry["faces"]["dropped"]["degenerate"] == 2
    assert_counts_add_up(entry)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(D in m and "no such file" in m and "line 13 of" in m for m in messages), messages
    assert any(A in m and "truncated JPEG" in m and "line 1 of" in m for m in messages), messages
    assert [r["image/filename"] for r in read_records([tmp_path / "out" / "val.record"])] == [
        F.encode()]


def test_strict_fails_and_keeps_the_previous_complete_output(wider, tmp_path):
    out = tmp_path / "out"
    run(wider, out)
    before = tree_bytes(out)
    with open(os.path.join(wider.images, F), "wb") as fh:
        fh.write(b"not an image")
    with pytest.raises(ImageError) as info:
        run(wider, out, strict=True, shards=1)
    message = str(info.value)
    assert F in message and "unreadable image header" in message
    assert "line 20 of {}".format(wider.annotations) in message
    # nothing half-written, no temporaries left behind, the old run untouched
    assert tree_bytes(out) == before


def test_a_failed_xml_write_keeps_the_previous_complete_output(wider, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run(wider, out)
    before = tree_bytes(out)
    real_write = voc._write_file
    calls = []

    def disk_full_on_the_second_file(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        real_write(path, data)

    monkeypatch.setattr(voc, "_write_file", disk_full_on_the_second_file)
    with pytest.raises(OSError) as info:
        run(wider, out)
    assert info.value.errno == errno.ENOSPC
    assert tree_bytes(out) == before


def test_malformed_annotations_leave_no_output(wider, tmp_path):
    with open(wider.annotations, "ab") as fh:
        fh.write(b"3--Riot/x.jpg\n2\n1 2 3 4 0 0 0 0 0 0 \n")
    out = tmp_path / "out"
    with pytest.raises(AnnotationError) as info:
        run(wider, out)
    assert str(info.value) == (
        "{}:27: unexpected end of file: expected 10 integers for face 2 of "
        "3--Riot/x.jpg".format(wider.annotations))
    assert tree_bytes(out) == {}


def test_crlf_annotations_give_the_same_output(wider, tmp_path):
    run(wider, tmp_path / "lf")
    wider.write_annotations([(p, faces) for p, _, faces in STANDARD], crlf=True)
    run(wider, tmp_path / "crlf")
    lf, crlf = tree_bytes(tmp_path / "lf"), tree_bytes(tmp_path / "crlf")
    # Only the manifest differs: it records the annotation file's checksum and size.
    assert {k for k in lf if lf[k] != crlf[k]} == {"dataset.json"}
    assert raw_records([tmp_path / "lf" / "val.record"])


def test_split_from_file_name_or_error(wider, tmp_path):
    renamed = os.path.join(os.path.dirname(wider.annotations), "faces.txt")
    os.rename(wider.annotations, renamed)
    with pytest.raises(Exception, match="cannot tell the split from the file name"):
        convert(renamed, wider.images, str(tmp_path / "out"), progress=False)
    entry = convert(renamed, wider.images, str(tmp_path / "out"), split="mine", progress=False)
    assert entry["split"] == "mine"
    assert (tmp_path / "out" / "mine.record").is_file()


def test_many_images_with_workers_keep_order(make_tree, tmp_path):
    # More images than one in-flight window, so batching and ordering are exercised.
    tree = make_tree()
    entries = []
    for i in range(150):
        path = "{}--Event/{}_img_{:03d}.jpg".format(i % 3, i % 3, i)
        tree.add_image(path, 64 + i % 7, 60, seed=i)
        entries.append((path, [face(1, 1, 50 + i % 5, 40)] if i % 10 else []))
    tree.write_annotations(entries)
    entry = convert(tree.annotations, tree.images, str(tmp_path / "out"), workers=2,
                    progress=False)
    assert entry["images"]["kept"] == 135
    names = [r["image/filename"].decode() for r in read_records([tmp_path / "out" / "val.record"])]
    assert names == [p for p, faces in entries if faces]


def test_a_dying_worker_fails_instead_of_hanging():
    from facekit.dataset.errors import DatasetError  # noqa: PLC0415
    from facekit.dataset.parallel import ordered_map  # noqa: PLC0415

    with pytest.raises(DatasetError, match="a --workers process exited unexpectedly"):
        # os._exit is picklable by reference: the workers import nothing of ours to die
        list(ordered_map(os._exit, range(10), lambda i: 3, workers=2))
