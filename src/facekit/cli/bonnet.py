"""`facekit bonnet serve|stop`: the software Vision Bonnet, in the foreground or as a daemon.

The server (TensorFlow, Pillow, protobuf behind it) is imported when a command runs.
"""

import json
import logging
import os
import sys

from facekit import argtypes
from facekit.options import add_commands, command, flag, group, opt

_BONNET_EPILOG = """\
typical use (tests, the lab, Ansible):
  facekit bonnet serve --models artifacts/models --frames frames/ --state-file bonnet.json \\
      --background
  (then any AIY client, such as the detector, with VISION_BONNET_HOST=127.0.0.1
   VISION_BONNET_PORT=35000 in its environment)
  facekit bonnet stop --state-file bonnet.json

the state file (JSON, replaced atomically) holds pid, host, port, running, options,
models_dir, loaded_models (name, bundle, version, sha256, input_shape, ...), camera
(running, model, frame_index), frames_served, images_served, mean_ms, fps and
last_report; it is written when the server listens, at each load / unload / camera
start / stop, at every report and when it stops (running: false).

exit status: 0 success (also when stopped by SIGTERM or Ctrl-C), 1 bad option or
a server that cannot start, 2 usage error.
"""

_SERVE_DESCRIPTION = """\
Serve the Vision Bonnet protocol (4-byte big-endian length + spacepark.vision.Request,
the Response framed the same way) with one state shared by every connection, as the
board keeps it: the loaded models and the camera.

A LoadModel's compute_graph is matched by sha256 to the model.binaryproto of a bundle
under --models (searched again at each load; the bundle must verify), and the bundle's
frozen_inference_graph.pb runs with TensorFlow on the CPU from Preprocessor/sub (the
frame resized to the input_shape and normalised with input_normalizer) to concat and
concat_1, dense or as asked by the request's sparse configs. Unknown graphs, input
shapes the graph does not take, batch != 1, depth != 3 and --refuse'd models are
refused with a message naming the model. Camera frames cycle through --frames.
Firmware 1.2.

Needs aiy-projects-python for the protocol's descriptor (`pip install --no-deps
aiy-projects-python==1.4`; it is read, not imported, so any protobuf 3.20 - 7 works)
and TensorFlow from the first LoadModel on.
"""


def _bonnet_options(args):
    """The serve options as the state file records them (paths absolute)."""

    def absolute(path):
        return None if path is None else os.path.abspath(path)

    log_file = args.log_file
    if log_file is None and args.background:
        log_file = args.state_file + ".log"
    return {"host": args.host, "port": args.port, "models": absolute(args.models),
            "frames": absolute(args.frames), "fps": args.fps, "refuse": list(args.refuse),
            "drop_after": args.drop_after, "delay_ms": args.delay_ms,
            "report_every": args.report_every, "state_file": absolute(args.state_file),
            "log_file": absolute(log_file)}


def _cmd_bonnet_serve(args):
    from facekit.bonnet import daemon  # noqa: PLC0415

    if args.background and not args.state_file:
        args.parser.error("--background needs --state-file PATH: `facekit bonnet stop` finds "
                          "the server through it")
    options = _bonnet_options(args)
    for key in ("state_file", "log_file"):
        folder = os.path.dirname(options[key] or "")
        if folder and not os.path.isdir(folder):
            args.parser.error("--{} {}: the folder {} does not exist".format(
                key.replace("_", "-"), options[key], folder))
    if args.background:
        verbosity = ["--verbose"] if args.verbose else ["--quiet"] if args.quiet else []
        print(json.dumps(daemon.start_background(options, verbosity), sort_keys=True))
        return 0
    # A server's log needs times; --log-file sends it to a file instead of stderr.
    handler = logging.FileHandler(options["log_file"]) if options["log_file"] else \
        logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s facekit: %(levelname)s: %(message)s"))
    logging.getLogger("facekit").handlers[:] = [handler]
    from facekit.bonnet import server  # noqa: PLC0415

    return server.serve(host=options["host"], port=options["port"], models=options["models"],
                        frames=options["frames"], fps=options["fps"], refuse=options["refuse"],
                        drop_after=options["drop_after"], delay_ms=options["delay_ms"],
                        report_every=options["report_every"],
                        state_file=options["state_file"], options=daemon.signature(options))


