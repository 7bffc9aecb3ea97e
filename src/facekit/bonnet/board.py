"""The software bonnet's board: its state and its answer to each request.

Bonnet holds what the board holds, shared by every connection (each InferenceEngine
of AIY's library opens its own): the loaded models by name and the camera (running,
model, params, sparse configs, window, frame index). Bonnet.handle answers one
Request with one Response, always with an explicit status; None means "close the
connection without a reply" (the --drop-after rehearsal). It keeps the --state-file
up to date; Reporter counts the inference times. The TCP side is facekit.bonnet.server.
"""

import hashlib
import logging
import os
import threading
import time

from facekit import files
from facekit.bonnet import BonnetError, protocol, sparse
from facekit.bonnet.frames import FrameSource
from facekit.bonnet.models import LoadRefused

log = logging.getLogger(__name__)

FIRMWARE = (1, 2)
THERMAL_ZONE = "/sys/class/thermal/thermal_zone0/temp"


def _not_loaded(name):
    return 'Model "{}" is not loaded'.format(name)


class Reporter(object):
    """Per-frame inference times: totals, and a log line every `every` frames."""

    def __init__(self, every=50):
        self.every = every
        self.frames = 0
        self.camera_frames = 0
        self.images = 0
        self.total_ms = 0.0
        self.last = None
        self._window = []
        self._window_start = None

    def record(self, ms, camera):
        """Count one inference; returns the report dict when one is due, else None."""
        now = time.monotonic()
        if self._window_start is None:
            self._window_start = now - ms / 1000.0
        self.frames += 1
        if camera:
            self.camera_frames += 1
        else:
            self.images += 1
        self.total_ms += ms
        self._window.append(ms)
        if self.every <= 0 or len(self._window) < self.every:
            return None
        elapsed = max(now - self._window_start, 1e-9)
        self.last = {"frames": len(self._window), "mean_ms": sum(self._window) / len(self._window),
                     "max_ms": max(self._window), "fps": len(self._window) / elapsed}
        self._window = []
        self._window_start = now
        log.info("%d frames: %.1f ms mean, %.1f ms max per frame, %.1f fps (%d frames in all)",
                 self.last["frames"], self.last["mean_ms"], self.last["max_ms"],
                 self.last["fps"], self.frames)
        return self.last

    def summary(self):
        return {"frames_served": self.camera_frames, "images_served": self.images,
                "mean_ms": round(self.total_ms / self.frames, 3) if self.frames else None,
                "fps": round(self.last["fps"], 3) if self.last else None,
                "last_report": self.last}


def _sparse_configs(entries):
    """{tensor: sparse.Thresholding | sparse.FromSparseTensor} from a request's map."""
    configs = {}
    for name in entries:
        entry = entries[name]
        shape = list(entry.logical_shape.values)
        kind = entry.WhichOneof("config")
        if kind == "thresholding":
            t = entry.thresholding
            configs[name] = sparse.Thresholding(
                shape, t.threshold, t.top_k, [(i.dim, i.label) for i in t.to_ignore])
        elif kind == "from_sparse_tensor":
            f = entry.from_sparse_tensor
            configs[name] = sparse.FromSparseTensor(shape, f.tensor_name, list(f.squeeze_dims))
        else:
            raise BonnetError("sparse config of tensor {}: neither thresholding nor "
                              "from_sparse_tensor is set".format(name))
    return configs


