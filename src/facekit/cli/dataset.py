"""`facekit dataset ...`: WIDER FACE (or, with convert --format voc, a LabelImg / Pascal VOC
folder) -> VOC XML, CSV, TFRecord, label map and dataset.json.

The conversion (pandas, lxml, TensorFlow behind it) is imported inside each _cmd_*
function: building the parser, which every `facekit` command does, imports none of it.
"""

from facekit import argtypes
from facekit.options import add_commands, command, flag, group, opt

_DATASET_EPILOG = """\
typical use (what the dataset stage runs):
  facekit dataset convert --annotations wider_face_split/wider_face_train_bbx_gt.txt \\
      --images WIDER_train/images --output-dir data --shards 10 --workers 2
  facekit dataset convert --annotations wider_face_split/wider_face_val_bbx_gt.txt \\
      --images WIDER_val/images --output-dir data

the seed tutorial's steps, one at a time (same TFRecords as convert):
  facekit dataset to-voc --annotations .../wider_face_val_bbx_gt.txt --images WIDER_val/images \\
      --output-dir data/val_voc
  facekit dataset to-csv --voc-dir data/val_voc --output data/val_labels.csv
  facekit dataset to-tfrecord --csv data/val_labels.csv --images WIDER_val/images \\
      --output-dir data --split val

exit status: 0 success, 1 bad input (the message names the file and line), 2 usage error,
130 / 143 / 129 stopped by Ctrl-C / SIGTERM / SIGHUP (temporary files removed, earlier
outputs unchanged; a later run also removes what a SIGKILLed run left behind).
"""


_VOC_EPILOG = """\
--format voc (LabelImg / Pascal VOC XML, any number of classes):
  facekit dataset convert --format voc --annotations my_objects --output-dir data \\
      --labels cat,dog --val-fraction 0.2 --seed 0 --shards 4 --workers 2
  writes train.record*, val.record*, train_labels.csv, val_labels.csv, label_map.pbtxt
  and dataset.json (per-class counts, warnings such as a <size> that differs from the image).
  A class outside --labels / --label-map stops the run naming every file and line.
"""


def _filters(args):
    from facekit.dataset.filters import FilterConfig  # noqa: PLC0415

    return FilterConfig(max_blur=args.max_blur, min_size=args.min_size,
                        keep_invalid=args.keep_invalid, keep_empty=args.keep_empty)


def _drops(part):
    from facekit.dataset.pipeline import drops_text  # noqa: PLC0415

    return drops_text(part)


def _print_counts(name, entry):
    images, faces = entry["images"], entry["faces"]
    print("{}: images kept {} of {} (dropped: {})".format(
        name, images["kept"], images["total"], _drops(images)))
    print("{}: faces kept {} of {} (dropped: {})".format(
        name, faces["kept"], faces["total"], _drops(faces)))


def _print_outputs(output_dir, entry):
    tfrecord = entry["outputs"].get("tfrecord")
    if tfrecord:
        print("wrote {} record(s) in {} shard(s): {}/{}".format(
            tfrecord["records"], len(tfrecord["shards"]), output_dir, tfrecord["glob"]))
    print("manifest: {}/dataset.json".format(output_dir))


def _cmd_inspect(args):
    from facekit.dataset.convert import inspect_annotations  # noqa: PLC0415

    stats = inspect_annotations(args.annotations, _filters(args))
    _print_counts(args.annotations, stats)
    return 0


_WIDER_ONLY = (("max_blur", 0, "--max-blur"), ("min_size", 50, "--min-size"),
               ("keep_invalid", False, "--keep-invalid"), ("split", None, "--split"),
               ("no_voc", False, "--no-voc"))
_VOC_ONLY = (("val_annotations", None, "--val-annotations"), ("val_images", None, "--val-images"),
             ("labels", None, "--labels"), ("label_map", None, "--label-map"),
             ("val_shards", None, "--val-shards"), ("unknown_labels", None, "--unknown-labels"),
             ("val_fraction", None, "--val-fraction"), ("seed", None, "--seed"))


def _refuse_flags(args, flags, fmt):
    for attr, default, name in flags:
        if getattr(args, attr) != default:
            args.parser.error("{} does not apply to --format {}".format(name, fmt))


