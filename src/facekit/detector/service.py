"""facekit-detector: the face detector service that runs on the Vision Kit.

It takes the model release DIR/current (or --release), checks it against its manifest
(facekit.detector.release), loads the compiled model onto the Vision Bonnet and runs
camera inference with the bonnet thresholding the class logits (facekit.detector.client;
sparse outputs, so the Pi Zero only decodes anchors that can become faces), decodes every
frame and publishes the faces as one JSON line per frame on stdout
(facekit.detector.outputs). A status endpoint (facekit.detector.status) and the button's
LED (facekit.detector.lights) say how it is doing; SIGTERM/SIGINT stop it
(facekit.detector.signals).

Exit statuses (facekit.detector.exits): 0 stopped by SIGTERM/SIGINT or after --frames; 1
an unexpected failure, the status port taken, or no usable AIY library; 2 bad command
line; 3 the Vision Bonnet cannot run the model (it refused to load it, or its outputs do
not fit the bundle's anchors and labels); 4 the release is missing or does not verify
against its manifest; 5 the Vision Bonnet cannot be reached, the connection was lost, or
the bonnet reported an error. Restarting cannot fix 3 or 4.

Python 3.5; imports only the standard library, numpy (through decode), the aiy library,
facekit.model.bundle/errors and facekit.argtypes (tools/check_imports.py keeps it so): this
runs on the kit.
"""

import argparse
import logging
import signal
import sys
import time

import facekit
from facekit import argtypes
from facekit.detector import client, decode, thresholds
from facekit.detector.exits import EXIT_FAILURE, EXIT_OK, DetectorError
from facekit.detector.lights import Lights
from facekit.detector.outputs import (
    Publisher,
    face_record,
    frame_record,
    frame_window,
    result_detections,
    sparse_configs,
)
from facekit.detector.release import DEFAULT_INPUT_SIZE, open_bundle, resolve_release
from facekit.detector.signals import StopNow, StopSignals
from facekit.detector.status import HEALTHY_FRAME_AGE, Status, StatusServer
from facekit.options import add_options, opt

log = logging.getLogger(__name__)

PROG = "facekit-detector"
DEFAULT_MODELS = "/opt/facekit/models"
DEFAULT_STATUS_PORT = 8037


