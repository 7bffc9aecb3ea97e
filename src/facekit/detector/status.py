"""The detector's status endpoint: a small HTTP server in a daemon thread.

GET /status  -> 200, JSON: {"healthy", "reason", "model": {"name", "version", "path"},
                "thresholds": {label: {"score", "from"}}, "frames", "fps",
                "last": {"frame", "time", "detections", "faces"} or null,
                "detections_seen", "faces_seen", "started", "error"}
               ("faces" and "faces_seen" are the schema 1 names of the same figures,
               kept for one more release)
GET /healthz -> 200 "ok" when healthy, else 503 and the reason (text/plain)

Healthy means: the model is loaded on the Vision Bonnet, a frame arrived within the last
max_frame_age seconds (HEALTHY_FRAME_AGE by default), and no error was recorded.

Status is written by the inference loop and read by the server's threads: every method
takes its lock. Python 3.5, standard library only: this runs on the Vision Kit.
"""

import collections
import json
import logging
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

log = logging.getLogger(__name__)

# Seconds without a frame after which the detector is unhealthy: the camera runs at several
# frames a second, so a gap this long means the bonnet or the camera has stalled.
HEALTHY_FRAME_AGE = 5.0
# The frame rate reported is measured over the frames of the last FPS_WINDOW seconds.
FPS_WINDOW = 5.0


class Status(object):
    """What the service reports about itself; thread-safe.

    clock (monotonic) measures frame ages and rates, wall (unix time) stamps what is
    reported; both can be replaced in tests.
    """

    def __init__(self, model=None, max_frame_age=HEALTHY_FRAME_AGE, fps_window=FPS_WINDOW,
                 clock=time.monotonic, wall=time.time):
        self._lock = threading.Lock()
        self._clock = clock
        self._wall = wall
        self._max_frame_age = float(max_frame_age)
        self._fps_window = float(fps_window)
        self._model = dict(model) if model else None
        self._thresholds = None
        self._loaded = False
        self._frames = 0
        self._faces_seen = 0
        self._last = None
        self._last_at = None
        self._recent = collections.deque()
        self._error = None
        self._started = wall()

    def set_model(self, name, version, path):
        with self._lock:
            self._model = {"name": name, "version": version, "path": path}

    def set_thresholds(self, thresholds):
        """{label: {"score", "from"}}: the score thresholds in force."""
        with self._lock:
            self._thresholds = {label: dict(entry) for label, entry in thresholds.items()}

    def set_loaded(self, loaded):
        with self._lock:
            self._loaded = bool(loaded)

    def set_error(self, text):
        """Record what stopped the service (None clears it)."""
        with self._lock:
            self._error = None if text is None else str(text)

    def record_frame(self, frame, when, faces):
        """One frame from the bonnet: its number, unix time and face records."""
        now = self._clock()
        with self._lock:
            self._frames += 1
            self._faces_seen += len(faces)
            self._last = {"frame": frame, "time": when, "detections": list(faces),
                          "faces": list(faces)}
            self._last_at = now
            self._recent.append(now)
            self._prune(now)

    def _prune(self, now):
        while self._recent and now - self._recent[0] > self._fps_window:
            self._recent.popleft()

    def _health(self, now):
        if self._error is not None:
            return False, "error: {}".format(self._error)
        if self._model is None:
            return False, "no model yet: the service is starting"
        if not self._loaded:
            return False, "model {} {} is not loaded on the Vision Bonnet yet".format(
                self._model["name"], self._model["version"])
        if self._last_at is None:
            return False, "no frame from the Vision Bonnet yet"
        age = now - self._last_at
        if age > self._max_frame_age:
            return False, "no frame from the Vision Bonnet for {:.1f} s (limit {:g} s)".format(
                age, self._max_frame_age)
        return True, None

    def health(self):
        """(healthy, reason): reason is None when healthy, else a sentence saying why not."""
        now = self._clock()
        with self._lock:
            return self._health(now)

    def _fps(self, now):
        # Intervals since the oldest frame of the window, up to now: a stall lowers it.
        self._prune(now)
        span = now - self._recent[0] if self._recent else 0.0
        return (len(self._recent) - 1) / span if span > 0 else 0.0

    def fps(self):
        """Frames a second over the last fps_window seconds."""
        now = self._clock()
        with self._lock:
            return round(self._fps(now), 2)

    def snapshot(self):
        """The /status document as a dict."""
        now = self._clock()
        with self._lock:
            healthy, reason = self._health(now)
            last = None
            if self._last is not None:
                last = dict(self._last, detections=list(self._last["detections"]),
                            faces=list(self._last["faces"]))
            return {
                "healthy": healthy,
                "reason": reason,
                "model": dict(self._model) if self._model else None,
                "thresholds": ({label: dict(entry) for label, entry in self._thresholds.items()}
                               if self._thresholds is not None else None),
                "frames": self._frames,
                "fps": round(self._fps(now), 2),
                "last": last,
                "detections_seen": self._faces_seen,
                "faces_seen": self._faces_seen,
                "started": self._started,
                "error": self._error,
            }


class _Handler(BaseHTTPRequestHandler):
    server_version = "facekit-detector"

    def do_GET(self):  # noqa: N802 - the name http.server dispatches to
        path = self.path.split("?", 1)[0]
        status = self.server.status
        if path == "/status":
            body = json.dumps(status.snapshot(), sort_keys=True) + "\n"
            self._send(200, body, "application/json")
        elif path == "/healthz":
            healthy, reason = status.health()
            if healthy:
                self._send(200, "ok\n", "text/plain; charset=utf-8")
            else:
                self._send(503, reason + "\n", "text/plain; charset=utf-8")
        else:
            body = json.dumps({"error": "no such path {}: use /status or /healthz".format(
                path)}) + "\n"
            self._send(404, body, "application/json")

    def _send(self, code, text, content_type):
        data = text.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        log.debug("status endpoint: %s %s", self.address_string(), format % args)


class _Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer.server_bind looks up the host's FQDN, which can wait on DNS on a kit
        # without network; the name is only used in CGI environments.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class StatusServer(object):
    """Serves a Status on host:port (port 0 picks a free one) from a daemon thread.

    OSError (the port is taken, the address is not local) comes from the constructor.
    """

    def __init__(self, status, host="127.0.0.1", port=0):
        server_class = _Server
        if ":" in host:
            server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        self._server = server_class((host, port), _Handler)
        self._server.status = status
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="status-endpoint", daemon=True)
        self._thread.start()

    @property
    def address(self):
        """(host, port) the server listens on."""
        return self._server.server_address[:2]

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
