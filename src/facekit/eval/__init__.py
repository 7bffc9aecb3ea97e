"""Measuring a detector: the WIDER FACE protocol (easy/medium/hard AP) and VOC all-point AP.

- errors: EvalError and its subclasses (bad prediction files, unreadable ground truth).
- groundtruth: the WIDER FACE evaluation tools' four .mat files as flat numpy arrays.
- predictions: a WIDER-format prediction folder (`<event>/<image>.txt`) read and checked.
- ap: VOC all-point average precision (precision envelope).
- wider: the protocol itself, vectorised over every image at once (`evaluate`).

Training host (Python 3.6) and controller; numpy, and scipy for the ground truth's .mat files.
"""
