"""`facekit` command line: one subcommand group per pipeline stage (`dataset`, `model`,
`eval`), and `bonnet`, the software Vision Bonnet the detector is tested against.

This module holds main(): the parser's top, logging, and the mapping of failures to exit
statuses (0 success, 1 a FacekitError or an unusable input file, one line on stderr; 2 a
usage error, argparse's; 128 + the signal number when a stop signal ends a dataset
command). Each group is a module (dataset, model, eval, bonnet); the argument types are
facekit.argtypes, which `facekit-detector` uses too.

The controller and the training host run this CLI (Python 3.6); the Vision Kit does not
(its commands are facekit.detector's). The command implementations (pandas, lxml,
TensorFlow behind them) are imported inside each command's function: `facekit --help`
stays fast, and every --workers process, which re-imports the main module, starts quickly.
"""

import argparse
import logging
import sys

import facekit
from facekit import interrupts
from facekit.cli import bonnet, dataset, model
from facekit.cli import eval as eval_group
from facekit.errors import FacekitError


def build_parser():
    parser = argparse.ArgumentParser(
        prog="facekit",
        description="Tools for the AIY Vision Kit face detector pipeline.")
    parser.add_argument("--version", action="version",
                        version="facekit {}".format(facekit.__version__))
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true",
                           help="also log debug messages")
    verbosity.add_argument("-q", "--quiet", action="store_true",
                           help="log only errors (no skipped-image warnings, no progress lines)")
    groups = parser.add_subparsers(dest="group", metavar="{dataset,model,eval,bonnet}")
    groups.required = True
    for group in (dataset, model, eval_group, bonnet):
        group.add_group(groups)
    return parser


def _configure_logging(args):
    level = logging.INFO
    if args.verbose:
        level = logging.DEBUG
    elif args.quiet:
        level = logging.ERROR
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("facekit: %(levelname)s: %(message)s"))
    root = logging.getLogger("facekit")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def main(argv=None):
    """Entry point; returns the exit status (0 ok, 1 bad input, 2 usage, 128 + signal)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    try:
        if args.group != "dataset":
            return args.func(args)
        # SIGTERM (systemd, `timeout`, Ansible) and SIGHUP take Ctrl-C's path below, at
        # the points where the dataset commands check for them (interrupts.check).
        with interrupts.stop_signals():
            return args.func(args)
    except FacekitError as exc:
        sys.stderr.write("facekit: error: {}\n".format(exc))
        return 1
    except OSError as exc:
        # A missing or unreadable input given on the command line.
        where = " {}".format(exc.filename) if exc.filename else ""
        sys.stderr.write("facekit: error: cannot use{}: {}\n".format(
            where, exc.strerror or exc))
        return 1
    except KeyboardInterrupt as exc:
        sys.stderr.write("facekit: stopped by {}; no partial output was kept\n".format(
            interrupts.signal_name(exc)))
        return interrupts.exit_status(exc)
