"""The software bonnet's camera: frames cycled from a folder of images.

The folder's .jpg/.jpeg/.png files (sorted by name, case-insensitive extensions) are
decoded once at start, so a missing, empty or unreadable folder fails at start, naming
the file. They are kept in memory up to CACHE_BYTES of pixels and read again per frame
beyond that. Without a folder the camera shows a generated 640x480 test pattern.
"""

import logging
import os

import numpy as np

from facekit.bonnet import BonnetError

log = logging.getLogger(__name__)

EXTENSIONS = (".jpg", ".jpeg", ".png")
CACHE_BYTES = 256 << 20
PATTERN_SIZE = (640, 480)


def _read(path):
    from PIL import Image  # noqa: PLC0415

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:
        # Pillow raises OSError for truncated data, SyntaxError for some broken headers.
        raise BonnetError("{}: cannot read the image ({}): replace or remove it from the "
                          "--frames folder".format(path, exc)) from None


def pattern_image(width=PATTERN_SIZE[0], height=PATTERN_SIZE[1]):
    """A deterministic RGB test pattern: colour gradients with a bright and a dark square."""
    from PIL import Image  # noqa: PLC0415

    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                       (x + y) * 255 // max(width + height - 2, 1)], axis=-1)
    pixels = pixels.astype(np.uint8)
    side = min(width, height) // 4
    pixels[side:2 * side, side:2 * side] = 240
    pixels[2 * side:3 * side, width - 2 * side:width - side] = 15
    return Image.fromarray(pixels, "RGB")


class FrameSource(object):
    """Frames by index, cycling: frame(i) -> (PIL RGB image, name)."""

    def __init__(self, directory=None):
        self.directory = directory
        self.paths = []
        self._cache = None
        self.size = None
        if directory is None:
            self._cache = [pattern_image()]
            self.names = ["<test pattern>"]
            self.size = self._cache[0].size
            return
        if not os.path.isdir(directory):
            raise BonnetError("--frames {}: no such directory: give a folder of .jpg or .png "
                              "camera frames".format(directory))
        self.paths = [os.path.join(directory, name) for name in sorted(os.listdir(directory))
                      if name.lower().endswith(EXTENSIONS) and
                      os.path.isfile(os.path.join(directory, name))]
        if not self.paths:
            raise BonnetError("--frames {}: no .jpg, .jpeg or .png file in it: put the "
                              "camera frames there".format(directory))
        cache, total = [], 0
        for path in self.paths:
            image = _read(path)  # every file is checked at start
            if not self.size:
                self.size = image.size
            total += image.size[0] * image.size[1] * 3
            if cache is not None and total <= CACHE_BYTES:
                cache.append(image)
            else:
                cache = None
        self._cache = cache
        self.names = [os.path.basename(path) for path in self.paths]
        if cache is None:
            log.info("--frames %s: %d MB of pixels, read from disk at each frame",
                     directory, total >> 20)
        log.info("camera frames: %d from %s (first %dx%d)", len(self.paths), directory,
                 self.size[0], self.size[1])

    def __len__(self):
        return len(self.names)

    def frame(self, index):
        """The frame shown at `index` (cycling) and its file name."""
        i = index % len(self.names)
        if self._cache is not None:
            return self._cache[i], self.names[i]
        return _read(self.paths[i]), self.names[i]
