"""Test helper: small frozen graphs shaped like an exported embedded SSD for the Vision Bonnet.

A float Placeholder `image` [1,S,S,3] -> Preprocessor/mul -> Preprocessor/sub (the input
tensor the Bonnet compiler is given) -> a MobileNet-like stack of Conv2D /
DepthwiseConv2dNative + BiasAdd + Relu6 giving feature maps of S/16, S/32, then halved
(16, 8, 4, 2, 1 at 256) -> per map a box predictor and a class predictor (1x1 Conv2D +
BiasAdd, then Reshape to [batch, H*W*boxes, ...] with the batch read at run time through
Shape/StridedSlice/Pack, as exported graphs do) -> `concat` [1,N,1,4] and `concat_1`
[1,N,classes+1] (ConcatV2). At 256 with one class: N = 16x16x3 + (8x8 + 4x4 + 2x2 +
1x1) x 6 = 1278, outputs [1,1278,1,4] and [1,1278,2] (static shapes on TensorFlow 1.7
and 2.x alike).

Frozen: weights are Const nodes (read through Identity, like a frozen checkpoint),
drawn from a seeded numpy generator, so the same arguments give the same bytes on one
TensorFlow version. The outputs depend on the image, so the graph can be run.

Works with TensorFlow 1.7 (Python 3.6) and 2.x (graph mode through tf.compat.v1). A
graph written by 2.21 imports on 1.7 (1.7 already registers AddV2) but does not run there:
2.x gives Conv2D an explicit_paddings attribute that 1.7's kernel refuses (checked). Build
a graph that must run on 1.7 with 1.7 (the Python 3.6 tests do).
Options make it broken on purpose: an AddV2 on the path, a node dropped, another input
size or class count.

As a script: python src/tests/graphs.py OUT.pb [--add-v2] [--drop NODE] [--input-size S]
[--num-classes C] [--seed N]
"""

import argparse
import os
import sys

import numpy as np

BOXES_PER_CELL = (3, 6, 6, 6, 6)
ADD_V2_NODE = "FeatureExtractor/extra_add"


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow >= 2.x prints a oneDNN notice whatever the log level; the check runs no
    # kernel whose numbers oneDNN could change.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import tensorflow as tf  # noqa: PLC0415 - test helper importable without TF for --help

    compat = getattr(tf, "compat", None)
    return getattr(compat, "v1", None) or tf


