"""roles/facekit_common's download tasks, on a real ansible-playbook run against a loopback HTTP
server: the first URL that serves the right bytes wins, a file already there is not fetched again,
and a run that gets no right file fails naming every URL's answer and the checksum's variable."""

import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PLAYBOOK = """\
- name: Download
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Download the file
      block:
        - name: Download with facekit_common
          ansible.builtin.include_role:
            name: facekit_common
            tasks_from: download
          vars:
            facekit_common_download: "{{ download }}"
            facekit_common_download_retries: 1
            facekit_common_download_delay: 0
            facekit_common_download_timeout: 5
      rescue:
        - name: Keep the failure
          ansible.builtin.copy:
            content: >-
              {{ {'task': ansible_failed_task.name, 'msg': ansible_failed_result.msg} | to_json }}
            dest: "{{ failure_file }}"
            mode: "0644"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    served = tmp_path_factory.mktemp("served")
    (served / "model.tgz").write_bytes(b"the right bytes\n")
    (served / "other.tgz").write_bytes(b"another build\n")
    handler = functools.partial(_QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _run(tmp_path, download):
    command = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) \
        or shutil.which("ansible-playbook")
    if command is None:
        pytest.skip("ansible-playbook is not installed (make venv)")
    playbook = tmp_path / "download.yml"
    playbook.write_text(PLAYBOOK)
    failure = tmp_path / "failure.json"
    extra = {"download": download, "failure_file": str(failure),
             "ansible_python_interpreter": sys.executable}
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    result = subprocess.run(
        [command, "-i", "localhost,", str(playbook), "-e", json.dumps(extra)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env,
        check=False)
    assert result.returncode == 0, result.stdout
    return result.stdout, (json.loads(failure.read_text()) if failure.exists() else None)


def _sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_the_first_url_with_the_right_file_wins_and_a_second_run_fetches_nothing(tmp_path, server):
    dest = tmp_path / "model.tgz"
    download = {"urls": [server + "/missing/model.tgz", server + "/other.tgz",
                         server + "/model.tgz"],
                "checksum": _sha256(b"the right bytes\n"), "dest": str(dest), "var": "model_sha256"}
    out, failure = _run(tmp_path, download)
    assert failure is None, failure
    assert dest.read_bytes() == b"the right bytes\n"
    assert "changed=1" in out, out

    out, failure = _run(tmp_path, download)
    assert failure is None, failure
    assert "changed=0" in out, out


def test_no_right_file_names_each_url_and_the_variable(tmp_path, server):
    dest = tmp_path / "model.tgz"
    download = {"urls": [server + "/other.tgz", "http://127.0.0.1:9/model.tgz"],
                "checksum": _sha256(b"the right bytes\n"), "dest": str(dest), "var": "model_sha256"}
    _out, failure = _run(tmp_path, download)
    assert failure is not None
    assert "Explain which download failed" in failure["task"]
    msg = failure["msg"]
    assert "model_sha256" in msg, msg
    assert server + "/other.tgz: checksum does not match" in msg, msg
    assert "http://127.0.0.1:9/model.tgz: " in msg, msg
    assert not dest.exists()


def test_a_missing_checksum_is_refused_by_the_argument_spec(tmp_path, server):
    download = {"urls": [server + "/model.tgz"], "dest": str(tmp_path / "model.tgz"),
                "var": "model_sha256"}
    _out, failure = _run(tmp_path, download)
    assert failure is not None
    assert "missing required arguments: checksum" in failure["msg"], failure
