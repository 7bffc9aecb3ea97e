"""Test stand-in for tensorflow/models: a git repository holding a real 2018 snapshot of the
Object Detection API and slim's nets/ and deployment/, assembled from PyPI packages.

GitHub is unreachable from the lab and CI; PyPI is not. Sources (pinned by sha256):

* the wheel `object-detection-0-1==0.1`: research/object_detection/ (legacy/train.py,
  exporter.py, the embedded SSD feature extractor, ...). It ships the generated *_pb2.py
  modules but no .proto files, and the role must compile the protos itself, so each .proto
  is written back from the serialized descriptor inside its _pb2.py, and the result is
  checked by compiling it with protoc and comparing descriptors (reconstruct_protos);
* the sdist `tf-models-research-object-detection==2.8.0.post1`: research/slim/nets and
  research/slim/deployment (the sdist is only unpacked, never installed: it pulls TF 2).

Then the edits that code needs on TensorFlow 1.7 (TF1_EDITS) are applied; every edit states
how often it must match, so a different upstream file stops the build with a message.
The repository has two commits with fixed authors and dates, so their shas are stable: the
first is the pin (tagged), the second adds research/AFTER_PIN.
"""

import ast
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

from digest import file_sha256  # next to this file
from google.protobuf import descriptor_pb2  # the controller venv's protobuf (with ansible)

LOG = logging.getLogger("standins")

# PyPI files never change once uploaded: a different digest means a different artifact.
OD_WHEEL = (
    "object-detection-0-1==0.1",
    "object_detection_0.1-0.1-py3-none-any.whl",
    "8101a8b7513a268d0c65b65bde39438435fc61cf479c6dadef33184b45a184b0",
)
SLIM_SDIST = (
    "tf-models-research-object-detection==2.8.0.post1",
    "tf_models_research_object_detection-2.8.0.post1.tar.gz",
    "c701ea455646553a64c5f161641e8d5a94054b162b81961dcfff3dd619870004",
)
SLIM_PREFIX = "tf_models_research_object_detection-2.8.0.post1/slim/"
SLIM_PACKAGES = ("nets", "deployment")

GIT_ENV = {
    "GIT_AUTHOR_NAME": "facekit stand-in",
    "GIT_AUTHOR_EMAIL": "standin@facekit.invalid",
    "GIT_COMMITTER_NAME": "facekit stand-in",
    "GIT_COMMITTER_EMAIL": "standin@facekit.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "HOME": "/nonexistent",
    "TZ": "UTC",
}
PIN_DATE = "1521504000 +0000"  # 2018-03-20, the seeds' pin date
HEAD_DATE = "1521590400 +0000"

README = """\
Test stand-in for tensorflow/models (facekit lab): NOT the upstream repository.

Built by molecule/lab/models_standin.py from PyPI packages, because the lab and CI cannot
reach GitHub:

- research/object_detection/: the wheel object-detection-0-1==0.1 (a 2018 snapshot of the
  Object Detection API). The wheel has no .proto files: each protos/*.proto here is written
  back from the descriptor in the wheel's generated *_pb2.py (comments are lost; the
  messages, fields, numbers and defaults are the same, checked by compiling them).
  The generated *_pb2.py files are left out: compile them with protoc from research/.
- research/slim/nets/ and research/slim/deployment/: the sdist
  tf-models-research-object-detection==2.8.0.post1.

Edited to run on TensorFlow 1.7 (each edit is listed in models_standin.py's TF1_EDITS).
Trainers: object_detection/legacy/train.py (the March 2018 pin has it as object_detection/train.py)
and object_detection/model_main.py (Estimator; also evaluates, needs pycocotools).
PYTHONPATH must hold research and research/slim.
"""

AFTER_PIN = """\
This file is added by the stand-in repository's second commit, after the pinned one
(tag standin-v1). A checkout at the pin does not have it.
"""

# --- the TF 1.7 edits -------------------------------------------------------------------

