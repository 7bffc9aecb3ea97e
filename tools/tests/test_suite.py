"""tools/suite.py: the order, skips and table of `make test`, on parts made of small shell
commands, and the name of the provisioned training-host image."""

import io
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import suite  # noqa: E402  (tools/ is not a package)


@pytest.fixture(autouse=True)
def _logs(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "LOGS", str(tmp_path / "logs"))


def _sh(script):
    return ["sh", "-c", script]


def _run(parts, jobs=3):
    out = io.StringIO()
    runner = suite.Suite(parts, jobs, out=out)
    ok = runner.run()
    return ok, runner, out.getvalue()


def test_parts_wait_for_what_they_need_and_the_rest_runs_beside(tmp_path):
    stamp = tmp_path / "order"
    record = "echo {0} >> " + str(stamp)
    parts = [
        suite.Part("a", _sh("sleep 0.4; " + record.format("a"))),
        suite.Part("b", _sh(record.format("b")), needs=["a"]),
        suite.Part("c", _sh(record.format("c"))),
    ]
    ok, runner, out = _run(parts)
    assert ok
    order = [line.split()[0] for line in stamp.read_text().splitlines()]
    # c needs nothing: it ran while a slept; b only after a.
    assert order == ["c", "a", "b"]
    assert [p.result for p in parts] == ["PASS"] * 3
    assert parts[1].start >= parts[0].end
    assert parts[2].start < parts[0].end


def test_a_failed_need_skips_its_dependents_and_fails_the_run():
    parts = [
        suite.Part("venv", _sh("echo building; exit 3")),
        suite.Part("lint", _sh("true"), needs=["venv"]),
        suite.Part("pytest", _sh("true"), needs=["lint"]),
        suite.Part("image", _sh("true")),
    ]
    ok, runner, out = _run(parts)
    assert not ok
    assert [p.result for p in parts] == ["FAIL", "SKIP", "SKIP", "PASS"]
    assert parts[0].reason == "exit status 3"
    assert parts[1].reason == "needs venv (FAIL)"
    assert parts[2].reason == "needs lint (SKIP)"
    # The failed part's own output is in the run's output, whole.
    assert "=== venv: FAIL" in out and "building" in out


def test_a_skip_reason_skips_without_failing_and_is_asked_once():
    asked = []

    def reason():
        asked.append(1)
        return "no Python 3.6 on this machine"

    parts = [suite.Part("x", _sh("sleep 0.3")), suite.Part("y", _sh("sleep 0.3")),
             suite.Part("scenario", _sh("exit 1"), skip_reason=reason)]
    # One job: the scenario is ready long before a slot frees; its reason is still asked once.
    ok, runner, out = _run(parts, jobs=1)
    assert ok and parts[2].result == "SKIP" and len(asked) == 1
    assert "no Python 3.6" in runner.table()


def test_jobs_caps_how_many_parts_run_at_once(tmp_path):
    parts = [suite.Part("p%d" % i, _sh("sleep 0.3")) for i in range(4)]
    started = time.time()
    ok, runner, out = _run(parts, jobs=2)
    assert ok
    spans = sorted((p.start, p.end) for p in parts)
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == 2
    assert time.time() - started >= 0.6


def test_table_has_a_row_per_part_and_the_total():
    parts = [suite.Part("venv", _sh("true"), about="controller venv"),
             suite.Part("lint", _sh("exit 2"), needs=["venv"])]
    ok, runner, out = _run(parts)
    rows = runner.table().splitlines()
    assert rows[0].split()[:4] == ["part", "result", "start", "seconds"]
    assert rows[2].split()[:2] == ["venv", "PASS"] and rows[2].endswith("controller venv")
    assert rows[3].split()[:2] == ["lint", "FAIL"] and rows[3].endswith("exit status 2")
    assert rows[-1].split()[:3] == ["total", "FAIL", "%d" % runner.total]


def test_select_takes_what_the_named_parts_need():
    parts = suite.build_parts("/usr/bin/python3.6", {})
    names = [p.name for p in suite.select(parts, ["pytest"])]
    assert names == ["venv", "venv-py36", "venv-kit", "pytest"]
    names = [p.name for p in suite.select(parts, ["site"])]
    assert names == ["venv", "lab-image", "standins", "scenario:site"]
    assert "scenario:vision_kit" in [p.name for p in suite.select(parts, ["scenarios"])]
    # Only the scenario that trains on intel-tensorflow waits for its wheels.
    names = [p.name for p in suite.select(parts, ["voc"])]
    assert "standins-mkl" in names and names.index("standins-mkl") > names.index("standins")
    # ...and takes a free slot only after the two longest scenarios.
    order = [p.name for p in parts]
    assert order.index("standins-mkl") > order.index("scenario:training_host") \
        > order.index("scenario:site")
    with pytest.raises(SystemExit, match="no part 'nonesuch'"):
        suite.select(parts, ["nonesuch"])


def test_trainhost_tag_follows_the_role_and_the_standins(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    for path, text in [
        ("roles/training_host/tasks/main.yml", "- name: one\n"),
        ("molecule/training_host/converge.yml", "converge\n"),
        ("molecule/training_host/molecule.yml", "molecule\n"),
        ("molecule/training_host/vars/lab.yml", "vars\n"),
        ("molecule/lab/prepare-python36.yml", "prepare\n"),
        ("molecule/lab/Containerfile", "FROM x\n"),
        ("standins/role_vars.json", '{"training_host_models_version": "abc"}'),
    ]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    monkeypatch.setattr(suite, "ROOT", str(root))
    monkeypatch.setattr(suite, "LAB", str(root / "molecule" / "lab"))
    monkeypatch.setattr(suite, "STANDINS_DIR", str(root / "standins"))
    first = suite.trainhost_tag("sha256:lab", "/py36")
    assert first.startswith(suite.TRAINHOST_REPO + ":") and len(first.split(":")[1]) == 16
    assert suite.trainhost_tag("sha256:lab", "/py36") == first
    assert suite.trainhost_tag("sha256:other-lab-image", "/py36") != first
    (root / "roles/training_host/tasks/main.yml").write_text("- name: two\n")
    second = suite.trainhost_tag("sha256:lab", "/py36")
    assert second != first
    (root / "standins/role_vars.json").write_text('{"training_host_models_version": "def"}')
    third = suite.trainhost_tag("sha256:lab", "/py36")
    assert third not in (first, second)
    # A role the role includes shapes the host too, from the moment it is included.
    shared = root / "roles/facekit_common/tasks/download.yml"
    shared.parent.mkdir(parents=True)
    shared.write_text("- name: get\n")
    assert suite.trainhost_tag("sha256:lab", "/py36") == third
    (root / "roles/training_host/tasks/main.yml").write_text(
        "- name: two\n  ansible.builtin.include_role:\n    name: facekit_common\n")
    fourth = suite.trainhost_tag("sha256:lab", "/py36")
    assert suite.role_and_includes("training_host") == ["facekit_common", "training_host"]
    shared.write_text("- name: get it\n")
    assert suite.trainhost_tag("sha256:lab", "/py36") not in (third, fourth)
