"""WIDER FACE -> Pascal VOC / CSV / TFRecord conversion for the Object Detection API.

Each CLI command (`facekit dataset ...`) is a plain function too:

    from facekit.dataset.convert import convert, inspect_annotations
    from facekit.dataset.steps import to_voc, to_csv, to_tfrecord
    from facekit.dataset.wider import parse_annotations
    from facekit.dataset.filters import FilterConfig, DEFAULT_FILTERS

This package file imports nothing on purpose: worker processes import
facekit.dataset.images, and pulling pandas/lxml in here would add half a second
to every worker's start.
"""
