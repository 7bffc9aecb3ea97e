"""Image header reading and the missing / corrupt / truncated checks."""

import hashlib
import io

import pytest
from helpers import jpeg_bytes
from PIL import Image

from facekit.dataset.filters import FilterConfig, annotation_drop_reason, clip_box
from facekit.dataset.images import ImageInfo, ImageProblem, _fast_header, inspect_image
from facekit.dataset.wider import Face


def write(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    return name


def test_size_format_and_bytes_without_decoding(tmp_path, monkeypatch):
    data = jpeg_bytes(123, 45, seed=3)
    write(tmp_path, "a.jpg", data)

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    # Decoding goes through load(); the header read must not need it.
    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(Image.Image, "convert", no_decoding)
    info = inspect_image(str(tmp_path), "a.jpg")
    assert isinstance(info, ImageInfo)
    assert (info.width, info.height, info.format, info.depth) == (123, 45, "jpeg", 3)
    assert info.data == data
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert inspect_image(str(tmp_path), "a.jpg", keep_bytes=False).data is None


def encoded(mode, size, fmt, **kwargs):
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, fmt, **kwargs)
    return buf.getvalue()


def pillow_header(data):
    with Image.open(io.BytesIO(data)) as image:
        depth = {"L": 1, "LA": 2, "RGBA": 4, "CMYK": 4, "I;16": 1, "I": 1}.get(image.mode, 3)
        return ({"JPEG": "jpeg", "PNG": "png"}[image.format],) + image.size + (depth,)


@pytest.mark.parametrize("mode, fmt, kwargs", [
    ("RGB", "JPEG", {}),
    ("RGB", "JPEG", {"progressive": True}),
    ("L", "JPEG", {}),
    ("CMYK", "JPEG", {}),
    ("RGB", "JPEG", {"exif": b"Exif\x00\x00" + b"\x00" * 40, "dpi": (72, 72)}),
    ("RGB", "PNG", {}),
    ("RGBA", "PNG", {}),
    ("L", "PNG", {}),
    ("LA", "PNG", {}),
    ("P", "PNG", {}),
    ("I;16", "PNG", {}),
])
def test_fast_header_agrees_with_pillow(mode, fmt, kwargs):
    data = encoded(mode, (37, 21), fmt, **kwargs)
    assert pillow_header(data)[:3] == (fmt.lower(), 37, 21)
    assert _fast_header(data) == pillow_header(data)


def test_fast_header_skips_a_thumbnails_frame_inside_app1():
    # An EXIF-style APP1 segment holding a 16x16 frame header of its own, before the image's.
    fake_sof = b"\xff\xc0\x00\x11\x08\x00\x10\x00\x10\x03" + b"\x00" * 9
    app1 = b"\xff\xe1" + (2 + 6 + len(fake_sof)).to_bytes(2, "big") + b"Exif\x00\x00" + fake_sof
    real = encoded("RGB", (64, 48), "JPEG")
    data = real[:2] + app1 + real[2:]
    assert _fast_header(data) == ("jpeg", 64, 48, 3)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (64, 48)


@pytest.mark.parametrize("data", [
    b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 20,       # scan before any frame
    b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x10\x03",  # zero height (DNL): Pillow decides
    b"\xff\xd8\xff\xe0\x00\x01",                      # impossible segment length
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDX" + b"\x00" * 13,
    b"GIF89a",
])
def test_fast_header_leaves_odd_bytes_to_pillow(data):
    assert _fast_header(data) is None


def test_png(tmp_path):
    write(tmp_path, "a.png", jpeg_bytes(20, 30, fmt="PNG"))
    info = inspect_image(str(tmp_path), "a.png")
    assert (info.width, info.height, info.format) == (20, 30, "png")


def test_jpeg_with_bytes_after_the_end_marker_is_fine(tmp_path):
    write(tmp_path, "a.jpg", jpeg_bytes(20, 30) + b"\x00" * 16 + b"trailer")
    assert isinstance(inspect_image(str(tmp_path), "a.jpg"), ImageInfo)


@pytest.mark.parametrize("name, data, kind, reason", [
    ("missing.jpg", None, "missing", "no such file"),
    ("empty.jpg", b"", "corrupt", "empty file"),
    ("text.jpg", b"hello, not an image at all", "corrupt", "unreadable image header"),
    ("truncated.jpg", jpeg_bytes(64, 48)[:-300], "corrupt", "truncated JPEG: no FFD9"),
    ("no_eoi.jpg", jpeg_bytes(64, 48)[:-2], "corrupt", "truncated JPEG: no FFD9"),
    ("truncated.png", jpeg_bytes(64, 48, fmt="PNG")[:-20], "corrupt", "truncated PNG"),
    ("a.gif", jpeg_bytes(8, 8, fmt="GIF"), "corrupt", "is GIF, not JPEG or PNG"),
])
def test_problems_are_values_with_a_reason(tmp_path, name, data, kind, reason):
    if data is not None:
        write(tmp_path, name, data)
    problem = inspect_image(str(tmp_path), name)
    assert isinstance(problem, ImageProblem)
    assert problem.kind == kind
    assert reason in problem.reason
    assert name in problem.reason


def test_unreadable(tmp_path):
    (tmp_path / "dir.jpg").mkdir()
    problem = inspect_image(str(tmp_path), "dir.jpg")
    assert problem.kind == "unreadable"


@pytest.mark.parametrize("values, config, reason", [
    ((0, 0, 60, 60, 0, 0, 0, 0, 0, 0), FilterConfig(0, 50, False, False), None),
    ((0, 0, 60, 10, 0, 0, 0, 0, 0, 0), FilterConfig(0, 50, False, False), None),  # longer side
    ((0, 0, 49, 49, 0, 0, 0, 0, 0, 0), FilterConfig(0, 50, False, False), "small"),
    ((0, 0, 49, 49, 0, 0, 0, 0, 0, 0), FilterConfig(0, 40, False, False), None),
    ((0, 0, 60, 60, 1, 0, 0, 0, 0, 0), FilterConfig(0, 50, False, False), "blur"),
    ((0, 0, 60, 60, 1, 0, 0, 0, 0, 0), FilterConfig(1, 50, False, False), None),
    ((0, 0, 60, 60, 2, 0, 0, 0, 0, 0), FilterConfig(1, 50, False, False), "blur"),
    ((0, 0, 60, 60, 0, 0, 0, 1, 0, 0), FilterConfig(0, 50, False, False), "invalid"),
    ((0, 0, 60, 60, 0, 0, 0, 1, 0, 0), FilterConfig(0, 50, True, False), None),
    ((0, 0, 0, 60, 0, 0, 0, 0, 0, 0), FilterConfig(0, 0, False, False), "degenerate"),
    # occlusion / pose / expression / illumination do not filter
    ((0, 0, 60, 60, 0, 1, 1, 0, 2, 1), FilterConfig(0, 50, False, False), None),
])
def test_annotation_filters(values, config, reason):
    assert annotation_drop_reason(Face(*values), config) == reason


def test_clip_box():
    assert clip_box((-5, -5, 50, 60), 40, 30) == (0, 0, 40, 30, True)
    assert clip_box((1, 2, 3, 4), 40, 30) == (1, 2, 3, 4, False)
    assert clip_box((40, 0, 60, 10), 40, 30) is None  # entirely right of the image
    assert clip_box((5, 5, 5, 9), 40, 30) is None  # zero width
