"""The seed tutorial's box CSV: `filename,width,height,class,xmin,ymin,xmax,ymax`, one row per face.

Written and read in chunks with pandas so memory stays flat whatever the
dataset size. An image kept without faces (--keep-empty) is one row with empty
class and box fields, so the CSV -> TFRecord step does not lose negatives
(the seed's own generate_tfrecord cannot read such rows; they only appear when
--keep-empty is asked for).
"""

import pandas as pd

from facekit import files
from facekit.dataset.errors import AnnotationError

COLUMNS = ["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"]
HEADER = ",".join(COLUMNS)
CHUNK_ROWS = 5000


class CsvWriter(object):
    """Buffers rows and appends them to a temporary file chunk by chunk; commit() renames."""

    def __init__(self, path):
        self.path = path
        self.tmp = files.temp_path(path)
        # newline="" so pandas' own "\n" line ends are written as they are.
        self._fh = open(self.tmp, "w", encoding="utf-8", newline="")
        self._rows = []
        self._header = True
        self.rows = 0
        self._finished = False

    def add(self, relpath, width, height, objects):
        """objects: [(class, xmin, ymin, xmax, ymax)]; none writes the negative-example row."""
        if not objects:
            self._rows.append((relpath, width, height, "", "", "", "", ""))
        for obj in objects:
            self._rows.append((relpath, width, height) + tuple(obj))
        if len(self._rows) >= CHUNK_ROWS:
            self._flush()

    def _flush(self):
        if self._rows or self._header:
            frame = pd.DataFrame(self._rows, columns=COLUMNS)
            frame.to_csv(self._fh, header=self._header, index=False)
            self.rows += len(self._rows)
            self._rows = []
            self._header = False

    def finish(self):
        """Write the last rows and flush the file to disk; abort() can still undo it."""
        if not self._finished:
            self._flush()
            self._fh.flush()
            files.fsync_file(self.tmp)
            self._fh.close()
            self._finished = True

    def commit(self):
        self.finish()
        files.commit(self.tmp, self.path)

    def abort(self):
        self._fh.close()
        files.discard(self.tmp)


def _int_field(path, lineno, column, text):
    try:
        return int(text)
    except ValueError:
        try:
            return int(float(text))
        except ValueError:
            raise AnnotationError(path, lineno, "expected an integer in column {}, got {!r}".format(
                column, text)) from None


def read_images(path, chunk_rows=CHUNK_ROWS):
    """Yield (filename, width, height, [(class, xmin, ymin, xmax, ymax)], line) per image.

    Rows of one image must be consecutive (to-csv and the seed's xml_to_csv write
    them that way); streaming depends on it, so a split group is an error, not a
    silent second record for the same image.
    """
    path = str(path)
    with open(path, "r", encoding="utf-8", newline="") as fh:
        first = fh.readline().rstrip("\r\n")
    if first != HEADER:
        raise AnnotationError(path, 1, "expected the header {!r}, got {!r}".format(HEADER, first))
    seen = set()
    current = None
    lineno = 1
    # dtype=str + keep_default_na=False: no float coercion, empty fields stay "".
    reader = pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=chunk_rows)
    for chunk in reader:
        for row in chunk.itertuples(index=False, name=None):
            lineno += 1
            filename, width, height, class_name = row[0], row[1], row[2], row[3]
            if current is None or filename != current[0]:
                if current is not None:
                    yield current
                if filename in seen:
                    raise AnnotationError(
                        path, lineno,
                        "rows for {} are not consecutive; sort the CSV by filename "
                        "(keeping each image's rows together)".format(filename))
                seen.add(filename)
                current = (filename, _int_field(path, lineno, "width", width),
                           _int_field(path, lineno, "height", height), [], lineno)
            if class_name == "" and all(v == "" for v in row[4:]):
                continue
            box = tuple(_int_field(path, lineno, column, value)
                        for column, value in zip(COLUMNS[4:], row[4:]))
            current[3].append((class_name,) + box)
    if current is not None:
        yield current
