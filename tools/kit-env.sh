#!/usr/bin/env bash
# Builds VENV_DIR: the Vision Kit's Python library stack on the controller, for the tests that
# run facekit.detector and AIY's own client library against the software Vision Bonnet.
#
# The kit runs AIY's generated protocol_pb2, which needs protobuf <= 3.20 (the controller venv
# has a modern protobuf that cannot import it), so the kit's code gets its own venv:
# aiy-projects-python 1.4 (--no-deps: its picamera dependency does not build off a Pi),
# protobuf 3.20.3, numpy and Pillow. Python 3.7 is the last Vision Kit image's (Raspbian
# Buster); without one, any python3 of the controller is used. facekit itself is not installed:
# the tests put src/ on PYTHONPATH, so they always run the working tree.
# Usage: tools/kit-env.sh VENV_DIR
set -euo pipefail

venv=${1:?usage: $0 VENV_DIR}

# KIT_PYTHON, else a Python 3.7, else the controller's python3.
python=${KIT_PYTHON:-$("$(dirname "$0")/find-python.sh" 3.7 || command -v python3 || true)}
if [[ -z $python ]]; then
  echo "kit-env: no python3 found; set KIT_PYTHON=/path/to/python3" >&2
  exit 1
fi

requirements=('protobuf==3.20.3' 'numpy>=1.12,<2' 'pillow')
want=$(printf '%s\n' "$python" "${requirements[@]}" 'aiy-projects-python==1.4 --no-deps')
if [[ -f $venv/.installed && $(cat "$venv/.installed") == "$want" ]]; then
  exit 0
fi
echo "kit-env: using $python ($("$python" --version 2>&1)) for $venv"
if [[ ! -x $venv/bin/python ]]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
  'aiy-projects-python==1.4'
"$venv/bin/python" -c 'import aiy.vision.inference, numpy, PIL'
printf '%s\n' "$want" >"$venv/.installed"
