"""facekit-detector: the face detector service that runs on the Vision Kit.

It takes the model release DIR/current (or --release), checks it against its manifest,
loads the compiled model onto the Vision Bonnet, runs camera inference with the bonnet
thresholding the class logits (sparse outputs, so the Pi Zero only decodes anchors that
can become faces), decodes every frame with facekit.detector.decode and publishes the
faces as one JSON line per frame on stdout. A status endpoint (facekit.detector.status)
and the button's LED say how it is doing.

Exit statuses (EXIT_*): 0 stopped by SIGTERM/SIGINT or after --frames; 1 an unexpected
failure, the status port taken, or no usable AIY library; 2 bad command line; 3 the Vision
Bonnet cannot run the model (it refused to load it, or its outputs do not fit the bundle's
anchors and labels); 4 the release is missing or does not verify against its manifest; 5
the Vision Bonnet cannot be reached, the connection was lost, or the bonnet reported an
error. Restarting cannot fix 3 or 4.

Python 3.5; imports only the standard library, numpy (through decode), the aiy library and
facekit.model.bundle/errors: this runs on the kit.
"""

import argparse
import collections
import contextlib
import json
import logging
import math
import os
import signal
import sys
import time

import facekit
from facekit.detector import decode
from facekit.detector.status import HEALTHY_FRAME_AGE, Status, StatusServer
from facekit.model import bundle
from facekit.model.errors import ModelError

log = logging.getLogger(__name__)

PROG = "facekit-detector"
DEFAULT_MODELS = "/opt/facekit/models"
DEFAULT_INPUT_SIZE = 256
DEFAULT_STATUS_PORT = 8037
# The normaliser of AIY's SSD models: (pixel - 128) / 128 gives the [-1, 1] input the
# Object Detection API's MobileNet preprocessor produces.
INPUT_NORMALIZER = (128.0, 128.0)
BOXES_TENSOR = "concat"
LOGITS_TENSOR = "concat_1"
# Seconds a stop (SIGTERM/SIGINT) or a shutdown waits for the bonnet before the service
# gives up on a clean close; well inside the unit's TimeoutStopSec.
STOP_GRACE = 5

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
EXIT_BUNDLE = 4
EXIT_BONNET = 5

# The AIY library's transport choice and default address (aiy/vision/_transport.py).
SPI_DEVICE = "/dev/vision_spicomm"
AIY_DEFAULT_HOST = "172.28.28.10"
AIY_DEFAULT_PORT = "35000"


class DetectorError(Exception):
    """A failure the service reports as one error line and exit_status."""

    def __init__(self, message, exit_status):
        Exception.__init__(self, message)
        self.exit_status = exit_status


class BonnetLost(DetectorError):
    """The connection to the bonnet broke: nothing more can be said to it (exit 5)."""

    def __init__(self, message):
        DetectorError.__init__(self, message, EXIT_BONNET)


class _StopNow(BaseException):
    """Raised by a signal handler to abandon a call the bonnet does not answer.

    A BaseException, so the library's `except Exception` clean-ups let it through."""


# ---- the release ----------------------------------------------------------------------

class Model(object):
    """A verified bundle as the service uses it."""

    def __init__(self, path, *, name, version, labels, anchors, input_size, compute_graph):
        self.path = path
        self.name = name
        self.version = version
        self.labels = labels
        self.anchors = anchors
        self.input_size = input_size
        self.compute_graph = compute_graph

    @property
    def bonnet_name(self):
        """The name the model is loaded under on the bonnet: unique per version."""
        return "{}-{}".format(self.name, self.version)

    @property
    def compiled_path(self):
        return os.path.join(self.path, bundle.COMPILED)

    @property
    def num_anchors(self):
        return len(self.anchors)


