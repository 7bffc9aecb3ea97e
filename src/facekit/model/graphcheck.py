"""Checks of a frozen_inference_graph.pb before the Bonnet compiler runs on it.

The compiler is called with --input_tensor_name=Preprocessor/sub
--output_tensor_names=concat,concat_1 --input_tensor_size=S. A graph it cannot take
costs a compile attempt, and when the exporting TensorFlow is the cause, a re-export;
so this looks first for: the three tensors, their static shapes ([1,S,S,3]; [1,N,1,4]
or [1,N,4]; [1,N,classes+1] with N the anchor count), and the op types on the path
between them.

The path is every node that concat or concat_1 reaches walking back along data inputs,
stopping at Preprocessor/sub (what feeds the input, such as image_tensor and the resize,
is cut off by the compiler). A graph exported by the Object Detection API with
TensorFlow 1.7 holds only the ops of ALLOWED_OPS there. Placeholder (behind the input)
and Squeeze (after concat) occur in those graphs but never on the path, so they are
not allowed on it.

An unknown batch dimension passes as 1 (the Bonnet runs one image at a time). A real
export (--input_type image_tensor) leaves every shape unknown until the resizer; then
the graph is run once from Preprocessor/sub with a zero [1,S,S,3] image and the
outputs' measured shapes are checked: a graph that cannot run with the size the
compiler is told fails the check.

The node and op checks read the GraphDef alone; the shapes need it imported into a
fresh graph (TensorFlow 1.7 or 2.x, through tf.compat.v1 where it exists). Should the
import fail (an op this TensorFlow does not register), the op check still names the op.
"""

import collections
import logging
import os

from facekit.model.errors import ModelError

log = logging.getLogger(__name__)

INPUT = "Preprocessor/sub"
BOXES = "concat"
CLASSES = "concat_1"

ALLOWED_OPS = frozenset([
    "BiasAdd", "ConcatV2", "Const", "Conv2D", "DepthwiseConv2dNative", "FusedBatchNorm",
    "Identity", "Pack", "Relu6", "Reshape", "Shape", "StridedSlice", "Sub",
])

# Why an op is refused, where the reason is known.
OP_ADVICE = {
    "AddV2": "graphs frozen with TensorFlow >= 1.15 contain AddV2, which the Bonnet compiler "
             "rejects: export with TensorFlow 1.7 - 1.14",
    "FusedBatchNormV3": "TensorFlow >= 1.15 writes FusedBatchNormV3 where 1.7 wrote "
                        "FusedBatchNorm: export with TensorFlow 1.7 - 1.14",
}


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow >= 2.x prints a oneDNN notice whatever the log level; the check runs no
    # kernel whose numbers oneDNN could change.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import tensorflow as tf  # noqa: PLC0415 - lazy: the CLI must start without TensorFlow

    return tf


def tf_v1(tf):
    """The 1.x graph API: tf.compat.v1 where it exists (TF >= 1.13), else tf itself (1.7)."""
    compat = getattr(tf, "compat", None)
    return getattr(compat, "v1", None) or tf


def read_graph_def(path, tf=None):
    """The GraphDef stored in the binary file `path`."""
    from google.protobuf.message import DecodeError  # noqa: PLC0415 - TensorFlow brings it

    v1 = tf_v1(tf or _tf())
    with open(path, "rb") as fh:
        data = fh.read()
    graph_def = v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except DecodeError as exc:
        raise ModelError("{}: not a TensorFlow GraphDef ({}): give the "
                         "frozen_inference_graph.pb that export_inference_graph.py "
                         "wrote".format(path, exc)) from None
    return graph_def


def _source(name):
    """Node name of an input reference: 'x:1' -> 'x'; control inputs ('^x') -> None."""
    if name.startswith("^"):
        return None
    return name.split(":", 1)[0]


def walk_back(graph_def, outputs=(BOXES, CLASSES), stop=INPUT):
    """(nodes on the path by name, whether `stop` was reached, {missing name: referrer})."""
    nodes = {node.name: node for node in graph_def.node}
    seen, missing = {}, {}
    reached = False
    stack = [(name, None) for name in outputs if name in nodes]
    while stack:
        name, referrer = stack.pop()
        if name in seen:
            continue
        node = nodes.get(name)
        if node is None:
            missing.setdefault(name, referrer)
            continue
        seen[name] = node
        if name == stop:
            reached = True
            continue
        for ref in node.input:
            source = _source(ref)
            if source is not None and source not in seen:
                stack.append((source, name))
    return seen, reached, missing