def _cmd_convert_voc(args):
    from facekit.dataset.vocconvert import convert_voc  # noqa: PLC0415

    _refuse_flags(args, _WIDER_ONLY, "voc")
    if args.val_annotations and args.val_fraction is not None:
        args.parser.error("--val-fraction splits --annotations; with --val-annotations the val "
                         "split is given: pass one of them")
    labels = None
    if args.labels is not None:
        labels = [name.strip() for name in args.labels.split(",")]
    entries = convert_voc(
        args.annotations, args.output_dir, images_dir=args.images,
        val_annotations=args.val_annotations, val_images=args.val_images,
        val_fraction=0.2 if args.val_fraction is None else args.val_fraction,
        seed=args.seed or 0, labels=labels, label_map=args.label_map,
        unknown_labels=args.unknown_labels or "fail", keep_empty=args.keep_empty,
        shards=args.shards, val_shards=args.val_shards or 1, workers=args.workers,
        strict=args.strict, csv=not args.no_csv, progress=not args.no_progress,
        sources=dict(args.source or []))
    for split in ("train", "val"):
        entry = entries[split]
        images, objects = entry["images"], entry["objects"]
        print("{}: images kept {} of {} (dropped: {})".format(
            split, images["kept"], images["total"], _drops(images)))
        print("{}: objects kept {} of {} (dropped: {})".format(
            split, objects["kept"], objects["total"], _drops(objects)))
        print("{}: per class: {}".format(split, ", ".join(
            "{} {} ({} difficult, {} images)".format(name, c["objects"], c["difficult"],
                                                     c["images"])
            for name, c in entry["classes"].items())))
        if entry["warnings"]:
            print("{}: {} warning(s), listed in dataset.json; the first: {}".format(
                split, len(entry["warnings"]), entry["warnings"][0]))
        _print_outputs(args.output_dir, entry)
    print("classes (label_map.pbtxt ids 1..{}): {}".format(
        len(entries["train"]["labels"]), ", ".join(entries["train"]["labels"])))
    return 0


def _cmd_convert(args):
    from facekit.dataset.convert import convert  # noqa: PLC0415

    if args.format == "voc":
        return _cmd_convert_voc(args)
    _refuse_flags(args, _VOC_ONLY, "wider")
    if args.images is None:
        args.parser.error("--images is required with --format wider")
    entry = convert(args.annotations, args.images, args.output_dir, split=args.split,
                    config=_filters(args), shards=args.shards, workers=args.workers,
                    strict=args.strict, voc=not args.no_voc, csv=not args.no_csv,
                    progress=not args.no_progress, sources=dict(args.source or []))
    _print_counts(entry["split"], entry)
    _print_outputs(args.output_dir, entry)
    return 0


def _cmd_to_voc(args):
    from facekit.dataset.steps import to_voc  # noqa: PLC0415

    entry = to_voc(args.annotations, args.images, args.output_dir, split=args.split,
                   config=_filters(args), workers=args.workers, strict=args.strict,
                   progress=not args.no_progress)
    _print_counts(entry["split"], entry)
    print("wrote {} VOC XML files under {}/Annotations".format(
        entry["outputs"]["voc"]["annotations"], args.output_dir))
    return 0


def _cmd_to_csv(args):
    from facekit.dataset.steps import to_csv  # noqa: PLC0415

    counts = to_csv(args.voc_dir, args.output, split=args.split)
    print("wrote {}: {} rows ({} boxes) from {} XML files".format(
        args.output, counts["rows"], counts["objects"], counts["xml_files"]))
    return 0


def _cmd_to_tfrecord(args):
    from facekit.dataset.steps import to_tfrecord  # noqa: PLC0415

    entry = to_tfrecord(args.csv, args.images, args.output_dir, args.split, shards=args.shards,
                        workers=args.workers, strict=args.strict, progress=not args.no_progress)
    _print_counts(args.split, entry)
    _print_outputs(args.output_dir, entry)
    return 0


# ---- the commands' options, each said once ---------------------------------------------

_FILTERS = group(
    "filters (defaults are the seed tutorial's: valid, clear, >= 50 px faces)",
    opt("--max-blur", "{0,1,2}",
        "keep faces whose WIDER blur label is at most this: 0 clear (default), 1 also normal "
        "blur, 2 also heavy blur", type=int, default=0, choices=(0, 1, 2)),
    opt("--min-size", "PX", "keep faces whose longer annotated side is at least PX pixels "
                            "(default 50)", type=argtypes.nonnegative, default=50),
    flag("--keep-invalid", "keep faces WIDER marks invalid (dropped by default)"),
    flag("--keep-empty", "keep images left without faces as negative examples (no boxes). By "
                         "default they are dropped and counted under images.dropped.no_faces in "
                         "dataset.json"))