def resolve_release(models_dir, release=None):
    """The real path of the bundle to run: `release` when given, else MODELS/current."""
    if release:
        if not os.path.isdir(release):
            raise DetectorError("--release {}: no such directory: give the directory of a "
                                "model bundle (it holds {})".format(release, bundle.MANIFEST),
                                EXIT_BUNDLE)
        return os.path.realpath(release)
    current = os.path.join(models_dir, "current")
    releases = os.path.join(models_dir, "releases")
    if os.path.islink(current) and not os.path.exists(current):
        raise DetectorError(
            "{} points to {}, which does not exist (a removed release?): deploy the model "
            "again (the vision_kit role switches the link to a release under {}), or pass "
            "--release DIR".format(current, os.readlink(current), releases), EXIT_BUNDLE)
    if not os.path.lexists(current):
        raise DetectorError(
            "{} does not exist: the vision_kit role creates it as a link to a release under "
            "{} when it deploys a model; deploy one, or pass --models DIR or --release DIR"
            .format(current, releases), EXIT_BUNDLE)
    if not os.path.isdir(current):
        raise DetectorError("{} is not a directory or a link to one: deploy the model again, "
                            "or pass --release DIR".format(current), EXIT_BUNDLE)
    return os.path.realpath(current)


def _manifest_input_size(manifest, path):
    value = (manifest.get("extra") or {}).get("input_size")
    if value is None:
        return None
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if size <= 0:
        raise DetectorError("{}: extra.input_size {!r} is not a positive whole number: fix the "
                            "bundle, or pass --input-size".format(
                                os.path.join(path, bundle.MANIFEST), value), EXIT_BUNDLE)
    return size


def open_bundle(path, input_size=None):
    """Verify the bundle at `path` and read what the service needs: a Model.

    input_size: the model's input side; None takes the manifest's extra.input_size, else
    DEFAULT_INPUT_SIZE. DetectorError (exit 4) names the bundle and every problem.
    """
    try:
        check = bundle.verify_bundle(path)
    except ModelError as exc:
        raise DetectorError(str(exc), EXIT_BUNDLE) from None
    if not check["ok"]:
        raise DetectorError(
            "the model bundle {} does not verify against its {}: {}: deploy the release "
            "again (the vision_kit role copies it from the controller's artifacts)".format(
                path, bundle.MANIFEST, "; ".join(check["problems"])), EXIT_BUNDLE)
    manifest_path = os.path.join(path, bundle.MANIFEST)
    try:
        with open(manifest_path, "r", encoding="utf-8") as fh:
            manifest = json.load(fh)
        labels = bundle.read_labels(os.path.join(path, bundle.LABELS))
        anchors = decode.load_anchors(os.path.join(path, bundle.ANCHORS))
        with open(os.path.join(path, bundle.COMPILED), "rb") as fh:
            compute_graph = fh.read()
    except ModelError as exc:
        raise DetectorError("model bundle {}: {}".format(path, exc), EXIT_BUNDLE) from None
    except (OSError, ValueError) as exc:
        raise DetectorError("model bundle {}: cannot read it: {}".format(path, exc),
                            EXIT_BUNDLE) from None
    if manifest.get("anchors") != len(anchors):
        raise DetectorError(
            "model bundle {}: {} has {} anchors but {} says {}: the bundle was assembled from "
            "files of different models; rebuild it with `facekit model bundle`".format(
                path, bundle.ANCHORS, len(anchors), bundle.MANIFEST, manifest.get("anchors")),
            EXIT_BUNDLE)
    if input_size is None:
        input_size = _manifest_input_size(manifest, path) or DEFAULT_INPUT_SIZE
    return Model(path, name=check["name"], version=check["version"], labels=labels,
                 anchors=anchors, input_size=input_size, compute_graph=compute_graph)


# ---- decoding a frame -----------------------------------------------------------------

def logit(probability):
    """The logit whose sigmoid is `probability` (0 < probability < 1)."""
    return math.log(probability / (1.0 - probability))


class OutputError(DetectorError):
    """Output tensors that do not fit the bundle (exit 3)."""

    def __init__(self, message):
        DetectorError.__init__(self, message, EXIT_MODEL)


