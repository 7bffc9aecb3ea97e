"""Test stand-in for the WIDER FACE archives, which the lab cannot download: drawn faces, not WIDER.

WIDER_train.zip, WIDER_val.zip and wider_face_split.zip come from hosts the lab cannot reach. This
draws a small WIDER FACE look-alike that a short real training run can learn: skin-toned
ellipse "faces" with eyes and mouth (1-4 an image, some cut by the frame) on gradient, blotch,
checker and stripe backgrounds with distractor shapes in other colours, blur, noise and JPEG
quality 80-95, at WIDER-like image sizes, with faces about 30-160 px once an image is resized
to 256x256. The archives have the real layout and the annotation files the real format and
quirks: trailing spaces, a line of ten zeros after a face count of 0, zero-width/height boxes,
boxes running past the image edge, invalid=1 faces (drawn heavily occluded), blur 1/2 faces
(drawn blurred) and tiny faces (under 50 px).

    python3 widerface_sample.py build --dir DIR [--train 300 --val 60 --heldout 50 --seed 0]
    python3 widerface_sample.py sheet --dir DIR --out sheet.png   # annotated images, to look at

`build` writes DIR/WIDER_train.zip, DIR/WIDER_val.zip, DIR/wider_face_split.zip and
DIR/heldout/ (640x480 images + ground_truth.json, for measuring recall/precision of a trained
model) and prints JSON: each archive's sha256 and size, and per-split counts. The same seed
gives byte-identical files with the same numpy, Pillow (libjpeg) and zlib: image i of a split
depends only on (seed, split, i), zip entries are sorted with fixed timestamps, JPEG quality
is drawn from the seeded generator. Needs only numpy and Pillow.
"""

import argparse
import hashlib
import io
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import zipfile

import numpy as np
from digest import file_sha256  # next to this file
from PIL import Image, ImageChops, ImageDraw, ImageFilter

LOG = logging.getLogger("widerface_sample")

ZIP_DATE = (2015, 11, 8, 0, 0, 0)
SPLIT_IDS = {"train": 1, "val": 2, "heldout": 3, "test": 4}
# Names in the files start at these numbers so no two splits share an image name.
NAME_OFFSETS = {"train": 0, "val": 20000, "heldout": 40000, "test": 60000}

# (event folder, tags used in file names) - WIDER's own event folders; names are built as
# <id>_<Event>_<tag>_<n>.jpg like 0--Parade/0_Parade_marchingband_1_5.jpg.
EVENTS = (
    ("0--Parade", ("marchingband_1", "Parade_0")),
    ("1--Handshaking", ("Handshaking",)),
    ("2--Demonstration", ("Demonstration_Or_Protest_2", "Political_Rally_2")),
    ("4--Dancing", ("Dancing",)),
    ("7--Cheering", ("Cheering_7",)),
    ("9--Press_Conference", ("Press_Conference",)),
    ("12--Group", ("Group_Group_12_Group_Group_12",)),
    ("13--Interview", ("Interview_On_Location", "Interview_Sequences")),
    ("20--Family_Group", ("Family_Group",)),
    ("29--Students_Schoolkids", ("Students_Schoolkids",)),
    ("35--Basketball", ("basketball_basketball_35",)),
    ("50--Celebration_Or_Party", ("birthdayparty", "houseparty")),
)

# Train/val image sizes (width, height), weighted towards 640x480. Every height is >= 427 so a
# face of 30 px at 256 is >= 50 px in the original and passes the default size filter.
SIZES = ((640, 480),) * 6 + ((480, 640), (800, 600), (768, 512), (512, 512))
HELDOUT_SIZE = (640, 480)

# Face size (longer side once the image is resized to 256x256) and the tiny faces' longer side
# in original pixels.
FACE_MIN_256, FACE_MAX_256 = 30, 160
TINY_MIN, TINY_MAX = 14, 45

SKIN_TONES = (
    (255, 224, 196), (241, 194, 150), (234, 180, 130), (224, 172, 105),
    (198, 134, 66), (164, 112, 72), (141, 85, 36), (100, 62, 40),
)
HAIR = ((20, 16, 14), (60, 40, 25), (110, 75, 40), (200, 170, 110), (90, 90, 90), (35, 30, 40))

