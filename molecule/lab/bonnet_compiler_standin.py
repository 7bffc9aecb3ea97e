#!/usr/bin/env python3
"""Test stand-in for Google's Vision Bonnet model compiler, which this lab cannot download.

The real one is bonnet_model_compiler.par from bonnet_model_compiler_latest.tgz (AIY's site).

It takes the real tool's arguments and refuses what the real one is known to refuse, so a role
or script that drives the compiler can be tested for real, but it compiles nothing:

    bonnet_model_compiler.par --frozen_graph_path=frozen_inference_graph.pb \\
        --output_graph_path=model.binaryproto --input_tensor_name=Preprocessor/sub \\
        --output_tensor_names=concat,concat_1 --input_tensor_size=256 [--debug]

Refused, with a message and exit status 1 (2 for malformed command lines, as argparse does):
curly quotes in an argument (pasted from a web page or word processor); an input other than
Preprocessor/sub (image_tensor fails on the real compiler: the preprocessing map's TensorArray
ops do not run on the bonnet); outputs other than concat,concat_1 (`concat1` is a known typo);
a frozen graph that is missing, not a GraphDef, lacks a named node, has outputs that do not
depend on the input, or contains AddV2 (graphs frozen with TensorFlow >= 1.15 do; the real
compiler rejects them).

The graph is read without TensorFlow: a small protobuf wire-format reader lists the nodes
(GraphDef.node = field 1; NodeDef name = 1, op = 2, input = 3). The output file is

    facekit-standin-binaryproto 1 input=<name> outputs=<a,b> size=<n>\\n
    <sha256 hex of the frozen graph>\\n
    <the frozen graph's bytes>

so a software Vision Bonnet can tell it from a real model and match it to its bundle.

    bonnet_compiler_standin.py make-tgz DEST_DIR

writes DEST_DIR/bonnet_model_compiler_latest.tgz holding this script as
bonnet_model_compiler.par (mode 0755, at the archive's top level like the real download),
byte-identical on every run, and prints its name, sha256 and size as JSON.
Python 3.5+, standard library only.
"""

import argparse
import collections
import difflib
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

PROG = "bonnet_model_compiler.par"
MAGIC = b"facekit-standin-binaryproto 1"
INPUT_NAME = "Preprocessor/sub"
OUTPUT_NAMES = ("concat", "concat_1")
TGZ_NAME = "bonnet_model_compiler_latest.tgz"
TGZ_MTIME = 1522540800  # 2018-04-01, fixed so the archive's sha256 never changes
CURLY = {"\u201c": "\u201c (left double quote)", "\u201d": "\u201d (right double quote)",
         "\u2018": "\u2018 (left single quote)", "\u2019": "\u2019 (right single quote)"}

Node = collections.namedtuple("Node", ["name", "op", "inputs"])


class CompileError(Exception):
    """A refusal: the message says what is wrong and what to do."""


# --- protobuf wire format ---------------------------------------------------------------

class WireError(ValueError):
    pass


def _varint(data, pos, end):
    value = shift = 0
    while True:
        if pos >= end:
            raise WireError("varint runs past the end at byte {}".format(pos))
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes at byte {}".format(pos))


def _fields(data, pos, end):
    """Yield (field number, wire type, value); value is (start, stop) for length-delimited."""
    while pos < end:
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0 at byte {}".format(pos))
        if wire == 0:
            value, pos = _varint(data, pos, end)
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 5:
            value, pos = None, pos + 4
        elif wire == 2:
            length, pos = _varint(data, pos, end)
            value, pos = (pos, pos + length), pos + length
        else:
            raise WireError("wire type {} (groups) at byte {}".format(wire, pos))
        if pos > end:
            raise WireError("field {} runs past the end of its message".format(number))
        yield number, wire, value


def _text(data, span):
    return bytes(data[span[0]:span[1]]).decode("utf-8")


def parse_graph_nodes(data):
    """[Node(name, op, inputs)] of a serialized tensorflow GraphDef; raises WireError."""
    nodes = []
    for number, wire, value in _fields(data, 0, len(data)):
        if number != 1:
            continue
        if wire != 2:
            raise WireError("GraphDef field 1 (node) has wire type {}, not a message; a "
                            "SavedModel's saved_model.pb looks like this".format(wire))
        name, op, inputs = None, None, []
        for inner, inner_wire, inner_value in _fields(data, value[0], value[1]):
            if inner in (1, 2, 3) and inner_wire != 2:
                raise WireError("NodeDef field {} is not a string".format(inner))
            if inner == 1:
                name = _text(data, inner_value)
            elif inner == 2:
                op = _text(data, inner_value)
            elif inner == 3:
                inputs.append(_text(data, inner_value))
        if not name or not op:
            raise WireError("node {} has no name or no op".format(len(nodes) + 1))
        nodes.append(Node(name, op, tuple(inputs)))
    return nodes


