"""`facekit model check`: a frozen graph is refused before the Bonnet compiler sees it when
its tensors, shapes or ops are not what the compiler takes; every problem is listed."""

import json
import os

import graphs
import pytest
from test_anchors import needs_od_protos, run_facekit, write_config

from facekit import cli
from facekit.model import graphcheck

ADDV2_CAUSE = ("graphs frozen with TensorFlow >= 1.15 contain AddV2, which the Bonnet "
               "compiler rejects: export with TensorFlow 1.7 - 1.14")


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("graphs")


@pytest.fixture(scope="module")
def make_graph(graph_dir):
    """Build (once per module) a test graph with the given options; returns its path."""
    built = {}

    def make(**options):
        key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                           for k, v in options.items()))
        if key not in built:
            path = graph_dir / "graph{}.pb".format(len(built))
            graphs.write_graph(path, **options)
            built[key] = str(path)
        return built[key]

    return make


def check(capsys, *args):
    """(exit status, stdout, stderr lines) of `facekit model check ARGS`, in process."""
    status = cli.main(["model", "check"] + [str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, [line for line in err.splitlines() if line.startswith("facekit: error: ")]


def test_good_graph_passes_with_a_summary(make_graph, capsys):
    graph = make_graph()
    status, out, errors = check(capsys, graph)
    assert (status, errors) == (0, [])
    assert out.startswith("ok: {}: input Preprocessor/sub [1, 256, 256, 3]; 1278 anchors; "
                          "1 class; ".format(graph))
    assert "Conv2D 18" in out and "DepthwiseConv2dNative 3" in out and "Shape 10" in out


def test_json_result(make_graph, capsys):
    graph = make_graph()
    status, out, _ = check(capsys, graph, "--json")
    result = json.loads(out)
    assert status == 0 and result["ok"] is True and result["problems"] == []
    assert result["input"] == {"name": "Preprocessor/sub", "shape": [1, 256, 256, 3]}
    assert result["outputs"] == {"concat": [1, 1278, 1, 4], "concat_1": [1, 1278, 2]}
    assert result["expected"]["anchors"] == 1278 and result["expected"]["classes"] == 1
    assert set(result["ops"]) <= graphcheck.ALLOWED_OPS
    # Nothing behind Preprocessor/sub (the Placeholder, Preprocessor/mul) is on the path.
    assert "Placeholder" not in result["ops"] and "Mul" not in result["ops"]
    assert result["path_nodes"] == sum(result["ops"].values()) < result["nodes"]


def test_addv2_is_named_with_its_cause(make_graph, capsys):
    status, out, errors = check(capsys, make_graph(add_v2=True))
    assert status == 1 and out == ""
    assert len(errors) == 1
    assert "op AddV2 (1 node, e.g. FeatureExtractor/extra_add)" in errors[0]
    assert errors[0].endswith(ADDV2_CAUSE)


def test_every_problem_is_listed(make_graph, capsys):
    graph = make_graph(add_v2=True, num_classes=3)
    status, out, errors = check(capsys, graph, "--json")
    result = json.loads(out)
    assert status == 1 and result["ok"] is False
    assert len(result["problems"]) == 2 == len(errors)
    assert ADDV2_CAUSE in result["problems"][0]
    assert result["problems"][1].startswith("concat_1 (class scores) has shape [1, 1278, 4], "
                                            "expected [1, 1278, 2]")


def test_missing_output_node(make_graph, capsys):
    status, _, errors = check(capsys, make_graph(drop=["concat_1"]))
    assert status == 1
    assert errors == ["facekit: error: {}: node concat_1 (class scores output) is missing: "
                      "export with export_inference_graph.py --input_type image_tensor from "
                      "the Object Detection API".format(make_graph(drop=["concat_1"]))]


def test_missing_input_node_is_reported_once(make_graph, capsys):
    status, out, errors = check(capsys, make_graph(drop=["Preprocessor/sub"]), "--json")
    assert status == 1
    assert json.loads(out)["problems"] == [
        "node Preprocessor/sub (input) is missing: export with export_inference_graph.py "
        "--input_type image_tensor from the Object Detection API"]


def test_node_missing_on_the_path_is_named(make_graph, capsys):
    status, _, errors = check(capsys, make_graph(drop=["BoxPredictor_2/boxes/Reshape"]))
    assert status == 1
    assert len(errors) == 1
    assert errors[0].endswith("node BoxPredictor_2/boxes/Reshape (an input of concat) is not in "
                              "the graph")


def test_wrong_input_size(make_graph, capsys):
    graph = make_graph(input_size=300)
    status, _, errors = check(capsys, graph)
    assert status == 1
    assert "Preprocessor/sub has shape [1, 300, 300, 3], but the Bonnet compiler is told " \
           "[1, 256, 256, 3] (--input-size 256)" in errors[0]
    # Its 19,10,5,3,2 maps give 1911 anchors; told so, the graph passes.
    assert graphs.anchor_count(300) == 1911
    status, out, errors = check(capsys, graph, "--input-size", 300, "--anchors", 1911)
    assert (status, errors) == (0, []) and "1911 anchors" in out


def test_input_size_without_anchor_count_is_a_usage_error(make_graph, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["model", "check", make_graph(), "--input-size", "300"])
    assert exc.value.code == 2
    assert "--input-size 300 needs --anchors N or --config" in capsys.readouterr().err


def test_wrong_class_count(make_graph, capsys):
    graph = make_graph(num_classes=2)
    status, _, errors = check(capsys, graph)
    assert status == 1
    assert errors == ["facekit: error: {}: concat_1 (class scores) has shape [1, 1278, 3], "
                      "expected [1, 1278, 2] for 1278 anchors (the embedded SSD 256x256 "
                      "config) and 1 class + background".format(graph)]
    status, out, _ = check(capsys, graph, "--num-classes", 2)
    assert status == 0 and "2 classes" in out


def test_wrong_anchor_count(make_graph, capsys):
    graph = make_graph()
    status, _, errors = check(capsys, graph, "--anchors", 1917)
    assert status == 1 and len(errors) == 2
    assert "concat (box encodings) has shape [1, 1278, 1, 4], expected [1, 1917, 1, 4] or " \
           "[1, 1917, 4] for 1917 anchors (--anchors)" in errors[0]
    assert "concat_1 (class scores) has shape [1, 1278, 2], expected [1, 1917, 2]" in errors[1]


def test_ops_after_the_outputs_do_not_count(make_graph, capsys, tmp_path):
    # Exported graphs hold a Squeeze after concat and postprocessing ops the compiler
    # never sees; only the path between input and outputs matters.
    graph_def = graphcheck.read_graph_def(make_graph())
    squeeze = graph_def.node.add(name="Squeeze", op="Squeeze")
    squeeze.input.append("concat")
    squeeze.attr["T"].type = 1  # DT_FLOAT
    path = tmp_path / "squeeze.pb"
    path.write_bytes(graph_def.SerializeToString())
    status, _, errors = check(capsys, path)
    assert (status, errors) == (0, [])

    # The same op put on the path is refused, with the list of what the compiler takes.
    for node in graph_def.node:
        if node.name == "BoxPredictor_0/boxes/Reshape":
            node.op = "Squeeze"
    path.write_bytes(graph_def.SerializeToString())
    status, _, errors = check(capsys, path)
    assert status == 1
    assert "op Squeeze (1 node, e.g. BoxPredictor_0/boxes/Reshape) is on the path from " \
           "Preprocessor/sub to concat/concat_1 and the Bonnet compiler does not take it: it " \
           "takes only BiasAdd, ConcatV2, Const" in errors[0]


def test_only_the_batch_may_be_unknown():
    assert graphcheck.matches([None, 256, 256, 3], [1, 256, 256, 3])
    assert not graphcheck.matches([1, None, 256, 3], [1, 256, 256, 3])
    assert not graphcheck.matches([2, 256, 256, 3], [1, 256, 256, 3])
    assert not graphcheck.matches([1, 1278, 4], [1, 1278, 1, 4])
    assert not graphcheck.matches(None, [1, 1278, 2])


def test_not_a_graph(tmp_path, capsys):
    path = tmp_path / "model.pb"
    path.write_bytes(b"\xff\xff\xff not a graph")
    status = cli.main(["model", "check", str(path)])
    assert status == 1
    assert "not a TensorFlow GraphDef" in capsys.readouterr().err
    assert cli.main(["model", "check", str(tmp_path / "absent.pb")]) == 1
    assert "absent.pb" in capsys.readouterr().err


@needs_od_protos
def test_expectations_from_the_config(make_graph, tmp_path):
    good = write_config(tmp_path)
    result = run_facekit("model", "check", make_graph(), "--config", good)
    assert result.returncode == 0, result.stderr
    assert "1278 anchors; 1 class;" in result.stdout

    # A graph trained for another config: its size, classes and anchors all differ.
    other = write_config(tmp_path, "v1.config", size=300, extractor="ssd_mobilenet_v1",
                         num_layers=6, num_classes=4)
    result = run_facekit("model", "check", make_graph(), "--config", other, "--json")
    assert result.returncode == 1
    problems = json.loads(result.stdout)["problems"]
    assert len(problems) == 3
    assert "told [1, 300, 300, 3]" in problems[0]
    assert "for 1917 anchors (from {})".format(other) in problems[1]
    assert "expected [1, 1917, 5]" in problems[2]


def test_every_flag_has_help():
    parser = cli.build_parser()
    model = parser._subparsers._group_actions[0].choices["model"]
    commands = model._subparsers._group_actions[0].choices
    assert sorted(commands) == ["anchors", "attach-eval", "bundle", "check", "config", "progress",
                                "verify"]
    for name, command in commands.items():
        for action in command._actions:
            assert action.help and len(action.help) > 15, (name, action.dest)
    assert graphs.pipeline_config()  # the helper the config tests use renders


def test_graph_helper_script_and_determinism(tmp_path, make_graph):
    out = tmp_path / "g.pb"
    assert graphs.main([str(out), "--add-v2", "--drop", "concat_1", "--num-classes", "2"]) == 0
    names = {n.name: n.op for n in graphcheck.read_graph_def(str(out)).node}
    assert names["FeatureExtractor/extra_add"] == "AddV2" and "concat_1" not in names
    # Same options, same bytes; another seed, other weights.
    graphs.write_graph(tmp_path / "a.pb")
    with open(make_graph(), "rb") as fh:
        assert (tmp_path / "a.pb").read_bytes() == fh.read()
    graphs.write_graph(tmp_path / "b.pb", seed=1)
    assert (tmp_path / "b.pb").read_bytes() != (tmp_path / "a.pb").read_bytes()
    assert os.path.getsize(str(tmp_path / "b.pb")) < 200000


def test_graph_runs_and_its_outputs_depend_on_the_image(make_graph):
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    v1 = tf.compat.v1
    graph = v1.Graph()
    with graph.as_default():
        v1.import_graph_def(graphcheck.read_graph_def(make_graph()), name="")
    images = [np.zeros((1, 256, 256, 3), np.float32),
              np.random.RandomState(0).uniform(0, 255, (1, 256, 256, 3)).astype(np.float32)]
    with v1.Session(graph=graph) as session:
        runs = [session.run(["concat:0", "concat_1:0"], {"image:0": image}) for image in images]
    assert runs[0][0].shape == (1, 1278, 1, 4) and runs[0][1].shape == (1, 1278, 2)
    assert np.isfinite(runs[1][0]).all()
    assert not np.allclose(runs[0][0], runs[1][0]) and not np.allclose(runs[0][1], runs[1][1])


def test_unknown_static_shapes_are_measured_by_running_the_graph(make_graph, capsys):
    # An export with --input_type image_tensor knows no shapes statically: the check runs
    # the graph from Preprocessor/sub with a [1, 256, 256, 3] image and checks what comes out.
    graph = make_graph(dynamic_input=True)
    status, out, errors = check(capsys, graph, "--json")
    result = json.loads(out)
    assert (status, errors) == (0, [])
    assert result["shapes_measured"] is True
    assert result["outputs"] == {"concat": [1, 1278, 1, 4], "concat_1": [1, 1278, 2]}


def test_unknown_static_shapes_with_the_wrong_anchor_count(make_graph, capsys):
    graph = make_graph(dynamic_input=True)
    status, _, errors = check(capsys, graph, "--anchors", "1917")
    assert status == 1
    assert any("concat (box encodings) has shape [1, 1278, 1, 4], expected [1, 1917, 1, 4]" in e
               for e in errors), errors


def test_a_graph_that_cannot_run_at_the_compiler_size_fails(make_graph, capsys):
    # Built for 300x300 inputs: its reshapes do not fit a 256x256 image.
    graph = make_graph(dynamic_input=True, input_size=300)
    status, _, errors = check(capsys, graph, "--input-size", "256", "--anchors", "1278")
    assert status == 1
    assert any("cannot import or run the graph" in e for e in errors), errors
