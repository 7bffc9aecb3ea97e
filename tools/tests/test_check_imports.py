"""tools/check_imports.py: the kit's code reaches only what the kit needs, and no private name
crosses a module, on small trees written by the tests and on the repository itself."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import check_imports  # noqa: E402  (tools/ is not a package)


def tree(root, files):
    """Write {relative path: text} under root/facekit (packages get an empty __init__.py)."""
    for name, text in files.items():
        path = os.path.join(str(root), "facekit", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        folder = os.path.dirname(path)
        while folder != str(root):
            init = os.path.join(folder, "__init__.py")
            if not os.path.exists(init):
                open(init, "w").close()
            folder = os.path.dirname(folder)
        with open(path, "w") as handle:
            handle.write(text)
    return str(root)


def check(src, capsys, *argv):
    status = check_imports.main(["--src", src] + list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err.splitlines()


def test_the_repository_passes_and_its_kit_closure_is_the_listed_modules(capsys):
    status, out, errors = check(check_imports.SRC, capsys)
    assert (status, errors) == (0, [])
    assert "no private name crosses a module" in out
    status, out, _ = check(check_imports.SRC, capsys, "--kit-files")
    files = out.split()
    assert "src/facekit/detector/service.py" in files
    outside = {f for f in files if not f.startswith("src/facekit/detector/")}
    listed = {check_imports.module_files()[m] for m in check_imports.KIT_MAY_IMPORT}
    assert {os.path.join(check_imports.ROOT, f) for f in outside} <= listed
    assert not any(f.startswith(("src/facekit/cli", "src/facekit/eval", "src/facekit/dataset"))
                   for f in files)


def test_an_import_that_runs_back_up_is_named_with_its_chain(tmp_path, capsys):
    src = tree(tmp_path, {
        "detector/service.py": "import json\nfrom facekit.detector import outputs\n",
        # A lazy import inside a function counts as well: it runs on the kit when called.
        "detector/outputs.py": "def f():\n    from facekit.cli import model\n    return model\n",
        "cli/model.py": "import pandas\n",
        "errors.py": "",
    })
    status, _, errors = check(src, capsys)
    assert status == 1
    assert len(errors) == 1, errors
    assert "detector/outputs.py:2: the kit's code reaches facekit.cli.model (facekit.cli.model " \
           "<- facekit.detector.outputs): facekit.detector may use " \
           "only facekit, facekit.argtypes," in errors[0]
    # What lies behind the refused module is not followed: pandas is not reported too.
    assert "pandas" not in errors[0]


def test_third_party_imports_of_the_kit_must_be_what_a_kit_has(tmp_path, capsys):
    src = tree(tmp_path, {
        "detector/decode.py": "import math\nimport numpy as np\nimport scipy.special\n",
        "detector/client.py": "def f():\n    from aiy.vision import inference\n"
                              "    from google.protobuf.message import DecodeError\n",
    })
    status, _, errors = check(src, capsys)
    assert status == 1 and len(errors) == 1, errors
    assert "detector/decode.py:3: the kit's code imports scipy, which a Vision Kit" in errors[0]


def test_private_names_may_not_cross_modules(tmp_path, capsys):
    src = tree(tmp_path, {
        "detector/tensors.py": "def _rows():\n    pass\n\ndef rows():\n    return _rows()\n",
        "detector/decode.py": "from facekit.detector.tensors import _rows, rows\n"
                              "from facekit.detector import tensors\n"
                              "x = tensors._rows()\ny = tensors.__doc__\n",
        "eval/run.py": "from facekit.detector import decode as d\nz = d._private\n",
    })
    status, _, errors = check(src, capsys)
    assert status == 1
    assert errors == [
        "check_imports: detector/decode.py:1: imports the private name _rows from "
        "facekit.detector.tensors: give it a public name and a docstring, or keep the job in "
        "one module".replace("detector/", os.path.relpath(src, check_imports.ROOT)
                             + "/facekit/detector/"),
        "check_imports: {}/facekit/detector/decode.py:3: uses the private name tensors._rows "
        "of facekit.detector.tensors: give it a public name and a docstring".format(
            os.path.relpath(src, check_imports.ROOT)),
        "check_imports: {}/facekit/eval/run.py:2: uses the private name d._private of "
        "facekit.detector.decode: give it a public name and a docstring".format(
            os.path.relpath(src, check_imports.ROOT)),
    ]