# --- checks -----------------------------------------------------------------------------

def _curly_quotes(argv):
    """Messages for arguments holding typographic quotes (also when the locale could not
    decode them and they arrive as surrogate escapes)."""
    problems = []
    for arg in argv:
        found = [label for char, label in sorted(CURLY.items()) if char in arg]
        if not found:
            try:
                raw = os.fsencode(arg)
            except UnicodeEncodeError:
                raw = b""
            found = [label for char, label in sorted(CURLY.items())
                     if char.encode("utf-8") in raw]
        if found:
            flag = arg.split("=", 1)[0] if arg.startswith("--") else "an argument"
            problems.append(
                "{} contains curly quotes {} in {!r}: they were probably pasted from a web page "
                "or word processor and become part of the value; use straight quotes or none, "
                "e.g. --input_tensor_name=Preprocessor/sub --output_tensor_names=concat,concat_1"
                .format(flag, ", ".join(found), arg))
    return problems


def check_arguments(args):
    """Messages for argument values the real compiler refuses (no graph needed)."""
    problems = []
    if args.input_tensor_name == "image_tensor":
        problems.append(
            "--input_tensor_name=image_tensor: the ops between image_tensor and "
            "Preprocessor/sub (the preprocessing map's TensorArray ops) do not run on the "
            "Vision Bonnet; use --input_tensor_name=Preprocessor/sub")
    elif args.input_tensor_name != INPUT_NAME:
        problems.append(
            "--input_tensor_name={}: an SSD graph exported by the Object Detection API is fed at "
            "its preprocessing subtraction; use --input_tensor_name={}".format(
                args.input_tensor_name, INPUT_NAME))
    outputs = args.output_tensor_names.split(",")
    if tuple(outputs) != OUTPUT_NAMES:
        hint = ""
        if "concat1" in outputs:
            hint = " ('concat1' has no underscore: the class output is 'concat_1')"
        elif any(name != name.strip() for name in outputs):
            hint = " (no spaces around the comma)"
        problems.append(
            "--output_tensor_names={}: the SSD outputs are the box encodings 'concat' and the "
            "class scores 'concat_1'{}; use --output_tensor_names={}".format(
                args.output_tensor_names, hint, ",".join(OUTPUT_NAMES)))
    try:
        size = int(args.input_tensor_size)
    except ValueError:
        size = 0
    if size <= 0:
        problems.append("--input_tensor_size={}: expected a positive whole number of pixels, "
                        "e.g. 256 for the embedded SSD".format(args.input_tensor_size))
    return problems


def _node_name(tensor):
    """Node a NodeDef input refers to: '^ctrl' -> 'ctrl', 'name:1' -> 'name'."""
    return tensor.lstrip("^").split(":", 1)[0]


def check_graph(path, nodes, input_name, output_names):
    """Messages for what the real compiler would refuse in the graph itself."""
    if not nodes:
        return ["{}: the GraphDef has no nodes; pass the frozen_inference_graph.pb that "
                "export_inference_graph.py wrote".format(path)]
    by_name = {node.name: node for node in nodes}
    problems = []
    for name in (input_name,) + tuple(output_names):
        if name not in by_name:
            close = difflib.get_close_matches(name, list(by_name), n=3)
            problems.append("{}: no node named {!r} in the graph ({} nodes){}".format(
                path, name, len(nodes),
                "; similar names: " + ", ".join(close) if close else ""))
    addv2 = [node.name for node in nodes if node.op == "AddV2"]
    if addv2:
        problems.append(
            "{}: the graph contains {} AddV2 op(s) (e.g. {}), which the Vision Bonnet compiler "
            "does not support; graphs frozen with TensorFlow >= 1.15 have them: export the "
            "checkpoint with TensorFlow 1.7 .. 1.14".format(
                path, len(addv2), ", ".join(addv2[:3])))
    if problems:
        return problems
    for output in output_names:
        seen, todo = set(), [output]
        while todo:
            name = todo.pop()
            if name in seen or name not in by_name:
                continue
            seen.add(name)
            if name != input_name:
                todo.extend(_node_name(t) for t in by_name[name].inputs)
        if input_name not in seen:
            problems.append("{}: output {!r} does not depend on the input {!r}; is this the "
                            "detector's frozen graph?".format(path, output, input_name))
    return problems


# --- compile ----------------------------------------------------------------------------

def compiled_bytes(graph, input_name, output_names, size):
    header = "{} input={} outputs={} size={}\n".format(
        MAGIC.decode("ascii"), input_name, ",".join(output_names), size)
    digest = hashlib.sha256(graph).hexdigest()
    return header.encode("ascii") + digest.encode("ascii") + b"\n" + graph


