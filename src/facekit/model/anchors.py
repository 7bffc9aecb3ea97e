"""The SSD anchor table of an ssd_anchor_generator, computed with numpy.

Same maths as the Object Detection API's create_ssd_anchors + MultipleGridAnchorGenerator
+ tile_anchors (anchor_generators/), in float32 like the TensorFlow ops:

- layer scales: min_scale + (max_scale - min_scale) * i / (num_layers - 1), or the
  config's `scales`; 1.0 is appended as the "next" scale of the last layer;
- boxes per cell: layer 0 with reduce_boxes_in_lowest_layer gets (0.1, 1.0),
  (scale, 2.0), (scale, 0.5); every other layer one box per aspect ratio at its scale,
  plus one at sqrt(scale * next scale) with interpolated_scale_aspect_ratio (if > 0);
- box size: height = scale / sqrt(ratio) * base height, width = scale * sqrt(ratio) *
  base width, the base size multiplied by min(H, W) / H and min(H, W) / W of the image;
- centres: (i + 0.5) / feature map size, or the config's height/width stride and offset
  in pixels divided by the image size;
- order: layer by layer, then y, then x, then the boxes of the cell; each row
  ymin xmin ymax xmax, normalised to the image and not clipped.

Feature map sizes come from the feature extractor and the input size; see
derive_feature_map_sizes for the extractors supported, or pass them explicitly.
"""

import contextlib
import math

import numpy as np

from facekit.model.config import EMBEDDED_SSD_256
from facekit.model.errors import ConfigError

# Extractors whose maps come from MobileNet's stride-16 and stride-32 layers followed by
# stride-2 convolutions with SAME (or equivalent explicit) padding, and how many maps
# each yields (the length of its feature_map_layout).
MOBILENET_EXTRACTORS = {
    "embedded_ssd_mobilenet_v1": 5,
    "ssd_mobilenet_v1": 6,
    "ssd_mobilenet_v2": 6,
}


def box_specs(generator):
    """[(scale, aspect ratio), ...] of a cell, one list per layer (create_ssd_anchors)."""
    n = generator.num_layers
    if generator.scales:
        if len(generator.scales) != n:
            raise ConfigError("ssd_anchor_generator has {} scales for num_layers {}: give one "
                              "scale per layer, or none (min_scale/max_scale)".format(
                                  len(generator.scales), n))
        scales = list(generator.scales)
    elif n < 2:
        raise ConfigError("ssd_anchor_generator: num_layers {} needs explicit `scales` (the "
                          "min_scale/max_scale interpolation divides by num_layers - 1)".format(n))
    else:
        lo, hi = generator.min_scale, generator.max_scale
        scales = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
    scales.append(1.0)
    layers = []
    for layer in range(n):
        scale, next_scale = scales[layer], scales[layer + 1]
        if layer == 0 and generator.reduce_boxes_in_lowest_layer:
            specs = [(0.1, 1.0), (scale, 2.0), (scale, 0.5)]
        else:
            specs = [(scale, ratio) for ratio in generator.aspect_ratios]
            if generator.interpolated_scale_aspect_ratio > 0.0:
                specs.append((math.sqrt(scale * next_scale),
                              generator.interpolated_scale_aspect_ratio))
        if not specs:
            raise ConfigError("ssd_anchor_generator gives layer {} no boxes: add aspect_ratios "
                              "or a positive interpolated_scale_aspect_ratio".format(layer))
        layers.append(specs)
    return layers


