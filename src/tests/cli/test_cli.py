"""`facekit dataset ...`: help texts, exit codes, one-line errors, the printed summary."""

import argparse
import json
import os
import subprocess
import sys

import pytest
from helpers import STANDARD, read_records

from facekit import cli

SUBCOMMANDS = ["inspect", "convert", "to-voc", "to-csv", "to-tfrecord"]


def subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def test_every_flag_has_help():
    parser = cli.build_parser()
    dataset = subparsers(parser)["dataset"]
    commands = subparsers(dataset)
    assert sorted(commands) == sorted(SUBCOMMANDS)
    for name, command in commands.items():
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and len(action.help) > 15, (name, action.dest)


@pytest.mark.parametrize("argv", [["--help"], ["dataset", "--help"]] + [
    ["dataset", name, "--help"] for name in SUBCOMMANDS])
def test_help_exits_zero(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: facekit" in out
    if argv[-2:] == ["convert", "--help"]:
        for flag in ("--annotations", "--images", "--output-dir", "--shards", "--workers",
                     "--strict", "--max-blur", "--min-size", "--keep-invalid", "--keep-empty",
                     "--no-voc", "--no-csv", "--split", "--no-progress"):
            assert flag in out, flag
        assert "record-?????-of-0000N" in out


def test_usage_error_is_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["dataset", "convert", "--images", "x"])
    assert info.value.code == 2
    assert "--annotations" in capsys.readouterr().err


def test_convert_prints_summary(wider, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert cli.main(["-q", "dataset", "convert", "--annotations", wider.annotations,
                     "--images", wider.images, "--output-dir", out, "--shards", "2"]) == 0
    printed = capsys.readouterr().out
    assert "val: images kept 3 of 6 (dropped: no_faces 3)" in printed
    assert "val: faces kept 4 of 10 (dropped: invalid 1, blur 2, degenerate 2, small 1)" in printed
    assert "val.record-?????-of-00002" in printed


def test_filter_flags_reach_the_filters(wider, tmp_path, capsys):
    assert cli.main(["dataset", "inspect", wider.annotations, "--max-blur", "2",
                     "--min-size", "0", "--keep-invalid"]) == 0
    printed = capsys.readouterr().out
    # annotation only: the box off the image edge still counts as kept here
    assert "faces kept 9 of 10 (dropped: degenerate 1)" in printed


def test_malformed_annotations_exit_1_with_file_and_line(wider, tmp_path, capsys):
    with open(wider.annotations, "ab") as fh:
        fh.write(b"3--Riot/x.jpg\n1\n1 2 3 4 0 0 0 0 0 \n")
    code = cli.main(["dataset", "convert", "--annotations", wider.annotations,
                     "--images", wider.images, "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "facekit: error: {}:26: expected 10 integers for face 1 of 3--Riot/x.jpg, "
        "got 9".format(wider.annotations))
    assert "Traceback" not in err


def test_missing_annotation_file(tmp_path, capsys):
    missing = str(tmp_path / "wider_face_val_bbx_gt.txt")
    code = cli.main(["dataset", "inspect", missing])
    assert code == 1
    assert capsys.readouterr().err == (
        "facekit: error: cannot use {}: No such file or directory\n".format(missing))


def test_strict_in_a_subprocess(wider, tmp_path):
    os.remove(os.path.join(wider.images, STANDARD[5][0]))
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "facekit.cli", "dataset", "convert", "--annotations",
            wider.annotations, "--images", wider.images, "--output-dir", str(out)]
    strict = subprocess.run(argv + ["--strict", "--workers", "2"], check=False,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)
    assert strict.returncode == 1, strict.stderr
    assert "Traceback" not in strict.stderr
    assert "facekit: error: no such file: " in strict.stderr
    assert "2_Demonstration_f.png (listed on line 20 of" in strict.stderr
    assert not [n for n in os.listdir(str(out)) if "record" in n]

    lenient = subprocess.run(argv, check=False, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True)
    assert lenient.returncode == 0, lenient.stderr
    assert "WARNING: skipping image 2--Demonstration/2_Demonstration_f.png: no such file" in (
        lenient.stderr)
    assert "images kept 2 of 6 (dropped: missing 1, no_faces 3)" in lenient.stdout
    assert len(read_records([out / "val.record"])) == 2


def test_step_commands(wider, tmp_path, capsys):
    voc, csv, out = (str(tmp_path / n) for n in ("voc", "labels.csv", "out"))
    assert cli.main(["dataset", "to-voc", "--annotations", wider.annotations, "--images",
                     wider.images, "--output-dir", voc]) == 0
    assert cli.main(["dataset", "to-csv", "--voc-dir", voc, "--output", csv]) == 0
    assert cli.main(["dataset", "to-tfrecord", "--csv", csv, "--images", wider.images,
                     "--output-dir", out, "--split", "val"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 3 VOC XML files" in printed
    assert "4 rows (4 boxes) from 3 XML files" in printed
    assert "wrote 3 record(s) in 1 shard(s)" in printed


def test_convert_records_the_source_archives(wider, tmp_path):
    out = tmp_path / "out"
    code = cli.main(["dataset", "convert", "--annotations", str(wider.annotations),
                     "--images", str(wider.images), "--output-dir", str(out), "--no-progress",
                     "--source", "WIDER_val.zip=sha256:" + "a" * 64,
                     "--source", "wider_face_split.zip=md5:" + "b" * 32])
    assert code == 0
    manifest = json.loads((out / "dataset.json").read_text())
    (entry,) = manifest["splits"].values()
    assert entry["inputs"]["sources"] == {"WIDER_val.zip": "sha256:" + "a" * 64,
                                          "wider_face_split.zip": "md5:" + "b" * 32}


def test_convert_refuses_a_source_without_a_checksum(wider, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["dataset", "convert", "--annotations", str(wider.annotations),
                  "--images", str(wider.images), "--output-dir", str(tmp_path / "o"),
                  "--source", "WIDER_val.zip"])
    assert stop.value.code == 2
    assert "NAME=CHECKSUM" in capsys.readouterr().err
