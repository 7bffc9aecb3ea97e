"""Measuring a detector: the WIDER FACE protocol (easy/medium/hard AP) and VOC all-point AP.

- errors: EvalError and its subclasses (bad prediction files, unreadable ground truth).
- groundtruth: the WIDER FACE evaluation tools' four .mat files as flat numpy arrays.
- predictions: a WIDER-format prediction folder (`<event>/<image>.txt`) read and checked.
- ap: VOC all-point average precision (precision envelope).
- wider: the protocol itself, vectorised over every image at once (`evaluate`).
- voc: matching and AP at IoU 0.5 per class, as the Object Detection API's
  PascalDetectionEvaluator computes them.
- records: the images and boxes of TFRecord files in the Object Detection API's format.
- runner: a bundle's frozen graph on those images as the kit runs it (the software bonnet's
  graph runner, facekit.detector's decoder).
- metrics: eval run's figures (AP, the kit's recall and precision at its deploy threshold,
  recall by face size); report: pr.png, samples.png, report.html; run: `facekit eval run`.

Training host (Python 3.6) and controller; numpy, scipy for the ground truth's .mat files,
TensorFlow and Pillow for `eval run`.
"""