# (path under research/, old text, new text, expected number of matches); path "slim/*"
# means every .py file kept under research/slim. Expected counts are those of the pinned
# sdist/wheel: if upstream differs, the build stops instead of shipping half-edited code.
TF1_EDITS = [
    ("slim/*", "import tensorflow.compat.v1 as tf\n", "import tensorflow as tf\n", 55),
    # nets_factory.py is the one file importing tf_slim without tensorflow.
    (
        "slim/nets/nets_factory.py",
        "import functools\nimport tf_slim as slim\n",
        "import functools\nimport tensorflow as tf\nslim = tf.contrib.slim\n",
        1,
    ),
    # tf.contrib.slim is TF 1.x's copy of what later became the tf_slim package.
    ("slim/*", "import tf_slim as slim\n", "slim = tf.contrib.slim\n", 47),
    (
        "slim/nets/mobilenet/mobilenet.py",
        "pool_op=tf.nn.avg_pool2d)",
        "pool_op=tf.nn.avg_pool)",  # avg_pool2d is TF >= 1.14; the default is read at import
        1,
    ),
    (
        # V2_DEF_GROUP_NORM is built at import and TF 1.7's slim has no group_norm: the
        # group-norm variant is never used by the detector, so the lookup must not crash.
        "slim/nets/mobilenet/mobilenet_v2.py",
        "'normalizer_fn': slim.group_norm,",
        "'normalizer_fn': getattr(slim, 'group_norm', None),",
        2,
    ),
    (
        # tf.image.non_max_suppression has no score_threshold in TF 1.7 (export builds this
        # branch): drop low scores first, as the Object Detection API itself did before.
        "object_detection/core/post_processing.py",
        """\
        max_selection_size = tf.minimum(max_size_per_class,
                                        boxlist_and_class_scores.num_boxes())
        selected_indices = tf.image.non_max_suppression(
            boxlist_and_class_scores.get(),
            boxlist_and_class_scores.get_field(fields.BoxListFields.scores),
            max_selection_size,
            iou_threshold=iou_thresh,
            score_threshold=score_thresh)
""",
        """\
        boxlist_and_class_scores = box_list_ops.filter_greater_than(
            boxlist_and_class_scores, score_thresh)
        max_selection_size = tf.minimum(max_size_per_class,
                                        boxlist_and_class_scores.num_boxes())
        selected_indices = tf.image.non_max_suppression(
            boxlist_and_class_scores.get(),
            boxlist_and_class_scores.get_field(fields.BoxListFields.scores),
            max_selection_size,
            iou_threshold=iou_thresh)
""",
        1,
    ),
]


def apply_edits(research, edits=TF1_EDITS):
    """Applies each (path, old, new, count) edit under research/; raises on a count mismatch."""
    for path, old, new, expected in edits:
        if path.endswith("/*"):
            top = os.path.join(research, path[:-2])
            files = sorted(
                os.path.join(folder, name)
                for folder, _, names in os.walk(top)
                for name in names
                if name.endswith(".py")
            )
        else:
            files = [os.path.join(research, path)]
        found = 0
        for name in files:
            with open(name, encoding="utf-8") as handle:
                text = handle.read()
            hits = text.count(old)
            if hits:
                found += hits
                with open(name, "w", encoding="utf-8") as handle:
                    handle.write(text.replace(old, new))
        if found != expected:
            raise SystemExit(
                "models_standin.py: the TF 1.7 edit of %s (TF1_EDITS, replacing %r) matched %d "
                "times, expected %d: the upstream file differs from the pinned one. Check the "
                "edit against the new file and update TF1_EDITS."
                % (path, old.strip().splitlines()[0], found, expected)
            )


# --- .proto sources from generated descriptors --------------------------------------------

_TYPES = {
    1: "double",
    2: "float",
    3: "int64",
    4: "uint64",
    5: "int32",
    6: "fixed64",
    7: "fixed32",
    8: "bool",
    9: "string",
    12: "bytes",
    13: "uint32",
    15: "sfixed32",
    16: "sfixed64",
    17: "sint32",
    18: "sint64",
}
_LABELS = {1: "optional", 2: "required", 3: "repeated"}
_MAX_FIELD = 536870911  # what `max` means in a .proto range


