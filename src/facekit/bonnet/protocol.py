"""The bonnet protocol's messages, built from the descriptor in aiy's protocol_pb2.py.

aiy-projects-python 1.4 ships only generated code (package spacepark.vision, no
.proto), written for protobuf <= 3.20: protobuf 4.21 and later refuse to import it.
The file's serialized FileDescriptorProto (the serialized_pb=_b('...') argument, or
the bytes given to AddSerializedFile in newer generated code) is read here with `ast`,
without importing aiy, and added to a private descriptor pool; the message classes
come from that pool, so this works with protobuf 3.20 through 7 and does not clash
with aiy's own module in the same process.

load() returns a Protocol with one attribute per top-level message (Request,
Response, InferenceResult, FloatTensor, SparseConfig, ...); nested types are
attributes of their parents (Request.LoadModel, Response.Status,
SparseConfig.Thresholding.ToIgnore) and enum values of theirs (Response.Status.OK).

Framing (the library's socket transport): a 4-byte big-endian length, then the
serialized message; the same both ways.
"""

import ast
import importlib.util
import os
import socket
import struct
import threading

from facekit.bonnet import BonnetError

PACKAGE = "spacepark.vision"
INSTALL_HINT = "pip install --no-deps aiy-projects-python==1.4"
# Where protocol_pb2.py sits inside the aiy package.
RELATIVE_PATH = os.path.join("vision", "proto", "protocol_pb2.py")
# Far above any real message (a 1080p JPEG is a few MB); guards against a stray client.
MAX_MESSAGE_BYTES = 64 << 20

_HEADER = struct.Struct("!I")
_cache = {}
_cache_lock = threading.Lock()


def find_protocol_file(path=None):
    """Path of aiy's protocol_pb2.py: `path` if given, else found in the installed aiy."""
    if path is not None:
        if not os.path.isfile(path):
            raise BonnetError("{}: no such file: give the protocol_pb2.py of "
                              "aiy-projects-python (aiy/{})".format(path, RELATIVE_PATH))
        return path
    spec = importlib.util.find_spec("aiy")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = os.path.join(location, RELATIVE_PATH)
        if os.path.isfile(candidate):
            return candidate
    if not locations:
        raise BonnetError("the aiy package (aiy-projects-python) is not installed, and the "
                          "bonnet protocol is read from its vision/proto/protocol_pb2.py: "
                          "run `{}` (--no-deps: its picamera dependency does not build "
                          "off a Pi)".format(INSTALL_HINT))
    raise BonnetError("aiy is installed at {} but has no {}: reinstall it with `{}`".format(
        ", ".join(locations), RELATIVE_PATH, INSTALL_HINT))


def _bytes_of(node):
    """The bytes a literal (or _b('...'), which is latin-1 encoding) stands for, or None."""
    if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:
        return _bytes_of(node.args[0])
    if isinstance(node, ast.Constant):
        value = node.value
    else:  # Python < 3.8 parses literals as ast.Str / ast.Bytes
        value = getattr(node, "s", None)
    if isinstance(value, str):
        return value.encode("latin-1")
    if isinstance(value, bytes):
        return value
    return None


def serialized_descriptor(path):
    """The serialized FileDescriptorProto held in the generated module at `path`."""
    with open(path, "r", encoding="utf-8") as fh:
        source = fh.read()
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise BonnetError("{}: not Python ({}): reinstall aiy with `{}`".format(
            path, exc, INSTALL_HINT)) from None
    for node in ast.walk(tree):
        found = None
        if isinstance(node, ast.keyword) and node.arg == "serialized_pb":
            found = _bytes_of(node.value)
        elif isinstance(node, ast.Call) and node.args and \
                getattr(node.func, "attr", None) == "AddSerializedFile":
            found = _bytes_of(node.args[0])
        if found:
            return found
    raise BonnetError("{}: no serialized descriptor found (neither serialized_pb=... nor "
                      "AddSerializedFile(...)): not a generated protocol module; reinstall "
                      "aiy with `{}`".format(path, INSTALL_HINT))


class Protocol(object):
    """Message classes of one protocol_pb2.py; see the module docstring."""

    def __init__(self, path, messages):
        self.path = path
        self.messages = dict(messages)
        for name, cls in self.messages.items():
            setattr(self, name, cls)
        self.OK = self.Response.Status.OK
        self.ERROR = self.Response.Status.ERROR

    def response(self, message=None, **fields):
        """A Response with status ERROR and `message` if message is given, else OK."""
        response = self.Response(**fields)
        if message is None:
            response.status.code = self.OK
        else:
            response.status.code = self.ERROR
            response.status.message = message
        return response


