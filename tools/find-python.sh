#!/usr/bin/env bash
# Prints the path of a Python 3.6 interpreter, or nothing and exit 1 when there is none.
# Looked for in order: $PYTHON36, python3.6 on PATH, a pyenv build (~/.pyenv/versions/3.6.*).
# Python 3.6 is what the training host's TensorFlow 1.7.1 needs; Debian 12 and Ubuntu 22.04+
# package none (pyenv can build one: `pyenv install 3.6.15`).
set -euo pipefail

is_36() {
  "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 6) else 1)' 2>/dev/null
}

candidates=()
[[ -z ${PYTHON36:-} ]] || candidates+=("$PYTHON36")
if command -v python3.6 >/dev/null 2>&1; then
  candidates+=("$(command -v python3.6)")
fi
for candidate in "$HOME"/.pyenv/versions/3.6*/bin/python3.6; do
  candidates+=("$candidate")
done
for candidate in "${candidates[@]}"; do
  if [[ -x $candidate ]] && is_36 "$candidate"; then
    # The real file, not a pyenv shim or a venv link: the lab bind-mounts its prefix.
    readlink -f "$candidate"
    exit 0
  fi
done
exit 1
