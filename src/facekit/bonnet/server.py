"""The software bonnet's TCP server.

BonnetServer is a threaded TCP server speaking AIY's framing (4-byte big-endian length +
message) that passes each Request to a Bonnet (facekit.bonnet.board) and sends its
Response back; serve() runs one from the command line until SIGTERM or SIGINT.
"""

import errno
import logging
import os
import signal
import socket
import socketserver
import threading
import time

from facekit.bonnet import BonnetError, protocol
from facekit.bonnet.board import FIRMWARE, Bonnet
from facekit.bonnet.frames import FrameSource
from facekit.bonnet.models import Registry

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 35000  # AIY's default VISION_BONNET_PORT


class _Connection(socketserver.BaseRequestHandler):
    def handle(self):
        server = self.server
        bonnet = server.bonnet
        sock = self.request
        server.track(sock, True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                try:
                    data = protocol.read_message(sock, quick=True)
                except BonnetError as exc:
                    log.warning("%s:%d: %s; connection closed", self.client_address[0],
                                self.client_address[1], exc)
                    return
                if data is None:
                    return
                request = bonnet.proto.Request()
                try:
                    request.ParseFromString(data)
                except Exception as exc:  # DecodeError, whatever the implementation
                    response = bonnet.proto.response(
                        "not a spacepark.vision.Request ({}: {})".format(
                            type(exc).__name__, exc))
                else:
                    response = bonnet.handle(request)
                if response is None:
                    return
                if server.delay_ms:
                    time.sleep(server.delay_ms / 1000.0)
                protocol.write_message(sock, response.SerializeToString())
        except OSError as exc:
            log.info("%s:%d: connection lost: %s", self.client_address[0],
                     self.client_address[1], exc)
        finally:
            server.track(sock, False)


class BonnetServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Threaded TCP server passing each framed Request to `bonnet` (port 0: any free)."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, bonnet, host=DEFAULT_HOST, port=DEFAULT_PORT, delay_ms=0):
        self.bonnet = bonnet
        self.delay_ms = delay_ms
        self._connections = set()
        self._connections_lock = threading.Lock()
        try:
            socketserver.TCPServer.__init__(self, (host, port), _Connection)
        except OSError as exc:
            raise BonnetError("cannot listen on {}:{}: {}{}".format(
                host, port, exc.strerror or exc,
                ": another bonnet may be running there (`facekit bonnet stop`), or pick "
                "another --port" if exc.errno == errno.EADDRINUSE else "")) from None
        self.host, self.port = self.server_address[:2]

    def track(self, sock, opened):
        with self._connections_lock:
            if opened:
                self._connections.add(sock)
            else:
                self._connections.discard(sock)

    def close(self):
        """Stop accepting, end open connections, unload the models."""
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.bonnet.close()


def serve(*, host=DEFAULT_HOST, port=DEFAULT_PORT, models, frames=None, fps=10.0,
          refuse=(), drop_after=None, delay_ms=0, report_every=50, state_file=None,
          options=None):
    """Run a bonnet until SIGTERM or SIGINT; returns the exit status (0)."""
    source = FrameSource(frames)
    proto = protocol.load()
    registry = Registry(models, refuse)
    if not os.path.isdir(models):
        log.warning("--models %s does not exist (yet): every LoadModel is refused until "
                    "bundles appear there", models)
    bonnet = Bonnet(registry, source, fps=fps, drop_after=drop_after,
                    report_every=report_every, state_file=state_file, proto=proto,
                    info={"options": options or {}})
    server = BonnetServer(bonnet, host, port, delay_ms=delay_ms)
    bonnet.info.update({"host": server.host, "port": server.port})
    stopped = []

    def stop(signum, frame):
        if not stopped:
            stopped.append(signal.Signals(signum).name)
            threading.Thread(target=server.shutdown, name="bonnet-shutdown").start()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        bonnet.write_state()
        log.info("software Vision Bonnet listening on %s:%d (models from %s, firmware "
                 "%d.%d)", server.host, server.port, models, FIRMWARE[0], FIRMWARE[1])
        server.serve_forever(poll_interval=0.2)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        server.close()
        bonnet.write_state(running=False)
    log.info("stopped by %s after %d camera frames and %d images",
             stopped[0] if stopped else "shutdown", bonnet.reporter.camera_frames,
             bonnet.reporter.images)
    return 0