def _tensor(result, name):
    try:
        return result.tensors[name]
    except KeyError:
        raise OutputError("the Vision Bonnet's result has no tensor {} (it has {}): the "
                          "model is not an SSD exported for the bonnet".format(
                              name, ", ".join(sorted(result.tensors)) or "none")) from None


def _index(entry, size, name, number):
    values = tuple(entry.values)
    if len(values) != size:
        raise OutputError("{} index {}: expected {} values, got {}: the bonnet did not apply "
                          "the sparse configs".format(name, number, size, list(values)))
    return values


def sparse_inputs(result):
    """(hits, encodings) for decode.decode_sparse from a result with sparse tensors:
    hits (anchor, class, logit) from concat_1, encodings {anchor: 4 floats} from concat."""
    logits = _tensor(result, LOGITS_TENSOR)
    boxes = _tensor(result, BOXES_TENSOR)
    logit_indices, logit_data = list(logits.indices), list(logits.data)
    box_indices, box_data = list(boxes.indices), list(boxes.data)
    if len(logit_indices) != len(logit_data):
        raise OutputError("{}: {} indices but {} values: expected one logit per (anchor, "
                          "class)".format(LOGITS_TENSOR, len(logit_indices), len(logit_data)))
    if len(box_data) != 4 * len(box_indices):
        raise OutputError("{}: {} indices but {} values: expected 4 per anchor (ty, tx, th, "
                          "tw)".format(BOXES_TENSOR, len(box_indices), len(box_data)))
    hits = []
    for number, (entry, value) in enumerate(zip(logit_indices, logit_data)):
        anchor, class_id = _index(entry, 2, LOGITS_TENSOR, number)
        hits.append((anchor, class_id, value))
    encodings = {}
    for number, entry in enumerate(box_indices):
        (anchor,) = _index(entry, 1, BOXES_TENSOR, number)
        encodings[anchor] = box_data[4 * number:4 * number + 4]
    return hits, encodings


def result_detections(result, model, score_threshold=0.5, iou_threshold=0.5,
                      max_detections=100):
    """Detections of one inference result, best first.

    Sparse tensors (indices present, or nothing above the threshold) go through
    decode_sparse; full tensors (a bonnet that ignored the sparse configs) through
    decode_dense. OutputError when the tensors do not fit the model's anchors or labels.
    """
    logits = _tensor(result, LOGITS_TENSOR)
    boxes = _tensor(result, BOXES_TENSOR)
    options = {"score_threshold": score_threshold, "iou_threshold": iou_threshold,
               "max_detections": max_detections}
    dense = not len(logits.indices) and len(logits.data)
    try:
        if dense:
            # Not list(): decode_dense reads only what it needs of the repeated fields, or
            # an array tensor_values makes of each in C.
            detections = decode.decode_dense(decode.tensor_values(boxes),
                                             decode.tensor_values(logits), model.anchors,
                                             **options)
        else:
            hits, encodings = sparse_inputs(result)
            detections = decode.decode_sparse(hits, encodings, model.anchors, **options)
    except decode.DecodeError as exc:
        raise OutputError("the Vision Bonnet's outputs do not fit model {} {}: {}".format(
            model.name, model.version, exc)) from None
    for det in detections:
        if not 0 <= det.label_index < len(model.labels):
            raise OutputError(
                "the model gave class {} but {} lists {} labels: the bonnet runs a model "
                "with more classes than the bundle's labels".format(
                    det.class_id, os.path.join(model.path, bundle.LABELS), len(model.labels)))
    return detections


def frame_window(result, model):
    """(x, y, width, height) of the image region the detections' boxes refer to."""
    window = getattr(result, "window", None)
    if window is not None and window.width > 0 and window.height > 0:
        return window.x, window.y, window.width, window.height
    if getattr(result, "width", 0) > 0 and getattr(result, "height", 0) > 0:
        return 0, 0, result.width, result.height
    return 0, 0, model.input_size, model.input_size