def _class_getter(pool):
    from google.protobuf import message_factory  # noqa: PLC0415 - the CLI starts without it

    if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.21
        return message_factory.GetMessageClass
    return message_factory.MessageFactory(pool).GetPrototype


def _with_nested(get, descriptor):
    """The class of `descriptor`, its nested classes and enum values set as attributes.

    Generated code sets them; classes made from a pool have them on some protobuf
    implementations only.
    """
    cls = get(descriptor)
    for nested in descriptor.nested_types:
        if nested.GetOptions().map_entry:
            continue
        nested_cls = _with_nested(get, nested)
        if getattr(cls, nested.name, None) is not nested_cls:
            setattr(cls, nested.name, nested_cls)
    for enum in descriptor.enum_types:
        for value in enum.values:
            if not hasattr(cls, value.name):
                setattr(cls, value.name, value.number)
    return cls


def load(path=None):
    """The Protocol of aiy's protocol_pb2.py (see find_protocol_file); cached per file."""
    path = os.path.realpath(find_protocol_file(path))
    with _cache_lock:
        if path in _cache:
            return _cache[path]
        from google.protobuf import descriptor_pool  # noqa: PLC0415

        data = serialized_descriptor(path)
        pool = descriptor_pool.DescriptorPool()
        try:
            file_descriptor = pool.AddSerializedFile(data)
        except Exception as exc:  # the implementations raise TypeError or their own errors
            raise BonnetError("{}: its serialized descriptor does not load ({}: {}): "
                              "reinstall aiy with `{}`".format(
                                  path, type(exc).__name__, exc, INSTALL_HINT)) from None
        if file_descriptor is None or isinstance(file_descriptor, bytes):
            # protobuf 3.20's C++ pool returns nothing useful here: look the file up.
            file_descriptor = pool.FindFileByName("protocol.proto")
        if file_descriptor.package != PACKAGE:
            raise BonnetError("{}: describes package {!r}, not {!r}: not AIY's bonnet "
                              "protocol".format(path, file_descriptor.package, PACKAGE))
        get = _class_getter(pool)
        messages = {name: _with_nested(get, descriptor)
                    for name, descriptor in file_descriptor.message_types_by_name.items()}
        missing = [name for name in ("Request", "Response") if name not in messages]
        if missing:
            raise BonnetError("{}: has no {} message: not AIY's bonnet protocol".format(
                path, " or ".join(missing)))
        protocol = Protocol(path, messages)
        _cache[path] = protocol
        return protocol


def _receive_exactly(sock, size):
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def quick_ack(sock):
    """Acknowledge received data at once (Linux TCP_QUICKACK; re-armed before each read).

    AIY's transport sends the 4-byte length and the message in two writes: with a
    delayed ACK here, Nagle's algorithm holds the message back ~40 ms on the client.
    """
    option = getattr(socket, "TCP_QUICKACK", None)
    if option is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)
        except OSError:
            pass


def read_message(sock, quick=False):
    """The next framed message's bytes; None when the peer closed the connection.

    quick: acknowledge the length at once (see quick_ack); servers want it.
    """
    if quick:
        quick_ack(sock)
    header = _receive_exactly(sock, _HEADER.size)
    if quick:
        quick_ack(sock)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_MESSAGE_BYTES:
        raise BonnetError("a message of {} bytes announced, more than the {} accepted: not "
                          "a bonnet client".format(size, MAX_MESSAGE_BYTES))
    if size == 0:
        return b""
    return _receive_exactly(sock, size)


def write_message(sock, data):
    """Send `data` framed: 4-byte big-endian length, then the bytes."""
    sock.sendall(_HEADER.pack(len(data)) + data)


class Client(object):
    """A minimal bonnet client: call(Request) -> Response over one TCP connection."""

    def __init__(self, host="127.0.0.1", port=35000, timeout=60.0, protocol=None):
        self.protocol = protocol or load()
        self.sock = socket.create_connection((host, port), timeout=timeout)

    def call(self, request):
        """Send a Request; the Response, or BonnetError if the server closed instead."""
        write_message(self.sock, request.SerializeToString())
        data = read_message(self.sock)
        if data is None:
            raise BonnetError("the bonnet closed the connection without a reply")
        response = self.protocol.Response()
        response.ParseFromString(data)
        return response

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