def feature_map_sizes(input_size):
    """Feature map sides of the graph for an input of input_size x input_size."""
    sizes = [-(-input_size // 16), -(-input_size // 32)]
    while len(sizes) < len(BOXES_PER_CELL):
        sizes.append(-(-sizes[-1] // 2))
    return sizes


def anchor_count(input_size=256):
    return sum(s * s * b for s, b in zip(feature_map_sizes(input_size), BOXES_PER_CELL))


class _Weights(object):
    """Seeded constant weights, read through Identity as in a frozen checkpoint."""

    def __init__(self, tf, seed):
        self.tf = tf
        self.rng = np.random.RandomState(seed)

    def __call__(self, name, shape, scale=0.3):
        value = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        const = self.tf.constant(value, name=name)
        return self.tf.identity(const, name=name + "/read")


def _conv(tf, weights, x, name, out_channels, *, kernel=3, stride=1, depthwise=False):
    channels = int(x.get_shape()[-1])
    if depthwise:
        w = weights(name + "/depthwise_weights", [kernel, kernel, channels, 1])
        y = tf.nn.depthwise_conv2d_native(x, w, [1, stride, stride, 1], "SAME",
                                          name=name + "/depthwise")
        channels_out = channels
    else:
        w = weights(name + "/weights", [kernel, kernel, channels, out_channels])
        y = tf.nn.conv2d(x, w, [1, stride, stride, 1], "SAME", name=name + "/Conv2D")
        channels_out = out_channels
    b = weights(name + "/biases", [channels_out], scale=0.05)
    return tf.nn.bias_add(y, b, name=name + "/BiasAdd")


def _block(tf, weights, x, name, out_channels, *, stride, depthwise=False):
    y = _conv(tf, weights, x, name, out_channels, stride=stride, depthwise=depthwise)
    return tf.nn.relu6(y, name=name + "/Relu6")


def _reshape(tf, x, name, *, per_cell, tail, shapes, cells):
    # [batch, H * W * boxes] + tail with the batch read from the tensor at run time and
    # the rest static, as the Object Detection API's box predictors build it.
    # x's shape is fully known here, so tf.shape gives a Const: build_graph_def turns it
    # into the Shape op an export (unknown batch while tracing) holds.
    shape_of_x = tf.shape(x, name=name + "/Shape")
    shapes[shape_of_x.op.name] = x.name
    batch = tf.strided_slice(shape_of_x, [0], [1], [1],
                             shrink_axis_mask=1, name=name + "/strided_slice")
    shape = tf.stack([batch, cells * cells * per_cell] + list(tail), name=name + "/shape")
    return tf.reshape(x, shape, name=name + "/Reshape")


def _make_shape_op(node, tensor_name, tf):
    node.op = "Shape"
    node.ClearField("attr")
    node.input.append(tensor_name)
    node.attr["T"].type = tf.float32.as_datatype_enum
    node.attr["out_type"].type = tf.int32.as_datatype_enum


def build_graph_def(input_size=256, num_classes=1, add_v2=False, drop=(), *, seed=0,
                    dynamic_input=False):
    """The GraphDef of a frozen test detector; see the module docstring.

    dynamic_input: an input of unknown shape, as an export with --input_type image_tensor
    has (its static shapes stay unknown down to the outputs)."""
    tf = _tf()
    graph = tf.Graph()
    with graph.as_default():
        weights = _Weights(tf, seed)
        image = tf.placeholder(tf.float32, [None, None, None, 3] if dynamic_input
                               else [1, input_size, input_size, 3], name="image")
        scaled = tf.multiply(image, 2.0 / 255.0, name="Preprocessor/mul")
        x = tf.subtract(scaled, 1.0, name="Preprocessor/sub")
        x = _block(tf, weights, x, "FeatureExtractor/Conv2d_0", 8, stride=2)
        for i in range(1, 4):
            x = _block(tf, weights, x, "FeatureExtractor/Conv2d_{}_depthwise".format(i), 8,
                       stride=2, depthwise=True)
            x = _block(tf, weights, x, "FeatureExtractor/Conv2d_{}_pointwise".format(i), 8,
                       stride=1)
        if add_v2:
            # tf.add writes "Add" on TensorFlow 1.x and "AddV2" on 2.x; the node is
            # renamed to AddV2 below either way.
            x = tf.add(x, weights(ADD_V2_NODE + "_bias", [8], scale=0.05), name=ADD_V2_NODE)
        maps = [x]
        for i in range(1, len(BOXES_PER_CELL)):
            maps.append(_block(tf, weights, maps[-1], "FeatureExtractor/extra_{}".format(i), 8,
                               stride=2))
        boxes, classes, shapes = [], [], {}
        for i, (fmap, per_cell, cells) in enumerate(
                zip(maps, BOXES_PER_CELL, feature_map_sizes(input_size))):
            prefix = "BoxPredictor_{}".format(i)
            enc = _conv(tf, weights, fmap, prefix + "/BoxEncodingPredictor", per_cell * 4,
                        kernel=1)
            boxes.append(_reshape(tf, enc, prefix + "/boxes", per_cell=per_cell, tail=[1, 4],
                                  shapes=shapes, cells=cells))
            logits = _conv(tf, weights, fmap, prefix + "/ClassPredictor",
                           per_cell * (num_classes + 1), kernel=1)
            classes.append(_reshape(tf, logits, prefix + "/classes", per_cell=per_cell,
                                    tail=[num_classes + 1], shapes=shapes, cells=cells))
        tf.concat(boxes, 1, name="concat")
        tf.concat(classes, 1, name="concat_1")
    graph_def = graph.as_graph_def()
    for node in graph_def.node:
        if node.name in shapes and node.op == "Const":
            _make_shape_op(node, shapes[node.name], tf)
        if add_v2 and node.name == ADD_V2_NODE:
            node.op = "AddV2"
    if drop:
        kept = [node for node in graph_def.node if node.name not in drop]
        del graph_def.node[:]
        graph_def.node.extend(kept)
    return graph_def


_ANCHOR_GENERATOR = """ssd_anchor_generator {{
        num_layers: {num_layers}
        min_scale: 0.2
        max_scale: 0.95
        aspect_ratios: 1.0
        aspect_ratios: 2.0
        aspect_ratios: 0.5
        aspect_ratios: 3.0
        aspect_ratios: 0.3333
      }}"""

_PIPELINE = """model {{
  ssd {{
    num_classes: {num_classes}
    box_coder {{
      faster_rcnn_box_coder {{ y_scale: 10.0 x_scale: 10.0 height_scale: 5.0 width_scale: 5.0 }}
    }}
    matcher {{
      argmax_matcher {{ matched_threshold: 0.5 unmatched_threshold: 0.5 }}
    }}
    similarity_calculator {{ iou_similarity {{ }} }}
    anchor_generator {{
      {anchor_generator}
    }}
    image_resizer {{
      {image_resizer}
    }}
    feature_extractor {{
      type: '{extractor}'
      min_depth: 16
      depth_multiplier: 0.125
    }}
  }}
}}
train_config {{
  batch_size: 2
  num_steps: 20
}}
"""


def pipeline_config(*, num_classes=1, size=256, extractor="embedded_ssd_mobilenet_v1",
                    num_layers=5, anchor_generator=None, image_resizer=None):
    """Text of a pipeline.config for these graphs: the training stage's embedded SSD at
    256x256 by default. anchor_generator / image_resizer replace those blocks' insides
    ("" leaves the block empty)."""
    if anchor_generator is None:
        anchor_generator = _ANCHOR_GENERATOR.format(num_layers=num_layers)
    if image_resizer is None:
        image_resizer = "fixed_shape_resizer {{ height: {0} width: {0} }}".format(size)
    return _PIPELINE.format(num_classes=num_classes, extractor=extractor,
                            anchor_generator=anchor_generator, image_resizer=image_resizer)


def write_graph(path, **options):
    """Write build_graph_def(**options) to `path`; returns the path."""
    # deterministic: map fields (node attrs) in key order, so equal graphs give equal bytes.
    data = build_graph_def(**options).SerializeToString(deterministic=True)
    with open(str(path), "wb") as fh:
        fh.write(data)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Write a small frozen SSD-shaped graph for the model checks' tests.")
    parser.add_argument("output", help="the .pb file to write")
    parser.add_argument("--add-v2", action="store_true",
                        help="put an AddV2 node on the path between Preprocessor/sub and the "
                             "outputs (what TensorFlow >= 1.15 writes)")
    parser.add_argument("--drop", action="append", default=[], metavar="NODE",
                        help="remove the node NODE (repeatable), e.g. concat_1")
    parser.add_argument("--input-size", type=int, default=256, metavar="S",
                        help="input side in pixels (default 256)")
    parser.add_argument("--num-classes", type=int, default=1, metavar="C",
                        help="classes besides background (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    args = parser.parse_args(argv)
    write_graph(args.output, input_size=args.input_size, num_classes=args.num_classes,
                add_v2=args.add_v2, drop=tuple(args.drop), seed=args.seed)
    print("wrote {}: {} anchors, {} classes{}".format(
        args.output, anchor_count(args.input_size), args.num_classes,
        ", with AddV2" if args.add_v2 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
