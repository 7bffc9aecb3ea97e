"""Runs a TensorFlow 1.x script with the sessions' thread pools sized by the caller.

The Object Detection API's trainer builds its own session config (legacy/trainer.py:
ConfigProto(allow_soft_placement=True)) and TensorFlow 1.x reads no environment variable for
the intra-op and inter-op pools, so the only way to size them without editing the checkout is
to fill them in where every session starts: BaseSession.__init__. A config that sets a count
keeps it; only the counts left at 0 ("let TensorFlow choose") are filled. A session started
without a config gets an empty ConfigProto with the counts (what TensorFlow 1.x uses for none).

Why: intel-tensorflow 1.13 picks inter-op = max(cores / OMP threads, 2) by itself, so on a
2-core host two ops run at once, each with OMP_NUM_THREADS MKL threads, on 2 cores.
benchmarks/bench_training.py measures what inter-op = sockets and intra-op = physical cores
give over that (the training_host role's README has the figures).

    python -m facekit.model.threads --intra-op N --inter-op M SCRIPT [ARGS...]

The script runs as `python SCRIPT ARGS` would run it: as __main__, with sys.argv and
sys.path[0] set to it and its folder.
"""

import argparse
import os
import runpy
import sys


def set_session_threads(intra_op, inter_op):
    """Make every TensorFlow session this process creates use these pool sizes (0: TF's)."""
    from tensorflow.core.protobuf import config_pb2  # noqa: PLC0415 - the CLI starts without TF
    from tensorflow.python.client import session  # noqa: PLC0415

    start = session.BaseSession.__init__

    def sized_start(self, target="", graph=None, config=None):
        sized = config_pb2.ConfigProto()
        if config is not None:
            sized.CopyFrom(config)
        if intra_op and not sized.intra_op_parallelism_threads:
            sized.intra_op_parallelism_threads = intra_op
        if inter_op and not sized.inter_op_parallelism_threads:
            sized.inter_op_parallelism_threads = inter_op
        start(self, target, graph, sized)

    session.BaseSession.__init__ = sized_start


def run_script(script, args):
    """Run SCRIPT with ARGS as `python SCRIPT ARGS` would."""
    script = os.path.abspath(script)
    sys.argv = [script] + list(args)
    sys.path[0] = os.path.dirname(script)
    runpy.run_path(script, run_name="__main__")


def _count(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("{} is not a thread count (0 or more)".format(text))
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m facekit.model.threads",
        description="Run a TensorFlow 1.x script with its sessions' intra-op and inter-op "
                    "thread pools set (a count its own config sets is kept).")
    parser.add_argument("--intra-op", type=_count, default=0, metavar="N",
                        help="threads of one op's pool (0: TensorFlow's choice)")
    parser.add_argument("--inter-op", type=_count, default=0, metavar="N",
                        help="ops run at once (0: TensorFlow's choice)")
    parser.add_argument("script", help="the script, e.g. object_detection/legacy/train.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    options = parser.parse_args(argv)
    if not os.path.isfile(options.script):
        parser.error("{}: no such script".format(options.script))
    if os.environ.get("TF2_BEHAVIOR", "0") not in ("", "0"):
        # TensorFlow 1.13+ reads it when imported and makes TensorShape's dimensions ints;
        # the 2018 Object Detection API reads their .value and fails deep in the model.
        parser.error("TF2_BEHAVIOR={} is set: TensorFlow 1.x would run with TensorFlow 2's "
                     "shapes, which the Object Detection API of the TF 1 era cannot use "
                     "('int' object has no attribute 'value'); unset it for the trainer "
                     "(importing TensorFlow 2 sets it in its own process)".format(
                         os.environ["TF2_BEHAVIOR"]))
    if options.intra_op or options.inter_op:
        set_session_threads(options.intra_op, options.inter_op)
    run_script(options.script, options.args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
