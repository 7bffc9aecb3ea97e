#!/usr/bin/env bash
# Builds VENV_DIR: a Python 3.6 virtualenv with the training host's own pins of
# what src/facekit imports (TensorFlow 1.7.1, protobuf, numpy, pillow, lxml,
# pandas, tqdm) and of matplotlib (the Object Detection API's trainer imports it),
# taken from roles/training_host/defaults/main.yml so the two never drift apart.
# src/tests/test_training_host_stack.py runs the dataset tools in it and compares
# their output with the modern stack's.
#
# Python 3.6 is not packaged by Debian 12 or Ubuntu 22.04+: the script uses
# the one tools/find-python.sh 3.6 finds ($PYTHON36, python3.6 on PATH, a pyenv build).
# Without one it says so and exits 0; the tests then skip with that reason.
# Usage: tools/py36-env.sh VENV_DIR [stock|mkl]   (the controller venv .venv must exist:
# its PyYAML reads the role defaults)
#
# mkl builds the training_host_tensorflow: mkl env instead: the role's
# training_host_tensorflow_mkl_packages (intel-tensorflow 1.13.1 and its pins) with its
# training_host_tensorflow_mkl_pip, plus the same pins of pillow, lxml, pandas, tqdm and
# matplotlib, composed as the role composes them (molecule/lab/standins.py's mkl_lists;
# benchmarks/bench_training.py trains with it).
set -euo pipefail

venv=${1:?usage: $0 VENV_DIR [stock|mkl]}
flavour=${2:-stock}
case $flavour in
  stock | mkl) ;;
  *) echo "py36-env: unknown flavour '$flavour' (stock or mkl)" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")/.." && pwd)
defaults=$here/roles/training_host/defaults/main.yml

python=$("$here/tools/find-python.sh" 3.6) || python=""
if [[ -z $python ]]; then
  echo "py36-env: no Python 3.6 found (set PYTHON36=/path/to/python3.6, or build one with \`pyenv install 3.6.15\`); the Python 3.6 + TensorFlow 1.7 tests will be skipped" >&2
  rm -rf "$venv"
  exit 0
fi

# The pins the training host's conda env gets, for the packages src/ imports.
# (A command substitution, so that a failure here stops the script.)
pin_lines=$("$here/.venv/bin/python" - "$defaults" "$flavour" "$here/molecule/lab" <<'EOF'
import sys, yaml
sys.path.insert(0, sys.argv[3])
import standins  # the role's composition of the mkl lists, as the lab's wheelhouse uses it
wanted = {"tensorflow", "protobuf", "numpy", "pillow", "lxml", "pandas", "tqdm", "matplotlib"}
with open(sys.argv[1]) as handle:
    defaults = yaml.safe_load(handle)
build, pins = defaults["training_host_conda_build_packages"], defaults["training_host_conda_packages"]
resolver_pip = [p for p in build if standins.dist_name(p) == "pip"]
if sys.argv[2] == "mkl":
    mkl = defaults["training_host_tensorflow_mkl_packages"]
    build, pins = standins.mkl_lists(build, pins, mkl, defaults["training_host_tensorflow_mkl_pip"])
    wanted = (wanted - {"tensorflow"}) | {standins.dist_name(p) for p in mkl}
found = [p for p in pins if standins.dist_name(p) in wanted]
missing = wanted - {standins.dist_name(p) for p in found}
if missing:
    sys.exit("py36-env: training_host_conda_packages in %s pins none of: %s"
             % (sys.argv[1], ", ".join(sorted(missing))))
# First the conda list's pip (its resolver installs the pins), then the pip the role installs
# this env with (the same, or 19.3.1 for mkl), then the pins.
print("\n".join(resolver_pip + [p for p in build if standins.dist_name(p) == "pip"] + found))
EOF
)
mapfile -t pins <<<"$pin_lines"
# The pins resolve with the conda list's pip (21.3.1); the role's pip for this env is the second
# line (19.3.1 for mkl: pip >= 20 refuses the intel-tensorflow wheel).
resolver_pip=${pins[0]}
pip_pin=${pins[1]}
pins=("${pins[@]:2}")

want=$(printf '%s\n' "$python" "$pip_pin" "${pins[@]}")
if [[ -f $venv/.installed && $(cat "$venv/.installed") == "$want" ]]; then
  exit 0
fi
echo "py36-env: building $venv with $python: ${pins[*]}" >&2
# Built aside and moved into place when complete: an interrupted build never
# leaves a half-installed env for the tests to trip over.
rm -rf "$venv" "$venv.tmp"
"$python" -m venv "$venv.tmp"
# pip 21.3.1 is the last release for Python 3.6 (the one the role installs too). Its resolver
# installs every pin but the intel-tensorflow wheel, which only the mkl pip (19.3.1) accepts;
# that one goes in last, alone, without dependencies (they are among the pins).
pip=("$venv.tmp/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" "$resolver_pip"
rest=() builds=()
for pin in "${pins[@]}"; do
  if [[ $pin == intel-tensorflow==* ]]; then builds+=("$pin"); else rest+=("$pin"); fi
done
"${pip[@]}" "${rest[@]}"
if ((${#builds[@]})); then
  "${pip[@]}" "$pip_pin"
  "${pip[@]}" --no-deps "${builds[@]}"
  "$venv.tmp/bin/python" -m pip check
fi
printf '%s\n' "$want" >"$venv.tmp/.installed"
mv "$venv.tmp" "$venv"