def compile_graph(args):
    """Check everything and write --output_graph_path; raises CompileError."""
    problems = check_arguments(args)
    if problems:
        raise CompileError("\n".join(problems))
    path = args.frozen_graph_path
    try:
        with open(path, "rb") as fh:
            graph = fh.read()
    except OSError as exc:
        raise CompileError("--frozen_graph_path={}: cannot read it ({}); pass the "
                           "frozen_inference_graph.pb that export_inference_graph.py "
                           "wrote".format(path, exc.strerror or exc)) from None
    try:
        nodes = parse_graph_nodes(graph)
    except (WireError, UnicodeDecodeError) as exc:
        raise CompileError("--frozen_graph_path={}: not a serialized GraphDef ({}); pass "
                           "frozen_inference_graph.pb, not a SavedModel or checkpoint".format(
                               path, exc)) from None
    outputs = args.output_tensor_names.split(",")
    problems = check_graph(path, nodes, args.input_tensor_name, outputs)
    if problems:
        raise CompileError("\n".join(problems))
    out = args.output_graph_path
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise CompileError("--output_graph_path={}: folder {} does not exist; create it "
                           "first".format(out, folder))
    data = compiled_bytes(graph, args.input_tensor_name, outputs, int(args.input_tensor_size))
    tmp = out + ".tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, out)
    except OSError as exc:
        raise CompileError("--output_graph_path={}: cannot write it ({})".format(
            out, exc.strerror or exc)) from None
    if args.debug:
        ops = collections.Counter(node.op for node in nodes)
        sys.stderr.write("{} nodes; ops: {}\n".format(
            len(nodes), ", ".join("{} {}".format(op, n) for op, n in sorted(ops.items()))))
    return len(nodes), len(data)


# --- packaging --------------------------------------------------------------------------

def make_tgz(dest_dir):
    """Write dest_dir/bonnet_model_compiler_latest.tgz (this script as
    bonnet_model_compiler.par, mode 0755); return (file name, sha256)."""
    with open(os.path.abspath(__file__), "rb") as fh:
        script = fh.read()
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(PROG)
        info.size, info.mode, info.mtime = len(script), 0o755, TGZ_MTIME
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        tar.addfile(info, io.BytesIO(script))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, compresslevel=9,
                       mtime=0) as gz:
        gz.write(tar_bytes.getvalue())
    data = packed.getvalue()
    os.makedirs(dest_dir, exist_ok=True)
    path = os.path.join(dest_dir, TGZ_NAME)
    with open(path + ".tmp", "wb") as fh:
        fh.write(data)
    os.replace(path + ".tmp", path)
    return TGZ_NAME, hashlib.sha256(data).hexdigest()


# --- command line -----------------------------------------------------------------------

def _parser():
    parser = argparse.ArgumentParser(
        prog=PROG, allow_abbrev=False,
        description="Test stand-in for the Vision Bonnet model compiler: checks the arguments "
                    "and the frozen graph like the real one and writes a stand-in "
                    "binaryproto (header, graph sha256, graph bytes).")
    parser.add_argument("--frozen_graph_path", required=True,
                        help="frozen_inference_graph.pb from export_inference_graph.py")
    parser.add_argument("--output_graph_path", required=True,
                        help="the .binaryproto to write (its folder must exist)")
    parser.add_argument("--input_tensor_name", required=True,
                        help="must be Preprocessor/sub for an Object Detection API SSD")
    parser.add_argument("--output_tensor_names", required=True,
                        help="must be concat,concat_1 (box encodings, class scores)")
    parser.add_argument("--input_tensor_size", required=True,
                        help="input side in pixels, e.g. 256")
    parser.add_argument("--debug", action="store_true", help="print the graph's op counts")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["make-tgz"]:
        if len(argv) != 2:
            sys.stderr.write("usage: {} make-tgz DEST_DIR\n".format(os.path.basename(__file__)))
            return 2
        name, digest = make_tgz(argv[1])
        path = os.path.join(argv[1], name)
        json.dump({"file": name, "path": os.path.abspath(path), "sha256": digest,
                   "size": os.path.getsize(path), "member": PROG}, sys.stdout, indent=2,
                  sort_keys=True)
        sys.stdout.write("\n")
        return 0
    problems = _curly_quotes(argv)
    if problems:
        for problem in problems:
            sys.stderr.write("{}: error: {}\n".format(PROG, problem))
        return 1
    args = _parser().parse_args(argv)
    try:
        count, size = compile_graph(args)
    except CompileError as exc:
        for line in str(exc).splitlines():
            sys.stderr.write("{}: error: {}\n".format(PROG, line))
        return 1
    sys.stdout.write("{}: {} nodes checked; wrote {} ({} bytes, facekit stand-in, not a "
                     "Vision Bonnet model)\n".format(PROG, count, args.output_graph_path, size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
