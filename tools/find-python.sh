#!/usr/bin/env bash
# Usage: tools/find-python.sh X.Y
# Prints the path of a Python X.Y interpreter, or nothing and exit 1 when there is none.
# Looked for in order: $PYTHONXY (PYTHON36 for 3.6, PYTHON27 for 2.7), pythonX.Y on PATH, a
# pyenv build (~/.pyenv/versions/X.Y.*). Each candidate is run to be sure: pyenv's shims exist
# for versions that are not selected.
# 3.6 is what the training host's TensorFlow 1.7.1 needs, 2.7 what Google's Bonnet compiler
# runs on, 3.7 the last Vision Kit image's; Debian 12 and Ubuntu 22.04+ package none of them
# (pyenv can build them: `pyenv install 3.6.15`).
set -euo pipefail

version=${1:?usage: $0 X.Y}
[[ $version =~ ^[0-9]+\.[0-9]+$ ]] || { echo "find-python: $version is not X.Y" >&2; exit 2; }
variable=PYTHON${version/./}

is_version() {
  "$1" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$version' else 1)" \
    2>/dev/null
}

candidates=()
[[ -z ${!variable:-} ]] || candidates+=("${!variable}")
if command -v "python$version" >/dev/null 2>&1; then
  candidates+=("$(command -v "python$version")")
fi
for candidate in "$HOME"/.pyenv/versions/"$version".*/bin/python"$version"; do
  candidates+=("$candidate")
done
for candidate in "${candidates[@]}"; do
  if [[ -x $candidate ]] && is_version "$candidate"; then
    # The real file, not a pyenv shim or a venv link: the lab bind-mounts its prefix.
    readlink -f "$candidate"
    exit 0
  fi
done
exit 1
