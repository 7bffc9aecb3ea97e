"""The face detector that runs on the Vision Kit (`facekit-detector`, `python -m
facekit.detector`): the model release on the Vision Bonnet, its outputs turned into faces.

One module per job:
  service   the service loop and its command line (main)
  release   which bundle to run, verified against its manifest (Model); `python -m
            facekit.detector.release DIR` checks a release as the service will open it
  client    the connection to the Vision Bonnet through AIY's library (BonnetClient)
  outputs   a frame's result -> detections -> the JSON line published; sparse configs
  decode    the SSD decoder: dense and sparse tensors -> detections (Detection)
  tensors   the decoder's inputs in every form, the anchor table, DecodeError
  boxes     the box coder: encodings against anchors -> boxes
  scores    logits -> scores, and the logit bound that picks the candidates
  nms       non-maximum suppression, as an IoU matrix or on Python floats
  wire      a FloatTensor's floats read from its protobuf wire form
  lights    the button's and privacy LEDs as the service's state
  signals   SIGTERM/SIGINT and the grace given to a bonnet that does not answer
  status    the HTTP status endpoint (/status, /healthz)
  health    the deploy's health gate, run by roles/vision_kit after a restart
  exits     the exit statuses, which the kit's unit and the health gate read too

Code here runs on the kit: Python 3.5, numpy, the standard library and the aiy library
only (no f-strings, no variable annotations, no TensorFlow). Of the rest of facekit it uses
the package-level helpers and the bundle's manifest (facekit.model.bundle), never the CLI,
the evaluation or the data set tools: `make lint` checks it (tools/check_imports.py).
"""
