"""The detector's client of the Vision Bonnet, through AIY's library (aiy.vision.inference).

BonnetClient loads the model (and checks that the bonnet really did: the library only
logs a refusal), starts camera inference with the sparse configs, hands out the frames'
results, and unloads and closes at the end. The library's failures come out as
DetectorErrors: a refused model as exit 3 (EXIT_MODEL), an unreachable bonnet, a lost
connection or a bonnet error as exit 5 (EXIT_BONNET). Not to be confused with
facekit.bonnet, the software Vision Bonnet this client can talk to.

Python 3.5; the AIY library is imported only when a client is made (aiy_inference).
"""

import contextlib
import logging
import os
import time

from facekit.detector.exits import EXIT_BONNET, EXIT_FAILURE, EXIT_MODEL, DetectorError

log = logging.getLogger(__name__)

# The normaliser of AIY's SSD models: (pixel - 128) / 128 gives the [-1, 1] input the
# Object Detection API's MobileNet preprocessor produces.
INPUT_NORMALIZER = (128.0, 128.0)

# The AIY library's transport choice and default address (aiy/vision/_transport.py).
SPI_DEVICE = "/dev/vision_spicomm"
AIY_DEFAULT_HOST = "172.28.28.10"
AIY_DEFAULT_PORT = "35000"


class BonnetLost(DetectorError):
    """The connection to the bonnet broke: nothing more can be said to it (exit 5)."""

    def __init__(self, message):
        DetectorError.__init__(self, message, EXIT_BONNET)


def aiy_inference():
    """The AIY library's aiy.vision.inference module; DetectorError (exit 1) says how to
    install it when it does not import."""
    # Imported here: the release checks need neither the library nor its protobuf.
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


class BonnetClient(object):
    """The model on the Vision Bonnet and its camera inference (see the module docstring).

    configs: the sparse configs camera inference asks for (outputs.sparse_configs);
    inference: the AIY library's module (default: aiy_inference()).
    """

    def __init__(self, model, configs, inference=None):
        self.model = model
        self.configs = configs
        self._inference = aiy_inference() if inference is None else inference
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