def face_record(detection, labels, window):
    """The JSON record of one detection: label, score, pixel box [x, y, w, h] in the
    camera frame, and the normalised box [ymin, xmin, ymax, xmax]."""
    x0, y0, width, height = window
    left = x0 + detection.xmin * width
    top = y0 + detection.ymin * height
    right = x0 + detection.xmax * width
    bottom = y0 + detection.ymax * height
    box = [int(round(left)), int(round(top)), int(round(right - left)),
           int(round(bottom - top))]
    norm = [round(v, 5) for v in (detection.ymin, detection.xmin, detection.ymax,
                                  detection.xmax)]
    return collections.OrderedDict([
        ("label", labels[detection.label_index]),
        ("score", round(detection.score, 4)),
        ("box", box),
        ("norm", norm),
    ])


def frame_record(frame, when, model, faces, duration_ms, *, camera_frame=None):
    """The JSON line published for a frame with faces. camera_frame is the bonnet's own frame
    index (counted from the camera's start), which ties a line to the image it came from."""
    return collections.OrderedDict([
        ("frame", frame), ("time", when), ("model", model.name),
        ("version", model.version), ("faces", faces), ("ms", duration_ms),
        ("camera_frame", camera_frame),
    ])


# ---- the Vision Bonnet ----------------------------------------------------------------

def _aiy_inference():
    # Imported here: the release checks above need neither the library nor its protobuf.
    try:
        from aiy.vision import inference  # noqa: PLC0415
    except Exception as exc:  # noqa: BLE001 - old generated protobuf code fails in many ways
        raise DetectorError(
            "cannot import the AIY library's aiy.vision.inference ({}: {}): install "
            "aiy-projects-python 1.4 with protobuf <= 3.20, or set "
            "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python for protobuf 3.21 to 4.24".format(
                type(exc).__name__, exc), EXIT_FAILURE) from None
    return inference


def _protobuf_decode_error():
    try:
        from google.protobuf.message import DecodeError  # noqa: PLC0415
    except ImportError:
        return ()
    return DecodeError


def uses_spi():
    """True when the AIY library talks SPI (it decides by the machine name, as here)."""
    return os.uname()[4].startswith("arm")


def bonnet_address():
    """Where the library will reach the bonnet, as a phrase for messages."""
    host = os.environ.get("VISION_BONNET_HOST")
    port = os.environ.get("VISION_BONNET_PORT")
    if uses_spi():
        where = "SPI device {}".format(SPI_DEVICE)
        if host or port:
            where += (" (VISION_BONNET_HOST/VISION_BONNET_PORT are ignored: on ARM the AIY "
                      "library always uses SPI)")
        return where
    if host or port:
        return "{}:{} (VISION_BONNET_HOST/VISION_BONNET_PORT)".format(
            host or AIY_DEFAULT_HOST, port or AIY_DEFAULT_PORT)
    return ("{}:{} (the AIY library's default; set VISION_BONNET_HOST and VISION_BONNET_PORT "
            "to reach another bonnet)".format(AIY_DEFAULT_HOST, AIY_DEFAULT_PORT))


def _unreachable(exc):
    reason = "{}: {}".format(type(exc).__name__, getattr(exc, "strerror", None) or exc)
    if uses_spi():
        return ("cannot open the Vision Bonnet at {}: {}: check that the bonnet is seated, "
                "that its driver made {}, and that the service's user may open it".format(
                    bonnet_address(), reason, SPI_DEVICE))
    return ("cannot reach the Vision Bonnet at {}: {}: start the bonnet there (`facekit "
            "bonnet serve` for the software one), or fix the address".format(
                bonnet_address(), reason))