def _shape(graph, name):
    shape = graph.get_tensor_by_name(name + ":0").get_shape()
    return None if shape.ndims is None else shape.as_list()


def show_shape(shape):
    if shape is None:
        return "<unknown rank>"
    return "[{}]".format(", ".join("?" if d is None else str(d) for d in shape))


def _known(shape):
    return shape is not None and all(d is not None for d in shape[1:])


def _compatible(shape, want):
    """Whether a tensor of shape `want` can be fed where the graph says `shape`."""
    return shape is None or (len(shape) == len(want) and
                             all(have is None or have == need for have, need in zip(shape, want)))


def _shapes(graph_def, tf, input_size):
    """{name: shape} of the three tensors, from the graph imported into a fresh tf.Graph.

    An export with --input_type image_tensor leaves the static shapes unknown (the image
    can be any size until the resizer), so when they are, the graph is run once from
    Preprocessor/sub on a zero image of the size the compiler is told, and the outputs'
    real shapes are taken: what the compiler will compute. Returns (shapes, ran).
    """
    v1 = tf_v1(tf)
    graph = v1.Graph()
    with graph.as_default():
        v1.import_graph_def(graph_def, name="")
    shapes = {name: _shape(graph, name) for name in (INPUT, BOXES, CLASSES)}
    want = [1, input_size, input_size, 3]
    if (_known(shapes[INPUT]) and _known(shapes[BOXES]) and _known(shapes[CLASSES])) \
            or not _compatible(shapes[INPUT], want):
        return shapes, False
    import numpy  # noqa: PLC0415  (TensorFlow's own dependency)

    fetches = [graph.get_tensor_by_name(name + ":0") for name in (BOXES, CLASSES)]
    with v1.Session(graph=graph) as session:
        boxes, classes = session.run(fetches, feed_dict={
            graph.get_tensor_by_name(INPUT + ":0"): numpy.zeros(want, numpy.float32)})
    return {INPUT: want, BOXES: list(boxes.shape), CLASSES: list(classes.shape)}, True


def _op_problems(path_nodes):
    by_op = collections.OrderedDict()
    for name in sorted(path_nodes):
        by_op.setdefault(path_nodes[name].op, []).append(name)
    problems = []
    for op in sorted(by_op):
        if op in ALLOWED_OPS:
            continue
        names = by_op[op]
        text = "op {} ({} node{}, e.g. {}) is on the path from {} to {}/{} and the Bonnet " \
               "compiler does not take it".format(op, len(names), "" if len(names) == 1 else "s",
                                                  names[0], INPUT, BOXES, CLASSES)
        advice = OP_ADVICE.get(op, "it takes only " + ", ".join(sorted(ALLOWED_OPS)))
        problems.append("{}: {}".format(text, advice))
    counts = {op: len(names) for op, names in by_op.items()}
    return problems, counts


def matches(shape, want):
    """Whether a static shape is `want`; an unknown batch (first) dimension counts as 1."""
    if shape is None or len(shape) != len(want):
        return False
    return all(have == need or (i == 0 and have is None)
               for i, (have, need) in enumerate(zip(shape, want)))


def _shape_problems(shapes, input_size, num_anchors, anchors_from, num_classes):
    problems = []
    want_input = [1, input_size, input_size, 3]
    if not matches(shapes[INPUT], want_input):
        problems.append("{} has shape {}, but the Bonnet compiler is told {} (--input-size {}): "
                        "export with a fixed_shape_resizer of {}x{}, or give the size the graph "
                        "was exported with".format(INPUT, show_shape(shapes[INPUT]),
                                                   show_shape(want_input), input_size,
                                                   input_size, input_size))
    boxes = shapes[BOXES]
    if not (matches(boxes, [1, num_anchors, 1, 4]) or matches(boxes, [1, num_anchors, 4])):
        problems.append("{} (box encodings) has shape {}, expected [1, {n}, 1, 4] or [1, {n}, 4] "
                        "for {n} anchors ({})".format(BOXES, show_shape(boxes), anchors_from,
                                                      n=num_anchors))
    want_classes = [1, num_anchors, num_classes + 1]
    if not matches(shapes[CLASSES], want_classes):
        problems.append("{} (class scores) has shape {}, expected {} for {} anchors ({}) and "
                        "{} class{} + background".format(
                            CLASSES, show_shape(shapes[CLASSES]), show_shape(want_classes),
                            num_anchors, anchors_from, num_classes,
                            "" if num_classes == 1 else "es"))
    return problems


