"""A software Vision Bonnet: a TCP server speaking the AIY Vision Kit's bonnet protocol.

AIY's client library (aiy.vision.inference) talks to the bonnet over SPI on a Pi, and
over TCP to VISION_BONNET_HOST:VISION_BONNET_PORT elsewhere, with the same
length-prefixed protobuf messages. `facekit bonnet serve` answers them: it runs the
frozen_inference_graph.pb of the model bundle whose model.binaryproto the client loads,
with TensorFlow on the CPU, on images the client sends or on "camera" frames cycled
from a folder, so the real client library and the detector can be tested without
hardware.

protocol builds the message classes from the descriptor in aiy's own protocol_pb2.py
(any protobuf from 3.20 to 7), models maps compiled graphs to bundles and runs them,
sparse computes thresholded outputs, frames is the camera, board holds the board's
state and answers requests, server is the TCP server, daemon starts and stops it in the
background. Nothing heavy
is imported here.
"""

from facekit.errors import FacekitError


class BonnetError(FacekitError):
    """The software bonnet cannot start or serve as asked; the message says what to do."""