class Bonnet(object):
    """The model on the Vision Bonnet and its camera inference.

    The library's failures come out as DetectorErrors: a refused model as exit 3, an
    unreachable bonnet, a lost connection or a bonnet error as exit 5.
    """

    def __init__(self, model, configs):
        self.model = model
        self.configs = configs
        self._inference = _aiy_inference()
        self._engine = None
        self._camera = None
        self._frames = None
        self._loaded = False

    @contextlib.contextmanager
    def _calls(self, action):
        inference = self._inference
        try:
            yield
        except inference.FirmwareVersionException as exc:
            raise DetectorError("the Vision Bonnet's firmware does not fit the AIY library "
                                "({}): {}".format(action, exc), EXIT_BONNET) from None
        except inference.InferenceException as exc:
            raise DetectorError("the Vision Bonnet reported an error while {}: {}".format(
                action, exc or "(no message)"), EXIT_BONNET) from None
        except (TypeError, OSError) as exc:
            # The socket transport returns None for a closed connection, which the
            # library hands to protobuf: a TypeError. A reset gives an OSError.
            raise BonnetLost(
                "lost the connection to the Vision Bonnet at {} while {} ({}: {}): the bonnet "
                "stopped or closed it".format(bonnet_address(), action, type(exc).__name__,
                                              exc)) from None
        except _protobuf_decode_error() as exc:
            raise DetectorError("the Vision Bonnet at {} sent a message that is not the AIY "
                                "protocol while {}: {}".format(bonnet_address(), action, exc),
                                EXIT_BONNET) from None

    def _connect(self):
        try:
            return self._inference.InferenceEngine()
        except ValueError as exc:
            raise DetectorError("VISION_BONNET_PORT {!r} is not a port number ({})".format(
                os.environ.get("VISION_BONNET_PORT"), exc), EXIT_BONNET) from None
        except OSError as exc:
            raise DetectorError(_unreachable(exc), EXIT_BONNET) from None

    def _loaded_models(self, action):
        with self._calls(action):
            return list(self._engine.get_inference_state().loaded_models)

    def _load(self, descriptor):
        """Load the model, returning the library's warnings: it logs a refusal instead of
        raising, so they hold the bonnet's reason."""
        messages = []
        library_log = logging.getLogger(self._inference.__name__)

        class Capture(logging.Handler):
            def emit(self, record):
                if record.levelno >= logging.WARNING:
                    messages.append(record.getMessage())

        handler = Capture()
        saved = library_log.level, library_log.propagate
        library_log.addHandler(handler)
        # The warning must reach the handler whatever --log-level says; it is reported
        # below instead of passed on.
        library_log.setLevel(min(library_log.getEffectiveLevel(), logging.WARNING))
        library_log.propagate = False
        try:
            with self._calls("loading model {}".format(descriptor.name)):
                self._engine.load_model(descriptor)
        finally:
            library_log.removeHandler(handler)
            library_log.setLevel(saved[0])
            library_log.propagate = saved[1]
        return messages

    def open(self):
        """Connect, load the model (checking that the bonnet really did) and start the
        camera."""
        model = self.model
        descriptor = self._inference.ModelDescriptor(
            name=model.bonnet_name, input_shape=(1, model.input_size, model.input_size, 3),
            input_normalizer=INPUT_NORMALIZER, compute_graph=model.compute_graph)
        self._engine = self._connect()
        log.info("Vision Bonnet at %s", bonnet_address())
        if model.bonnet_name in self._loaded_models("asking which models are loaded"):
            log.info("model %s is already loaded on the Vision Bonnet (an earlier run did not "
                     "unload it): using it", model.bonnet_name)
        else:
            started = time.monotonic()
            messages = self._load(descriptor)
            loaded = self._loaded_models("checking that model {} loaded".format(
                model.bonnet_name))
            if model.bonnet_name not in loaded:
                for message in messages[:-1]:
                    log.warning("AIY library: %s", message)
                raise DetectorError(
                    "the Vision Bonnet did not load model {} {} ({}): {}".format(
                        model.name, model.version, model.compiled_path,
                        messages[-1] if messages else "it gave no reason"), EXIT_MODEL)
            for message in messages:
                log.warning("AIY library: %s", message)
            log.info("loaded model %s on the Vision Bonnet in %.1f s", model.bonnet_name,
                     time.monotonic() - started)
        self._loaded = True
        # CameraInference opens its own connection; the model is loaded, so it leaves
        # loading and unloading to this object.
        with self._calls("starting camera inference"):
            self._camera = self._inference.CameraInference(
                descriptor, sparse_configs=self.configs)
        self._frames = self._camera.run()

    def next_result(self, frame):
        """The inference result of the next camera frame (blocks until it arrives)."""
        with self._calls("waiting for frame {}".format(frame)):
            return next(self._frames)

    def close(self):
        """Stop the camera and unload the model; failures are logged, not raised."""
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.close()
                log.info("stopped camera inference")
            except Exception as exc:  # noqa: BLE001 - shutting down: report, go on
                log.warning("could not stop camera inference cleanly: %s: %s",
                            type(exc).__name__, exc)
        if self._loaded and self._engine is not None:
            try:
                self._engine.unload_model(self.model.bonnet_name)
                log.info("unloaded model %s from the Vision Bonnet", self.model.bonnet_name)
            except Exception as exc:  # noqa: BLE001
                log.warning("could not unload model %s: %s: %s", self.model.bonnet_name,
                            type(exc).__name__, exc)
            self._loaded = False
        self.abandon()

    def abandon(self):
        """Close the connections without a word to the bonnet (it stopped answering)."""
        camera, self._camera = self._camera, None
        engines = [camera.engine] if camera is not None else []
        engine, self._engine = self._engine, None
        if engine is not None:
            engines.append(engine)
        for each in engines:
            try:
                each.close()
            except Exception as exc:  # noqa: BLE001
                log.debug("closing a connection to the bonnet: %s", exc)


