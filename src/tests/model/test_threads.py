"""facekit.model.threads: a TensorFlow 1.x script run with its sessions' pools sized.

Each case runs the launcher in a subprocess on a TensorFlow at hand (the controller's TF 2 through
tf.compat.v1, the training host's 1.7.1 in .venv-py36, intel-tensorflow 1.13.1 in
.venv-py36-mkl when `make py36-mkl` built it) and reads back the config each session started with.
"""

import os
import subprocess
import sys

import pytest
from helpers import REPO

SCRIPT = """
import sys
import tensorflow as tf
v1 = getattr(tf, "compat", None) and getattr(tf.compat, "v1", None) or tf
plain = v1.Session()
mine = v1.Session(config=v1.ConfigProto(inter_op_parallelism_threads=5,
                                         allow_soft_placement=True))
for session in (plain, mine):
    config = session._config
    print("config", config.intra_op_parallelism_threads, config.inter_op_parallelism_threads,
          config.allow_soft_placement)
print("run", " ".join(sys.argv[1:]), sys.argv[0] == __file__, __name__)
"""

PYTHONS = [("controller", sys.executable)] + [
    (name, os.path.join(REPO, venv, "bin", "python"))
    for name, venv in (("tf-1.7.1", ".venv-py36"), ("intel-tf-1.13.1", ".venv-py36-mkl"))]


def said(result):
    """The script's own lines: (each session's config, how it was run)."""
    lines = result.stdout.splitlines()
    return ([line.split()[1:] for line in lines if line.startswith("config ")],
            [line[4:] for line in lines if line.startswith("run ")])


def launch(python, tmp_path, *options):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"), TF_CPP_MIN_LOG_LEVEL="3",
               TF_ENABLE_ONEDNN_OPTS="0")
    return subprocess.run(
        [python, "-m", "facekit.model.threads"] + list(options)
        + [str(script), "--train_dir=/x", "two words"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env,
        timeout=300, check=False)


@pytest.mark.parametrize("name,python", PYTHONS, ids=[n for n, _ in PYTHONS])
def test_the_pools_left_to_tensorflow_are_sized_and_a_set_one_is_kept(name, python, tmp_path):
    if not os.path.exists(python):
        pytest.skip("{} is not built here ({})".format(python, name))
    result = launch(python, tmp_path, "--intra-op", "3", "--inter-op", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    configs, runs = said(result)
    # A session started without a config gets TensorFlow 1.x's default one, sized.
    assert configs[0][:2] == ["3", "1"]
    # The script's own inter-op count and other settings stay as it made them.
    assert configs[1] == ["3", "5", "True"]
    # Run as `python script.py ARGS` runs it.
    assert runs == ["--train_dir=/x two words True __main__"]


def test_without_counts_the_script_runs_untouched(tmp_path):
    result = launch(sys.executable, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    direct = subprocess.run([sys.executable, str(tmp_path / "script.py"), "--train_dir=/x",
                             "two words"], stdout=subprocess.PIPE, universal_newlines=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), check=True)
    assert said(result) == said(direct)
    assert said(result)[0][1] == ["0", "5", "True"]


def test_tensorflow_2_behaviour_in_the_environment_is_refused_with_the_way_out(tmp_path):
    """TF2_BEHAVIOR=1 (which importing TensorFlow 2 puts in its process's environment, and so
    in its children's) makes intel-tensorflow 1.13 give int dimensions that the 2018 trainer
    cannot read: the launcher stops before TensorFlow with a sentence instead."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"), TF2_BEHAVIOR="1")
    result = subprocess.run([sys.executable, "-m", "facekit.model.threads", "--intra-op", "2",
                             str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, env=env, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert "TF2_BEHAVIOR=1 is set: TensorFlow 1.x would run with TensorFlow 2's shapes" in \
        result.stderr and "unset it for the trainer" in result.stderr, result.stderr


def test_a_missing_script_or_a_negative_count_is_refused(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"))
    for args, said in ((["--intra-op", "2", str(tmp_path / "nope.py")], "nope.py: no such script"),
                       (["--inter-op", "-1", str(tmp_path)], "-1 is not a thread count")):
        result = subprocess.run([sys.executable, "-m", "facekit.model.threads"] + args,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, env=env, check=False)
        assert result.returncode == 2 and said in result.stderr, result.stderr
