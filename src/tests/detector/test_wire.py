"""facekit.detector.wire: a FloatTensor message's floats read from its protobuf wire form."""

import json
import subprocess

import numpy as np
import pytest
from decode_reference import AIY_ANCHORS, clustered_tensors
from detector_fakes import KIT_PYTHON, kit_env, needs_kit

from facekit.detector import decode, wire


@pytest.fixture(scope="module")
def aiy_anchors():
    return decode.load_anchors(AIY_ANCHORS)


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def packed_floats(number, values):
    body = np.asarray(values, dtype="<f4").tobytes()
    return varint(number << 3 | 2) + varint(len(body)) + body


SHAPE_BODY = varint(1 << 3) + varint(1) + varint(2 << 3) + varint(1278) + varint(4 << 3) + varint(2)
SHAPE = varint(1 << 3 | 2) + varint(len(SHAPE_BODY)) + SHAPE_BODY  # shape {1, 1278, depth 2}


def test_wire_floats_reads_packed_runs_between_other_fields():
    values = np.random.RandomState(80).normal(size=300).astype(np.float32)
    indices = varint(3 << 3 | 2) + varint(2) + b"\x08\x05"
    data = SHAPE + packed_floats(2, values[:100]) + indices + packed_floats(2, values[100:])
    got = wire._wire_floats(data, 2)
    assert got.dtype == np.float32 and np.array_equal(got, values)
    assert wire._wire_floats(SHAPE, 2).size == 0
    # Fields of other wire types (varint 0, 64-bit 1, 32-bit 5) are skipped.
    others = (varint(5 << 3) + varint(300) + varint(6 << 3 | 1) + b"\x00" * 8
              + varint(7 << 3 | 5) + b"\x00" * 4)
    assert np.array_equal(wire._wire_floats(others + packed_floats(2, values), 2), values)


@pytest.mark.parametrize("data", [
    packed_floats(2, [1.0, 2.0])[:-1],                          # cut inside the floats
    varint(2 << 3 | 2) + varint(5) + b"\x00" * 5,               # not a multiple of 4
    varint(2 << 3 | 5) + b"\x00\x00\x80\x3f",                   # not packed (proto2)
    b"\x12\xff",                                                # cut inside a varint
    varint(2 << 3 | 3),                                         # a group: not in the schema
    b"\x12" + b"\xff" * 11,                                     # a varint of 11 bytes
])
def test_wire_floats_refuses_what_it_cannot_read(data):
    assert wire._wire_floats(data, 2) is None


def test_tensor_values_of_other_objects_is_their_data():
    class Plain(object):
        data = [1.0, 2.0]
    assert wire.tensor_values(Plain()) is Plain.data


def aiy_float_tensor_class():
    """AIY's own FloatTensor message class (`data` = field 2, packed, proto3), made from the
    descriptor in aiy's protocol_pb2.py with this venv's protobuf, as the software bonnet
    makes it (the test is skipped where that cannot be done)."""
    try:
        from facekit.bonnet import BonnetError, protocol  # noqa: PLC0415
    except ImportError as exc:
        pytest.skip("facekit.bonnet cannot be imported: {}".format(exc))
    try:
        return protocol.load().FloatTensor
    except (ImportError, BonnetError) as exc:
        pytest.skip("AIY's protocol cannot be loaded here: {}".format(exc))


def test_tensor_values_of_a_protobuf_message_decodes_like_its_data(aiy_anchors):
    cls = aiy_float_tensor_class()
    encodings, logits = clustered_tensors(81, 20)
    messages = []
    for array in (encodings, logits):
        tensor = cls()
        tensor.data.extend(array.ravel().tolist())
        messages.append(cls.FromString(tensor.SerializeToString()))
    values = [wire.tensor_values(m) for m in messages]
    for value, array in zip(values, (encodings, logits)):
        assert np.array_equal(np.asarray(value, dtype=np.float32), array.ravel())
    expected = decode.decode_dense(encodings, logits, aiy_anchors)
    assert expected
    assert decode.decode_dense(values[0], values[1], aiy_anchors) == expected
    assert decode.decode_dense(messages[0].data, messages[1].data, aiy_anchors) == expected


@needs_kit
def test_tensor_values_reads_aiy_float_tensors_from_their_wire_form():
    """Under the kit's protobuf (C++ implementation), wire.tensor_values gives the floats
    of AIY's own FloatTensor as an array read from the message's bytes."""
    code = "\n".join([
        "import json, numpy as np",
        "from google.protobuf.internal import api_implementation",
        "from aiy.vision.proto import protocol_pb2",
        "from facekit.detector import wire",
        "values = np.random.RandomState(7).normal(size=2556).astype(np.float32)",
        "tensor = protocol_pb2.FloatTensor()",
        "tensor.shape.batch, tensor.shape.height, tensor.shape.depth = 1, 1278, 2",
        "tensor.data.extend(values.tolist())",
        "tensor.indices.add().values.extend([3, 1])",
        "got = wire.tensor_values(protocol_pb2.FloatTensor.FromString(",
        "    tensor.SerializeToString()))",
        "print(json.dumps([api_implementation.Type(), type(got).__name__, str(got.dtype),",
        "                  bool(np.array_equal(got, values))]))",
    ])
    result = subprocess.run([KIT_PYTHON, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=kit_env(9),
                            check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["cpp", "ndarray", "float32", True]