class Service(object):
    """One run: release -> bonnet -> frames, with status, lights and JSON lines."""

    def __init__(self, args, stdout):
        self.args = args
        self.publisher = Publisher(stdout)
        self.status = Status(max_frame_age=args.max_frame_age)
        self.stop = StopSignals()
        self.model = None
        self.thresholds = None
        self._scores = None
        self.bonnet = None
        self.server = None
        self.lights = None
        self.frames = 0
        self._idle_frames = 0
        self._idle_since = None
        self._last_idle_log = None

    def run(self):
        self.stop.install()
        try:
            return self._run()
        except StopNow as exc:
            log.warning("stopping on %s: %s: closed the connection without stopping the camera "
                        "or unloading the model", self.stop.name or "a signal", exc)
            if self.bonnet is not None:
                self.bonnet.abandon()
            self._lights(Lights.OFF)
            return EXIT_OK
        except Exception as exc:
            self.status.set_error(str(exc))
            self.status.set_loaded(False)
            self._lights(Lights.ERROR)
            if isinstance(exc, client.BonnetLost):
                self.bonnet.abandon()
            elif self.bonnet is not None:
                self._close_bonnet()
            raise
        finally:
            if self.server is not None:
                self.server.close()
            self.stop.restore()

    def _lights(self, state):
        if self.lights is not None:
            self.lights.show(state)

    def _close_bonnet(self):
        try:
            with self.stop.deadline():
                self.bonnet.close()
        except StopNow:
            log.warning("the Vision Bonnet did not answer within %d s while stopping: closed "
                        "the connection without unloading the model", self.stop.grace)
            self.bonnet.abandon()

    def _run(self):
        args = self.args
        self.lights = Lights()
        path = resolve_release(args.models, args.release)
        self.model = model = open_bundle(path, args.input_size)
        self.thresholds = thresholds.in_force(model.labels, model.operating_point,
                                              args.threshold, args.threshold_origin)
        self._scores = thresholds.scores(self.thresholds)
        self.status.set_model(model.name, model.version, model.path)
        self.status.set_thresholds(self.thresholds)
        log.info("%s %s: model %s version %s from %s (%d anchors, labels %s, input %dx%d); "
                 "score thresholds %s, IoU %g, at most %d detections a frame", PROG,
                 facekit.__version__, model.name, model.version, model.path,
                 model.num_anchors, ",".join(model.labels), model.input_size,
                 model.input_size, thresholds.describe(self.thresholds), args.iou,
                 args.max_detections)
        if model.operating_point is None:
            log.warning("the bundle has no evaluation with an operating point: classes "
                        "without --threshold use %g (evaluate it with `facekit eval run` and "
                        "attach it with `facekit model attach-eval`)", thresholds.DEFAULT)
        if args.status_port:
            try:
                self.server = StatusServer(self.status, args.status_host, args.status_port)
            except OSError as exc:
                raise DetectorError(
                    "cannot serve the status endpoint on {}:{}: {}: choose another "
                    "--status-port (0 turns it off)".format(
                        args.status_host, args.status_port, exc.strerror or exc),
                    EXIT_FAILURE) from None
            log.info("status endpoint on http://%s:%d/status and /healthz",
                     *self.server.address)
        else:
            log.info("status endpoint off (--status-port 0)")
        inference = client.aiy_inference()
        self.bonnet = client.BonnetClient(
            model, sparse_configs(model, thresholds.lowest(self.thresholds), inference),
            inference)
        self.bonnet.open()
        self.status.set_loaded(True)
        self._lights(Lights.IDLE)
        self._loop()
        signal.alarm(0)
        if self.stop.requested:
            log.info("stopping on %s after %d frames", self.stop.name, self.frames)
        else:
            log.info("stopping after %d frames (--frames)", self.frames)
        self.status.set_loaded(False)
        self._close_bonnet()
        self._lights(Lights.OFF)
        return EXIT_OK

    def _loop(self):
        args = self.args
        started = time.monotonic()
        while not self.stop.requested and (args.frames is None or self.frames < args.frames):
            result = self.bonnet.next_result(self.frames + 1)
            self.frames += 1
            if self.frames == 1:
                log.info("first frame %.1f s after the camera started: window %s, %d ms",
                         time.monotonic() - started, frame_window(result, self.model),
                         result.duration_ms)
            self._frame(result)

    def _frame(self, result):
        args, model = self.args, self.model
        detections = result_detections(result, model, self._scores, args.iou,
                                       args.max_detections)
        when = round(time.time(), 3)
        window = frame_window(result, model)
        faces = [face_record(det, model.labels, window) for det in detections]
        self.status.record_frame(self.frames, when, faces)
        if faces:
            camera = getattr(result, "frame", None)
            self.publisher.publish(frame_record(self.frames, when, model, faces,
                                                result.duration_ms,
                                                camera_frame=getattr(camera, "index", None),
                                                thresholds=self.thresholds))
            log.info("frame %d: %d face%s (%d ms): %s", self.frames, len(faces),
                     "" if len(faces) == 1 else "s", result.duration_ms,
                     "; ".join("{} {:.2f} at {}".format(f["label"], f["score"], f["box"])
                               for f in faces))
            self._idle_frames = 0
            self._lights(Lights.FACES)
        else:
            self._idle(self.frames)
            self._lights(Lights.IDLE)

    def _idle(self, frame):
        """Log empty frames at most once per --idle-log-seconds."""
        now = time.monotonic()
        if self._idle_frames == 0:
            self._idle_since = frame
        self._idle_frames += 1
        if (self._last_idle_log is None
                or now - self._last_idle_log >= self.args.idle_log_seconds):
            log.info("frames %d-%d: no faces (%d frame%s; %.1f fps)", self._idle_since, frame,
                     self._idle_frames, "" if self._idle_frames == 1 else "s",
                     self.status.fps())
            self._last_idle_log = now
            self._idle_frames = 0


# ---- command line ---------------------------------------------------------------------

