"""The training host's optional units after converge and side_effect (host_vars turn both on): the
eval job has scored the newest checkpoint and left its mAP in eval/, and TensorBoard answers on the
loopback only."""

import time

import yaml
from test_training import RESUME, SCENARIO, WORK, _env

testinfra_hosts = ["podman://facekit-site-train"]

with open(SCENARIO + "/host_vars/facekit-site-train.yml") as _handle:
    HOST_VARS = yaml.safe_load(_handle)
EVAL_UNIT = "facekit-eval-face_ssd_embedded.service"
TENSORBOARD_UNIT = "facekit-tensorboard-face_ssd_embedded.service"
PORT = HOST_VARS["detector_training_tensorboard_port"]
MAP_TAG = "DetectionBoxes_Precision/mAP@.50IOU"
# Scalars of eval/'s event files, one "step tag value" line each, read with the env's TensorFlow. A
# file cut short (a writer killed mid-record) still gives what precedes the cut.
READ_EVENTS = """
import glob, sys
import tensorflow as tf
for path in sorted(glob.glob(sys.argv[1] + '/events.out.tfevents.*')):
    try:
        for event in tf.train.summary_iterator(path):
            for value in event.summary.value:
                if value.HasField('simple_value'):
                    print('%d\\t%s\\t%r' % (event.step, value.tag, value.simple_value))
    except tf.errors.DataLossError:
        pass
"""


def _poll(check, seconds, what):
    deadline = time.time() + seconds
    while True:
        result = check()
        if result or time.time() > deadline:
            assert result, "%s within %d s" % (what, seconds)
            return result
        time.sleep(5)


def test_eval_job_is_running_hardened_below_the_trainer(host):
    props = dict(line.split("=", 1) for line in host.check_output(
        "systemctl show %s -p ActiveState -p User -p ProtectSystem -p ReadWritePaths -p Nice"
        " -p KillSignal -p UnitFileState", EVAL_UNIT).splitlines())
    assert props["ActiveState"] == "active", host.run("journalctl -u %s -n 30 --no-pager",
                                                      EVAL_UNIT).stdout
    assert props["UnitFileState"] == "enabled"
    assert props["User"] == "facekit-train" and props["ProtectSystem"] == "strict"
    assert props["ReadWritePaths"] == WORK + "/eval"
    trainer = host.check_output("systemctl show facekit-training-face_ssd_embedded.service"
                                " -p Nice --value")
    assert int(props["Nice"]) > int(trainer)
    assert props["KillSignal"] == "2"  # SIGINT: a clean exit flushes the last score


def test_eval_job_scored_the_newest_checkpoint(host):
    # The journal has each score at once (the event file gets it when the next one is written).
    newest = "Restoring parameters from %s/train/model.ckpt-%d" % (WORK, RESUME["resume_num_steps"])

    def scored():
        log = host.run("journalctl -u %s -o cat --no-pager", EVAL_UNIT).stdout
        return newest in log and MAP_TAG + ":" in log.split(newest, 1)[1]
    _poll(scored, 300, "%s logged '%s' and then %s" % (EVAL_UNIT, newest, MAP_TAG))


def test_eval_dir_holds_the_map_scalar(host):
    env = _env(host)

    def scalars():
        result = host.run("%s -c %s %s", env["FACEKIT_PYTHON"], READ_EVENTS, WORK + "/eval")
        return [line.split("\t") for line in result.stdout.splitlines()
                if line.split("\t")[1:2] == [MAP_TAG]]
    found = _poll(scalars, 180, "an event file in %s/eval with %s" % (WORK, MAP_TAG))
    # Scores of trained checkpoints (converge trained 20 steps), each a fraction.
    assert max(int(step) for step, _, _ in found) >= 20
    assert all(0.0 <= float(value) <= 1.0 for _, _, value in found)


def test_tensorboard_answers_on_the_loopback_only(host):
    assert host.service(TENSORBOARD_UNIT).is_running
    _poll(lambda: host.socket("tcp://127.0.0.1:%d" % PORT).is_listening, 60,
          "TensorBoard listening on 127.0.0.1:%d" % PORT)
    assert not host.socket("tcp://0.0.0.0:%d" % PORT).is_listening
    status = host.check_output(
        "python3 -c 'import urllib.request,sys; sys.stdout.write(str(urllib.request.urlopen("
        "\"http://127.0.0.1:%d/\", timeout=10).status))'" % PORT)
    assert status == "200"
    runs = host.check_output(
        "python3 -c 'import urllib.request,sys; sys.stdout.write(urllib.request.urlopen("
        "\"http://127.0.0.1:%d/data/runs\", timeout=10).read().decode())'" % PORT)
    assert "train" in runs and "eval" in runs
