"""Reading an image's bytes, size and format without decoding its pixels.

This is the per-image work the conversion runs in worker processes, so it
returns plain picklable tuples and never raises for bad images: a problem is a
value the caller counts, logs, or turns into an error under --strict.
"""

import collections
import hashlib
import io
import os

from PIL import Image

# `data` is None when the caller only needs the header (the VOC step).
ImageInfo = collections.namedtuple(
    "ImageInfo", ["path", "width", "height", "format", "depth", "size", "sha256", "data"]
)
# kind is one of filters.IMAGE_REASONS: "missing", "unreadable" or "corrupt".
ImageProblem = collections.namedtuple("ImageProblem", ["path", "kind", "reason"])

# What the Object Detection API's decoder accepts, as image/format values.
# MPO is what Pillow calls a JPEG carrying extra pictures (camera multi-picture
# files); the stream starts with an ordinary baseline JPEG that TF decodes.
_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png"}
_DEPTH = {"1": 1, "L": 1, "P": 3, "RGB": 3, "YCbCr": 3, "CMYK": 4, "RGBA": 4, "LA": 2, "I;16": 1}

_JPEG_SOS = b"\xff\xda"
_JPEG_EOI = b"\xff\xd9"


def _truncation(data, fmt):
    """Why the file looks cut short, or None. Cheap byte checks, no decoding."""
    if fmt == "jpeg":
        # Entropy-coded data cannot contain FF D9 or FF DA (encoders stuff FF bytes),
        # so a whole file has an end marker with no start-of-scan after it. Looking
        # only at the last two bytes would reject the valid files some cameras pad
        # after the marker; "any FF D9" would be fooled by an EXIF thumbnail's own.
        # Both searches run from the end and stop at once on a whole file.
        if data.find(_JPEG_SOS) < 0:
            return "JPEG has no image data (no start-of-scan marker)"
        end = data.rfind(_JPEG_EOI)
        if end < 0 or data.find(_JPEG_SOS, end) >= 0:
            return "truncated JPEG: no FFD9 end-of-image marker after the image data"
    elif fmt == "png" and data.rfind(b"IEND") < 0:
        return "truncated PNG: no IEND chunk"
    return None


class _Bad(Exception):
    """Internal: carries an ImageProblem's kind and reason out of the checks."""


def _read(path):
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise _Bad("missing", "no such file: {}".format(path)) from None
    except OSError as exc:
        raise _Bad("unreadable", "cannot read {}: {}".format(path, exc.strerror)) from None
    if not data:
        raise _Bad("corrupt", "empty file: {}".format(path))
    return data


# Start-of-frame markers (baseline, extended, progressive, lossless, arithmetic):
# C0-CF except C4 (DHT), C8 (reserved JPG) and CC (DAC), which are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_DEPTH = {1: 1, 3: 3, 4: 4}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DEPTH = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # by IHDR colour type, as Pillow's modes map


def _jpeg_frame_offset(data):
    """Offset of the start-of-frame marker, found by walking the marker segments by
    their lengths (so an EXIF thumbnail's own frame header inside APP1 is skipped, not
    mistaken for the image's); None when the walk meets anything unusual."""
    pos, end, found = 2, len(data), None
    while found is None and pos + 4 <= end and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # a fill byte before a marker
            pos += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
        elif marker in (0xD9, 0xDA):  # end of image or start of scan before any frame
            break
        elif marker in _JPEG_SOF:
            found = pos
        else:
            length = (data[pos + 2] << 8) | data[pos + 3]
            if length < 2:
                break
            pos += 2 + length
    return found


def _jpeg_frame(data):
    """(width, height, depth) from the JPEG's start-of-frame segment, or None (then
    Pillow decides)."""
    pos = _jpeg_frame_offset(data) if data.startswith(b"\xff\xd8") else None
    if pos is None or pos + 10 > len(data) or ((data[pos + 2] << 8) | data[pos + 3]) < 8:
        return None
    height = (data[pos + 5] << 8) | data[pos + 6]
    width = (data[pos + 7] << 8) | data[pos + 8]
    depth = _JPEG_DEPTH.get(data[pos + 9])
    if not (width and height and depth):
        return None
    return width, height, depth


def _png_header(data):
    """(width, height, depth) from a PNG's IHDR chunk, or None."""
    if not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 26:
        return None
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    depth = _PNG_DEPTH.get(data[25])
    if not (width and height and depth):
        return None
    return width, height, depth


def _fast_header(data):
    """(format, width, height, depth) for the two formats TF decodes, read straight from
    the bytes: several times cheaper than Pillow's marker parsing in Python. None when
    the bytes are not a plain JPEG or PNG header; Pillow then reads (or rejects) them."""
    frame = _jpeg_frame(data)
    if frame is not None:
        return ("jpeg",) + frame
    header = _png_header(data)
    if header is not None:
        return ("png",) + header
    return None


def _header(path, data):
    """(format, width, height, depth) from the header alone."""
    fast = _fast_header(data)
    if fast is not None:
        truncated = _truncation(data, fast[0])
        if truncated is not None:
            raise _Bad("corrupt", "{}: {}".format(truncated, path))
        return fast
    try:
        # Image.open only parses the header; .size/.format/.mode need nothing more.
        with Image.open(io.BytesIO(data)) as image:
            pil_format = image.format
            width, height = image.size
            mode = image.mode
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a bad header
        raise _Bad("corrupt", "unreadable image header in {}: {}".format(path, exc)) from None
    fmt = _FORMATS.get(pil_format)
    if fmt is None:
        raise _Bad("corrupt", "{} is {}, not JPEG or PNG (the Object Detection API decodes "
                              "only those)".format(path, pil_format))
    if width <= 0 or height <= 0:
        raise _Bad("corrupt", "{} has size {}x{}".format(path, width, height))
    truncated = _truncation(data, fmt)
    if truncated is not None:
        raise _Bad("corrupt", "{}: {}".format(truncated, path))
    return fmt, width, height, _DEPTH.get(mode, 3)


def inspect_image(root, relpath, keep_bytes=True):
    """Read one image under `root`; return ImageInfo, or ImageProblem saying what is wrong."""
    path = os.path.join(root, relpath)
    try:
        data = _read(path)
        fmt, width, height, depth = _header(path, data)
    except _Bad as bad:
        return ImageProblem(relpath, bad.args[0], bad.args[1])
    return ImageInfo(relpath, width, height, fmt, depth, len(data),
                     hashlib.sha256(data).hexdigest(), data if keep_bytes else None)


def inspect_job(job):
    """Pool entry point: job is (root, relpath, keep_bytes)."""
    return inspect_image(*job)


def attach_bytes(root, info):
    """`info` with its file's bytes, read again here; ImageProblem if its size changed.

    With --workers, a worker checks the image and only its header facts come back:
    re-reading 100 KB from the page cache here is cheaper than pickling it through
    a pipe, which would make the writer process the bottleneck.
    """
    path = os.path.join(root, info.path)
    try:
        data = _read(path)
    except _Bad as bad:
        return ImageProblem(info.path, bad.args[0], bad.args[1])
    # Size only: hashing again here would put the work back on the writer process.
    if len(data) != info.size:
        return ImageProblem(info.path, "corrupt", "{} changed while it was being "
                                                  "converted".format(path))
    return info._replace(data=data)