def serialized_descriptor(pb2_source, where):
    """The FileDescriptorProto bytes of a protoc-generated (3.x) _pb2.py, read without
    importing it: the serialized_pb= argument of its _descriptor.FileDescriptor(...) call."""
    for node in ast.walk(ast.parse(pb2_source, where)):
        if isinstance(node, ast.keyword) and node.arg == "serialized_pb":
            value = node.value
            # _b('...') in protoc 3.x output: a latin-1 str standing for bytes.
            if isinstance(value, ast.Call) and len(value.args) == 1:
                value = value.args[0]
            literal = ast.literal_eval(value)
            return literal.encode("latin-1") if isinstance(literal, str) else literal
    raise SystemExit(
        "models_standin.py: %s has no serialized_pb= argument: not a _pb2.py generated by "
        "protoc 3.x, so its .proto cannot be reconstructed" % where
    )


def _unsupported(where, what):
    raise SystemExit(
        "models_standin.py: %s uses %s, which proto_source() does not write; extend it or pin "
        "a snapshot without it" % (where, what)
    )


def _quote(text):
    out = []
    for char in text:
        if char in "\\\"'":
            out.append("\\" + char)
        elif 32 <= ord(char) < 127:
            out.append(char)
        else:
            out.extend("\\%03o" % byte for byte in char.encode("utf-8"))
    return '"%s"' % "".join(out)


def _field_options(field, where):
    options = []
    if field.HasField("default_value"):
        value = field.default_value
        options.append("default = %s" % (_quote(value) if field.type == 9 else value))
        if field.type == 12:
            _unsupported(where, "a bytes default")
    if field.HasField("options"):
        known = {"deprecated", "packed"}
        for descriptor, value in field.options.ListFields():
            if descriptor.name not in known:
                _unsupported(where, "field option %s" % descriptor.name)
            options.append("%s = %s" % (descriptor.name, "true" if value else "false"))
    return " [%s]" % ", ".join(options) if options else ""


def _field_line(field, where):
    if field.type in (10,) or field.HasField("extendee"):
        _unsupported(where, "groups or extensions")
    kind = _TYPES.get(field.type) or field.type_name
    return "%s %s %s = %d%s;" % (
        _LABELS[field.label],
        kind,
        field.name,
        field.number,
        _field_options(field, where),
    )


def _enum_lines(enum, indent, where):
    if enum.HasField("options") or enum.reserved_range or enum.reserved_name:
        _unsupported(where, "enum options or reserved values in %s" % enum.name)
    lines = ["%senum %s {" % (indent, enum.name)]
    for value in enum.value:
        if value.HasField("options"):
            _unsupported(where, "enum value options")
        lines.append("%s  %s = %d;" % (indent, value.name, value.number))
    return lines + ["%s}" % indent]


def _range_lines(message, inner, where):
    """reserved and extensions statements of a message."""
    lines = []
    for reserved in message.reserved_range:
        end = reserved.end - 1
        span = str(reserved.start) if end == reserved.start else "%d to %d" % (reserved.start, end)
        lines.append("%sreserved %s;" % (inner, span))
    if message.reserved_name:
        names = ", ".join(_quote(name) for name in message.reserved_name)
        lines.append("%sreserved %s;" % (inner, names))
    for extensions in message.extension_range:  # ExternalInputReader: extensions 1 to 999
        if extensions.HasField("options"):
            _unsupported(where, "extension range options")
        end = "max" if extensions.end == _MAX_FIELD + 1 else str(extensions.end - 1)
        lines.append("%sextensions %d to %s;" % (inner, extensions.start, end))
    return lines


def _message_lines(message, indent, where):
    if message.HasField("options") or message.extension:
        _unsupported(where, "message options or extensions in %s" % message.name)
    inner = indent + "  "
    lines = ["%smessage %s {" % (indent, message.name)]
    open_oneof = None
    for field in message.field:
        oneof = field.oneof_index if field.HasField("oneof_index") else None
        if oneof != open_oneof:
            if open_oneof is not None:
                lines.append("%s}" % inner)
            if oneof is not None:
                lines.append("%soneof %s {" % (inner, message.oneof_decl[oneof].name))
            open_oneof = oneof
        line = _field_line(field, where)
        if oneof is not None:
            line = "  " + line.split(" ", 1)[1]  # fields of a oneof carry no label
        lines.append(inner + line)
    if open_oneof is not None:
        lines.append("%s}" % inner)
    for enum in message.enum_type:
        lines += _enum_lines(enum, inner, where)
    for nested in message.nested_type:
        lines += _message_lines(nested, inner, where)
    lines += _range_lines(message, inner, where)
    return lines + ["%s}" % indent]


