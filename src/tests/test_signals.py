"""Stopping a conversion: SIGTERM (systemd, `timeout`, Ansible) must do what Ctrl-C does,
and what a SIGKILL leaves behind must be removed by the next run.

Real processes: the CLI runs in its own session (so a signal can go to its whole
process group, workers included, as a terminal's Ctrl-C or `timeout` sends it), on a
tree large enough that it is still converting when the signal arrives. Each test
waits for the run's temporary files to fill before it signals, never a fixed sleep.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from helpers import REPO, WiderTree, face, jpeg_bytes, tree_bytes

from facekit import files, interrupts
from facekit.dataset.convert import convert

IMAGES = 6000  # about 3 s of converting with --workers 2 on 2 cores
PY36 = os.path.join(os.environ.get("FACEKIT_PY36_VENV", os.path.join(REPO, ".venv-py36")),
                    "bin", "python")
# Seconds any single wait may take on a loaded machine.
DEADLINE = float(os.environ.get("FACEKIT_TEST_SIGNAL_DEADLINE", "180"))


class Big(object):
    """IMAGES annotated images (hard links to one JPEG), a CSV of them, and a small
    annotation file listing the first 40 (for 'previous output' runs)."""

    def __init__(self, root):
        self.tree = WiderTree(os.path.join(root, "wider"))
        source = self.tree.add_image("0--Base/base.jpg", 640, 480, seed=7)
        entries, rows = [], ["filename,width,height,class,xmin,ymin,xmax,ymax"]
        for i in range(IMAGES):
            path = "{}--Event/img_{:05d}.jpg".format(i % 20, i)
            target = os.path.join(self.tree.images, path)
            if not os.path.isdir(os.path.dirname(target)):
                os.makedirs(os.path.dirname(target))
            try:
                os.link(source, target)
            except OSError:
                with open(target, "wb") as fh:
                    fh.write(jpeg_bytes(640, 480, seed=7))
            entries.append((path, [face(10 + i % 50, 20, 100, 120)]))
            rows.append("{},640,480,face,{},20,{},140".format(path, 10 + i % 50, 110 + i % 50))
        self.annotations = self.tree.write_annotations(entries)
        self.images = self.tree.images
        self.csv = os.path.join(root, "val_labels.csv")
        with open(self.csv, "w") as fh:
            fh.write("\n".join(rows) + "\n")
        small = WiderTree(os.path.join(root, "small"))
        small.images = self.images
        self.small_annotations = small.write_annotations(entries[:40])


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    return Big(str(tmp_path_factory.mktemp("big")))


@pytest.fixture
def runs():
    """Start CLI runs; whatever is still running at the end of a test is killed."""
    started = []

    def start(args, python=sys.executable, env=None):
        log = tempfile.TemporaryFile(mode="w+")
        # PYTHONFAULTHANDLER: a run that hangs prints its threads' stacks on SIGABRT.
        run_env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"),
                       TF_CPP_MIN_LOG_LEVEL="2", PYTHONFAULTHANDLER="1")
        run_env.update(env or {})
        proc = subprocess.Popen(
            [python, "-m", "facekit.cli"] + [str(a) for a in args], stdout=subprocess.DEVNULL,
            stderr=log, env=run_env, start_new_session=True)
        proc.log = log
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            with_group(proc, signal.SIGKILL)
            proc.wait()
        proc.log.close()


def with_group(proc, signum):
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass


def stderr_of(proc):
    proc.log.flush()
    proc.log.seek(0)
    return proc.log.read()


def temporaries(directory):
    """Every `.<name>.tmp-<pid>` entry under directory, at any depth."""
    found = []
    for dirpath, dirnames, filenames in os.walk(str(directory)):
        found += [os.path.join(dirpath, n) for n in dirnames + filenames if ".tmp-" in n]
    return sorted(found)


def _xml_files_in_progress(directory):
    """Number of XML files (up to 64) in a VOC temporary directory under `directory`."""
    count = 0
    for name in os.listdir(directory):
        if name.startswith(".") and "voc.tmp-" in name:
            for _, _, filenames in os.walk(os.path.join(directory, name)):
                count += sum(1 for n in filenames if n.endswith(".xml"))
                if count >= 64:
                    return count
    return count


def _records_in_progress(directory):
    return sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory)
               if n.startswith(".") and ".record" in n and ".tmp-" in n)


def wait_converting(proc, directory, progress=_xml_files_in_progress, least=64):
    """Return once the run's temporaries show it has converted some images."""
    directory = str(directory)
    end = time.time() + DEADLINE
    while time.time() < end:
        if proc.poll() is not None:
            pytest.fail("the run ended (exit {}) before it was signalled:\n{}".format(
                proc.returncode, stderr_of(proc)))
        try:
            if progress(directory) >= least:
                return
        except OSError:
            pass  # the directory or a temporary appeared or vanished while listed
        time.sleep(0.02)
    pytest.fail("no progress in {} within {} s:\n{}".format(directory, DEADLINE,
                                                               stderr_of(proc)))


