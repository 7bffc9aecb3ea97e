"""pipeline.config reader: the fields of an SSD model that the anchors and graph checks need.

The file is parsed with google.protobuf.text_format into the Object Detection API's
own TrainEvalPipelineConfig (object_detection.protos.pipeline_pb2), the way train.py
reads it, so a misspelled field fails here as it would fail there. The generated
protos come from the tensorflow/models checkout on the training host (research/ on
PYTHONPATH); elsewhere `pip install --no-deps tensorflow-object-detection-api==0.1.1`
provides them.

Those generated modules are old: protobuf >= 4 imports them only with its pure-Python
implementation (PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python), which must be chosen
before protobuf is first imported; see prefer_pure_python_protobuf().
"""

import collections
import os
import struct
import sys

from facekit.model.errors import ConfigError

# The fields of SsdAnchorGenerator (object_detection/protos/ssd_anchor_generator.proto).
AnchorGenerator = collections.namedtuple("AnchorGenerator", [
    "num_layers", "min_scale", "max_scale", "scales", "aspect_ratios",
    "interpolated_scale_aspect_ratio", "reduce_boxes_in_lowest_layer",
    "base_anchor_height", "base_anchor_width",
    "height_stride", "width_stride", "height_offset", "width_offset"])

# What of an SSD model shapes its anchors and its exported outputs; source is the
# config file it was read from (None for the built-in default), named in errors.
SsdModel = collections.namedtuple("SsdModel", [
    "num_classes", "image_height", "image_width", "feature_extractor", "pad_to_multiple",
    "use_fpn", "anchor_generator", "source"])

INSTALL_HINT = (
    "on the training host put tensorflow/models/research on PYTHONPATH and compile the protos "
    "(from research/: protoc object_detection/protos/*.proto --python_out=.); elsewhere: "
    "pip install --no-deps tensorflow-object-detection-api==0.1.1")


def f32(value):
    """`value` rounded to float32, as a proto float field stores it."""
    return struct.unpack("f", struct.pack("f", value))[0]


def _f32s(values):
    return tuple(f32(v) for v in values)


# The training stage's config (DESIGN: samples/configs/embedded_ssd_mobilenet_v1_coco.config
# with num_classes 1 and a 256x256 fixed_shape_resizer): what checks assume without --config.
EMBEDDED_SSD_256 = SsdModel(
    num_classes=1, image_height=256, image_width=256,
    feature_extractor="embedded_ssd_mobilenet_v1", pad_to_multiple=1, use_fpn=False,
    anchor_generator=AnchorGenerator(
        num_layers=5, min_scale=f32(0.2), max_scale=f32(0.95), scales=(),
        aspect_ratios=_f32s((1.0, 2.0, 0.5, 3.0, 0.3333)), interpolated_scale_aspect_ratio=1.0,
        reduce_boxes_in_lowest_layer=True, base_anchor_height=1.0, base_anchor_width=1.0,
        height_stride=(), width_stride=(), height_offset=(), width_offset=()),
    source=None)


def prefer_pure_python_protobuf():
    """Choose protobuf's pure-Python implementation, unless protobuf is already loaded.

    Generated *_pb2 modules from protoc 3.x make protobuf >= 4's C implementations
    raise "Descriptors cannot be created directly"; the pure-Python one imports them
    (slower, which a config file of a few KB never notices). An explicit setting wins.
    The CLI calls this before anything imports protobuf.
    """
    if "google.protobuf.internal.api_implementation" not in sys.modules:
        os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")


def _pipeline_pb2(path):
    try:
        from object_detection.protos import pipeline_pb2  # noqa: PLC0415 - optional, lazy
    except ImportError as exc:
        raise ConfigError("cannot read {}: the Object Detection API's generated protos are not "
                          "importable ({}): {}".format(path, exc, INSTALL_HINT)) from None
    except TypeError as exc:
        if "Descriptors cannot be created directly" not in str(exc):
            raise
        raise ConfigError(
            "cannot read {}: object_detection's generated *_pb2 modules are older than the "
            "installed protobuf's C implementation accepts: set "
            "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python before Python starts, or regenerate "
            "the protos with a protoc matching the protobuf runtime".format(path)) from None
    return pipeline_pb2