def check_graph(path, input_size=256, num_classes=1, num_anchors=None, anchors_from=None):
    """Check the frozen graph at `path`; returns a result dict (result["ok"], ["problems"]).

    num_anchors defaults to the embedded SSD 256 config's count (1278); anchors_from
    says in messages where the expected count came from.
    """
    if num_anchors is None:
        from facekit.model.anchors import expected_anchor_count  # noqa: PLC0415

        num_anchors = expected_anchor_count()
        anchors_from = anchors_from or "the embedded SSD 256x256 config"
    anchors_from = anchors_from or "given"
    tf = _tf()
    graph_def = read_graph_def(path, tf)
    names = {node.name for node in graph_def.node}
    problems = []
    for name, role in ((INPUT, "input"), (BOXES, "box encodings output"),
                       (CLASSES, "class scores output")):
        if name not in names:
            problems.append("node {} ({}) is missing: export with export_inference_graph.py "
                            "--input_type image_tensor from the Object Detection API".format(
                                name, role))
    path_nodes, reached, missing = walk_back(graph_def)
    for name in sorted(set(missing) - {INPUT, BOXES, CLASSES}):
        problems.append("node {} (an input of {}) is not in the graph".format(
            name, missing[name]))
    for output in (BOXES, CLASSES):
        if output in names and INPUT in names and not walk_back(graph_def, (output,))[1]:
            problems.append("{} does not depend on {}: it is not an output computed from the "
                            "image".format(output, INPUT))
    op_problems, op_counts = _op_problems(path_nodes)
    problems.extend(op_problems)

    shapes = None
    ran = False
    if not missing and not [n for n in (INPUT, BOXES, CLASSES) if n not in names]:
        try:
            shapes, ran = _shapes(graph_def, tf, input_size)
        except (ValueError, TypeError, tf.errors.OpError) as exc:
            reason = "TensorFlow {} cannot import or run the graph from {} with a [1, {s}, {s}, " \
                     "3] image to read its shapes: {}".format(
                         tf.__version__, INPUT,
                         str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                         s=input_size)
            if problems:
                # Follows from a problem already reported (an op this TensorFlow lacks).
                log.info("shapes not checked: %s", reason)
            else:
                problems.append(reason)
    if shapes is not None:
        problems.extend(_shape_problems(shapes, input_size, num_anchors, anchors_from,
                                        num_classes))
    shapes = shapes or {}
    return {
        "graph": path,
        "ok": not problems,
        "problems": problems,
        "input": {"name": INPUT, "shape": shapes.get(INPUT)},
        # True when the static shapes were unknown and the graph was run to measure them.
        "shapes_measured": ran,
        "outputs": {BOXES: shapes.get(BOXES), CLASSES: shapes.get(CLASSES)},
        "expected": {"input_shape": [1, input_size, input_size, 3], "anchors": num_anchors,
                     "anchors_from": anchors_from, "classes": num_classes},
        "ops": op_counts,
        "path_nodes": len(path_nodes),
        "nodes": len(graph_def.node),
        "tensorflow": tf.__version__,
    }


def summary(result):
    """The one-line report of a check that passed."""
    ops = ", ".join("{} {}".format(op, n) for op, n in sorted(result["ops"].items()))
    expected = result["expected"]
    return "ok: {}: input {} {}; {} anchors; {} class{}; {} ops on the path ({})".format(
        result["graph"], INPUT, show_shape(result["input"]["shape"]), expected["anchors"],
        expected["classes"], "" if expected["classes"] == 1 else "es", result["path_nodes"], ops)