def finish(proc):
    try:
        return proc.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # the stacks of the hung run, for the message
        time.sleep(2)
        with_group(proc, signal.SIGKILL)
        proc.wait()
        pytest.fail("the run did not end within {} s of the signal:\n{}".format(
            DEADLINE, stderr_of(proc)))


def assert_group_gone(proc):
    """No process of the run's session is left: the workers were stopped too."""
    end = time.time() + 30
    while time.time() < end:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail("processes of the stopped run are still running")


def assert_stopped_cleanly(proc, signum, out):
    code = finish(proc)
    err = stderr_of(proc)
    assert code == 128 + signum, err
    assert "Traceback" not in err, err
    assert "BrokenPipeError" not in err, err
    assert "facekit: stopped by {}; no partial output was kept".format(
        signal.Signals(signum).name) in err
    assert temporaries(out) == []
    assert not [n for n in os.listdir(str(out)) if n.endswith(".lock")]
    assert_group_gone(proc)


def convert_args(big, out, *extra):
    return ["dataset", "convert", "--annotations", big.annotations, "--images", big.images,
            "--output-dir", out, "--workers", "2", "--shards", "2"] + list(extra)


@pytest.mark.parametrize("signum,to_group", [
    (signal.SIGTERM, True),   # timeout(1), systemd's stop: every process of the group
    (signal.SIGTERM, False),  # kill PID, Ansible's timeout: the main process alone
    (signal.SIGINT, True),    # Ctrl-C in a terminal
], ids=["sigterm-group", "sigterm-parent", "sigint-group"])
def test_a_stopped_convert_keeps_the_previous_output(big, tmp_path, runs, signum, to_group):
    out = tmp_path / "out"
    convert(big.small_annotations, big.images, str(out), shards=2, progress=False)
    before = tree_bytes(out)
    assert "val.record-00001-of-00002" in before

    proc = runs(convert_args(big, out))
    wait_converting(proc, out)
    assert temporaries(out)
    if to_group:
        with_group(proc, signum)
    else:
        proc.send_signal(signum)
    assert_stopped_cleanly(proc, signum, out)
    assert tree_bytes(out) == before


def test_a_stopped_first_run_leaves_nothing(big, tmp_path, runs):
    out = tmp_path / "out"
    proc = runs(convert_args(big, out))
    wait_converting(proc, out)
    with_group(proc, signal.SIGTERM)
    assert_stopped_cleanly(proc, signal.SIGTERM, out)
    assert os.listdir(str(out)) == []


def test_stopped_seed_steps_remove_their_temporaries(big, tmp_path, runs):
    voc = tmp_path / "voc"
    proc = runs(["dataset", "to-voc", "--annotations", big.annotations, "--images", big.images,
                 "--output-dir", voc, "--workers", "2"])
    wait_converting(proc, tmp_path)
    with_group(proc, signal.SIGTERM)
    assert_stopped_cleanly(proc, signal.SIGTERM, tmp_path)
    assert not voc.exists()

    out = tmp_path / "records"
    proc = runs(["dataset", "to-tfrecord", "--csv", big.csv, "--images", big.images,
                 "--output-dir", out, "--split", "val", "--workers", "2", "--shards", "3"])
    wait_converting(proc, out, _records_in_progress, least=1)
    with_group(proc, signal.SIGTERM)
    assert_stopped_cleanly(proc, signal.SIGTERM, out)
    assert os.listdir(str(out)) == []


def test_what_a_sigkill_leaves_is_removed_by_the_next_run(big, tmp_path, runs):
    out = tmp_path / "out"
    proc = runs(convert_args(big, out))
    wait_converting(proc, out)
    with_group(proc, signal.SIGKILL)
    assert finish(proc) == -signal.SIGKILL
    left = [os.path.basename(p) for p in temporaries(out)
            if os.path.dirname(p) == str(out)]
    assert sorted(left) == sorted(n.format(proc.pid) for n in (
        ".val.record-00000-of-00002.tmp-{}", ".val.record-00001-of-00002.tmp-{}",
        ".val_labels.csv.tmp-{}", ".val_voc.tmp-{}"))

    again = runs(convert_args(big, out))
    assert finish(again) == 0, stderr_of(again)
    assert ("removed 4 stale temporary files of an interrupted run (pid {})".format(proc.pid)
            in stderr_of(again))
    assert temporaries(out) == []

    clean = tmp_path / "clean"
    convert(big.annotations, big.images, str(clean), shards=2, progress=False)
    assert tree_bytes(out) == tree_bytes(clean)


