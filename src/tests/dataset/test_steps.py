"""The seed's step commands: to-voc -> to-csv -> to-tfrecord gives what convert gives."""

import json
import os
import shutil

import pytest
from helpers import STANDARD, raw_records, read_records, tree_bytes
from test_convert import EXPECTED_CSV

from facekit.dataset.convert import convert
from facekit.dataset.errors import AnnotationError, DatasetError, ImageError
from facekit.dataset.filters import DEFAULT_FILTERS
from facekit.dataset.steps import to_csv, to_tfrecord, to_voc

A, B, C, D, E, F = (path for path, _, _ in STANDARD)


def chain(wider, tmp_path, shards=1, config=DEFAULT_FILTERS, workers=1):
    voc = str(tmp_path / "steps" / "val_voc")
    csv = str(tmp_path / "steps" / "val_labels.csv")
    to_voc(wider.annotations, wider.images, voc, config=config, workers=workers, progress=False)
    to_csv(voc, csv)
    entry = to_tfrecord(csv, wider.images, str(tmp_path / "steps"), "val", shards=shards,
                        workers=workers, progress=False)
    return entry


@pytest.mark.parametrize("shards, keep_empty", [(1, False), (2, False), (1, True)])
def test_chain_matches_convert(wider, tmp_path, shards, keep_empty):
    config = DEFAULT_FILTERS._replace(keep_empty=keep_empty)
    convert(wider.annotations, wider.images, str(tmp_path / "convert"), shards=shards,
            config=config, progress=False)
    entry = chain(wider, tmp_path, shards=shards, config=config)
    names = [s["name"] for s in entry["outputs"]["tfrecord"]["shards"]]
    for name in names:
        assert (tmp_path / "steps" / name).read_bytes() == (
            tmp_path / "convert" / name).read_bytes(), name
    assert raw_records([tmp_path / "steps" / n for n in names])
    assert (tmp_path / "steps" / "val_labels.csv").read_bytes() == (
        tmp_path / "convert" / "val_labels.csv").read_bytes()
    steps_voc = tree_bytes(tmp_path / "steps" / "val_voc")
    steps_voc.pop("dataset.json")
    assert steps_voc == tree_bytes(tmp_path / "convert" / "val_voc")


def test_step_manifests(wider, tmp_path):
    entry = chain(wider, tmp_path)
    voc_manifest = json.loads((tmp_path / "steps" / "val_voc" / "dataset.json").read_text())
    assert voc_manifest["splits"]["val"]["images"]["kept"] == 3
    assert voc_manifest["splits"]["val"]["faces"]["dropped"]["blur"] == 2
    assert entry["images"] == {"total": 3, "kept": 3, "dropped": {
        "missing": 0, "unreadable": 0, "corrupt": 0, "no_faces": 0}}
    assert entry["faces"]["kept"] == entry["faces"]["total"] == 4
    assert entry["inputs"]["csv"]["path"].endswith("val_labels.csv")
    assert (tmp_path / "steps" / "label_map.pbtxt").read_text().count("item {") == 1


def test_to_csv_reads_a_flat_seed_folder_sorted(wider, tmp_path):
    voc = str(tmp_path / "voc")
    to_voc(wider.annotations, wider.images, voc, progress=False)
    flat = tmp_path / "flat"
    flat.mkdir()
    # the seed keeps XML files side by side in one folder, named after the image
    for path in (F, A, D):
        xml = os.path.join(voc, "Annotations", os.path.splitext(path)[0] + ".xml")
        shutil.copy(xml, str(flat / os.path.basename(xml)))
    counts = to_csv(str(flat), str(tmp_path / "flat.csv"))
    assert counts == {"xml_files": 3, "objects": 4, "rows": 4}
    assert (tmp_path / "flat.csv").read_text() == EXPECTED_CSV  # names sort like the ids here


def test_to_csv_bad_xml_names_the_file(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.xml").write_text("<annotation><filename>a.jpg</filename>\n<size><width>10</width>"
                                "<height>x</height></size></annotation>")
    with pytest.raises(AnnotationError) as info:
        to_csv(str(flat), str(tmp_path / "out.csv"))
    assert str(info.value).startswith(str(flat / "a.xml") + ":2: expected a number in <height>")
    assert not (tmp_path / "out.csv").exists()


def write_csv(tmp_path, text):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return str(path)


def test_to_tfrecord_checks_header(wider, tmp_path):
    csv = write_csv(tmp_path, "filename,w,h,class,xmin,ymin,xmax,ymax\n")
    with pytest.raises(AnnotationError, match=r"labels.csv:1: expected the header"):
        to_tfrecord(csv, wider.images, str(tmp_path / "out"), "val", progress=False)


def test_to_tfrecord_rejects_split_groups(wider, tmp_path):
    csv = write_csv(tmp_path, EXPECTED_CSV + "0--Parade/0_Parade_a.jpg,320,240,face,1,2,60,60\n")
    with pytest.raises(AnnotationError) as info:
        to_tfrecord(csv, wider.images, str(tmp_path / "out"), "val", progress=False)
    assert str(info.value).startswith(csv + ":6: rows for 0--Parade/0_Parade_a.jpg are not "
                                            "consecutive")
    assert not os.listdir(str(tmp_path / "out"))


def test_to_tfrecord_rejects_other_classes(wider, tmp_path):
    csv = write_csv(tmp_path, EXPECTED_CSV.replace("320,240,face,10", "320,240,person,10"))
    with pytest.raises(AnnotationError, match=r"labels.csv:2: class 'person' of 0--Parade"):
        to_tfrecord(csv, wider.images, str(tmp_path / "out"), "val", progress=False)


def test_to_tfrecord_size_mismatch(wider, tmp_path):
    csv = write_csv(tmp_path, EXPECTED_CSV.replace(",400,300,", ",401,300,"))
    entry = to_tfrecord(csv, wider.images, str(tmp_path / "out"), "val", progress=False)
    assert entry["images"]["dropped"]["corrupt"] == 1
    assert entry["faces"]["dropped"]["image_corrupt"] == 1
    assert [r["image/filename"].decode() for r in read_records(
        [tmp_path / "out" / "val.record"])] == [A, F]
    with pytest.raises(ImageError, match=r"is 400x300 but the CSV says 401x300 \(row on line 4"):
        to_tfrecord(csv, wider.images, str(tmp_path / "out2"), "val", strict=True,
                    progress=False)


def test_to_voc_refuses_to_replace_foreign_directories(wider, tmp_path):
    target = tmp_path / "VOCdevkit"
    (target / "JPEGImages").mkdir(parents=True)
    with pytest.raises(DatasetError, match="refusing to replace .*JPEGImages"):
        to_voc(wider.annotations, wider.images, str(target), progress=False)
    assert (target / "JPEGImages").is_dir()
