#!/usr/bin/env python3
"""Checks how facekit's modules import each other (`make lint` runs it).

1. The kit's code stands alone. Everything facekit.detector imports, directly or through what
   it imports (imports inside functions included), must be facekit.detector itself or one of
   KIT_MAY_IMPORT below, each with the reason the kit needs it; its third-party imports must
   be what a Vision Kit has (KIT_THIRD_PARTY). The Pi Zero runs Python 3.5 and has no wheels
   for the controller's stack, so an import that runs back up to the CLI, the evaluation or
   the data set tools is refused with the file, the line and the chain that reaches it.
2. No private name crosses a module boundary: `from facekit.x import _name` and
   `module._name` of a facekit module are refused outside the tests. A helper another module
   needs gets a public name and a docstring.

    tools/check_imports.py               run both checks; exit 1 naming every violation
    tools/check_imports.py --kit-files   print the files of the kit's closure (for vermin -t=3.5)

Standard library only; reads the files, imports none of them.
"""

import argparse
import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
KIT = "facekit.detector"

# What the kit's code may use outside facekit.detector, and why.
KIT_MAY_IMPORT = {
    "facekit": "the package's version, which the detector logs and reports",
    "facekit.errors": "FacekitError, the base of the detector's DetectorError",
    "facekit.argtypes": "the option types of facekit-detector and of its health gate",
    "facekit.options": "the option tables those two command lines are built from",
    "facekit.files": "the sha256 of a release's files (through facekit.model.bundle)",
    "facekit.model": "the package of the three below; its __init__ imports nothing",
    "facekit.model.bundle": "a release is verified against the manifest the controller wrote",
    "facekit.model.errors": "BundleError and ModelError, raised by bundle and the anchors reader",
    "facekit.model.anchors_file": "the one reader of anchors.txt, shared with the bundling",
}
# Third-party packages of the kit: Raspbian's python3-numpy and python3-protobuf, and AIY's
# library (the image's, or aiy-projects-python).
KIT_THIRD_PARTY = {"numpy": "python3-numpy", "aiy": "the AIY library",
                   "google": "python3-protobuf (the AIY library's messages)"}


def module_files(src=SRC):
    """{module name: file} of every module of the facekit package (tests left out)."""
    found = {}
    top = os.path.join(src, "facekit")
    for folder, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "tests"))
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, src)[:-3].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


class Imports(object):
    """The imports of one module: facekit modules and other top-level packages, with lines."""

    def __init__(self, name, path, modules):
        self.name = name
        self.path = path
        with open(path, encoding="utf-8") as handle:
            self.tree = ast.parse(handle.read(), path)
        self.facekit = []   # (module, line)
        self.others = []    # (top-level package, line)
        self.bound = {}     # local name -> facekit module it names
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self._add(alias.name, node.lineno, modules)
                    if alias.name.startswith("facekit"):
                        self.bound[alias.asname or alias.name.split(".")[0]] = (
                            alias.name if alias.asname else "facekit")
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                    + ([node.module] if node.module else []))
                self._add(base, node.lineno, modules)
                for alias in node.names:
                    child = "{}.{}".format(base, alias.name)
                    if child in modules:
                        self._add(child, node.lineno, modules)
                        self.bound[alias.asname or alias.name] = child
                    elif base.startswith("facekit"):
                        self.names_from = getattr(self, "names_from", [])
                        self.names_from.append((base, alias.name, node.lineno))

    def _add(self, module, line, modules):
        if module == "facekit" or module.startswith("facekit."):
            # Importing a.b.c runs a, a.b and a.b.c.
            parts = module.split(".")
            for end in range(1, len(parts) + 1):
                prefix = ".".join(parts[:end])
                if prefix in modules:
                    self.facekit.append((prefix, line))
        elif module:
            self.others.append((module.split(".")[0], line))


def read_all(src=SRC):
    modules = module_files(src)
    return {name: Imports(name, path, modules) for name, path in modules.items()}