def _image(tensor):
    """The PIL RGB image of an ImageInference's ByteTensor (planar RGB, gray, or JPEG)."""
    import io  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    shape = tensor.shape
    data = tensor.data
    if not shape.height and not shape.width and not shape.depth:
        try:
            with Image.open(io.BytesIO(data)) as image:
                return image.convert("RGB")
        except (OSError, ValueError, SyntaxError) as exc:
            raise BonnetError("image tensor: shape 0 means JPEG bytes, and {} bytes do not "
                              "decode ({})".format(len(data), exc)) from None
    if shape.batch not in (0, 1) or shape.depth not in (1, 3) or shape.height < 1 or \
            shape.width < 1:
        raise BonnetError("image tensor: shape ({}, {}, {}, {}) is not supported: batch 1, "
                          "depth 3 (planar RGB) or 1 (gray)".format(
                              shape.batch, shape.height, shape.width, shape.depth))
    want = shape.height * shape.width * shape.depth
    if len(data) != want:
        raise BonnetError("image tensor: shape ({}, {}, {}, {}) needs {} bytes, got {}".format(
            shape.batch, shape.height, shape.width, shape.depth, want, len(data)))
    planes = np.frombuffer(data, np.uint8).reshape(shape.depth, shape.height, shape.width)
    if shape.depth == 1:
        return Image.fromarray(planes[0], "L").convert("RGB")
    return Image.fromarray(np.ascontiguousarray(planes.transpose(1, 2, 0)), "RGB")


def _temperature():
    try:
        with open(THERMAL_ZONE, "r") as fh:
            return int(fh.read().strip()) / 1000.0
    except (OSError, ValueError):
        return None