def sparse_configs(model, score_threshold):
    """The bonnet-side thresholding: concat_1's logits above logit(score_threshold),
    background column ignored, and concat's box encodings of the same anchors."""
    inference = _aiy_inference()
    count = model.num_anchors
    return {
        LOGITS_TENSOR: inference.ThresholdingConfig(
            logical_shape=[count, 1 + len(model.labels)], threshold=logit(score_threshold),
            top_k=count, to_ignore=[(1, 0)]),
        BOXES_TENSOR: inference.FromSparseTensorConfig(
            logical_shape=[count], tensor_name=LOGITS_TENSOR, squeeze_dims=[1]),
    }


# ---- LEDs, output, signals ------------------------------------------------------------

class Lights(object):
    """The button's RGB LED and the privacy LED as the service's lights, when the board
    has the LED driver: green while faces are seen, dim blue when none, blinking red on
    an error. An LED failure is logged once and the lights are left alone after it."""

    FACES = "faces"
    IDLE = "idle"
    ERROR = "error"
    OFF = "off"

    def __init__(self):
        self._leds = None
        self._state = None
        try:
            from aiy import leds  # noqa: PLC0415
        except ImportError as exc:
            log.info("no LEDs: the AIY library's leds module cannot be imported (%s)", exc)
            return
        self._module = leds
        if not leds.Leds.installed():
            log.info("no LEDs on this board (no LED driver at %s): running without them",
                     getattr(leds, "_DEVICE_PATH", "its sysfs path").rstrip("/"))
            return
        self._try(lambda: setattr(self, "_leds", leds.Leds()))

    @property
    def available(self):
        return self._leds is not None

    def _try(self, action):
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - an LED must never stop the service
            log.warning("LED update failed (%s: %s): running without LEDs", type(exc).__name__,
                        exc)
            self._leds = None

    def show(self, state):
        if self._leds is None or state == self._state:
            return
        self._state = state
        leds, mod = self._leds, self._module

        def update():
            if state == self.FACES:
                leds.update(mod.Leds.rgb_on(mod.Color.GREEN))
                leds.update(mod.Leds.privacy_on(32))
            elif state == self.IDLE:
                leds.update(mod.Leds.rgb_on((0, 0, 0x20)))
                leds.update(mod.Leds.privacy_on(32))
            elif state == self.ERROR:
                leds.pattern = mod.Pattern.blink(500)
                leds.update(mod.Leds.rgb_pattern(mod.Color.RED))
                leds.update(mod.Leds.privacy_off())
            else:
                leds.update(mod.Leds.rgb_off())
                leds.update(mod.Leds.privacy_off())

        self._try(update)


