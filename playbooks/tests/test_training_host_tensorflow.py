"""roles/training_host's TensorFlow choice (training_host_tensorflow: stock | mkl), on real
ansible-playbook runs against localhost: what pip is asked to install, where the env goes, the
environment file's OpenMP settings, and preflight's refusals (a CPU without the instructions
intel-tensorflow was compiled for, a Python that is not 3.6). Nothing is installed here:
molecule/voc provisions and trains with mkl, molecule/training_host and site with stock.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(ROOT, "roles", "training_host")
sys.path.insert(0, os.path.join(ROOT, "molecule", "lab"))

import standins  # noqa: E402  (molecule/lab: the wheelhouse composes the same lists)

with open(os.path.join(ROLE, "defaults", "main.yml")) as _handle:
    DEFAULTS = yaml.safe_load(_handle)
CPUINFO_FLAGS = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 "
                 "clflush mmx fxsr sse sse2 ht syscall nx lm constant_tsc pni pclmulqdq ssse3 "
                 "fma cx16 sse4_1 sse4_2 popcnt aes xsave avx f16c rdrand hypervisor avx2")


def _playbook(tmp_path, tasks, extra_vars, facts=None):
    """Runs TASKS (YAML) on localhost with the role's defaults and vars; returns (rc, output)."""
    command = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable))
    if command is None:
        pytest.skip("ansible-playbook is not installed (make venv)")
    play = [{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars_files": [os.path.join(ROLE, "defaults", "main.yml"),
                       os.path.join(ROLE, "vars", "main.yml")],
        "tasks": yaml.safe_load(textwrap.dedent(tasks)),
    }]
    if facts is not None:
        play[0]["pre_tasks"] = [{"name": "Set the CPU facts",
                                 "ansible.builtin.set_fact": facts}]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play))
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(dict(extra_vars, ansible_python_interpreter=sys.executable)))
    env = dict(os.environ, ANSIBLE_ROLES_PATH=os.path.join(ROOT, "roles"),
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    result = subprocess.run([command, "-i", "localhost,", str(path), "-e", "@" + str(extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, env=env, timeout=300, check=False)
    return result.returncode, result.stdout


def _values(tmp_path, extra_vars, names):
    """The role's derived values NAMES, as the role computes them for EXTRA_VARS."""
    out = tmp_path / "values.json"
    tasks = """
        - name: Write the values
          ansible.builtin.copy:
            content: "{{ %s | to_json }}"
            dest: %s
            mode: "0644"
    """ % ("{" + ", ".join("'%s': %s" % (n, n) for n in names) + "}", out)
    facts = {"ansible_facts": {"processor_count": 2, "processor_cores": 4,
                               "processor_threads_per_core": 2}}
    rc, output = _playbook(tmp_path, tasks, extra_vars, facts)
    assert rc == 0, output
    return json.loads(out.read_text())


NAMES = ["__training_host_pip_packages", "__training_host_pip_build_packages",
         "__training_host_tensorflow_pin", "training_host_venv_dir", "training_host_conda_env",
         "__training_host_omp_env", "__training_host_session_threads"]


def test_stock_installs_the_lists_as_given(tmp_path):
    got = _values(tmp_path, {"training_host_python": "anaconda"}, NAMES)
    assert got["__training_host_pip_packages"] == DEFAULTS["training_host_conda_packages"]
    assert (got["__training_host_pip_build_packages"]
            == DEFAULTS["training_host_conda_build_packages"])
    assert got["__training_host_tensorflow_pin"] == "tensorflow==1.7.1"
    assert got["training_host_conda_env"] == "tf-cpu"
    assert got["training_host_venv_dir"] == "/opt/facekit/venvs/tf-cpu"
    assert got["__training_host_omp_env"] == {} and got["__training_host_session_threads"] == {}


@pytest.mark.parametrize("python", ["anaconda", "venv"])
def test_mkl_replaces_tensorflow_and_its_pins_and_the_pip(tmp_path, python):
    listed = DEFAULTS["training_host_conda_packages"]
    extra = {"training_host_tensorflow": "mkl", "training_host_python": python}
    if python == "venv":  # as the lab gives it: the conda pins as the venv's list
        extra.update(training_host_venv_packages=listed,
                     training_host_venv_build_packages=DEFAULTS["training_host_conda_build_packages"])
    got = _values(tmp_path, extra, NAMES)
    packages = got["__training_host_pip_packages"]
    assert "tensorflow==1.7.1" not in packages
    assert [p for p in packages if "tensorflow==" in p] == ["intel-tensorflow==1.13.1"]
    assert packages[-len(DEFAULTS["training_host_tensorflow_mkl_packages"]):] == \
        DEFAULTS["training_host_tensorflow_mkl_packages"]
    # Every name once: the mkl list's pins win over the list's (numpy, protobuf).
    names = [p.split("==")[0].lower() for p in packages]
    assert len(names) == len(set(names)) and "pillow" in names and "pycocotools" in names
    assert got["__training_host_pip_build_packages"][-1] == "pip==19.3.1"
    assert "pip==21.3.1" not in got["__training_host_pip_build_packages"]
    assert got["__training_host_tensorflow_pin"] == "intel-tensorflow==1.13.1"
    assert got["training_host_venv_dir"] == "/opt/facekit/venvs/tf-mkl"
    assert got["training_host_conda_env"] == "tf-mkl"
    # Physical cores: 2 sockets x 4 cores (the hyperthreads are left out).
    assert got["__training_host_omp_env"]["OMP_NUM_THREADS"] == "8"
    assert got["__training_host_session_threads"] == {"FACEKIT_INTRA_OP_THREADS": "8",
                                                      "FACEKIT_INTER_OP_THREADS": "2"}
    # The lab's wheelhouse is built for the same lists (molecule/lab/standins.py).
    build, composed = standins.mkl_lists(
        DEFAULTS["training_host_conda_build_packages"], listed,
        DEFAULTS["training_host_tensorflow_mkl_packages"],
        DEFAULTS["training_host_tensorflow_mkl_pip"])
    assert (build, composed) == (got["__training_host_pip_build_packages"], packages)


def test_thread_counts_and_openmp_variables_given_are_kept(tmp_path):
    got = _values(tmp_path, {"training_host_tensorflow": "mkl",
                             "training_host_tensorflow_mkl_threads": 3,
                             "training_host_tensorflow_mkl_inter_op_threads": 1,
                             "training_host_tensorflow_mkl_omp_env": {"KMP_BLOCKTIME": "0"}},
                  NAMES)
    assert got["__training_host_omp_env"] == {"OMP_NUM_THREADS": "3", "KMP_BLOCKTIME": "0"}
    assert got["__training_host_session_threads"] == {"FACEKIT_INTRA_OP_THREADS": "3",
                                                      "FACEKIT_INTER_OP_THREADS": "1"}


def test_the_environment_file_carries_the_openmp_settings_for_mkl_only(tmp_path):
    rendered = {}
    for choice in ("stock", "mkl"):
        out = tmp_path / ("training-%s.env" % choice)
        tasks = """
            - name: Render the environment file
              ansible.builtin.template:
                src: %s
                dest: %s
                mode: "0644"
        """ % (os.path.join(ROLE, "templates", "training.env.j2"), out)
        facts = {"ansible_facts": {"processor_count": 1, "processor_cores": 2}}
        rc, output = _playbook(tmp_path, tasks, {"training_host_tensorflow": choice}, facts)
        assert rc == 0, output
        rendered[choice] = dict(line.split("=", 1) for line in out.read_text().splitlines()
                                if line and not line.startswith("#"))
    assert rendered["mkl"]["FACEKIT_TENSORFLOW"] == "intel-tensorflow==1.13.1"
    assert rendered["mkl"]["OMP_NUM_THREADS"] == "2"
    assert rendered["mkl"]["FACEKIT_INTRA_OP_THREADS"] == "2"
    assert rendered["mkl"]["FACEKIT_INTER_OP_THREADS"] == "1"
    assert rendered["mkl"]["FACEKIT_PYTHON"].startswith("/opt/anaconda3/envs/tf-mkl/")
    assert rendered["stock"]["FACEKIT_TENSORFLOW"] == "tensorflow==1.7.1"
    assert not [k for k in rendered["stock"] if k.startswith(("OMP_", "KMP_", "FACEKIT_IN"))]


def _preflight(tmp_path, flags, python):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: %s\n\n" % flags)
    tasks = """
        - name: Run the mkl preflight
          ansible.builtin.include_tasks: %s
    """ % os.path.join(ROLE, "tasks", "preflight_mkl.yml")
    rc, output = _playbook(tmp_path, tasks, {
        "training_host_tensorflow": "mkl", "training_host_python": "venv",
        "training_host_venv_python": python, "__training_host_cpuinfo_path": str(cpuinfo)})
    return rc, " ".join(output.split())  # the YAML callback folds long messages


def _python36():
    found = subprocess.run([os.path.join(ROOT, "tools", "find-python.sh"), "3.6"],
                           stdout=subprocess.PIPE, universal_newlines=True, check=False)
    return found.stdout.strip()


def test_preflight_refuses_mkl_on_a_cpu_without_avx_naming_it(tmp_path):
    no_avx = " ".join(f for f in CPUINFO_FLAGS.split() if not f.startswith("avx"))
    rc, output = _preflight(tmp_path, no_avx, sys.executable)
    assert rc != 0
    assert "lacks avx, which intel-tensorflow 1.13.1 was compiled to use" in output
    assert "training_host_tensorflow: stock" in output


def test_preflight_refuses_mkl_on_a_python_that_is_not_36(tmp_path):
    rc, output = _preflight(tmp_path, CPUINFO_FLAGS, sys.executable)
    assert rc != 0
    assert "is Python %d.%d" % sys.version_info[:2] in output and "Python 3.6" in output


def test_preflight_takes_mkl_on_a_cpu_with_avx_and_python_36(tmp_path):
    python = _python36()
    if not python:
        pytest.skip("no Python 3.6 interpreter here (tools/find-python.sh 3.6)")
    rc, output = _preflight(tmp_path, CPUINFO_FLAGS, python)
    assert rc == 0, output