class Bonnet(object):
    """The board's state and request handling; see the module docstring."""

    def __init__(self, registry, frames=None, *, fps=10.0, drop_after=None,
                 report_every=50, state_file=None, proto=None, info=None):
        self.registry = registry
        self.frames = FrameSource() if frames is None else frames
        self.fps = fps
        self.drop_after = drop_after
        self.state_file = state_file
        self.proto = proto or protocol.load()
        self.info = dict(info or {})
        self.reporter = Reporter(report_every)
        self.started = time.time()
        self._started_monotonic = time.monotonic()
        self._lock = threading.RLock()
        self._load_lock = threading.Lock()
        self._camera_lock = threading.Lock()
        self.models = {}
        self._busy = {}
        self.camera = None
        self._camera_requests = 0
        self._dropped = False
        self._next_frame = 0.0
        self._handlers = {
            "load_model": self._load_model, "unload_model": self._unload_model,
            "image_inference": self._image_inference,
            "start_camera_inference": self._start_camera,
            "camera_inference": self._camera_inference,
            "stop_camera_inference": self._stop_camera,
            "get_camera_state": self._camera_state, "imu_self_test": self._imu_self_test,
            "get_firmware_info": self._firmware_info, "get_system_info": self._system_info,
            "get_inference_state": self._inference_state, "reset": self._reset,
        }

    # -- dispatch -----------------------------------------------------------------------

    def handle(self, request):
        """The Response to a Request, or None to close the connection without one."""
        kind = request.WhichOneof("request")
        if kind is None:
            return self.proto.response("empty request: set one of the Request's fields")
        if kind == "camera_inference" and self._drop_now():
            log.warning("--drop-after %d: closing the connection without a reply",
                        self.drop_after)
            return None
        handler = self._handlers.get(kind)
        if handler is None:
            return self.proto.response("request {} is not supported".format(kind))
        try:
            return handler(getattr(request, kind))
        except BonnetError as exc:
            log.warning("%s: %s", kind, exc)
            return self.proto.response(str(exc))
        except Exception as exc:  # the client gets the reason, the log gets the trace
            log.exception("%s failed", kind)
            return self.proto.response("{} failed on the bonnet: {}: {}".format(
                kind, type(exc).__name__, exc))

    def _drop_now(self):
        with self._lock:
            self._camera_requests += 1
            if self.drop_after and not self._dropped and \
                    self._camera_requests >= self.drop_after:
                self._dropped = True
                return True
        return False

    # -- models -------------------------------------------------------------------------

    def _load_model(self, req):
        name = req.model_name
        if not name:
            return self.proto.response("LoadModel: model_name is empty")
        shape = req.input_shape
        with self._load_lock:
            with self._lock:
                loaded = self.models.get(name)
            if loaded is not None:
                if hashlib.sha256(req.compute_graph).hexdigest() == loaded.sha256:
                    log.info('model "%s" is already loaded', name)
                    return self.proto.response()
                return self.proto.response(
                    'Cannot load model "{}": a model of that name is already loaded with '
                    'another compiled graph: unload it first'.format(name))
            try:
                model = self.registry.load(
                    name, (shape.batch, shape.height, shape.width, shape.depth),
                    req.input_normalizer.mean, req.input_normalizer.stddev, req.compute_graph)
            except LoadRefused as exc:
                log.warning("%s", exc)
                return self.proto.response(str(exc))
            with self._lock:
                self.models[name] = model
        log.info('loaded model "%s": bundle %s version %s (%dx%d input)', name,
                 model.bundle.path, model.bundle.version, model.width, model.height)
        self.write_state()
        return self.proto.response()

    def _unload_model(self, req):
        with self._lock:
            model = self.models.pop(req.model_name, None)
            if model is None:
                return self.proto.response(_not_loaded(req.model_name))
            if self.camera is not None and self.camera["model"] == req.model_name:
                log.info('camera inference stopped: its model "%s" was unloaded',
                         req.model_name)
                self.camera = None
        model.close()
        log.info('unloaded model "%s"', req.model_name)
        self.write_state()
        return self.proto.response()

    def _model(self, name):
        with self._lock:
            model = self.models.get(name)
        if model is None:
            raise BonnetError(_not_loaded(name))
        return model

    # -- inference ----------------------------------------------------------------------

    def _infer(self, model, image, configs, window, camera):
        """(Response with inference_result filled, frame size) for one image."""
        width, height = image.size
        x, y, w, h = window or (0, 0, width, height)
        x, y = min(max(x, 0), width - 1), min(max(y, 0), height - 1)
        w, h = min(w, width - x), min(h, height - y)
        if (x, y, w, h) != (0, 0, width, height):
            image = image.crop((x, y, x + w, y + h))
        with self._lock:
            self._busy[model.name] = self._busy.get(model.name, 0) + 1
        try:
            outputs, ms = model.run(image)
        finally:
            with self._lock:
                self._busy[model.name] -= 1
        chosen = sparse.apply(outputs, configs) if configs else {}
        response = self.proto.response()
        result = response.inference_result
        result.model_name = model.name
        result.width, result.height = width, height
        result.window.x, result.window.y = x, y
        result.window.width, result.window.height = w, h
        result.duration_ms = int(round(ms))
        for name in sorted(outputs):
            values = outputs[name]
            tensor = result.tensors[name]
            tensor.shape.batch, tensor.shape.height = 1, values.shape[0]
            tensor.shape.width, tensor.shape.depth = 1, values.shape[1]
            if name in chosen:
                for index in chosen[name].indices:
                    tensor.indices.add(values=[int(i) for i in index])
                tensor.data.extend(chosen[name].values.tolist())
            else:
                tensor.data.extend(values.reshape(-1).tolist())
        log.debug('%s on "%s": %.1f ms', "frame" if camera else "image", model.name, ms)
        with self._lock:
            report = self.reporter.record(ms, camera)
        if report is not None:
            self.write_state()
        return response

    def _image_inference(self, req):
        model = self._model(req.model_name)
        configs = _sparse_configs(req.sparse_configs)
        if req.params:
            log.debug("image inference params ignored: %s", dict(req.params))
        return self._infer(model, _image(req.tensor), configs, None, camera=False)

    def _start_camera(self, req):
        model = self._model(req.model_name)
        configs = _sparse_configs(req.sparse_configs)
        sparse.check_configs(configs, {name: size[0] * size[1]
                                       for name, size in model.sizes.items()})
        window = None
        if req.window.width > 0 and req.window.height > 0:
            window = (req.window.x, req.window.y, req.window.width, req.window.height)
        with self._lock:
            if self.camera is not None:
                log.info('camera inference restarted: model "%s" replaces "%s"',
                         req.model_name, self.camera["model"])
            self.camera = {"model": req.model_name, "params": dict(req.params),
                           "sparse_configs": configs, "window": window, "index": 0}
        log.info('camera inference started on "%s"%s', req.model_name,
                 " with sparse configs for " + ", ".join(sorted(configs)) if configs else "")
        self.write_state()
        return self.proto.response()

    def _pace(self):
        if not self.fps or self.fps <= 0:
            return
        now = time.monotonic()
        if now < self._next_frame:
            time.sleep(self._next_frame - now)
            now = self._next_frame
        self._next_frame = now + 1.0 / self.fps

    def _camera_inference(self, req):
        with self._camera_lock:
            with self._lock:
                if self.camera is None:
                    return self.proto.response(
                        "Camera inference is not running: send start_camera_inference first")
                camera = self.camera
                index = camera["index"]
                camera["index"] += 1
            model = self._model(camera["model"])
            self._pace()
            timestamp_us = int(time.time() * 1e6)
            image, _ = self.frames.frame(index)
            response = self._infer(model, image, camera["sparse_configs"], camera["window"],
                                   camera=True)
        response.inference_result.frame.index = index
        response.inference_result.frame.timestamp_us = timestamp_us
        return response

    def _stop_camera(self, req):
        with self._lock:
            camera, self.camera = self.camera, None
        if camera is not None:
            log.info('camera inference stopped on "%s" after %d frames', camera["model"],
                     camera["index"])
            self.write_state()
        return self.proto.response()

    # -- information --------------------------------------------------------------------

    def _camera_state(self, req):
        response = self.proto.response()
        with self._lock:
            response.camera_state.running = self.camera is not None
        response.camera_state.width, response.camera_state.height = self.frames.size
        return response

    def _imu_self_test(self, req):
        response = self.proto.response()
        response.status.message = "software bonnet: no IMU to test"
        return response

    def _firmware_info(self, req):
        response = self.proto.response()
        response.firmware_info.major_version, response.firmware_info.minor_version = FIRMWARE
        return response

    def _system_info(self, req):
        response = self.proto.response()
        info = response.system_info
        info.uptime_seconds = int(time.monotonic() - self._started_monotonic)
        temperature = _temperature()
        if temperature is not None:
            info.temperature_celsius = temperature
        return response

    def _inference_state(self, req):
        response = self.proto.response()
        state = response.inference_state
        with self._lock:
            state.loaded_models.extend(sorted(self.models))
            processing = set(name for name, count in self._busy.items() if count)
            if self.camera is not None:
                processing.add(self.camera["model"])
        state.processing_models.extend(sorted(processing))
        return response

    def _reset(self, req):
        with self._lock:
            models, self.models = self.models, {}
            self.camera = None
        for model in models.values():
            model.close()
        log.info("reset: %d model(s) unloaded, camera stopped", len(models))
        self.write_state()
        return self.proto.response()

    # -- state file ---------------------------------------------------------------------

    def state(self, running=True):
        """What the state file holds (see `facekit bonnet serve --help`)."""
        with self._lock:
            doc = dict(self.info)
            doc.update({
                "pid": os.getpid(), "running": running, "started": round(self.started, 3),
                "updated": round(time.time(), 3), "models_dir": self.registry.root,
                "frames": self.frames.directory,
                "loaded_models": [self.models[n].describe() for n in sorted(self.models)],
                "camera": {"running": self.camera is not None,
                           "model": self.camera["model"] if self.camera else None,
                           "frame_index": self.camera["index"] if self.camera else None},
            })
            doc.update(self.reporter.summary())
        return doc

    def write_state(self, running=True):
        """Replace the --state-file (if any) with state(), atomically."""
        if not self.state_file:
            return
        doc = self.state(running)
        try:
            files.replace_json(self.state_file, doc)
        except OSError as exc:
            log.warning("cannot write the state file %s: %s", self.state_file, exc)

    def close(self):
        with self._lock:
            models, self.models = self.models, {}
            self.camera = None
        for model in models.values():
            model.close()
