"""Reading the Pascal VOC XML files people write with LabelImg (or CVAT, Roboflow, by hand).

Tags are found by name wherever they sit among their siblings, and tags this reader does not
use (<occluded>, <path>, <segmented>, <source>...) are ignored, so reordered or extra tags
change nothing. Coordinates may be floats ("12.0", "12.5"); a UTF-8 byte-order mark before
the XML is skipped. Anything that cannot be a box is an AnnotationError with the file and line.

Coordinates are kept as written: VOC's are 1-based pixel indices, and the Object Detection
API's own create_pascal_tf_record.py divides them by the image size as they are, which is
what the records here do too.
"""

import collections
import math

from lxml import etree

from facekit.dataset.errors import AnnotationError

_BOMS = (b"\xef\xbb\xbf",)

# name: the <name> text; box: (xmin, ymin, xmax, ymax) floats; difficult, truncated: bools;
# pose: text ("Unspecified" when absent); line: the <object>'s line in the file.
VocObject = collections.namedtuple(
    "VocObject", "name xmin ymin xmax ymax difficult truncated pose line")
# filename: <filename> ("" when absent); folder: <folder> or ""; size: (width, height) or None
# when <size> is absent or zero (LabelImg writes 0 when it could not read the image).
VocAnnotation = collections.namedtuple("VocAnnotation", "path filename folder size objects")


def _child_text(node, tag):
    child = node.find(tag)
    if child is None or child.text is None:
        return None
    text = child.text.strip()
    return text or None


def _number(path, node, tag, required=True):
    text = _child_text(node, tag)
    where = node.find(tag)
    line = (where.sourceline if where is not None else node.sourceline) or 0
    if text is None:
        if not required:
            return None
        raise AnnotationError(path, line, "<{}> has no <{}>: every box needs xmin, ymin, "
                                          "xmax and ymax".format(node.tag, tag))
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(path, line, "expected a number in <{}>, got {!r}".format(
            tag, text)) from None
    if math.isnan(value) or math.isinf(value):
        raise AnnotationError(path, line, "<{}> is {!r}, not a finite number".format(tag, text))
    return value


def _flag(path, node, tag):
    """VOC's 0/1 flags; absent means 0. LabelImg writes "0"/"1"; some tools "true"/"false"."""
    text = _child_text(node, tag)
    if text is None:
        return False
    lowered = text.lower()
    if lowered in ("0", "false", "no"):
        return False
    if lowered in ("1", "true", "yes"):
        return True
    try:
        return float(text) != 0
    except ValueError:
        raise AnnotationError(path, node.find(tag).sourceline or 0,
                              "expected 0 or 1 in <{}>, got {!r}".format(tag, text)) from None


def parse_bytes(path, data):
    """A VocAnnotation from the bytes of the XML file `path`."""
    for bom in _BOMS:
        if data.startswith(bom):
            data = data[len(bom):]
    try:
        # An explicit parser: no network, no entity expansion from outside the file.
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if getattr(exc, "lineno", None) else 0
        raise AnnotationError(path, line, "not well-formed XML: {}".format(exc.msg)) from None
    if root.tag != "annotation":
        raise AnnotationError(path, root.sourceline or 0,
                              "expected <annotation> as the root element, got <{}>: is this a "
                              "Pascal VOC / LabelImg file?".format(root.tag))
    size = None
    size_node = root.find("size")
    if size_node is not None:
        width = _number(path, size_node, "width", required=False)
        height = _number(path, size_node, "height", required=False)
        if width and height and width > 0 and height > 0:
            size = (int(round(width)), int(round(height)))
    objects = []
    for obj in root.iterfind("object"):
        line = obj.sourceline or 0
        name = _child_text(obj, "name")
        if name is None:
            raise AnnotationError(path, line, "<object> has no <name>: give every box a "
                                              "class name")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise AnnotationError(path, line, "<object> {!r} has no <bndbox>".format(name))
        objects.append(VocObject(
            name=name,
            xmin=_number(path, bndbox, "xmin"), ymin=_number(path, bndbox, "ymin"),
            xmax=_number(path, bndbox, "xmax"), ymax=_number(path, bndbox, "ymax"),
            difficult=_flag(path, obj, "difficult"), truncated=_flag(path, obj, "truncated"),
            pose=_child_text(obj, "pose") or "Unspecified", line=line))
    return VocAnnotation(path=path, filename=_child_text(root, "filename") or "",
                         folder=_child_text(root, "folder") or "", size=size, objects=objects)


def read_file(path):
    """The bytes of the XML file at `path`; AnnotationError when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise AnnotationError(path, 0, "cannot read it: {}".format(exc.strerror)) from None


def parse_file(path):
    """A VocAnnotation of the XML file at `path`."""
    return parse_bytes(path, read_file(path))