class Publisher(object):
    """Writes one compact JSON line per record to a stream and flushes it."""

    def __init__(self, stream):
        self._stream = stream
        self._broken = False

    def publish(self, record):
        if self._broken:
            return
        try:
            self._stream.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._stream.flush()
        except (OSError, ValueError) as exc:
            # Nobody reads stdout any more; the status endpoint still reports the faces.
            log.error("cannot write to stdout (%s): no more JSON lines", exc)
            self._broken = True


class StopSignals(object):
    """SIGTERM/SIGINT ask the loop to stop after the current frame. If the bonnet has not
    answered STOP_GRACE seconds later (or a second signal comes), the blocked call is
    abandoned with _StopNow."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, grace=None):
        self.grace = STOP_GRACE if grace is None else grace
        self.signum = None
        self._saved = {}

    def install(self):
        for signum in self.SIGNALS + (signal.SIGALRM,):
            self._saved[signum] = signal.getsignal(signum)
        for signum in self.SIGNALS:
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGALRM, self._on_alarm)

    def restore(self):
        signal.alarm(0)
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        self._saved = {}

    @property
    def requested(self):
        return self.signum is not None

    @property
    def name(self):
        return signal.Signals(self.signum).name if self.signum else None

    def _on_signal(self, signum, frame):
        if self.signum is not None:
            raise _StopNow("a second {}".format(signal.Signals(signum).name))
        self.signum = signum
        signal.alarm(self.grace)

    def _on_alarm(self, signum, frame):
        raise _StopNow("no answer from the Vision Bonnet within {} s".format(self.grace))

    @contextlib.contextmanager
    def deadline(self):
        """Abandon the block with _StopNow if it takes more than `grace` seconds."""
        signal.alarm(self.grace)
        try:
            yield
        finally:
            signal.alarm(0)


# ---- the service ----------------------------------------------------------------------

class Service(object):
    """One run: release -> bonnet -> frames, with status, lights and JSON lines."""

    def __init__(self, args, stdout):
        self.args = args
        self.publisher = Publisher(stdout)
        self.status = Status(max_frame_age=args.max_frame_age)
        self.stop = StopSignals()
        self.model = None
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
        except _StopNow as exc:
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
            if isinstance(exc, BonnetLost):
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
        except _StopNow:
            log.warning("the Vision Bonnet did not answer within %d s while stopping: closed "
                        "the connection without unloading the model", self.stop.grace)
            self.bonnet.abandon()

    def _run(self):
        args = self.args
        self.lights = Lights()
        path = resolve_release(args.models, args.release)
        self.model = model = open_bundle(path, args.input_size)
        self.status.set_model(model.name, model.version, model.path)
        log.info("%s %s: model %s version %s from %s (%d anchors, labels %s, input %dx%d); "
                 "score threshold %g, IoU %g, at most %d faces a frame", PROG,
                 facekit.__version__, model.name, model.version, model.path,
                 model.num_anchors, ",".join(model.labels), model.input_size,
                 model.input_size, args.threshold, args.iou, args.max_detections)
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
        self.bonnet = Bonnet(model, sparse_configs(model, args.threshold))
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
        detections = result_detections(result, model, args.threshold, args.iou,
                                       args.max_detections)
        when = round(time.time(), 3)
        window = frame_window(result, model)
        faces = [face_record(det, model.labels, window) for det in detections]
        self.status.record_frame(self.frames, when, faces)
        if faces:
            camera = getattr(result, "frame", None)
            self.publisher.publish(frame_record(self.frames, when, model, faces,
                                                result.duration_ms,
                                                camera_frame=getattr(camera, "index", None)))
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

def _number(kind, low=None, high=None, low_open=False, high_open=False):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError("{!r} is not a {}".format(
                text, "whole number" if kind is int else "number")) from None
        if (low is not None and (value < low or (low_open and value == low))) or (
                high is not None and (value > high or (high_open and value == high))):
            raise argparse.ArgumentTypeError("{} is outside {}{}, {}{}".format(
                text, "(" if low_open else "[", low, high if high is not None else "inf",
                ")" if high_open or high is None else "]"))
        return value
    return parse


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run the face detector of a deployed model release on the Vision Bonnet: "
                    "one JSON line per frame with faces on stdout, logs on stderr, status on "
                    "http://HOST:PORT/status and /healthz.",
        epilog="Exit status: 0 stopped (SIGTERM/SIGINT, --frames); 1 unexpected failure, "
               "the status port taken or no usable AIY library; "
               "2 bad options; 3 the Vision Bonnet cannot run the model (refused it, or "
               "its outputs do not fit the bundle); 4 the release is missing or does not "
               "verify; 5 the Vision Bonnet is unreachable, the connection was lost, or it "
               "reported an error. Off a Raspberry Pi the AIY library reaches the bonnet "
               "over TCP at VISION_BONNET_HOST:VISION_BONNET_PORT.")
    parser.add_argument("--models", default=DEFAULT_MODELS, metavar="DIR",
                        help="the kit's model directory; the release run is DIR/current, a "
                             "link to DIR/releases/VERSION (default %(default)s)")
    parser.add_argument("--release", metavar="PATH",
                        help="run this bundle directory instead of DIR/current")
    parser.add_argument("--status-host", default="127.0.0.1", metavar="HOST",
                        help="address of the status endpoint (default %(default)s: this kit "
                             "only)")
    parser.add_argument("--status-port", type=_number(int, 0, 65535),
                        default=DEFAULT_STATUS_PORT, metavar="PORT",
                        help="port of the status endpoint, 0 = no endpoint (default "
                             "%(default)s)")
    parser.add_argument("--threshold", type=_number(float, 0.0, 1.0, True, True), default=0.5,
                        metavar="SCORE",
                        help="a face needs a score above this, in (0, 1); the bonnet drops "
                             "anchors below it before they are sent (default %(default)s)")
    parser.add_argument("--iou", type=_number(float, 0.0, 1.0), default=0.5, metavar="IOU",
                        help="non-maximum suppression drops a box overlapping a better one "
                             "by more than this intersection over union (default "
                             "%(default)s)")
    parser.add_argument("--max-detections", type=_number(int, 1), default=100, metavar="N",
                        help="at most N faces a frame (default %(default)s)")
    parser.add_argument("--input-size", type=_number(int, 1), metavar="S",
                        help="the model's input side in pixels (default: the manifest's "
                             "extra.input_size, else {})".format(DEFAULT_INPUT_SIZE))
    parser.add_argument("--frames", type=_number(int, 1), metavar="N",
                        help="stop after N frames (default: run until SIGTERM/SIGINT)")
    parser.add_argument("--idle-log-seconds", type=_number(float, 0.0), default=10.0,
                        metavar="SECONDS",
                        help="frames with faces are logged each; frames without are "
                             "summed up at most once per SECONDS (default %(default)s)")
    parser.add_argument("--max-frame-age", type=_number(float, 0.0, low_open=True),
                        default=HEALTHY_FRAME_AGE, metavar="SECONDS",
                        help="unhealthy when the last frame is older than this (default "
                             "%(default)s)")
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"),
                        help="log level on stderr (default %(default)s)")
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