def read_pipeline_config(path):
    """The TrainEvalPipelineConfig message parsed from the text file `path`."""
    pipeline_pb2 = _pipeline_pb2(path)
    from google.protobuf import text_format  # noqa: PLC0415 - after _pipeline_pb2 chose the impl

    with open(path, "r", encoding="utf-8") as fh:
        text = fh.read()
    config = pipeline_pb2.TrainEvalPipelineConfig()
    try:
        # Merge, not Parse: what the Object Detection API's config_util uses.
        text_format.Merge(text, config)
    except text_format.ParseError as exc:
        # str(exc) is "LINE:COLUMN : message" when protobuf knows where.
        where, sep, message = str(exc).partition(" : ")
        if not (sep and where.replace(":", "").isdigit()):
            where, message = "", str(exc)
        raise ConfigError("{}:{} {} (check the field names and value types against the "
                          "checkout's object_detection/protos/*.proto)".format(
                              path, where + ":" if where else "", message.rstrip("."))) from None
    return config


def summary(config, path="pipeline.config"):
    """What a parsed TrainEvalPipelineConfig trains, as a dict for `facekit model config
    --json`: the model kind, classes, input size (fixed_shape_resizer only, else None),
    feature extractor and the training steps and batch size. Any model kind: unlike
    ssd_model, this refuses nothing."""
    kind = config.model.WhichOneof("model")
    result = {"config": path, "model": kind, "num_classes": None, "image_resizer": None,
              "image_size": None, "feature_extractor": None,
              "num_steps": config.train_config.num_steps,
              "batch_size": config.train_config.batch_size}
    if kind is None:
        return result
    model = getattr(config.model, kind)
    resizer = model.image_resizer.WhichOneof("image_resizer_oneof")
    result.update(num_classes=model.num_classes, image_resizer=resizer,
                  feature_extractor=model.feature_extractor.type)
    if resizer == "fixed_shape_resizer":
        fixed = model.image_resizer.fixed_shape_resizer
        result["image_size"] = [fixed.height, fixed.width]
    return result


def _has_field(message, name):
    # Fields that newer protos added (fpn) are absent from the pinned checkout's.
    return name in message.DESCRIPTOR.fields_by_name and message.HasField(name)


def ssd_model(config, path="pipeline.config"):
    """SsdModel from a parsed TrainEvalPipelineConfig; `path` only names it in errors."""
    kind = config.model.WhichOneof("model")
    if kind != "ssd":
        raise ConfigError("{}: model is {}, not ssd: anchors and the Bonnet outputs exist for SSD "
                          "models only (model {{ ssd {{ ... }} }})".format(path, kind or "empty"))
    ssd = config.model.ssd
    generator = ssd.anchor_generator.WhichOneof("anchor_generator_oneof")
    if generator is None:
        raise ConfigError("{}: model.ssd.anchor_generator is missing: add anchor_generator "
                          "{{ ssd_anchor_generator {{ ... }} }}".format(path))
    if generator != "ssd_anchor_generator":
        raise ConfigError("{}: model.ssd.anchor_generator is {}: facekit computes anchors for "
                          "ssd_anchor_generator only".format(path, generator))
    resizer = ssd.image_resizer.WhichOneof("image_resizer_oneof")
    if resizer != "fixed_shape_resizer":
        raise ConfigError("{}: model.ssd.image_resizer is {}: the Vision Bonnet takes a fixed "
                          "input size, and facekit supports fixed_shape_resizer {{ height: 256 "
                          "width: 256 }} only".format(path, resizer or "missing"))
    extractor = ssd.feature_extractor
    gen = ssd.anchor_generator.ssd_anchor_generator
    anchor_generator = AnchorGenerator(
        num_layers=gen.num_layers, min_scale=f32(gen.min_scale), max_scale=f32(gen.max_scale),
        scales=_f32s(gen.scales), aspect_ratios=_f32s(gen.aspect_ratios),
        interpolated_scale_aspect_ratio=f32(gen.interpolated_scale_aspect_ratio),
        reduce_boxes_in_lowest_layer=gen.reduce_boxes_in_lowest_layer,
        base_anchor_height=f32(gen.base_anchor_height),
        base_anchor_width=f32(gen.base_anchor_width),
        height_stride=tuple(gen.height_stride), width_stride=tuple(gen.width_stride),
        height_offset=tuple(gen.height_offset), width_offset=tuple(gen.width_offset))
    return SsdModel(
        num_classes=ssd.num_classes,
        image_height=ssd.image_resizer.fixed_shape_resizer.height,
        image_width=ssd.image_resizer.fixed_shape_resizer.width,
        feature_extractor=extractor.type,
        pad_to_multiple=getattr(extractor, "pad_to_multiple", 1) or 1,
        use_fpn=_has_field(extractor, "fpn"),
        anchor_generator=anchor_generator,
        source=path)


def load_ssd_model(path):
    """SsdModel read from the pipeline.config at `path`."""
    return ssd_model(read_pipeline_config(path), path)