def _images(strict_what="a missing or corrupt image"):
    """The images-and-speed options; --strict says what it fails on."""
    return group(
        "images and speed",
        opt("--workers", "N",
            "processes that read images and check their headers (default 1). Writing stays in "
            "one process and follows annotation order, so any N gives identical output",
            type=argtypes.positive, default=1),
        flag("--strict", "fail on {} instead of logging it, skipping it and counting it in "
                         "dataset.json".format(strict_what)),
        flag("--no-progress", "no progress bar (on a terminal) or periodic progress log lines "
                              "(otherwise)"))


_VOC = group(
    "--format voc: classes and splits",
    opt("--labels", "A,B,...",
        "the classes, comma-separated, in id order (ids 1..N). Default: every <name> found, "
        "sorted. The label map written (label_map.pbtxt) follows it"),
    opt("--label-map", "FILE", "take the classes from this label_map.pbtxt (by their name "
                               "field, ids 1..N)"),
    opt("--unknown-labels", None,
        "an object whose class is not among the given ones: fail (default) names every file "
        "and line where one occurs; drop leaves those objects out and counts them",
        choices=("fail", "drop")),
    opt("--val-fraction", "F",
        "share of the annotation files that go to val (default 0.2), chosen by a seeded hash of "
        "their paths: the same files and seed give the same split",
        type=argtypes.number(float, 0, 1, low_open=True, high_open=True)),
    opt("--seed", "N", "seed of that split (default 0)", type=int),
    opt("--val-annotations", "DIR", "a folder of XML files of its own for val, instead of "
                                    "--val-fraction"),
    opt("--val-images", "DIR", "the folder --val-annotations' <filename> is relative to "
                               "(default: that folder)"),
    opt("--val-shards", "N", "TFRecord shards of the val split (default 1; --shards sets "
                             "train's)", type=argtypes.positive))

_SHARDS = opt(
    "--shards", "N",
    "number of TFRecord shards (default 1). One shard is written as <split>.record; N > 1 as "
    "<split>.record-00000-of-0000N ... (the Object Detection API's naming), read in a "
    "pipeline config with input_path: \"<dir>/<split>.record-?????-of-0000N\". Image i goes "
    "to shard i %% N. Shards of an earlier run with another count are removed.",
    type=argtypes.positive, default=1)
_WIDER_ANNOTATIONS = opt(
    "--annotations", "FILE",
    "WIDER FACE annotation file, e.g. wider_face_split/wider_face_val_bbx_gt.txt", required=True)
_WIDER_IMAGES = opt(
    "--images", "DIR",
    "folder holding the event folders the annotation paths start with, e.g. WIDER_val/images",
    required=True)
_WIDER_SPLIT = opt(
    "--split", "NAME",
    "split name used in output names (default: taken from the annotation file name, "
    "wider_face_<split>_bbx_gt.txt)")

_INSPECT = command(
    "inspect", _cmd_inspect,
    "count images and faces per filter reason, without opening images",
    "Parse an annotation file and report how many images and faces the filters keep and "
    "drop, by reason. Reads no image, so clipping and unreadable images are not counted here.",
    opt("annotations", "FILE", "WIDER FACE annotation file (wider_face_<split>_bbx_gt.txt)"),
    _FILTERS)