def kit_closure(everything):
    """{module: (importer, line)} of every facekit module the kit's code reaches (the kit's
    own modules map to None), and the problems found on the way."""
    reached = {name: None for name in everything if name == KIT or name.startswith(KIT + ".")}
    problems = []
    queue = sorted(reached)
    while queue:
        name = queue.pop(0)
        info = everything[name]
        refused = {}  # line -> the deepest module of that import outside what the kit may use
        for module, line in info.facekit:
            if module in reached:
                continue
            if not (module == KIT or module.startswith(KIT + ".")) and module not in KIT_MAY_IMPORT:
                if len(module) > len(refused.get(line, "")):
                    refused[line] = module
                continue
            reached[module] = (name, line)
            queue.append(module)
        for line, module in sorted(refused.items()):
            problems.append("{}:{}: the kit's code reaches {} ({}): facekit.detector may "
                            "use only {} besides itself; move what the kit needs into "
                            "facekit.detector or the package level".format(
                                os.path.relpath(info.path, ROOT), line, module,
                                " <- ".join([module] + _chain(reached, name)),
                                ", ".join(sorted(KIT_MAY_IMPORT))))
    stdlib = getattr(sys, "stdlib_module_names", None)
    for name in sorted(reached):
        info = everything[name]
        for package, line in info.others:
            if stdlib is not None and package in stdlib or package in KIT_THIRD_PARTY:
                continue
            if stdlib is None and package in sys.builtin_module_names:
                continue
            problems.append("{}:{}: the kit's code imports {}, which a Vision Kit does not "
                            "have (it has the standard library and {})".format(
                                os.path.relpath(info.path, ROOT), line, package,
                                ", ".join("{} ({})".format(k, v)
                                          for k, v in sorted(KIT_THIRD_PARTY.items()))))
    return reached, problems


def _chain(reached, module):
    chain = [module]
    while reached.get(chain[-1]):
        chain.append(reached[chain[-1]][0])
    return chain


def private_crossings(everything):
    """`from facekit.x import _y` and `module._y` across facekit's modules."""
    problems = []
    for name in sorted(everything):
        info = everything[name]
        for base, imported, line in getattr(info, "names_from", []):
            if imported.startswith("_") and not imported.startswith("__"):
                problems.append("{}:{}: imports the private name {} from {}: give it a public "
                                "name and a docstring, or keep the job in one module".format(
                                    os.path.relpath(info.path, ROOT), line, imported, base))
        for node in ast.walk(info.tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in info.bound and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and info.bound[node.value.id] != name):
                problems.append("{}:{}: uses the private name {}.{} of {}: give it a public "
                                "name and a docstring".format(
                                    os.path.relpath(info.path, ROOT), node.lineno,
                                    node.value.id, node.attr, info.bound[node.value.id]))
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="tools/check_imports.py",
        description="Check that facekit.detector (the Vision Kit's code) reaches only the "
                    "modules the kit needs, and that no private name crosses a module "
                    "boundary. Exit 1 naming each violation with its file and line.")
    parser.add_argument("--kit-files", action="store_true",
                        help="print the files of the modules the kit's code reaches "
                             "(space-separated, relative to the repository) and exit")
    parser.add_argument("--src", default=SRC, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    everything = read_all(args.src)
    reached, problems = kit_closure(everything)
    if args.kit_files:
        print(" ".join(sorted(os.path.relpath(everything[m].path, ROOT) for m in reached)))
        return 0
    problems += private_crossings(everything)
    for problem in problems:
        sys.stderr.write("check_imports: {}\n".format(problem))
    if not problems:
        kit_own = sum(1 for m in reached if m == KIT or m.startswith(KIT + "."))
        print("check_imports: the kit's code is {} modules of facekit.detector and {} others "
              "({}); no private name crosses a module".format(
                  kit_own, len(reached) - kit_own, ", ".join(sorted(
                      m for m in reached if not m.startswith(KIT)))))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
