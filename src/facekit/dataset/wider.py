"""Streaming parser for WIDER FACE `wider_face_*_bbx_gt.txt` annotation files.

Layout (from the dataset's readme): an image path line, a face-count line, then
one line per face `x1 y1 w h blur expression illumination invalid occlusion pose`.
Quirks handled here: every face line ends with a space; CRLF line endings occur
in re-packed copies; an image with 0 faces is followed by ONE placeholder line of
ten zeros that belongs to it and must be consumed.
"""

import collections
import logging

from facekit.dataset.errors import AnnotationError

log = logging.getLogger(__name__)

FACE_FIELDS = (
    "x", "y", "w", "h", "blur", "expression", "illumination", "invalid", "occlusion", "pose",
)

# One face as annotated; x/y/w/h in pixels, the rest are the readme's small enums.
Face = collections.namedtuple("Face", FACE_FIELDS)

# `line` is the line number of the image path, so later errors can point back at it.
WiderImage = collections.namedtuple("WiderImage", ["path", "faces", "line"])


def _numbered_lines(fh, digest):
    """Yield (line number, decoded text without line ending) from a binary file."""
    for lineno, raw in enumerate(fh, 1):
        if digest is not None:
            digest.update(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AnnotationError(fh.name, lineno, "not UTF-8 text ({})".format(exc)) from None
        # rstrip of "\r\n" alone would keep the face lines' trailing space; the
        # callers split() anyway, so only the line ending is removed here.
        yield lineno, text.rstrip("\r\n")


def _is_numeric_line(text):
    parts = text.split()
    return bool(parts) and all(p.lstrip("-").isdigit() for p in parts)


def parse_annotations(path, digest=None):
    """Yield one WiderImage per image of a WIDER FACE annotation file, in file order.

    Streams: only the current image's faces are held in memory. `digest` (a
    hashlib object) is fed every raw byte read, so a caller that consumes the
    whole generator gets the file's checksum without a second pass.
    Raises AnnotationError("<path>:<line>: expected ..., got ...") on the first
    malformed line.
    """
    path = str(path)
    with open(path, "rb") as fh:
        lines = _numbered_lines(fh, digest)
        last_lineno = 0

        def take(what):
            # Returns the next line or fails with what the format required there.
            for lineno, text in lines:
                return lineno, text
            raise AnnotationError(
                path, last_lineno + 1, "unexpected end of file: expected {}".format(what)
            )

        for path_lineno, path_text in lines:
            last_lineno = path_lineno
            name = path_text.strip()
            if not name:
                # Blank lines between records only appear at the end of re-saved files.
                continue
            if _is_numeric_line(name):
                raise AnnotationError(
                    path, path_lineno,
                    "expected an image path, got {!r}; the face count of the previous image is "
                    "probably smaller than its number of face lines".format(name),
                )
            what = "the number of faces of {} (one non-negative integer)".format(name)
            lineno, text = take(what)
            last_lineno = lineno
            fields = text.split()
            if len(fields) != 1 or not fields[0].isdigit():
                raise AnnotationError(path, lineno, "expected {}, got {!r}".format(what, text))
            count = int(fields[0])
            faces = []
            for index in range(1, count + 1):
                what = "10 integers for face {} of {}".format(index, name)
                lineno, text = take(what)
                last_lineno = lineno
                faces.append(_parse_face(path, lineno, text, what, count))
            if count == 0:
                what = ("the line of ten zeros that follows a face count of 0 "
                        "(for {})".format(name))
                lineno, text = take(what)
                last_lineno = lineno
                if text.split() != ["0"] * 10:
                    raise AnnotationError(path, lineno, "expected {}, got {!r}".format(what, text))
            yield WiderImage(name, tuple(faces), path_lineno)


def _parse_face(path, lineno, text, what, count):
    fields = text.split()
    if len(fields) != 10:
        message = "expected {}, got {}".format(what, len(fields))
        if len(fields) == 1 and not _is_numeric_line(fields[0]):
            message += (" ({!r} looks like an image path: the face count of {} is larger "
                        "than its number of face lines, {} announced)".format(
                            fields[0], what.split(" of ", 1)[1], count))
        raise AnnotationError(path, lineno, message)
    values = []
    for field_name, field in zip(FACE_FIELDS, fields):
        try:
            values.append(int(field))
        except ValueError:
            raise AnnotationError(
                path, lineno,
                "expected {}, got {!r} for {}".format(what, field, field_name),
            ) from None
    return Face(*values)
