#!/usr/bin/env bash
# Create (or refresh) the controller virtualenv from requirements.txt and
# install the facekit package into it in editable mode.
#
# ansible-core 2.17 runs on a controller Python 3.10, 3.11 or 3.12 only, so we
# look for one of those (or take $PYTHON) and refuse with a clear sentence
# otherwise. Usage: tools/bootstrap-venv.sh VENV_DIR
set -euo pipefail

venv=${1:?usage: $0 VENV_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)

supported() {
  "$1" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)' 2>/dev/null
}

python=${PYTHON:-}
if [ -n "$python" ]; then
  if ! supported "$python"; then
    echo "bootstrap: PYTHON=$python is not Python 3.10-3.12, which ansible-core 2.17 needs on the controller." >&2
    exit 1
  fi
else
  for candidate in python3.12 python3.11 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && supported "$candidate"; then
      python=$(command -v "$candidate")
      break
    fi
  done
fi
if [ -z "$python" ]; then
  echo "bootstrap: no Python 3.10-3.12 found on PATH (ansible-core 2.17 needs one on the controller)." >&2
  echo "bootstrap: install one (Debian 12: apt-get install python3 python3-venv; Ubuntu 22.04 ships 3.10) or set PYTHON=/path/to/python3.x" >&2
  exit 1
fi

# Debian and Ubuntu split venv/ensurepip out of python3; install it when we can.
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${pyver}-venv" || \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  else
    echo "bootstrap: $python has no venv module: install python3-venv (as root) and run again." >&2
    exit 1
  fi
fi

echo "bootstrap: using $python ($("$python" --version 2>&1)) for $venv"
if [ ! -x "$venv/bin/python" ] || ! supported "$venv/bin/python"; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"
"$venv/bin/python" -m pip install --quiet --no-deps -e "$here"
# The Object Detection API's generated protos (pipeline_pb2 ...), for the tests that parse a
# rendered pipeline.config. --no-deps: its declared dependencies would pull a second TensorFlow.
"$venv/bin/python" -m pip install --quiet --no-deps tensorflow-object-detection-api==0.1.1
# AIY's client library (the Vision Kit's own code): the software bonnet (facekit.bonnet) reads
# the protocol's schema from its protocol_pb2.py. --no-deps: picamera does not build off a Pi.
"$venv/bin/python" -m pip install --quiet --no-deps aiy-projects-python==1.4