def proto_source(descriptor, origin):
    """.proto text of a FileDescriptorProto (the subset proto2 object_detection uses)."""
    where = descriptor.name
    if descriptor.service or descriptor.extension or descriptor.HasField("options"):
        _unsupported(where, "services, extensions or file options")
    if descriptor.public_dependency or descriptor.weak_dependency:
        _unsupported(where, "public or weak imports")
    lines = [
        "// Reconstructed by facekit's lab (molecule/lab/models_standin.py) from the descriptor",
        "// in %s: that package ships no .proto sources. Upstream comments are lost." % origin,
        'syntax = "%s";' % (descriptor.syntax or "proto2"),
        "",
        "package %s;" % descriptor.package,
        "",
    ]
    lines += ['import "%s";' % name for name in descriptor.dependency]
    for enum in descriptor.enum_type:
        lines += [""] + _enum_lines(enum, "", where)
    for message in descriptor.message_type:
        lines += [""] + _message_lines(message, "", where)
    return "\n".join(lines) + "\n"


def _normalised(descriptor):
    """Drops what protoc adds to its own output but old generated modules lack."""
    copy = type(descriptor)()
    copy.CopyFrom(descriptor)
    copy.ClearField("source_code_info")

    def strip(message):
        for field in message.field:
            field.ClearField("json_name")
        for nested in message.nested_type:
            strip(nested)

    for message in copy.message_type:
        strip(message)
    return copy


def reconstruct_protos(protos_dir, pb2_sources, protoc, origin):
    """Writes protos_dir/NAME.proto for every NAME_pb2.py source given, then compiles them all
    with protoc and checks each descriptor equals the original one."""
    originals = {}
    for pb2_name, source in sorted(pb2_sources.items()):
        descriptor = descriptor_pb2.FileDescriptorProto.FromString(
            serialized_descriptor(source, pb2_name)
        )
        expected = "object_detection/protos/" + pb2_name[: -len("_pb2.py")] + ".proto"
        if descriptor.name != expected:
            raise SystemExit(
                "models_standin.py: %s describes %s, expected %s"
                % (pb2_name, descriptor.name, expected)
            )
        originals[descriptor.name] = descriptor
        path = os.path.join(protos_dir, os.path.basename(descriptor.name))
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(proto_source(descriptor, origin))
    research = os.path.dirname(os.path.dirname(protos_dir))
    with tempfile.TemporaryDirectory(prefix="standin-protos-") as scratch:
        out = os.path.join(scratch, "all.pb")
        subprocess.run(
            [protoc, "-I", research, "--descriptor_set_out", out] + sorted(originals),
            cwd=research,
            check=True,
        )
        with open(out, "rb") as handle:
            compiled = descriptor_pb2.FileDescriptorSet.FromString(handle.read())
    for descriptor in compiled.file:
        if _normalised(descriptor) != _normalised(originals[descriptor.name]):
            raise SystemExit(
                "models_standin.py: the .proto written for %s compiles to a different "
                "descriptor than the one in %s; proto_source() misses a construct it uses"
                % (descriptor.name, origin)
            )
    return len(compiled.file)


# --- sources and the repository -----------------------------------------------------------



def fetch(cache, requirement, filename, sha256):
    """pip download --no-deps of one pinned file into cache/models-sources; checks its sha256."""
    folder = os.path.join(cache, "models-sources")
    path = os.path.join(folder, filename)
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "--disable-pip-version-check",
            "download",
            "--no-deps",
            "--dest",
            folder,
            requirement,
        ]
        LOG.info("running %s", " ".join(cmd))
        subprocess.run(cmd, check=True, stdout=sys.stderr)
    actual = file_sha256(path)
    if actual != sha256:
        raise SystemExit(
            "models_standin.py: %s has sha256 %s, expected %s (pinned in models_standin.py). "
            "Delete it to download again; if PyPI serves a different file, review it and "
            "update the pin." % (path, actual, sha256)
        )
    return path


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o644)  # git records only 644/755: the same everywhere whatever the umask


