"""Test stand-in for trained bundles: small SSD-shaped frozen graphs, bundled as training does.

The Vision Kit scenarios need model bundles to deploy without running the training stage.
This writes, for each seed, a bundle ARTIFACTS/<name>/<version>/ from a small frozen graph
with the exported detector's node names and shapes (src/tests/graphs.py: random weights, so
its "faces" are noise, but the whole chain runs on it: the bonnet runs it with TensorFlow,
the kit decodes what comes back). Its model.binaryproto is a stand-in too (a header line and
the graph's bytes): the software bonnet matches a compiled model to its bundle by sha256, and
Google's compiler cannot run here. current.json names the first bundle, as
roles/detector_training writes it. With --frames, the held-out images of the lab's WIDER
stand-in (widerface_sample.py) are written there for the bonnet's camera.

    python kit_bundles.py --artifacts DIR [--name face_ssd_embedded] [--seed 1 --seed 2]
                          [--frames DIR --frame-count 8]

Prints JSON: {"bundles": [{"seed", "version", "path"}], "current": version}. The same
seeds give the same versions (graphs are written deterministically).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "src", "tests"))
sys.path.insert(0, os.path.join(REPO, "src"))

import graphs  # noqa: E402 - the tests' graph builder

from facekit.model import bundle  # noqa: E402

HEADER = b"facekit-test-binaryproto 1 (a stand-in for the Bonnet compiler's output)\n"


def make_bundle(artifacts, name, seed, work):
    """One bundle from the test graph of `seed`; returns create_bundle's result."""
    graph = os.path.join(work, "graph-{}.pb".format(seed))
    graphs.write_graph(graph, seed=seed)
    compiled = os.path.join(work, "model-{}.binaryproto".format(seed))
    with open(graph, "rb") as src, open(compiled, "wb") as dst:
        dst.write(HEADER + src.read())
    config = os.path.join(work, "pipeline.config")
    with open(config, "w") as fh:
        fh.write(graphs.pipeline_config())
    anchors = os.path.join(work, "anchors.txt")
    _write_anchors(config, anchors)
    return bundle.create_bundle(name, artifacts, graph=graph, compiled=compiled, config=config,
                                anchors=anchors, labels=("face",), steps=seed,
                                extra={"input_size": 256, "test_graph_seed": seed})


def _write_anchors(config, out):
    # A process of its own: the config parser's generated protos need protobuf's pure-Python
    # implementation, and TensorFlow (imported above for the graph) has loaded the other one.
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python",
               PYTHONPATH=os.path.join(REPO, "src"))
    subprocess.run([sys.executable, "-m", "facekit.cli", "model", "anchors", config,
                    "--output", out], check=True, env=env, stdout=subprocess.DEVNULL)


def write_current(artifacts, name, result):
    path = os.path.join(artifacts, name, "current.json")
    with open(path, "w") as fh:
        json.dump({"name": name, "version": result["version"], "steps": None,
                   "path": result["path"]}, fh, indent=4, sort_keys=True)
        fh.write("\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", required=True, help="the artifacts/models directory")
    parser.add_argument("--name", default="face_ssd_embedded")
    parser.add_argument("--seed", type=int, action="append", help="one bundle per seed (1)")
    parser.add_argument("--frames", help="write held-out images of the lab sample here")
    parser.add_argument("--frame-count", type=int, default=8)
    args = parser.parse_args(argv)
    seeds = args.seed or [1]
    results = []
    with tempfile.TemporaryDirectory() as work:
        for seed in seeds:
            result = make_bundle(args.artifacts, args.name, seed, work)
            results.append({"seed": seed, "version": result["version"],
                            "path": result["path"]})
            if len(results) == 1:
                write_current(args.artifacts, args.name, result)
    if args.frames:
        sys.path.insert(0, HERE)
        import widerface_sample  # noqa: PLC0415

        os.makedirs(args.frames, exist_ok=True)
        widerface_sample._heldout(0, args.frame_count, args.frames)  # noqa: SLF001
    print(json.dumps({"bundles": results, "current": results[0]["version"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
