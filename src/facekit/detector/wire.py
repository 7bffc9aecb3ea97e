"""The floats of an AIY FloatTensor message, read from its protobuf wire form.

Reading protobuf 3's repeated `data` field costs a Python float per element (about
100 ns each under the C++ implementation the kit's Raspbian packages: 0.3 ms for a
frame's dense tensors). The message's wire form is a copy of the floats made in C,
which numpy reads as they are: tensor_values gives decode_dense that array. Only the
few wire types AIY's schema uses are parsed; anything unexpected falls back to the
repeated field itself. Python 3.5 and numpy: this runs on the kit.
"""

import numpy as np

# The repeated fields of protobuf's C implementations: C++ (protobuf 3.x, as the kit's
# Raspbian packages it), whose elements cost ~100 ns each to read (0.3 ms for a frame's
# dense tensors), and upb (protobuf >= 4). Their message's wire form is a copy of the floats
# made in C, which numpy reads without a Python float per element. The pure-Python
# implementation's field is a list, and its serialisation slow: it is read as it is.
_C_CONTAINERS = ("google.protobuf.pyext._message", "google._upb._message")


def tensor_values(tensor):
    """The `data` of a FloatTensor message (AIY's protocol) in the form decode_dense reads
    fastest: under protobuf's C++ or upb implementation a float32 array read from the
    message's wire form, otherwise the repeated field itself. Anything unexpected (a
    schema whose floats are not packed) gives `data` as it is."""
    values = tensor.data
    if type(values).__module__ not in _C_CONTAINERS:
        return values
    try:
        number = tensor.DESCRIPTOR.fields_by_name["data"].number
        wire = tensor.SerializeToString()
    except Exception:  # noqa: BLE001 - the repeated field still works, only slower
        return values
    floats = _wire_floats(wire, number)
    if floats is None or floats.size != len(values):
        return values
    return floats


def _wire_floats(wire, number):
    """The floats of field `number` (a packed repeated float, as proto3 makes them: AIY's
    FloatTensor) in a message's wire form, as a float32 array, the packed runs in order.
    None if the bytes do not parse as protobuf fields or the field is not packed."""
    chunks = []
    position = 0
    try:
        while position < len(wire):
            field, start, position = _wire_field(wire, position)
            if field == number:
                if start is None or (position - start) % 4:
                    return None  # not packed (a proto2 schema: a key per value), or cut
                chunks.append(np.frombuffer(wire, "<f4", (position - start) // 4, start))
    except ValueError:
        return None
    if len(chunks) == 1:
        return chunks[0]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def _wire_field(wire, position):
    """(field number, where a length-delimited field's bytes start or None, the position
    after the field) of the field at position; ValueError if it does not parse."""
    key, position = _varint(wire, position)
    wire_type = key & 7
    start = None
    if wire_type == 0:
        end = _varint(wire, position)[1]
    elif wire_type == 1:
        end = position + 8
    elif wire_type == 2:
        length, start = _varint(wire, position)
        end = start + length
    elif wire_type == 5:
        end = position + 4
    else:
        raise ValueError("wire type {} is not used by the schema".format(wire_type))
    if end > len(wire):
        raise ValueError("a field runs past the end")
    return key >> 3, start, end


def _varint(wire, position):
    """(value, position after it) of the base-128 varint at position; ValueError when the
    bytes end inside it or it is longer than 10 bytes."""
    value = 0
    for shift in range(0, 70, 7):
        if position >= len(wire):
            break
        byte = wire[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
    raise ValueError("a varint is cut or longer than 10 bytes")