def derive_feature_map_sizes(model):
    """[(height, width), ...] of the feature maps the model's extractor produces.

    Supported: embedded_ssd_mobilenet_v1 (256x256 only, as the extractor itself
    requires: 16, 8, 4, 2, 1), ssd_mobilenet_v1 and ssd_mobilenet_v2 (any fixed size:
    ceil(S/16), ceil(S/32), then halved, rounding up, four times; 300 gives
    19, 10, 5, 3, 2, 1), each after padding the input to pad_to_multiple. Anything
    else (other extractors, FPN) raises ConfigError: pass the sizes explicitly.
    """
    kind = model.feature_extractor
    count = MOBILENET_EXTRACTORS.get(kind)
    if count is None or model.use_fpn:
        what = "with fpn" if model.use_fpn else "is not one facekit derives sizes for"
        raise ConfigError(
            "feature extractor {} {} (supported: {}): pass the feature map sizes, e.g. "
            "--feature-map-sizes 19,10,5,3,2,1 or 19x19,10x10,...".format(
                kind or "(none)", what, ", ".join(sorted(MOBILENET_EXTRACTORS))))
    height, width = model.image_height, model.image_width
    if kind == "embedded_ssd_mobilenet_v1" and (height, width) != (256, 256):
        raise ConfigError("embedded_ssd_mobilenet_v1 accepts only 256x256 input (its extractor "
                          "raises otherwise); the config's fixed_shape_resizer is {}x{}".format(
                              height, width))
    multiple = max(1, model.pad_to_multiple)
    sizes = []
    for side in (height, width):
        padded = -(-side // multiple) * multiple
        chain = [-(-padded // 16), -(-padded // 32)]
        while len(chain) < count:
            chain.append(-(-chain[-1] // 2))
        sizes.append(chain)
    return list(zip(sizes[0], sizes[1]))


def parse_feature_map_sizes(text):
    """'16,8,4,2,1' or '19x19,10x10' -> [(16, 16), ...]."""
    sizes = []
    for part in text.split(","):
        fields = part.strip().lower().split("x")
        try:
            values = [int(f) for f in fields]
        except ValueError:
            values = []
        if len(values) == 1:
            values = values * 2
        if len(values) != 2 or min(values) < 1:
            raise ConfigError("feature map size {!r} in {!r}: write N or HxW with positive "
                              "integers, comma-separated, finest map first".format(part, text))
        sizes.append(tuple(values))
    return sizes


def _strides_and_offsets(generator, sizes, image_height, image_width):
    one, half = np.float32(1.0), np.float32(0.5)
    im_h, im_w = np.float32(image_height), np.float32(image_width)
    layers = len(sizes)
    fields = ("height_stride", "width_stride", "height_offset", "width_offset")
    for name in fields:
        values = getattr(generator, name)
        if values and len(values) != layers:
            raise ConfigError("ssd_anchor_generator.{} has {} values for {} layers".format(
                name, len(values), layers))
    if generator.height_stride:
        strides = [(np.float32(h) / im_h, np.float32(w) / im_w)
                   for h, w in zip(generator.height_stride, generator.width_stride)]
    else:
        strides = [(one / np.float32(h), one / np.float32(w)) for h, w in sizes]
    if generator.height_offset:
        offsets = [(np.float32(h) / im_h, np.float32(w) / im_w)
                   for h, w in zip(generator.height_offset, generator.width_offset)]
    else:
        offsets = [(half * sy, half * sx) for sy, sx in strides]
    return strides, offsets


def generate(generator, sizes, image_height, image_width):
    """The anchors, float32 [N, 4] (ymin, xmin, ymax, xmax), for feature maps `sizes`."""
    specs = box_specs(generator)
    if len(sizes) != len(specs):
        raise ConfigError("ssd_anchor_generator has num_layers {} but there are {} feature maps "
                          "({}): they must match".format(
                              len(specs), len(sizes), describe_sizes(sizes)))
    strides, offsets = _strides_and_offsets(generator, sizes, image_height, image_width)
    im_h, im_w = np.float32(image_height), np.float32(image_width)
    smaller = min(im_h, im_w)
    base_h = (smaller / im_h) * np.float32(generator.base_anchor_height)
    base_w = (smaller / im_w) * np.float32(generator.base_anchor_width)
    half = np.float32(0.5)
    rows = []
    for (grid_h, grid_w), cell, stride, offset in zip(sizes, specs, strides, offsets):
        scales = np.array([s for s, _ in cell], dtype=np.float32)
        ratio_sqrts = np.sqrt(np.array([r for _, r in cell], dtype=np.float32))
        heights = scales / ratio_sqrts * base_h
        widths = scales * ratio_sqrts * base_w
        y = np.arange(grid_h, dtype=np.float32) * stride[0] + offset[0]
        x = np.arange(grid_w, dtype=np.float32) * stride[1] + offset[1]
        # Index order y, x, box: the order of the box predictor's reshaped outputs.
        yc = np.broadcast_to(y[:, None, None], (grid_h, grid_w, len(cell))).reshape(-1)
        xc = np.broadcast_to(x[None, :, None], (grid_h, grid_w, len(cell))).reshape(-1)
        hs = np.broadcast_to(heights, (grid_h, grid_w, len(cell))).reshape(-1)
        ws = np.broadcast_to(widths, (grid_h, grid_w, len(cell))).reshape(-1)
        rows.append(np.stack([yc - half * hs, xc - half * ws, yc + half * hs, xc + half * ws],
                             axis=1))
    return np.concatenate(rows, axis=0).astype(np.float32)


def count_anchors(generator, sizes):
    """How many anchors `generate` gives, without computing them."""
    specs = box_specs(generator)
    return sum(h * w * len(cell) for (h, w), cell in zip(sizes, specs))


def describe_sizes(sizes):
    return ", ".join("{}x{}".format(h, w) for h, w in sizes)


def layout(generator, sizes):
    """'16x16x3 + 8x8x6 + ...': feature maps and boxes per cell, for messages."""
    return " + ".join("{}x{}x{}".format(h, w, len(cell))
                      for (h, w), cell in zip(sizes, box_specs(generator)))


@contextlib.contextmanager
def _naming(model):
    """Prefix ConfigErrors with the config file the model was read from."""
    try:
        yield
    except ConfigError as exc:
        if model.source is None:
            raise
        raise ConfigError("{}: {}".format(model.source, exc)) from None


def model_anchors(model, sizes=None):
    """(anchors, sizes) of an SsdModel; sizes derived from its extractor when not given."""
    with _naming(model):
        if sizes is None:
            sizes = derive_feature_map_sizes(model)
        table = generate(model.anchor_generator, sizes, model.image_height, model.image_width)
    return table, sizes


def expected_anchor_count(model=EMBEDDED_SSD_256, sizes=None):
    """The number of anchors (outputs per class) of an SsdModel, 1278 for the default."""
    with _naming(model):
        if sizes is None:
            sizes = derive_feature_map_sizes(model)
        if len(sizes) != model.anchor_generator.num_layers:
            raise ConfigError("ssd_anchor_generator has num_layers {} but there are {} feature "
                              "maps ({}): they must match".format(
                                  model.anchor_generator.num_layers, len(sizes),
                                  describe_sizes(sizes)))
        return count_anchors(model.anchor_generator, sizes)


def format_anchors(anchors):
    """One 'ymin xmin ymax xmax' line per anchor, 11 significant digits (as AIY's tables)."""
    return "".join("{:.11g} {:.11g} {:.11g} {:.11g}\n".format(*row)
                   for row in anchors.astype(np.float64).tolist())