# Per-face and per-image quirk probabilities for images after the fixed first ones.
P_EMPTY = 0.04
P_CUT = 0.15
P_BLUR1, P_BLUR2, P_INVALID = 0.05, 0.03, 0.02
P_TINY_IMAGE = 0.08
P_DEGENERATE_IMAGE = 0.03
# The first images of every split carry one quirk each, so even a tiny sample has all of them.
FORCED = ("cut_right", "empty", "degenerate", "invalid", "blur", "tiny", "cut_bottom")

README = (
    "facekit test stand-in for WIDER FACE (drawn faces, not the real dataset).\r\n"
    "\r\n"
    "Attribute names and label values, as in the real wider_face_split/readme.txt:\r\n"
    "\r\n"
    "blur:\r\n  clear->0\r\n  normal blur->1\r\n  heavy blur->2\r\n\r\n"
    "expression:\r\n  typical expression->0\r\n  exaggerate expression->1\r\n\r\n"
    "illumination:\r\n  normal illumination->0\r\n  extreme illumination->1\r\n\r\n"
    "occlusion:\r\n  no occlusion->0\r\n  partial occlusion->1\r\n  heavy occlusion->2\r\n\r\n"
    "pose:\r\n  typical pose->0\r\n  atypical pose->1\r\n\r\n"
    "invalid:\r\n  false->0(valid image)\r\n  true->1(invalid image)\r\n\r\n"
    "The format of txt ground truth.\r\nFile name\r\nNumber of bounding box\r\n"
    "x1, y1, w, h, blur, expression, illumination, invalid, occlusion, pose\r\n"
)


# --- drawing --------------------------------------------------------------------------

def _rng(seed, split, index):
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, SPLIT_IDS[split],
                                                                       index])))


_NOISE = {}


def _noise_field(seed):
    """One unit Gaussian field per seed; images take random windows of it (drawing fresh
    noise for every image costs as much as the rest of the image)."""
    if seed not in _NOISE:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 99])))
        _NOISE.clear()
        _NOISE[seed] = rng.standard_normal((1200, 1200), dtype=np.float32)
    return _NOISE[seed]


def _is_skin_like(rgb):
    r, g, b = rgb
    return r > g > b and r - b > 30 and r - g > 8 and r > 70


def _colour(rng):
    """A random RGB tuple no drawn face could have (distractors, backgrounds, occluders)."""
    while True:
        rgb = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.3:  # muted tones
            grey = sum(rgb) // 3
            rgb = tuple((v + 2 * grey) // 3 for v in rgb)
        if not _is_skin_like(rgb):
            return rgb


def _skin(rng, dark=False):
    tone = np.array(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], dtype=np.float64)
    tone = tone + rng.integers(-12, 13, 3)
    if dark:  # extreme illumination
        tone = tone * 0.45
    return tuple(int(v) for v in np.clip(tone, 0, 255))


def _paletted(index, colours):
    """RGB image from a uint8 index array and a list of RGB colours (fast via mode P)."""
    img = Image.fromarray(index.astype(np.uint8), "P")
    img.putpalette([c for rgb in colours for c in rgb])
    return img.convert("RGB")


