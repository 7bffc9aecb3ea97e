"""facekit model progress: what the training role reads while it waits for the trainer."""

import json
import os
import subprocess
import sys

from facekit.model import progress

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Lines as TensorFlow 1.7's slim trainer writes them (legacy/train.py of the 2018 snapshot).
LOG_FIRST_RUN = """\
INFO:tensorflow:Starting Session.
INFO:tensorflow:Saving checkpoint to path /w/train/model.ckpt
INFO:tensorflow:global step 1: loss = 9.1234 (6.512 sec/step)
INFO:tensorflow:global step 2: loss = 8.5000 (0.500 sec/step)
INFO:tensorflow:global step 3: loss = 8.0000 (0.520 sec/step)
"""
LOG_RESUMED = """\
INFO:tensorflow:Restoring parameters from /w/train/model.ckpt-20
INFO:tensorflow:global step 21: loss = 3.2500 (0.480 sec/step)
INFO:tensorflow:global step 21: loss = 3.2500 (0.480 sec/step)
INFO:tensorflow:global step 22: loss = 3.1000 (0.520 sec/step)
"""


def _train_dir(tmp_path, steps, named=None):
    train = tmp_path / "train"
    train.mkdir()
    for step in steps:
        (train / ("model.ckpt-%d.index" % step)).write_text("")
    if named is not None:
        (train / "checkpoint").write_text(
            'model_checkpoint_path: "%s/model.ckpt-%d"\n' % (train, named))
    return train


def test_newest_checkpoint_follows_the_checkpoint_file(tmp_path):
    train = _train_dir(tmp_path, [0, 20, 40], named=20)
    # The trainer restores what `checkpoint` names, even with a newer index on disk.
    assert progress.checkpoint_step(str(train)) == 20


def test_newest_checkpoint_without_a_usable_checkpoint_file(tmp_path):
    train = _train_dir(tmp_path, [0, 20], named=60)  # names one whose files are gone
    assert progress.checkpoint_step(str(train)) == 20
    assert progress.checkpoint_step(str(tmp_path / "missing")) == -1


def test_log_gives_step_loss_speed_and_restore():
    step, loss, sec, restored = progress.parse_log((LOG_FIRST_RUN + LOG_RESUMED).splitlines())
    assert (step, loss, restored) == (22, 3.1, 20)
    assert abs(sec - (6.512 + 0.5 + 0.52 + 0.48 + 0.48 + 0.52) / 6) < 1e-9


def test_estimator_lines_are_read_too():
    step, loss, _, _ = progress.parse_log(
        ["INFO:tensorflow:loss = 2.5, step = 300 (12.1 sec)"])
    assert (step, loss) == (300, 2.5)


def test_progress_json_without_systemd(tmp_path):
    train = _train_dir(tmp_path, [0, 20], named=20)
    log = tmp_path / "train.log"
    log.write_text(LOG_FIRST_RUN + LOG_RESUMED)
    out = subprocess.run(
        [sys.executable, "-m", "facekit.cli", "model", "progress", "--train-dir", str(train),
         "--log", str(log), "--num-steps", "40"],
        env=dict(os.environ, PYTHONPATH=SRC), stdout=subprocess.PIPE, check=True,
        universal_newlines=True).stdout
    result = json.loads(out)
    assert result["checkpoint_step"] == 20 and result["step"] == 22
    assert result["done"] is False and result["restored_from"] == 20
    assert result["summary"].startswith("step 22 of 40 (55%), loss 3.1000")
    assert "newest checkpoint 20" in result["summary"]
    assert result["log_tail"][-1].endswith("(0.520 sec/step)")


def test_done_when_the_newest_checkpoint_reaches_the_step_count(tmp_path):
    train = _train_dir(tmp_path, [0, 40], named=40)
    result = progress.progress(str(train), str(tmp_path / "no.log"), num_steps=40)
    assert result["done"] is True and result["step"] == 40
    assert "left" not in result["summary"]


def test_wait_returns_at_once_when_done(tmp_path):
    train = _train_dir(tmp_path, [40], named=40)
    result = progress.wait_for_change(str(train), str(tmp_path / "no.log"), num_steps=40,
                                      seconds=30)
    assert result["done"]


def test_long_log_is_read_from_its_end(tmp_path):
    log = tmp_path / "train.log"
    lines = ["INFO:tensorflow:global step %d: loss = 1.0 (0.100 sec/step)" % i
             for i in range(1, 20001)]
    log.write_text("\n".join(lines) + "\n")
    tail = progress.read_tail(str(log), size=4096)
    assert tail[-1] == lines[-1]
    # The first line of the window may be cut: it is dropped, never parsed half.
    assert all(line in lines for line in tail)