def _cmd_bonnet_stop(args):
    from facekit.bonnet import daemon  # noqa: PLC0415

    result = daemon.stop(os.path.abspath(args.state_file), timeout=args.timeout)
    print(json.dumps(result, sort_keys=True))
    return 0


_SERVE = command(
    "serve", _cmd_bonnet_serve, "run the software bonnet (in the foreground, or --background)",
    _SERVE_DESCRIPTION,
    opt("--host", "HOST", "address to listen on (default 127.0.0.1)", default="127.0.0.1"),
    opt("--port", "PORT",
        "TCP port (default 35000, AIY's VISION_BONNET_PORT default; 0 picks a free one, see the "
        "state file or --background's output)", type=argtypes.port, default=35000),
    opt("--models", "DIR", "directory searched (recursively) for model bundles with "
                           "manifest.json, e.g. artifacts/models", required=True),
    opt("--frames", "DIR", "camera frames: the .jpg/.jpeg/.png files of DIR, sorted by name and "
                           "cycled (default: a generated 640x480 test pattern)"),
    opt("--fps", "FPS", "serve camera frames at most this often per second (default 10; 0: as "
                        "fast as inference runs)", type=argtypes.nonnegative_float, default=10.0),
    group("failure rehearsal",
          opt("--refuse", "MODEL",
              "refuse to load MODEL: a LoadModel's model name, a bundle version, or a sha256 "
              "prefix (>= 12 hex digits) of the compiled graph (repeatable)",
              action="append", default=[]),
          opt("--drop-after", "N", "close the client's connection without a reply at the Nth "
                                   "camera_inference request (once per server process)",
              type=argtypes.positive),
          opt("--delay-ms", "MS", "answer every request MS milliseconds late (default 0)",
              type=argtypes.nonnegative, default=0)),
    group("reporting and daemon mode",
          opt("--report-every", "N", "log frames, mean / max ms per frame and fps every N "
                                     "inferences (default 50)",
              type=argtypes.positive, default=50),
          opt("--state-file", "PATH", "JSON state kept up to date for tests and Ansible (see "
                                      "below)"),
          flag("--background",
               "start the server as a detached process, wait until it listens and print "
               "{\"pid\", \"host\", \"port\", \"changed\"}; a live server of the same "
               "--state-file and options is left alone (changed: false), one with other "
               "options is replaced. Needs --state-file"),
          opt("--log-file", "PATH", "append the server's log to PATH instead of stderr (default "
                                    "with --background: the state file's path + .log)")),
    epilog=_BONNET_EPILOG)

_STOP = command(
    "stop", _cmd_bonnet_stop, "stop a bonnet started with --state-file",
    "Send SIGTERM to the bonnet whose pid the state file holds (SIGKILL after --timeout), if "
    "it still runs, and print {\"changed\", \"pid\"}: changed is false when no such server "
    "was running.",
    opt("--state-file", "PATH", "the state file the server was started with", required=True),
    opt("--timeout", "SECONDS", "how long to wait after SIGTERM before SIGKILL (default 15)",
        type=argtypes.nonnegative_float, default=15.0))


def add_group(groups):
    """The `bonnet` group and its commands, on the `facekit` parser's subparsers."""
    add_commands(
        groups, "bonnet", "a software Vision Bonnet on loopback, for AIY's client library",
        "A TCP server speaking the Vision Bonnet's protocol as AIY's client library does off a "
        "Pi (VISION_BONNET_HOST / VISION_BONNET_PORT): it runs the frozen graph of the model "
        "bundle whose model.binaryproto a client loads, with TensorFlow on the CPU, so the "
        "real library and the detector run without hardware.",
        (_SERVE, _STOP), epilog=_BONNET_EPILOG)