def _background(rng, width, height):
    kind = ("gradient", "blotch", "checker", "stripe")[int(rng.integers(4))]
    colours = [_colour(rng) for _ in range(4)]
    if kind == "gradient":
        # Linear in x and y, so a small image resized bilinearly is the full-size gradient.
        angle = rng.uniform(0, 2 * math.pi)
        sw, sh = 32, 24
        yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
        proj = xx / sw * math.cos(angle) + yy / sh * math.sin(angle)
        t = (proj - proj.min()) / max(float(proj.max() - proj.min()), 1e-6)
        c1, c2 = np.array(colours[:2], dtype=np.float32)
        small = (c1 + (c2 - c1) * t[..., None]).astype(np.uint8)
        return Image.fromarray(small).resize((width, height), Image.BILINEAR)
    if kind == "blotch":
        small = _paletted(rng.integers(0, 4, (max(2, height // 40), max(2, width // 40))),
                          colours)
        img = small.resize((width, height), Image.BICUBIC)
    elif kind == "checker":
        cell = int(rng.integers(14, 70))
        index = (np.arange(height)[:, None] // cell + np.arange(width)[None, :] // cell) % 2
        img = _paletted(index, colours)
    else:
        angle = rng.uniform(0, math.pi)
        proj = (np.arange(width, dtype=np.float32)[None, :] * math.cos(angle)
                + np.arange(height, dtype=np.float32)[:, None] * math.sin(angle))
        count = int(rng.integers(2, 4))
        img = _paletted(np.floor(proj / rng.uniform(10, 60)).astype(np.int64) % count, colours)
    if rng.random() < 0.5:  # uneven lighting: darken towards one side
        ramp = np.linspace(255, int(rng.integers(150, 230)), 16).astype(np.uint8)
        ramp = ramp[:, None] if rng.random() < 0.5 else ramp[None, :]
        light = Image.fromarray(np.ascontiguousarray(ramp)).resize((width, height),
                                                                   Image.BILINEAR)
        img = ImageChops.multiply(img, Image.merge("RGB", (light,) * 3))
    return img


def _distractors(draw, rng, width, height):
    for _ in range(int(rng.integers(2, 7))):
        size = rng.uniform(20, min(width, height) * 0.6)
        w = size * rng.uniform(0.5, 1.5)
        h = size * rng.uniform(0.5, 1.5)
        x = rng.uniform(-w / 3, width - w * 2 / 3)
        y = rng.uniform(-h / 3, height - h * 2 / 3)
        fill = _colour(rng)
        shape = int(rng.integers(4))
        if shape == 0:
            draw.ellipse([x, y, x + w, y + h], fill=fill)
        elif shape == 1:
            draw.rectangle([x, y, x + w, y + h], fill=fill)
        elif shape == 2:  # a rotated rectangle
            draw.polygon(_Frame(x + w / 2, y + h / 2, 0, 0, rng.uniform(0, 180)).points(
                [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]),
                fill=fill)
        else:  # a ring
            draw.ellipse([x, y, x + w, y + h], outline=fill, width=max(2, int(size / 10)))


class _Frame:
    """Maps face coordinates (u, v from the face box's top-left, fw x fh) to image pixels:
    rotated by `angle` degrees about the face centre, shifted so the centre is (cx, cy)."""

    def __init__(self, cx, cy, fw, fh, angle):
        a = math.radians(angle)
        self.cos, self.sin = math.cos(a), math.sin(a)
        self.cx, self.cy, self.fw, self.fh = cx, cy, fw, fh

    def points(self, uv):
        out = []
        for u, v in uv:
            du, dv = u - self.fw / 2, v - self.fh / 2
            out.append((self.cx + du * self.cos + dv * self.sin,
                        self.cy - du * self.sin + dv * self.cos))
        return out

    def ellipse(self, u0, v0, u1, v1, *, start=0.0, end=360.0):
        """Points of an axis-aligned (in face coordinates) ellipse or arc (degrees, clockwise
        from 3 o'clock like PIL's arc)."""
        rx, ry = (u1 - u0) / 2, (v1 - v0) / 2
        n = int(min(64, max(12, (rx + ry) * (end - start) / 360 * 1.5)))
        ts = np.radians(np.linspace(start, end, n, endpoint=end - start < 360))
        return self.points(zip((u0 + rx + rx * np.cos(ts)).tolist(),
                               (v0 + ry + ry * np.sin(ts)).tolist()))


def _draw_face(draw, mask, rng, frame, tone):
    """Draw one face through `frame`; also its silhouette on `mask` (an ImageDraw or None)."""
    fw, fh = frame.fw, frame.fh
    if rng.random() < 0.6:
        hair = HAIR[int(rng.integers(len(HAIR)))]
        points = frame.ellipse(-0.07 * fw, -0.12 * fh, 1.07 * fw, 0.6 * fh)
        draw.polygon(points, fill=hair)
        if mask is not None:
            mask.polygon(points, fill=255)
    points = frame.ellipse(0, 0, fw, fh)
    draw.polygon(points, fill=tone)
    if mask is not None:
        mask.polygon(points, fill=255)
    dark = (25, 20, 20)
    ey = fh * rng.uniform(0.37, 0.44)
    ex = fw * rng.uniform(0.27, 0.32)
    erx, ery = fw * rng.uniform(0.07, 0.1), fh * rng.uniform(0.04, 0.06)
    whites = rng.random() < 0.5
    brows = rng.random() < 0.5
    for cx in (ex, fw - ex):
        if whites:
            draw.polygon(frame.ellipse(cx - erx, ey - ery, cx + erx, ey + ery),
                         fill=(245, 245, 240))
            draw.polygon(frame.ellipse(cx - erx / 2, ey - ery, cx + erx / 2, ey + ery),
                         fill=dark)
        else:
            draw.polygon(frame.ellipse(cx - erx * 0.7, ey - ery, cx + erx * 0.7, ey + ery),
                         fill=dark)
        if brows:
            draw.line(frame.points([(cx - erx * 1.2, ey - ery * 2.6),
                                    (cx + erx * 1.2, ey - ery * 2.8)]),
                      fill=dark, width=max(1, int(fh / 40)))
    if rng.random() < 0.6:
        nose = tuple(int(v * 0.8) for v in tone)
        draw.polygon(frame.ellipse(fw * 0.45, fh * 0.52, fw * 0.55, fh * 0.62), fill=nose)
    my = fh * rng.uniform(0.7, 0.76)
    mw = fw * rng.uniform(0.15, 0.22)
    lips = (int(rng.integers(110, 190)), 30, 40)
    if rng.random() < 0.5:
        draw.polygon(frame.ellipse(fw / 2 - mw, my - fh * 0.035, fw / 2 + mw, my + fh * 0.035),
                     fill=lips)
    else:
        draw.line(frame.ellipse(fw / 2 - mw, my - fh * 0.08, fw / 2 + mw, my + fh * 0.04,
                                start=15, end=165),
                  fill=lips, width=max(1, int(fh / 25)), joint="curve")


def _rotated_half_extent(fw, fh, angle_deg):
    a = math.radians(angle_deg)
    hw = math.sqrt((fw / 2 * math.cos(a)) ** 2 + (fh / 2 * math.sin(a)) ** 2)
    hh = math.sqrt((fw / 2 * math.sin(a)) ** 2 + (fh / 2 * math.cos(a)) ** 2)
    return hw, hh


def _overlaps(box, others):
    x0, y0, x1, y1 = box
    for ox0, oy0, ox1, oy1 in others:
        iw = min(x1, ox1) - max(x0, ox0)
        ih = min(y1, oy1) - max(y0, oy0)
        if iw > 0 and ih > 0:
            smaller = min((x1 - x0) * (y1 - y0), (ox1 - ox0) * (oy1 - oy0))
            if iw * ih > 0.05 * smaller:
                return True
    return False


def _place(rng, frame_size, half, cut, taken):
    """Centre for a face of half extents `half`: inside the frame, or cut by edge `cut`."""
    (width, height), (hw, hh) = frame_size, half
    if hw * 2 >= width or hh * 2 >= height:
        return None
    for _ in range(40):
        cx = rng.uniform(hw, width - hw)
        cy = rng.uniform(hh, height - hh)
        inside = 1 - rng.uniform(0.1, 0.45)  # share of the face left inside the frame
        if cut == "right":
            cx = width - inside * 2 * hw + hw
        elif cut == "left":
            cx = inside * 2 * hw - hw
        elif cut == "bottom":
            cy = height - inside * 2 * hh + hh
        elif cut == "top":
            cy = inside * 2 * hh - hh
        box = (cx - hw, cy - hh, cx + hw, cy + hh)
        if not _overlaps(box, taken):
            return cx, cy
    return None


def _face_kinds(rng, forced, quirky):
    """Per-face label kinds and frame cuts of one image; empty when it has no faces."""
    if forced == "empty" or (forced is None and rng.random() < P_EMPTY):
        return []
    plans = []
    for _ in range(int(rng.choice([1, 2, 3, 4], p=[0.3, 0.3, 0.25, 0.15]))):
        r = rng.random()
        kind = "clear"
        if quirky and r < P_INVALID:
            kind = "invalid"
        elif P_INVALID <= r < P_INVALID + P_BLUR1:
            kind = "blur1"
        elif P_INVALID + P_BLUR1 <= r < P_INVALID + P_BLUR1 + P_BLUR2:
            kind = "blur2"
        cut = None
        if rng.random() < P_CUT:
            cut = ("left", "right", "top", "bottom")[int(rng.integers(4))]
        plans.append([kind, cut])
    if forced in ("cut_right", "cut_bottom"):
        plans[0][1] = forced[4:]
    elif forced == "invalid":
        plans[0][0] = "invalid"
    elif forced == "blur":
        plans[0][0] = "blur1"
        plans.append(["blur2", None])
    tiny = 0
    if quirky and (forced == "tiny" or (forced is None and rng.random() < P_TINY_IMAGE)):
        tiny = int(rng.integers(1, 4))
    return plans + [["tiny", None]] * tiny


def _plan_faces(rng, width, height, forced, split):
    """Decide each face's size, place, tilt and label kind. Returns a list of dicts."""
    faces, taken = [], []
    for kind, cut in _face_kinds(rng, forced, quirky=split != "heldout"):
        aspect = rng.uniform(0.72, 0.88)  # face width / height in the original image
        angle = float(np.clip(rng.normal(0, 6), -15, 15))
        per_256 = 256.0 * max(aspect / width, 1.0 / height)  # face height -> size at 256
        if kind == "tiny":
            fh = rng.uniform(TINY_MIN, TINY_MAX)
        else:
            fh = math.exp(rng.uniform(math.log(FACE_MIN_256), math.log(FACE_MAX_256))) / per_256
        centre = None
        for _ in range(6):
            hw, hh = _rotated_half_extent(fh * aspect, fh, angle)
            centre = _place(rng, (width, height), (hw, hh), cut, taken)
            if centre is not None or kind == "tiny" or fh * 0.85 * per_256 < FACE_MIN_256:
                break
            fh *= 0.85
        if centre is None:
            continue
        cx, cy = centre
        taken.append((cx - hw, cy - hh, cx + hw, cy + hh))
        faces.append({"kind": kind, "cut": cut, "cx": cx, "cy": cy, "fw": fh * aspect,
                      "fh": fh, "hw": hw, "hh": hh, "angle": angle,
                      "dark": bool(rng.random() < 0.05), "profile": abs(angle) > 12})
    return faces


def _put_face(img, rng, face):
    tone = _skin(rng, dark=face["dark"])
    short = min(face["fw"], face["fh"])
    radius = {"blur1": max(1.5, 0.04 * short), "blur2": max(3.0, 0.09 * short)}.get(face["kind"])
    if radius is None:
        _draw_face(ImageDraw.Draw(img), None, rng,
                   _Frame(face["cx"], face["cy"], face["fw"], face["fh"], face["angle"]), tone)
    else:
        # An out-of-focus face: draw it on a crop of the image, blur crop and silhouette,
        # and blend the blurred crop back through the blurred silhouette.
        margin = int(0.3 * max(face["fw"], face["fh"]) + 3 * radius)
        x0 = int(face["cx"] - face["hw"]) - margin
        y0 = int(face["cy"] - face["hh"]) - margin
        box = (x0, y0, int(face["cx"] + face["hw"]) + margin,
               int(face["cy"] + face["hh"]) + margin)
        crop = img.crop(box)
        mask = Image.new("L", crop.size, 0)
        frame = _Frame(face["cx"] - x0, face["cy"] - y0, face["fw"], face["fh"], face["angle"])
        _draw_face(ImageDraw.Draw(crop), ImageDraw.Draw(mask), rng, frame, tone)
        blur = ImageFilter.GaussianBlur(radius)
        img.paste(crop.filter(blur), (x0, y0), mask.filter(blur))
    if face["kind"] == "invalid":  # heavily occluded: a block over most of the face
        d = ImageDraw.Draw(img)
        x0, y0 = face["cx"] - face["hw"], face["cy"] - face["hh"]
        x1, y1 = face["cx"] + face["hw"], face["cy"] + face["hh"]
        cover = rng.uniform(0.6, 0.8)
        if rng.random() < 0.5:
            d.rectangle([x0 - 3, y0 - 3, x0 + (x1 - x0) * cover, y1 + 3], fill=_colour(rng))
        else:
            d.rectangle([x0 - 3, y1 - (y1 - y0) * cover, x1 + 3, y1 + 3], fill=_colour(rng))


def _render(rng, seed, size, faces):
    width, height = size
    img = _background(rng, width, height)
    _distractors(ImageDraw.Draw(img), rng, width, height)
    for face in faces:
        _put_face(img, rng, face)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.BoxBlur(rng.uniform(0.5, 1.2)))
    if rng.random() < 0.5:
        field = _noise_field(seed)
        y0 = int(rng.integers(0, field.shape[0] - height + 1))
        x0 = int(rng.integers(0, field.shape[1] - width + 1))
        arr = np.asarray(img, dtype=np.float32)
        arr += field[y0:y0 + height, x0:x0 + width, None] * rng.uniform(2, 8)
        img = Image.fromarray(np.clip(arr, 0, 255, out=arr).astype(np.uint8))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=int(rng.integers(80, 96)))
    return out.getvalue()


# --- labels ----------------------------------------------------------------------------

def _label(face, width, height):
    """WIDER's (x1, y1, w, h, blur, expression, illumination, invalid, occlusion, pose).

    Like WIDER's annotators, the box starts inside the frame but may run past the right or
    bottom edge when the frame cuts the face there."""
    x0 = face["cx"] - face["hw"]
    y0 = face["cy"] - face["hh"]
    x1 = max(0, int(round(x0)))
    y1 = max(0, int(round(y0)))
    w = int(round(x0 + 2 * face["hw"])) - x1
    h = int(round(y0 + 2 * face["hh"])) - y1
    kind = face["kind"]
    blur = {"blur1": 1, "blur2": 2}.get(kind, 0)
    invalid = 1 if kind == "invalid" else 0
    occlusion = 2 if kind == "invalid" else 0
    return (x1, y1, w, h, blur, 0, 1 if face["dark"] else 0, invalid, occlusion,
            1 if face["profile"] else 0)


def _name(rng, split, index):
    folder, tags = EVENTS[int(rng.integers(len(EVENTS)))]
    event_id, event = folder.split("--", 1)
    tag = tags[int(rng.integers(len(tags)))]
    return "{}/{}_{}_{}_{}.jpg".format(folder, event_id, event, tag,
                                       NAME_OFFSETS[split] + index)


def make_image(seed, split, index):
    """Draw image `index` of `split`: (path, width, height, jpeg bytes, labels, faces)."""
    rng = _rng(seed, split, index)
    name = _name(rng, split, index)
    if split == "heldout":
        width, height = HELDOUT_SIZE
        forced = None
    else:
        width, height = SIZES[int(rng.integers(len(SIZES)))]
        forced = FORCED[index] if index < len(FORCED) else None
    faces = _plan_faces(rng, width, height, forced, split)
    data = _render(rng, seed, (width, height), faces)
    labels = [_label(face, width, height) for face in faces]
    if split != "heldout" and faces and (
            forced == "degenerate" or (forced is None and rng.random() < P_DEGENERATE_IMAGE)):
        # WIDER has a few boxes with zero width or height; nothing is drawn for them.
        x, y = int(rng.integers(0, width - 4)), int(rng.integers(0, height - 4))
        w, h = (0, int(rng.integers(1, 4))) if rng.random() < 0.5 else (int(rng.integers(1, 4)), 0)
        labels.insert(int(rng.integers(len(labels) + 1)), (x, y, w, h, 0, 0, 0, 0, 0, 0))
    return name, width, height, data, labels, faces


def annotation_text(records):
    """WIDER's bbx_gt.txt text for [(path, labels)]: trailing space on every box line, and
    one line of ten zeros after a face count of 0."""
    lines = []
    for path, labels in records:
        lines.append(path)
        lines.append(str(len(labels)))
        if not labels:
            lines.append("0 " * 10)
        for label in labels:
            lines.append("".join("{} ".format(v) for v in label))
    return "\n".join(lines) + "\n"


def _quirk_counts(labels, faces, width, height):
    counts = dict.fromkeys(("zero_size", "past_edge", "invalid", "blur_1", "blur_2", "tiny",
                            "cut"), 0)
    for x, y, w, h, blur, _, _, invalid, _, _ in labels:
        counts["zero_size"] += w == 0 or h == 0
        counts["past_edge"] += x + w > width or y + h > height
        counts["invalid"] += invalid
        counts["blur_1"] += blur == 1
        counts["blur_2"] += blur == 2
        counts["tiny"] += w > 0 and h > 0 and max(w, h) < 50
    counts["cut"] = sum(1 for f in faces if f["cut"])
    return counts


# --- archives ---------------------------------------------------------------------------

def _zip(path, files):
    """Write a deterministic zip of {name: bytes}: sorted, with directory entries, fixed
    dates, unix permissions; JPEGs stored (they do not deflate), text deflated."""
    names = set(files)
    for name in files:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            names.add("/".join(parts[:i]) + "/")
    with zipfile.ZipFile(path, "w") as zf:
        for name in sorted(names):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.create_system = 3
            if name.endswith("/"):
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b"")
            else:
                info.external_attr = 0o100644 << 16
                info.compress_type = (zipfile.ZIP_STORED if name.endswith(".jpg")
                                      else zipfile.ZIP_DEFLATED)
                zf.writestr(info, files[name])



def _split(seed, split, count, prefix):
    files, records, counts = {}, [], None
    totals = {"images": count, "empty_images": 0, "face_lines": 0, "drawn_faces": 0}
    for index in range(count):
        path, width, height, data, labels, faces = make_image(seed, split, index)
        files["{}/images/{}".format(prefix, path)] = data
        records.append((path, labels))
        totals["empty_images"] += not labels
        totals["face_lines"] += len(labels)
        totals["drawn_faces"] += len(faces)
        quirks = _quirk_counts(labels, faces, width, height)
        counts = quirks if counts is None else {k: counts[k] + quirks[k] for k in counts}
    # WIDER's files list images event by event.
    records.sort(key=lambda r: (int(r[0].split("--", 1)[0]), r[0]))
    totals["quirks"] = counts or {}
    return files, records, totals


def _heldout(seed, count, directory):
    images = []
    for index in range(count):
        name = "heldout_{:03d}.jpg".format(index)
        _, width, height, data, _, faces = make_image(seed, "heldout", index)
        with open(os.path.join(directory, name), "wb") as fh:
            fh.write(data)
        entry = {"file": name, "width": width, "height": height,
                 "sha256": hashlib.sha256(data).hexdigest(), "faces": [], "ignore": []}
        for face in faces:
            box = [max(0, int(round(face["cx"] - face["hw"]))),
                   max(0, int(round(face["cy"] - face["hh"]))),
                   min(width, int(round(face["cx"] + face["hw"]))),
                   min(height, int(round(face["cy"] + face["hh"])))]
            if face["kind"] == "clear":
                size = 2 * 256.0 * max(face["hw"] / width, face["hh"] / height)
                entry["faces"].append({"box": box, "size_256": int(round(size)),
                                       "cut": face["cut"] is not None})
            else:
                entry["ignore"].append({"box": box, "blur": 1 if face["kind"] == "blur1" else 2})
        images.append(entry)
    truth = {
        "description": "facekit WIDER FACE stand-in, held-out images: boxes are [xmin, ymin, "
                       "xmax, ymax] pixel edges (xmax, ymax exclusive) clipped to the image; "
                       "'ignore' holds blurred faces, which count neither as hits nor as "
                       "false positives",
        "seed": seed,
        "images": images,
    }
    with open(os.path.join(directory, "ground_truth.json"), "w") as fh:
        json.dump(truth, fh, indent=1, sort_keys=True)
        fh.write("\n")
    faces = sum(len(i["faces"]) for i in images)
    ignored = sum(len(i["ignore"]) for i in images)
    return {"images": count, "faces": faces, "ignore": ignored,
            "empty_images": sum(1 for i in images if not i["faces"] and not i["ignore"])}


def build(directory, train=300, val=60, heldout=50, seed=0):
    """Write the three archives and heldout/ into `directory`; return what `build` prints.

    Outputs are written under temporary names and renamed, so an interrupted build leaves
    either the old files or the new ones."""
    for flag, value in (("train", train), ("val", val), ("heldout", heldout)):
        if value < 0:
            raise ValueError("--{} must be >= 0, got {}".format(flag, value))
    os.makedirs(directory, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".widerface-sample-", dir=directory)
    try:
        result = {"seed": seed, "archives": {}, "counts": {}}
        records = {}
        for split, count in (("train", train), ("val", val)):
            prefix = "WIDER_{}".format(split)
            files, records[split], totals = _split(seed, split, count, prefix)
            _zip(os.path.join(work, prefix + ".zip"), files)
            result["counts"][split] = totals
        test_names = [_name(_rng(seed, "test", i), "test", i) for i in range(10)]
        _zip(os.path.join(work, "wider_face_split.zip"), {
            "wider_face_split/readme.txt": README.encode("ascii"),
            "wider_face_split/wider_face_train_bbx_gt.txt":
                annotation_text(records["train"]).encode("ascii"),
            "wider_face_split/wider_face_val_bbx_gt.txt":
                annotation_text(records["val"]).encode("ascii"),
            "wider_face_split/wider_face_test_filelist.txt":
                "".join(n + "\n" for n in sorted(test_names)).encode("ascii"),
        })
        os.mkdir(os.path.join(work, "heldout"))
        result["counts"]["heldout"] = _heldout(seed, heldout, os.path.join(work, "heldout"))
        for name in ("WIDER_train.zip", "WIDER_val.zip", "wider_face_split.zip"):
            final = os.path.join(directory, name)
            os.replace(os.path.join(work, name), final)
            result["archives"][name] = {"path": os.path.abspath(final),
                                        "sha256": file_sha256(final),
                                        "size": os.path.getsize(final)}
        target = os.path.join(directory, "heldout")
        if os.path.isdir(target):
            shutil.rmtree(target)
        os.replace(os.path.join(work, "heldout"), target)
        result["heldout"] = {"dir": os.path.abspath(target),
                             "ground_truth": os.path.abspath(os.path.join(target,
                                                                          "ground_truth.json"))}
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- contact sheet ----------------------------------------------------------------------

_SHEET_COLOURS = {"clear": (0, 255, 0), "blur": (255, 255, 0), "invalid": (255, 0, 0),
                  "small": (0, 200, 255), "zero": (255, 0, 255)}


def contact_sheet(directory, out, *, count=12, split="train", columns=4, thumb=320):
    """Save a PNG of the first `count` images of a split with their annotation boxes drawn:
    green clear, yellow blur 1/2, red invalid, cyan under 50 px, magenta zero-size."""
    name = "WIDER_{}.zip".format(split)
    with zipfile.ZipFile(os.path.join(directory, "wider_face_split.zip")) as zf:
        text = zf.read("wider_face_split/wider_face_{}_bbx_gt.txt".format(split)).decode()
    lines = text.splitlines()
    records, i = [], 0
    while i < len(lines) and len(records) < count:
        path, n = lines[i], int(lines[i + 1])
        boxes = [tuple(int(v) for v in line.split()) for line in lines[i + 2:i + 2 + n]]
        records.append((path, boxes))
        i += 2 + max(n, 1)
    rows = (len(records) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * thumb, rows * thumb * 3 // 4), (40, 40, 40))
    with zipfile.ZipFile(os.path.join(directory, name)) as zf:
        for k, (path, boxes) in enumerate(records):
            img = Image.open(io.BytesIO(zf.read("WIDER_{}/images/{}".format(split, path))))
            img = img.convert("RGB")
            d = ImageDraw.Draw(img)
            for x, y, w, h, blur, _, _, invalid, _, _ in boxes:
                key = ("invalid" if invalid else "zero" if not (w and h) else
                       "blur" if blur else "small" if max(w, h) < 50 else "clear")
                d.rectangle([x, y, x + max(w, 1), y + max(h, 1)], outline=_SHEET_COLOURS[key],
                            width=3)
            img.thumbnail((thumb, thumb * 3 // 4))
            sheet.paste(img, ((k % columns) * thumb, (k // columns) * thumb * 3 // 4))
    sheet.save(out)


# --- command line -----------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    sub = parser.add_subparsers(dest="command")
    sub.required = True
    b = sub.add_parser("build", help="write the archives and heldout/, print JSON")
    b.add_argument("--dir", required=True, help="output folder (created if missing)")
    b.add_argument("--train", type=int, default=300, help="training images (default 300)")
    b.add_argument("--val", type=int, default=60, help="validation images (default 60)")
    b.add_argument("--heldout", type=int, default=50,
                   help="held-out 640x480 images with ground_truth.json (default 50)")
    b.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s = sub.add_parser("sheet", help="save an annotated contact sheet of a built sample")
    s.add_argument("--dir", required=True, help="folder a `build` wrote")
    s.add_argument("--out", required=True, help="PNG to write")
    s.add_argument("--split", choices=("train", "val"), default="train")
    s.add_argument("--count", type=int, default=12, help="images on the sheet (default 12)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.command == "sheet":
        contact_sheet(args.dir, args.out, count=args.count, split=args.split)
        return 0
    start = time.monotonic()
    try:
        result = build(args.dir, train=args.train, val=args.val, heldout=args.heldout,
                       seed=args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    LOG.info("built in %.1f s", time.monotonic() - start)
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
