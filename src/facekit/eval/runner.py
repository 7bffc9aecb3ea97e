"""Running a bundle on the images of TFRecord files the way the Vision Kit runs it.

The kit sends the whole camera frame resized to the model's input (256x256, squashed),
normalised (x - 128) / 128, and decodes the bonnet's two tensors on the Pi with
facekit.detector's decoder. Here the bundle is opened as the detector opens it
(facekit.detector.release.open_bundle: verified, its anchors and labels read), its frozen
graph is run by the software bonnet's runner (facekit.bonnet.models.Model, the graph from
Preprocessor/sub to concat and concat_1), and each image's tensors go through the same
decoder (decode_dense), at a low score threshold so the AP sees the whole ranking.

Speed: JPEGs are decoded at reduced size (Pillow's draft mode: the decoder skips the DCT
scales the resize would throw away), in a thread pool while TensorFlow runs the previous
batch (both release the GIL); images go through the graph in batches when its input has
an unknown batch size, one at a time otherwise. Python 3.6.
"""

import collections
import io
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from facekit.detector import decode, release
from facekit.detector.client import INPUT_NORMALIZER
from facekit.eval.records import RecordError
from facekit.model import bundle as bundles

SCORE_THRESHOLD = 0.02
BATCH = 8
# Images decoded ahead of the graph.
PREFETCH = 16

# record: the Record without its image bytes; size: (width, height) of the image as
# decoded; boxes: (d, 4) float64 (ymin, xmin, ymax, xmax) normalised; scores: (d,);
# labels: (d,) class ids (1-based), best score first.
ImageResult = collections.namedtuple("ImageResult", "record size boxes scores labels")


def open_model(bundle_dir, threads=2):
    """(release.Model: labels, anchors, input size, name and version; a running
    bonnet.models.Model of its frozen graph). FacekitError when the bundle does not verify
    or its graph does not load."""
    from facekit.bonnet import models  # noqa: PLC0415 - imports TensorFlow lazily itself

    kit_model = release.open_bundle(bundle_dir)
    manifest_entry = models.Bundle(kit_model.path, kit_model.name, kit_model.version, None)
    size = kit_model.input_size
    mean, stddev = INPUT_NORMALIZER
    graph = models.Model(kit_model.bonnet_name, manifest_entry, sha256=None, height=size,
                         width=size, mean=mean, stddev=stddev, threads=threads)
    return kit_model, graph.open(os.path.join(kit_model.path, bundles.GRAPH))


def load_image(record, graph):
    """((width, height) of the image, its pixels at the graph's input size)."""
    from PIL import Image  # noqa: PLC0415

    try:
        image = Image.open(io.BytesIO(record.encoded))
        size = image.size
        # Decode at the smallest DCT scale still at least the input size (JPEG only;
        # other formats ignore it): the resize to the input throws the rest away anyway.
        image.draft("RGB", (graph.width, graph.height))
        image = image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise RecordError("{}: record {} ({}): its image/encoded does not decode as an image "
                          "({}): write the records again from readable images".format(
                              record.path, record.number, record.filename or "no filename",
                              exc)) from None
    return size, graph.pixels(image)


def _decoded(record, size, boxes, classes, anchors, *, score_threshold):
    # NMS with the kit's defaults, as facekit-detector runs unless told otherwise.
    detections = decode.decode_dense(boxes, classes, anchors, score_threshold=score_threshold)
    coords = np.array([[d.ymin, d.xmin, d.ymax, d.xmax] for d in detections],
                      dtype=np.float64).reshape(-1, 4)
    return ImageResult(record._replace(encoded=None), size, coords,
                       np.array([d.score for d in detections], dtype=np.float64),
                       np.array([d.class_id for d in detections], dtype=np.int64))


def run(kit_model, graph, records, *, score_threshold=SCORE_THRESHOLD, batch=BATCH,
        workers=2):
    """ImageResult per Record of `records`, in order."""
    batch = batch if graph.batchable else 1
    anchors = kit_model.anchors
    pending = collections.deque()

    def infer(items):
        pixels = np.stack([future.result()[1] for _, future in items])
        boxes, classes = graph.infer(pixels)
        for (record, future), box, cls in zip(items, boxes, classes):
            yield _decoded(record, future.result()[0], box, cls, anchors,
                               score_threshold=score_threshold)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            for record in records:
                pending.append((record, pool.submit(load_image, record, graph)))
                if len(pending) >= PREFETCH + batch:
                    yield from infer([pending.popleft() for _ in range(batch)])
            while pending:
                yield from infer([pending.popleft() for _ in range(min(batch, len(pending)))])
        finally:
            for _, future in pending:
                future.cancel()
