"""The detector that runs on the Vision Kit: turns the Vision Bonnet's SSD output tensors
into face boxes.

decode holds the SSD output decoder (anchors file, box coder, scores, NMS, dense and
sparse tensors). Code here runs on the kit: Python 3.5, numpy and the standard library
only (no f-strings, no variable annotations, no TensorFlow).
"""
