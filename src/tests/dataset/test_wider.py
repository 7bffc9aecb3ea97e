"""The WIDER FACE annotation parser: format quirks, streaming, and error messages."""

import hashlib
import os
import types

import pytest
from helpers import REAL_VAL, annotation_text, face

from facekit.dataset.convert import inspect_annotations
from facekit.dataset.errors import AnnotationError
from facekit.dataset.filters import DEFAULT_FILTERS
from facekit.dataset.wider import parse_annotations


def write(tmp_path, text, name="wider_face_val_bbx_gt.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode())
    return str(path)


def test_fields_are_read_in_the_readme_order(tmp_path):
    path = write(tmp_path, "0--Parade/a.jpg\n1\n1 2 3 4 5 6 7 8 9 10 \n")
    (image,) = list(parse_annotations(path))
    assert image.path == "0--Parade/a.jpg"
    assert image.line == 1
    f = image.faces[0]
    assert (f.x, f.y, f.w, f.h) == (1, 2, 3, 4)
    assert (f.blur, f.expression, f.illumination, f.invalid, f.occlusion, f.pose) == (
        5, 6, 7, 8, 9, 10)


@pytest.mark.parametrize("crlf", [False, True])
def test_zero_face_image_consumes_its_line_of_zeros(tmp_path, crlf):
    entries = [("a/1.jpg", [face(1, 2, 3, 4)]), ("a/2.jpg", []), ("a/3.jpg", [face(5, 6, 7, 8)])]
    path = write(tmp_path, annotation_text(entries, crlf=crlf))
    images = list(parse_annotations(path))
    assert [i.path for i in images] == ["a/1.jpg", "a/2.jpg", "a/3.jpg"]
    assert images[1].faces == ()
    assert images[2].line == 7
    assert images[2].faces[0][:4] == (5, 6, 7, 8)


def test_is_a_generator_that_reads_lazily(tmp_path):
    # A file broken at the end still yields every image before the break: nothing
    # is parsed (or held) ahead of what the consumer asked for.
    text = annotation_text([("a/1.jpg", [face(1, 1, 9, 9)])]) + "a/2.jpg\nnot-a-count\n"
    images = parse_annotations(write(tmp_path, text))
    assert isinstance(images, types.GeneratorType)
    assert next(images).path == "a/1.jpg"
    with pytest.raises(AnnotationError):
        next(images)


def test_digest_covers_the_raw_bytes(tmp_path):
    text = annotation_text([("a/1.jpg", [face(1, 1, 9, 9)]), ("a/2.jpg", [])], crlf=True)
    path = write(tmp_path, text)
    digest = hashlib.sha256()
    list(parse_annotations(path, digest))
    assert digest.hexdigest() == hashlib.sha256(text.encode()).hexdigest()


def test_trailing_blank_lines_are_accepted(tmp_path):
    path = write(tmp_path, annotation_text([("a/1.jpg", [face(1, 1, 9, 9)])]) + "\n\n")
    assert len(list(parse_annotations(path))) == 1


def parse_error(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(AnnotationError) as info:
        list(parse_annotations(path))
    return info.value, path


def test_short_box_line_names_file_line_face_and_count(tmp_path):
    text = "0--Parade/x.jpg\n3\n1 2 3 4 0 0 0 0 0 0 \n1 2 3 4 0 0 0 0 0 0 \n1 2 3 4 0 0 0 0 0 \n"
    error, path = parse_error(tmp_path, text)
    assert str(error) == (
        "{}:5: expected 10 integers for face 3 of 0--Parade/x.jpg, got 9".format(path))
    assert error.lineno == 5
    assert error.filename == path


def test_non_integer_field_is_named(tmp_path):
    error, path = parse_error(tmp_path, "a/x.jpg\n1\n1 2 3 4 0 0 zero 0 0 0 \n")
    assert str(error).startswith(path + ":3: expected 10 integers for face 1 of a/x.jpg")
    assert "'zero' for illumination" in str(error)


@pytest.mark.parametrize("count_line", ["two", "-1", "1 2", ""])
def test_bad_count_line(tmp_path, count_line):
    error, path = parse_error(tmp_path, "a/x.jpg\n{}\n1 2 3 4 0 0 0 0 0 0 \n".format(count_line))
    assert str(error).startswith(
        path + ":2: expected the number of faces of a/x.jpg (one non-negative integer), got")


def test_truncated_after_path(tmp_path):
    error, path = parse_error(tmp_path, annotation_text([("a/1.jpg", [])]) + "a/2.jpg\n")
    assert str(error) == (
        path + ":5: unexpected end of file: expected the number of faces of a/2.jpg "
               "(one non-negative integer)")


def test_missing_box_lines_at_end_of_file(tmp_path):
    error, path = parse_error(tmp_path, "a/x.jpg\n3\n1 2 3 4 0 0 0 0 0 0 \n")
    assert str(error) == (
        path + ":4: unexpected end of file: expected 10 integers for face 2 of a/x.jpg")


def test_count_too_large_points_at_the_next_path(tmp_path):
    text = "a/x.jpg\n2\n1 2 3 4 0 0 0 0 0 0 \na/y.jpg\n1\n1 2 3 4 0 0 0 0 0 0 \n"
    error, path = parse_error(tmp_path, text)
    assert str(error).startswith(path + ":4: expected 10 integers for face 2 of a/x.jpg, got 1")
    assert "looks like an image path" in str(error)


def test_count_too_small_is_caught_at_the_extra_box_line(tmp_path):
    text = "a/x.jpg\n1\n1 2 3 4 0 0 0 0 0 0 \n1 2 3 4 0 0 0 0 0 0 \n"
    error, path = parse_error(tmp_path, text)
    assert str(error).startswith(path + ":4: expected an image path, got '1 2 3 4 0 0 0 0 0 0'")


def test_zero_count_without_its_line_of_zeros(tmp_path):
    error, path = parse_error(tmp_path, "a/x.jpg\n0\na/y.jpg\n1\n1 2 3 4 0 0 0 0 0 0 \n")
    assert str(error).startswith(path + ":3: expected the line of ten zeros that follows a face "
                                        "count of 0 (for a/x.jpg), got 'a/y.jpg'")


def test_zero_count_at_end_of_file(tmp_path):
    error, path = parse_error(tmp_path, "a/x.jpg\n0\n")
    assert str(error).startswith(path + ":3: unexpected end of file: expected the line of ten")


def test_not_utf8(tmp_path):
    path = tmp_path / "wider_face_val_bbx_gt.txt"
    path.write_bytes(b"a/x.jpg\n1\n1 2 3 4 0 0 0 0 0 \xff\n")
    with pytest.raises(AnnotationError, match=r":3: not UTF-8"):
        list(parse_annotations(str(path)))


@pytest.mark.skipif(not os.path.isfile(REAL_VAL),
                    reason="real WIDER FACE val annotations not found at "
                           "<repo>/../shared/datasets/wider_face_split/wider_face_val_bbx_gt.txt")
def test_real_val_annotations():
    images = faces = 0
    for image in parse_annotations(REAL_VAL):
        images += 1
        faces += len(image.faces)
    assert (images, faces) == (3226, 39708)
    stats = inspect_annotations(REAL_VAL, DEFAULT_FILTERS)
    assert stats["images"]["total"] == 3226
    assert stats["faces"]["total"] == 39708
    assert stats["images"]["kept"] == 1873
    assert stats["faces"]["kept"] == 3906
    dropped = stats["faces"]["dropped"]
    assert stats["faces"]["kept"] + sum(dropped.values()) == 39708
    # val lists a few images as "1" face of all zeros: they are degenerate, not small.
    assert dropped["degenerate"] >= 4