def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run the face detector of a deployed model release on the Vision Bonnet: "
                    "one JSON line per frame with detections on stdout (schema 2), logs on "
                    "stderr, status on "
                    "http://HOST:PORT/status and /healthz.",
        epilog="Exit status: 0 stopped (SIGTERM/SIGINT, --frames); 1 unexpected failure, "
               "the status port taken or no usable AIY library; "
               "2 bad options; 3 the Vision Bonnet cannot run the model (refused it, or "
               "its outputs do not fit the bundle); 4 the release is missing or does not "
               "verify; 5 the Vision Bonnet is unreachable, the connection was lost, or it "
               "reported an error. Off a Raspberry Pi the AIY library reaches the bonnet "
               "over TCP at VISION_BONNET_HOST:VISION_BONNET_PORT.")
    add_options(parser, (
        opt("--models", "DIR", "the kit's model directory; the release run is DIR/current, a "
                               "link to DIR/releases/VERSION (default %(default)s)",
            default=DEFAULT_MODELS),
        opt("--release", "PATH", "run this bundle directory instead of DIR/current"),
        opt("--status-host", "HOST", "address of the status endpoint (default %(default)s: "
                                     "this kit only)", default="127.0.0.1"),
        opt("--status-port", "PORT", "port of the status endpoint, 0 = no endpoint (default "
                                     "%(default)s)",
            type=argtypes.port, default=DEFAULT_STATUS_PORT),
        opt("--threshold", "SCORE",
            "a detection needs a score above its class's threshold, in (0, 1): SCORE for every "
            "class, LABEL=SCORE for one (repeat it); the rest keep the bundle's operating point "
            "(its eval.json), else {}; the bonnet drops anchors below the lowest before they "
            "are sent".format(thresholds.DEFAULT),
            type=argtypes.class_score, action="append"),
        opt("--threshold-origin", "NAME",
            "what set --threshold, as the status endpoint and the JSON lines name it (default "
            "'%(default)s'; the vision_kit role's unit says 'inventory')",
            default=thresholds.COMMAND_LINE),
        opt("--iou", "IOU", "non-maximum suppression drops a box overlapping a better one by "
                            "more than this intersection over union (default %(default)s)",
            type=argtypes.fraction, default=decode.IOU_THRESHOLD),
        opt("--max-detections", "N", "at most N detections a frame (default %(default)s)",
            type=argtypes.positive, default=decode.MAX_DETECTIONS),
        opt("--input-size", "S", "the model's input side in pixels (default: the manifest's "
                                 "extra.input_size, else {})".format(DEFAULT_INPUT_SIZE),
            type=argtypes.positive),
        opt("--frames", "N", "stop after N frames (default: run until SIGTERM/SIGINT)",
            type=argtypes.positive),
        opt("--idle-log-seconds", "SECONDS", "frames with faces are logged each; frames "
                                             "without are summed up at most once per SECONDS "
                                             "(default %(default)s)",
            type=argtypes.nonnegative_float, default=10.0),
        opt("--max-frame-age", "SECONDS", "unhealthy when the last frame is older than this "
                                          "(default %(default)s)",
            type=argtypes.seconds, default=HEALTHY_FRAME_AGE),
        opt("--log-level", None, "log level on stderr (default %(default)s)", default="info",
            choices=("debug", "info", "warning", "error"))))
    return parser


def _configure_logging(level):
    root = logging.getLogger()
    root.setLevel(getattr(logging, level.upper()))
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        # No time stamps: journald adds them.
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)


def main(argv=None, stdout=None):
    """Run the service; returns the exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level)
    try:
        return Service(args, stdout or sys.stdout).run()
    except DetectorError as exc:
        sys.stderr.write("{}: error: {}\n".format(PROG, exc))
        sys.stderr.flush()
        return exc.exit_status
    except Exception as exc:  # noqa: BLE001 - the last line of the journal must say why
        log.exception("unexpected failure")
        sys.stderr.write("{}: error: unexpected {}: {} (see the traceback above)\n".format(
            PROG, type(exc).__name__, exc))
        sys.stderr.flush()
        return EXIT_FAILURE
