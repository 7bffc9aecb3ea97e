"""`convert --format voc`: a LabelImg / Pascal VOC folder with the quirks people's folders have
-> records, CSVs, label map and dataset.json with per-class counts, and clear refusals."""

import json
import os

import pytest
import tensorflow as tf
from helpers import raw_records, read_records, tree_bytes
from vocfolder import BOM, Tree, obj, quirky, xml

from facekit.cli import main
from facekit.dataset import vocsource
from facekit.dataset.errors import AnnotationError, DatasetError, ImageError
from facekit.dataset.vocconvert import convert_voc
from facekit.dataset.vocxml import parse_bytes


def convert(root, out, **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("val_fraction", 0.3)
    return convert_voc(str(root), str(out), **kwargs)


def all_records(out):
    return read_records(sorted(str(p) for p in out.glob("*.record*")))


def extra_features(paths):
    """difficult, truncated, view and key per record (not in helpers' common feature set)."""
    found = []
    for raw in tf.data.TFRecordDataset([str(p) for p in paths]):
        feature = tf.train.Example.FromString(raw.numpy()).features.feature
        found.append({
            "filename": feature["image/filename"].bytes_list.value[0].decode(),
            "format": feature["image/format"].bytes_list.value[0].decode(),
            "text": [v.decode() for v in feature["image/object/class/text"].bytes_list.value],
            "label": list(feature["image/object/class/label"].int64_list.value),
            "difficult": list(feature["image/object/difficult"].int64_list.value),
            "truncated": list(feature["image/object/truncated"].int64_list.value),
            "view": [v.decode() for v in feature["image/object/view"].bytes_list.value],
            "key": feature["image/key/sha256"].bytes_list.value[0].decode(),
            "xmin": list(feature["image/object/bbox/xmin"].float_list.value),
            "ymax": list(feature["image/object/bbox/ymax"].float_list.value),
        })
    return found


def both(out):
    recs = []
    for split in ("train", "val"):
        recs += extra_features(sorted(out.glob(split + ".record*")))
    return {r["filename"]: r for r in recs}


def test_counts_classes_and_label_map(tmp_path):
    quirky(tmp_path / "voc")
    entries = convert(tmp_path / "voc", tmp_path / "out")
    train, val = entries["train"], entries["val"]
    assert train["labels"] == val["labels"] == ["bird", "cat", "dog"]
    images = {k: train["images"][k] + val["images"][k] for k in ("total", "kept")}
    assert images == {"total": 10, "kept": 8}
    dropped = {k: train["images"]["dropped"][k] + val["images"]["dropped"][k]
               for k in train["images"]["dropped"]}
    assert dropped == {"missing": 1, "unreadable": 0, "corrupt": 0, "no_objects": 1}
    objects = {k: train["objects"]["dropped"][k] + val["objects"]["dropped"][k]
               for k in train["objects"]["dropped"]}
    assert objects == {"unknown_label": 0, "degenerate": 1, "image_missing": 1,
                       "image_unreadable": 0, "image_corrupt": 0}
    assert train["objects"]["total"] + val["objects"]["total"] == 12
    assert train["objects"]["kept"] + val["objects"]["kept"] == 10
    per_class = {name: train["classes"][name]["objects"] + val["classes"][name]["objects"]
                 for name in train["labels"]}
    assert per_class == {"bird": 2, "cat": 5, "dog": 3}
    assert train["classes"]["bird"]["id"] == 1 and train["classes"]["dog"]["id"] == 3
    assert sum(e["classes"]["dog"]["difficult"] for e in entries.values()) == 1
    label_map = (tmp_path / "out" / "label_map.pbtxt").read_text()
    assert label_map == ("item {\n  id: 1\n  name: 'bird'\n}\nitem {\n  id: 2\n  name: 'cat'\n}\n"
                         "item {\n  id: 3\n  name: 'dog'\n}\n")
    manifest = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert manifest["splits"]["train"] == json.loads(json.dumps(train))
    assert manifest["splits"]["val"]["format"] == "voc"
    for entry in entries.values():
        for what in ("images", "objects"):
            part = entry[what]
            assert part["kept"] + sum(part["dropped"].values()) == part["total"]


def test_records_keep_classes_flags_and_real_format(tmp_path):
    quirky(tmp_path / "voc")
    convert(tmp_path / "voc", tmp_path / "out")
    records = both(tmp_path / "out")
    assert set(records) == {"a/cat1.jpg", "a/cat2.jpg", "a/dog1.jpeg", "a/bird1.jpg",
                            "b/cat3.jpg", "b/dog2.jpg", "b/bird2.png", "b/cat4.jpg"}
    cat1 = records["a/cat1.jpg"]
    assert cat1["text"] == ["cat", "dog"] and cat1["label"] == [2, 3]
    assert cat1["difficult"] == [0, 1] and cat1["view"] == ["Left", "Unspecified"]
    assert len(cat1["key"]) == 64
    assert records["a/bird1.jpg"]["format"] == "png"  # a PNG named .jpg
    assert records["a/cat2.jpg"]["xmin"] == [pytest.approx(10.0 / 200)]
    # <size> said 200x100 for a 400x200 image: the box is scaled with it.
    assert records["b/cat3.jpg"]["xmin"] == [pytest.approx(20.0 / 400)]
    dog2 = records["b/dog2.jpg"]
    assert dog2["text"] == ["dog", "cat"] and dog2["truncated"] == [1, 1]
    assert dog2["xmin"][0] == 0.0
    # Images found by the stem of <filename> and by the XML's own stem.
    assert records["a/dog1.jpeg"]["text"] == ["dog"]
    assert records["b/bird2.png"]["text"] == ["bird"]


def test_warnings_and_csv(tmp_path):
    quirky(tmp_path / "voc")
    entries = convert(tmp_path / "voc", tmp_path / "out")
    warnings = entries["train"]["warnings"] + entries["val"]["warnings"]
    assert len(warnings) == 1 and "cat3.xml" in warnings[0] and "200x100" in warnings[0] \
        and "400x200" in warnings[0]
    rows = [line for split in ("train", "val")
            for line in (tmp_path / "out" / (split + "_labels.csv")).read_text().splitlines()[1:]]
    assert len(rows) == 10
    assert any(row.startswith("b/cat3.jpg,400,200,cat,20.0,20.0,120.0,100.0") for row in rows)


def test_keep_empty_and_missing_under_strict(tmp_path):
    quirky(tmp_path / "voc")
    entries = convert(tmp_path / "voc", tmp_path / "out", keep_empty=True)
    kept = entries["train"]["images"]["kept"] + entries["val"]["images"]["kept"]
    assert kept == 9
    assert "b/empty.jpg" in both(tmp_path / "out")
    with pytest.raises(ImageError, match="gone"):
        convert(tmp_path / "voc", tmp_path / "out2", strict=True)


def test_unknown_labels_fail_then_drop(tmp_path):
    quirky(tmp_path / "voc")
    out = tmp_path / "out"
    convert(tmp_path / "voc", out)  # an earlier good run
    previous = tree_bytes(out)
    with pytest.raises(DatasetError) as caught:
        convert(tmp_path / "voc", out, labels=["cat", "dog"])
    message = str(caught.value)
    assert "2 object(s)" in message and "'bird'" in message and "--unknown-labels drop" in message
    for name in ("bird1.xml", "bird2.xml"):
        path = os.path.join(str(tmp_path / "voc"), "a" if name == "bird1.xml" else "b", name)
        assert "{}:".format(path) in message
    assert tree_bytes(out) == previous  # nothing written, the earlier outputs intact
    entries = convert(tmp_path / "voc", out, labels=["cat", "dog"], unknown_labels="drop")
    dropped = sum(e["objects"]["dropped"]["unknown_label"] for e in entries.values())
    assert dropped == 2
    assert entries["train"]["labels"] == ["cat", "dog"]
    no_objects = sum(e["images"]["dropped"]["no_objects"] for e in entries.values())
    assert no_objects == 3  # the empty image and the two bird-only ones


def test_label_map_file_gives_the_ids(tmp_path):
    quirky(tmp_path / "voc")
    label_map = tmp_path / "label_map.pbtxt"
    label_map.write_text("# mine\nitem { id: 2 name: 'cat' display_name: 'Cat' }\n"
                         "item { id: 1 name: 'dog' }\nitem { id: 3 name: 'bird' }\n")
    entries = convert(tmp_path / "voc", tmp_path / "out", label_map=str(label_map))
    assert entries["train"]["labels"] == ["dog", "cat", "bird"]
    records = both(tmp_path / "out")
    assert records["a/cat1.jpg"]["label"] == [2, 1]
    bad = tmp_path / "bad.pbtxt"
    bad.write_text("item { id: 1 name: 'dog' }\nitem { id: 3 name: 'cat' }\n")
    with pytest.raises(DatasetError, match="bad.pbtxt.*1..2"):
        convert(tmp_path / "voc", tmp_path / "out", label_map=str(bad))


def test_malformed_xml_names_file_and_line(tmp_path):
    quirky(tmp_path / "voc")
    path = Tree(tmp_path / "voc").xml("b/broken.xml", xml("cat4.jpg", (150, 150), [
        obj("cat", 30, "thirty", 120, 120)]))
    with pytest.raises(AnnotationError) as caught:
        convert(tmp_path / "voc", tmp_path / "out")
    assert caught.value.filename == path and caught.value.lineno > 1
    assert "thirty" in str(caught.value)
    with open(path, "w") as fh:
        fh.write("<annotation><object><name>cat</name>\n<bndbox>\n</annotation>")
    with pytest.raises(AnnotationError, match="broken.xml:3: not well-formed"):
        convert(tmp_path / "voc", tmp_path / "out")
    assert not (tmp_path / "out" / "dataset.json").exists()


def test_same_input_same_bytes_workers_and_seed(tmp_path):
    quirky(tmp_path / "voc")
    convert(tmp_path / "voc", tmp_path / "one", shards=2)
    convert(tmp_path / "voc", tmp_path / "two", shards=2, workers=2)
    assert tree_bytes(tmp_path / "one") == tree_bytes(tmp_path / "two")
    first = convert(tmp_path / "voc", tmp_path / "s1", seed=1)
    assert first["val"]["options"] == {"unknown_labels": "fail", "keep_empty": False,
                                       "val_fraction": 0.3, "seed": 1}
    names = {seed: sorted(r["filename"] for r in extra_features(
        [tmp_path / "s{}".format(seed) / "val.record"])) for seed in (1,)}
    convert(tmp_path / "voc", tmp_path / "s2", seed=2)
    names[2] = sorted(r["filename"] for r in extra_features([tmp_path / "s2" / "val.record"]))
    assert names[1] != names[2]


def test_split_is_stable_and_exact():
    paths = ["/d/img{:03d}.xml".format(i) for i in range(100)]
    train, val = vocsource.split_files(paths, "/d", 0.2, 0)
    assert len(val) == 20 and len(train) == 80 and not set(train) & set(val)
    more_train, more_val = vocsource.split_files(paths + ["/d/new.xml"], "/d", 0.2, 0)
    assert len(set(val) - set(more_val)) <= 1
    with pytest.raises(DatasetError, match="at least 2"):
        vocsource.split_files(["/d/a.xml"], "/d", 0.2, 0)


def test_val_folder_of_its_own(tmp_path):
    quirky(tmp_path / "voc")
    held = Tree(tmp_path / "held")
    held.image("x.jpg", 100, 100, seed=11)
    held.xml("x.xml", xml("x.jpg", (100, 100), [obj("cat", 1, 1, 50, 50)]))
    entries = convert(tmp_path / "voc", tmp_path / "out", val_annotations=str(tmp_path / "held"))
    assert entries["val"]["images"]["kept"] == 1
    assert entries["train"]["images"]["total"] == 10
    assert entries["val"]["options"]["val_annotations"] == str(tmp_path / "held")


def test_parse_keeps_flags_and_ignores_extra_tags():
    text = BOM + xml("p.jpg", (10, 20), [obj("cat", "1.5", 2, 3, 4, difficult=1, truncated=1,
                                             pose="Rear", extra="<occluded>0</occluded>")],
                     head="<verified>yes</verified>").encode()
    ann = parse_bytes("p.xml", text)
    assert ann.filename == "p.jpg" and ann.size == (10, 20)
    (o,) = ann.objects
    assert (o.name, o.xmin, o.difficult, o.truncated, o.pose) == ("cat", 1.5, True, True, "Rear")
    with pytest.raises(AnnotationError, match="p.xml:1: expected <annotation>"):
        parse_bytes("p.xml", b"<voc/>")


def test_cli_voc(tmp_path, capsys):
    quirky(tmp_path / "voc")
    out = tmp_path / "out"
    status = main(["dataset", "convert", "--format", "voc", "--annotations",
                   str(tmp_path / "voc"), "--output-dir", str(out), "--labels", "bird,cat,dog",
                   "--val-fraction", "0.3", "--shards", "2", "--val-shards", "1",
                   "--source", "mine.zip=sha256:" + "0" * 64, "--no-progress"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "per class: bird" in printed and "classes (label_map.pbtxt ids 1..3)" in printed
    manifest = json.loads((out / "dataset.json").read_text())
    assert len(manifest["splits"]["train"]["outputs"]["tfrecord"]["shards"]) == 2
    assert manifest["splits"]["val"]["inputs"]["sources"] == {"mine.zip": "sha256:" + "0" * 64}
    assert main(["dataset", "convert", "--format", "voc", "--annotations",
                 str(tmp_path / "voc"), "--output-dir", str(out), "--labels", "cat",
                 "--no-progress"]) == 1
    assert "bird" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["dataset", "convert", "--format", "voc", "--annotations", str(tmp_path / "voc"),
              "--output-dir", str(out), "--max-blur", "1"])
    assert usage.value.code == 2
    with pytest.raises(SystemExit):
        main(["dataset", "convert", "--annotations", "x.txt", "--images", "i",
              "--output-dir", str(out), "--labels", "cat"])
    assert raw_records([out / "val.record"])
