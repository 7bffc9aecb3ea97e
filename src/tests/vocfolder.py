"""A small LabelImg / Pascal VOC folder with the quirks people's folders have, for the tests of
`facekit dataset convert --format voc` (on the modern stack and on Python 3.6 + TF 1.7)."""

import os

from helpers import jpeg_bytes

BOM = b"\xef\xbb\xbf"


def obj(name, xmin, ymin, xmax, ymax, *, difficult=None, truncated=None, pose=None, extra="",
        order="name-first"):
    flags = ""
    if pose is not None:
        flags += "<pose>{}</pose>".format(pose)
    if truncated is not None:
        flags += "<truncated>{}</truncated>".format(truncated)
    if difficult is not None:
        flags += "<difficult>{}</difficult>".format(difficult)
    box = "<bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox>".format(
        xmin, ymin, xmax, ymax)
    if order == "box-first":
        # Reordered tags, as some tools write them: bndbox first, the coordinates shuffled.
        box = "<bndbox><ymax>{3}</ymax><xmin>{0}</xmin><xmax>{2}</xmax><ymin>{1}</ymin>" \
              "</bndbox>".format(xmin, ymin, xmax, ymax)
        return "<object>{}{}{}<name>{}</name></object>".format(box, extra, flags, name)
    return "<object><name>{}</name>{}{}{}</object>".format(name, flags, extra, box)


def xml(filename, size, objects, *, head="", folder="images"):
    size_xml = "" if size is None else \
        "<size><width>{}</width><height>{}</height><depth>3</depth></size>".format(*size)
    return ("<annotation>\n<folder>{}</folder>\n<filename>{}</filename>\n{}"
            "<path>C:\\Users\\me\\Pictures\\{}</path>\n<source><database>Unknown</database>"
            "</source>\n{}\n<segmented>0</segmented>\n{}\n</annotation>\n").format(
                folder, filename, head, filename, size_xml, "\n".join(objects))


class Tree(object):
    """A quirky VOC folder: XML files beside their images, in two sub-folders."""

    def __init__(self, root):
        self.root = str(root)

    def image(self, rel, width, height, seed=0, fmt="JPEG"):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(jpeg_bytes(width, height, seed=seed, fmt=fmt))

    def xml(self, rel, text, bom=False):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write((BOM if bom else b"") + text.encode("utf-8"))
        return path


def quirky(root):
    """Ten annotation files; what each one exercises is in its comment."""
    t = Tree(root)
    # Plain: two classes, a difficult one and a pose.
    t.image("a/cat1.jpg", 200, 100, seed=1)
    t.xml("a/cat1.xml", xml("cat1.jpg", (200, 100), [
        obj("cat", 10, 10, 60, 50, pose="Left"), obj("dog", 100, 20, 150, 90, difficult=1)]))
    # Float coordinates, a byte-order mark, reordered and extra tags.
    t.image("a/cat2.jpg", 200, 100, seed=2)
    t.xml("a/cat2.xml", xml("cat2.jpg", (200, 100), [
        obj("cat", "10.0", "12.5", "80.7", "60", extra="<occluded>1</occluded>",
            order="box-first")]), bom=True)
    # <filename> with a wrong extension: found by its stem.
    t.image("a/dog1.jpeg", 160, 120, seed=3)
    t.xml("a/dog1.xml", xml("dog1.png", (160, 120), [obj("dog", 5, 5, 100, 100)]))
    # A PNG named .jpg: the records say png.
    t.image("a/bird1.jpg", 100, 100, seed=4, fmt="PNG")
    t.xml("a/bird1.xml", xml("bird1.jpg", (100, 100), [obj("bird", 20, 20, 80, 80)]))
    # <size> half the real size: the boxes are scaled, a warning says so.
    t.image("b/cat3.jpg", 400, 200, seed=5)
    t.xml("b/cat3.xml", xml("cat3.jpg", (200, 100), [obj("cat", 10, 10, 60, 50)]))
    # A box past the image's edges (clipped, truncated) and a zero-area box (dropped).
    t.image("b/dog2.jpg", 200, 100, seed=6)
    t.xml("b/dog2.xml", xml("dog2.jpg", (200, 100), [
        obj("dog", -20, 10, 250, 90), obj("dog", 50, 50, 50, 80), obj("cat", 1, 1, 30, 30,
                                                                       truncated=1)]))
    # No objects: a negative, dropped unless --keep-empty.
    t.image("b/empty.jpg", 120, 90, seed=7)
    t.xml("b/empty.xml", xml("empty.jpg", (120, 90), []))
    # Named by the XML's stem only: <filename> is something else entirely.
    t.image("b/bird2.png", 100, 80, seed=8, fmt="PNG")
    t.xml("b/bird2.xml", xml("IMG_0001.JPG", (100, 80), [obj("bird", 10, 10, 50, 50)]))
    # No <size> at all: the image's own size is used.
    t.image("b/cat4.jpg", 150, 150, seed=9)
    t.xml("b/cat4.xml", xml("cat4.jpg", None, [obj("cat", 30, 30, 120, 120)]))
    # The image is missing.
    t.xml("b/gone.xml", xml("gone.jpg", (100, 100), [obj("dog", 10, 10, 50, 50)]))
    return t
