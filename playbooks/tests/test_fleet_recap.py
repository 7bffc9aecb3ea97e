"""The facekit_fleet callback's VISION KITS recap, on a real ansible-playbook run.

Three local-connection "kits" in a play marked facekit_fleet_play, one kit per batch; the
second fails, so the rollout stops before the third, which the recap must still list.
"""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGINS = os.path.join(ROOT, "playbooks", "callback_plugins")

PLAYBOOK = """\
- name: Kits
  hosts: kits
  gather_facts: false
  serial: 1
  max_fail_percentage: 0
  vars:
    facekit_fleet_play: true
  tasks:
    - name: Fail on the refusing kit
      ansible.builtin.fail:
        msg: the bonnet refused model face 222
      when: inventory_hostname == 'kit2'
    - name: Report
      ansible.builtin.set_fact:
        vision_kit_report:
          model: face
          version: "222"
          target: "222"
          state: updated from 111
          reason: ""
          thresholds:
            face:
              score: 0.31
              from: bundle
"""


def _ansible_playbook():
    found = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable))
    return found or shutil.which("ansible-playbook")


def _run(tmp_path, *extra):
    command = _ansible_playbook()
    if command is None:
        pytest.skip("ansible-playbook is not installed (make venv)")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(textwrap.dedent("""\
        [kits]
        kit1
        kit2
        kit3
        [kits:vars]
        ansible_connection=local
        ansible_python_interpreter={}
        """).format(sys.executable))
    playbook = tmp_path / "kits.yml"
    playbook.write_text(PLAYBOOK)
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\ncallback_plugins = {}\ncallbacks_enabled = facekit_fleet\n"
                      "local_tmp = {}\nnocolor = true\n".format(PLUGINS, tmp_path / "tmp"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(config))
    result = subprocess.run([command, "-i", str(inventory), str(playbook)] + list(extra),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, timeout=300, check=False)
    assert "VISION KITS" in result.stdout, result.stdout
    recap = result.stdout[result.stdout.index("VISION KITS"):]
    lines = {line.split()[0]: line for line in recap.splitlines() if line.startswith("kit")}
    return result, lines, recap


def test_recap_lists_kits_the_stopped_rollout_never_reached(tmp_path):
    result, lines, recap = _run(tmp_path)
    assert result.returncode != 0
    assert sorted(lines) == ["kit1", "kit2", "kit3"], recap
    assert "face 222  updated from 111" in lines["kit1"]
    assert lines["kit1"].endswith("thresholds face 0.31 (bundle)"), lines["kit1"]
    assert "failed before a release was switched" in lines["kit2"]
    assert "the bonnet refused model face 222" in lines["kit2"]
    assert "not reached" in lines["kit3"]
    assert "1 failed; 1 not reached; 1 updated from 111" in recap


def test_recap_leaves_out_kits_outside_the_limit(tmp_path):
    result, lines, recap = _run(tmp_path, "--limit", "kit1,kit3")
    assert result.returncode == 0, result.stdout
    assert sorted(lines) == ["kit1", "kit3"], recap
    assert all("updated from 111" in line for line in lines.values())