def unpack_object_detection(wheel, research):
    """Writes object_detection/ without generated _pb2.py; returns {NAME_pb2.py: source}."""
    pb2 = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            if not name.startswith("object_detection/") or name.endswith("/"):
                continue
            data = archive.read(name)
            if name.startswith("object_detection/protos/") and name.endswith("_pb2.py"):
                pb2[os.path.basename(name)] = data.decode("utf-8")
                continue
            _write(os.path.join(research, name), data)
    return pb2


def unpack_slim(sdist, research):
    """Writes slim/nets and slim/deployment with LF line ends (the sdist has CRLF)."""
    count = 0
    with tarfile.open(sdist) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if not member.isfile() or not member.name.startswith(SLIM_PREFIX):
                continue
            relative = member.name[len(SLIM_PREFIX) :]
            if relative.split("/", 1)[0] not in SLIM_PACKAGES:
                continue
            data = archive.extractfile(member).read().replace(b"\r\n", b"\n")
            _write(os.path.join(research, "slim", relative), data)
            count += 1
    if not count:
        raise SystemExit(
            "models_standin.py: %s holds no %s{%s}" % (sdist, SLIM_PREFIX, ",".join(SLIM_PACKAGES))
        )


def _git(args, cwd, when):
    env = dict(os.environ)
    env.update(GIT_ENV)
    env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when
    return subprocess.run(
        ["git", "-c", "core.autocrlf=false", "-c", "core.fileMode=true"] + args,
        cwd=cwd,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        universal_newlines=True,
    ).stdout.strip()


def _commit_all(work, message, when):
    """Commits everything in the work tree at the fixed date `when`; returns the commit sha."""
    _git(["add", "-A"], cwd=work, when=when)
    _git(["commit", "-q", "-m", message], cwd=work, when=when)
    return _git(["rev-parse", "HEAD"], cwd=work, when=when)


def build_models_repo(www, cache, protoc, pinned_tag):
    """Creates www/git/models.git (served over git's dumb HTTP); returns (pin sha, head sha).
    protoc: a protoc binary, used only to check the reconstructed .proto files."""
    wheel = fetch(cache, *OD_WHEEL)
    sdist = fetch(cache, *SLIM_SDIST)
    bare = os.path.join(www, "git", "models.git")
    work = tempfile.mkdtemp(prefix="standin-models-")
    try:
        _git(["init", "-q", "-b", "master", work], cwd=work, when=PIN_DATE)
        research = os.path.join(work, "research")
        pb2 = unpack_object_detection(wheel, research)
        files = reconstruct_protos(
            os.path.join(research, "object_detection", "protos"), pb2, protoc, OD_WHEEL[0]
        )
        LOG.info("wrote %d .proto files from the wheel's descriptors (checked with protoc)", files)
        unpack_slim(sdist, research)
        apply_edits(research)
        _write(os.path.join(work, "README.md"), README.encode())
        pinned = _commit_all(work, "Object Detection API 2018 snapshot and slim, for TF 1.7",
                             PIN_DATE)
        _git(["tag", pinned_tag, pinned], cwd=work, when=PIN_DATE)
        _write(os.path.join(research, "AFTER_PIN"), AFTER_PIN.encode())
        head = _commit_all(work, "Add research/AFTER_PIN (after the pin)", HEAD_DATE)
        if os.path.isdir(bare):
            shutil.rmtree(bare)
        _git(["clone", "-q", "--bare", work, bare], cwd=work, when=HEAD_DATE)
        _git(["update-server-info"], cwd=bare, when=HEAD_DATE)
    finally:
        shutil.rmtree(work)
    return pinned, head


def main(argv=None):
    """Builds the repository alone: models_standin.py WWW CACHE PROTOC (prints the shas)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="standins: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        raise SystemExit("usage: models_standin.py WWW_DIR CACHE_DIR PROTOC_BINARY")
    print(*build_models_repo(argv[0], argv[1], argv[2], "standin-v1"))


if __name__ == "__main__":
    main()