_CONVERT = command(
    "convert", _cmd_convert,
    "WIDER FACE or a VOC/LabelImg folder -> TFRecord + CSV + label map + dataset.json",
    "--format wider (default): convert one WIDER FACE split in a single pass over its images. "
    "Writes, in --output-dir: <split>.record (or shards), <split>_labels.csv, <split>_voc/ "
    "(VOC XML), label_map.pbtxt and dataset.json (one entry per split; counts per drop reason, "
    "filters, input checksums, shards). --format voc: convert a folder of Pascal VOC / "
    "LabelImg XML files and their images into both a train and a val split, with any number "
    "of classes (label_map.pbtxt ids 1..N) and per-class counts in dataset.json. Every file "
    "is written under a hidden temporary name and renamed when complete.",
    opt("--format", None, "wider: a WIDER FACE annotation file (default); voc: a folder of "
                          "Pascal VOC / LabelImg XML files",
        choices=("wider", "voc"), default="wider"),
    opt("--annotations", "PATH",
        "wider: the annotation file, e.g. wider_face_split/wider_face_val_bbx_gt.txt; voc: "
        "the folder searched (at any depth) for .xml files", required=True),
    opt("--images", "DIR",
        "wider (required): the folder holding the event folders, e.g. WIDER_val/images; voc: "
        "the folder the XML files' <filename> is relative to (default: --annotations)"),
    opt("--split", "NAME",
        "wider: split name used in output names (default: taken from the annotation file name, "
        "wider_face_<split>_bbx_gt.txt); voc writes train and val"),
    opt("--output-dir", "DIR", "where the outputs go (created if missing)", required=True),
    _SHARDS,
    flag("--no-voc", "do not write the <split>_voc/ XML tree"),
    flag("--no-csv", "do not write <split>_labels.csv"),
    opt("--source", "NAME=CHECKSUM",
        "record a source archive and its checksum (e.g. WIDER_val.zip=sha256:f9ef...) under "
        "inputs.sources in dataset.json; repeatable. The dataset stage passes the archives it "
        "downloaded, and converts again only when they change",
        action="append", type=argtypes.source),
    _FILTERS, _VOC, _images(),
    epilog=_VOC_EPILOG)

_TO_VOC = command(
    "to-voc", _cmd_to_voc, "seed step 1: WIDER -> one VOC XML per image",
    "Write one Pascal VOC XML per kept image into --output-dir/Annotations (mirroring the "
    "event folders), the image order into ImageSets/Main/<split>.txt and a dataset.json with "
    "the counts. Same filters and drop counting as convert.",
    _WIDER_ANNOTATIONS, _WIDER_IMAGES, _WIDER_SPLIT,
    opt("--output-dir", "DIR", "VOC directory to (re)create; refused if it holds files facekit "
                               "did not write", required=True),
    _FILTERS, _images())

_TO_CSV = command(
    "to-csv", _cmd_to_csv, "seed step 2 (xml_to_csv): VOC XML directory -> box CSV",
    "Collect VOC XML files into a CSV with the header "
    "filename,width,height,class,xmin,ymin,xmax,ymax (one row per box). Uses "
    "ImageSets/Main/<split>.txt for the order when present, else every .xml file sorted by "
    "path.",
    opt("--voc-dir", "DIR", "VOC directory (with Annotations/) or a flat folder of XML files",
        required=True),
    opt("--output", "CSV", "CSV file to write", required=True),
    opt("--split", "NAME", "image set to read (ImageSets/Main/NAME.txt); needed only when the "
                           "VOC directory holds several"))

_TO_TFRECORD = command(
    "to-tfrecord", _cmd_to_tfrecord,
    "seed step 3 (generate_tfrecord): box CSV + images -> TFRecord",
    "Build TFRecord shards, label_map.pbtxt and a dataset.json entry from the box CSV. Rows "
    "of one image must be consecutive. Each image is opened for its bytes and its header size "
    "is checked against the CSV.",
    opt("--csv", "CSV", "box CSV (to-csv's)", required=True),
    opt("--images", "DIR", "folder the CSV's filename column is relative to", required=True),
    opt("--output-dir", "DIR", "where the records, label map and dataset.json go",
        required=True),
    opt("--split", "NAME", "split name for the record file names, e.g. train or val",
        required=True),
    _SHARDS,
    _images("a missing or corrupt image or one whose size differs from the CSV"))


def add_group(groups):
    """The `dataset` group and its commands, on the `facekit` parser's subparsers."""
    add_commands(
        groups, "dataset",
        "convert WIDER FACE or a LabelImg / Pascal VOC folder into Object Detection API "
        "training data",
        "Convert WIDER FACE annotations and images into Pascal VOC XML, the seed tutorial's "
        "CSV, TFRecord shards for the TensorFlow Object Detection API, label_map.pbtxt and a "
        "dataset.json manifest; `convert --format voc` takes a LabelImg / Pascal VOC folder of "
        "any classes instead.",
        (_INSPECT, _CONVERT, _TO_VOC, _TO_CSV, _TO_TFRECORD), epilog=_DATASET_EPILOG)
