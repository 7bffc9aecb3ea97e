"""facekit: the Python side of the face detector pipeline for AIY Vision Kits."""

__version__ = "0.1.0"