def test_a_running_convert_is_neither_disturbed_nor_joined(big, tmp_path, runs):
    out = tmp_path / "out"
    first = runs(convert_args(big, out))
    wait_converting(first, out)
    first.send_signal(signal.SIGSTOP)  # held mid-run while the others start
    try:
        mine = sorted(temporaries(out))
        assert mine

        same = runs(convert_args(big, out))
        assert finish(same) == 1
        assert ("another facekit run (pid {}) is writing split val into {}".format(
            first.pid, out) in stderr_of(same))

        other = runs(["dataset", "convert", "--annotations", big.small_annotations, "--images",
                      big.images, "--output-dir", out, "--split", "other"])
        assert finish(other) == 0, stderr_of(other)
        assert "stale" not in stderr_of(other)
        assert set(mine) <= set(temporaries(out))
    finally:
        first.send_signal(signal.SIGCONT)
    assert finish(first) == 0, stderr_of(first)
    assert temporaries(out) == []
    names = os.listdir(str(out))
    assert "val.record-00000-of-00002" in names and "other.record" in names


def test_stale_temporaries_only_of_processes_that_no_longer_run(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    zombie = subprocess.Popen([sys.executable, "-c", ""])  # exited, not reaped yet
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        end = time.time() + 30
        while files.pid_alive(zombie.pid) and time.time() < end:
            time.sleep(0.05)
        names = {
            ".val.record.tmp-{}".format(dead.pid): False,
            ".val_voc.tmp-{}".format(zombie.pid): True,
            ".val_voc.tmp-{}.old".format(dead.pid): True,
            ".val.record.tmp-{}".format(alive.pid): False,
            ".val.record.tmp-{}".format(os.getpid()): False,
            "val.record": False,
            ".val.record.tmp-x{}".format(dead.pid): False,
        }
        for name, is_dir in names.items():
            path = tmp_path / name
            if is_dir:
                (path / "Annotations").mkdir(parents=True)
                (path / "Annotations" / "a.xml").write_text("<annotation/>")
            else:
                path.write_text("x")
        assert files.remove_stale_temporaries(str(tmp_path)) == 3
        assert sorted(os.listdir(str(tmp_path))) == sorted([
            ".val.record.tmp-{}".format(alive.pid), ".val.record.tmp-{}".format(os.getpid()),
            "val.record", ".val.record.tmp-x{}".format(dead.pid)])
    finally:
        alive.kill()
        alive.wait()
        zombie.wait()


def test_a_signal_waits_for_the_end_of_a_deferred_block(tmp_path):
    outside = signal.getsignal(signal.SIGTERM)
    tmp = files.temp_path(str(tmp_path / "half"))
    with open(tmp, "w") as fh:
        fh.write("never committed")
    reached = []
    with pytest.raises(interrupts.Interrupted) as info:
        with interrupts.stop_signals():
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler has run by now, and raised nothing yet
                reached.append("end of block")
                os.kill(os.getpid(), signal.SIGTERM)  # a second one: one stop only
                time.sleep(0.05)
    assert reached == ["end of block"]
    assert info.value.signum == signal.SIGTERM
    assert interrupts.exit_status(info.value) == 143
    # Temporaries that no writer removed go on the way out of stop_signals().
    assert not os.path.exists(tmp)
    assert signal.getsignal(signal.SIGTERM) is outside


def test_a_signal_is_raised_at_a_check_and_a_second_one_at_once():
    steps = []
    with pytest.raises(interrupts.Interrupted) as first:
        with interrupts.stop_signals():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            steps.append("after the signal")  # nothing raised between two checks
            interrupts.check()
            steps.append("after check()")
    assert steps == ["after the signal"]
    assert interrupts.exit_status(first.value) == 130

    with pytest.raises(interrupts.Interrupted) as second:
        with interrupts.stop_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)  # "stop now": raised inside the sleep
            time.sleep(5)
            steps.append("not reached")
    assert steps == ["after the signal"]
    assert second.value.signum == signal.SIGTERM  # the first signal names the stop


def test_ignored_signals_stay_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup does
    try:
        with interrupts.stop_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


@pytest.mark.skipif(not os.path.exists(PY36), reason="no Python 3.6 env at {}".format(PY36))
def test_sigterm_on_the_training_hosts_python36(big, tmp_path, runs):
    out = tmp_path / "out"
    proc = runs(convert_args(big, out), python=PY36)
    wait_converting(proc, out)
    with_group(proc, signal.SIGTERM)
    assert_stopped_cleanly(proc, signal.SIGTERM, out)
    assert os.listdir(str(out)) == []
