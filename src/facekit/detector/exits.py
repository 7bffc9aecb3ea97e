"""The detector's exit statuses, in one place.

The service returns them (facekit.detector.service), the kit's unit takes
RestartPreventExitStatus= from RESTART_PREVENT (`python -m facekit.detector.exits
--restart-prevent`, run by roles/vision_kit when it writes the unit), and the deploy's
health gate (facekit.detector.health) stops waiting on them. Python 3.5, standard
library only: it runs on the kit.
"""

import argparse
import sys

from facekit.errors import FacekitError

EXIT_OK = 0          # stopped by SIGTERM/SIGINT, or after --frames
EXIT_FAILURE = 1     # an unexpected failure, the status port taken, no usable AIY library
EXIT_USAGE = 2       # a bad command line (argparse's own status)
EXIT_MODEL = 3       # the Vision Bonnet cannot run the model: refused, or outputs that do not fit
EXIT_BUNDLE = 4      # the release is missing or does not verify against its manifest
EXIT_BONNET = 5      # the Vision Bonnet is unreachable, the connection was lost, or it failed

# A restart runs the same release on the same bonnet: it would be refused again, or fail to
# verify again. systemd must leave the unit failed, so the deploy's health gate rolls back.
RESTART_PREVENT = (EXIT_MODEL, EXIT_BUNDLE)


class DetectorError(FacekitError):
    """A failure the service reports as one error line and exit_status."""

    def __init__(self, message, exit_status):
        FacekitError.__init__(self, message)
        self.exit_status = exit_status


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m facekit.detector.exits",
        description="Print exit statuses of facekit-detector for the kit's systemd unit.")
    parser.add_argument("--restart-prevent", action="store_true", required=True,
                        help="print the statuses a restart cannot fix ({}: the Vision Bonnet "
                             "refused the model; {}: the release does not verify), "
                             "space-separated, as systemd's RestartPreventExitStatus= takes "
                             "them".format(EXIT_MODEL, EXIT_BUNDLE))
    return parser


def main(argv=None):
    build_parser().parse_args(argv)
    sys.stdout.write(" ".join(str(status) for status in RESTART_PREVENT) + "\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
