"""Class names from an Object Detection API label_map.pbtxt, for the bundle's labels.txt.

Reads the label map's text format for what a detector's label map holds: `item { id: N
name: '...' display_name: '...' }` blocks and # comments. Any other field is refused
with its line (write labels.txt by hand for such a map). A class's label is its
display_name when given, else its name; ids must be 1..K, each once: the model's class
i (after background) is line i of labels.txt.
"""

import ast
import re

from facekit.model.errors import ModelError

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\f\v]+) | (?P<newline>\n) | (?P<comment>\#[^\n]*)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*) | (?P<punct>[{}:])
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*') | (?P<number>[-+]?\d+)
""", re.VERBOSE)

_FIELDS = {"id": "number", "name": "string", "display_name": "string"}


def _tokens(path, text):
    line, pos = 1, 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ModelError("{}:{}: cannot read {!r} in a label map".format(
                path, line, text[pos:pos + 20]))
        kind = match.lastgroup
        if kind == "newline":
            line += 1
        elif kind not in ("space", "comment"):
            yield kind, match.group(), line
        pos = match.end()


def read_label_map(path, label_field="display_name"):
    """Labels of the label map at `path`, in id order (id 1 first).

    label_field: "display_name" (a class's display_name when given, else its name: what people
    read, for labels.txt) or "name" (what the records' class text must match, for the
    dataset tools)."""
    with open(path, "r", encoding="utf-8") as fh:
        tokens = list(_tokens(path, fh.read()))
    tokens.reverse()
    last_line = [1]

    def take(kind=None, value=None):
        if not tokens:
            raise ModelError("{}:{}: unexpected end of the label map".format(path, last_line[0]))
        token = tokens.pop()
        last_line[0] = token[2]
        if (kind and token[0] != kind) or (value and token[1] != value):
            raise ModelError("{}:{}: expected {}, found {!r}".format(
                path, token[2], value or kind, token[1]))
        return token

    items = {}
    while tokens:
        _, _, line = take("word", "item")
        take("punct", "{")
        item = {}
        while True:
            kind, field, field_line = take()
            if field == "}":
                break
            if kind != "word" or field not in _FIELDS:
                raise ModelError("{}:{}: field {!r} is not read here (only id, name, "
                                 "display_name): write labels.txt yourself".format(
                                     path, field_line, field))
            take("punct", ":")
            _, value, _ = take(_FIELDS[field])
            item[field] = int(value) if field == "id" else ast.literal_eval(value)
        if "id" not in item or not (item.get("display_name") or item.get("name")):
            raise ModelError("{}:{}: item needs an id and a name".format(path, line))
        if item["id"] in items:
            raise ModelError("{}:{}: id {} appears twice".format(path, line, item["id"]))
        if label_field == "name" and not item.get("name"):
            raise ModelError("{}:{}: item {} has no name (the records match classes by "
                             "name)".format(path, line, item["id"]))
        items[item["id"]] = (item.get("display_name") if label_field == "display_name" else None) \
            or item["name"]
    if sorted(items) != list(range(1, len(items) + 1)):
        raise ModelError("{}: ids are {}: they must be 1..{} (0 is the background)".format(
            path, sorted(items) or "none", max(len(items), 1)))
    return [items[i] for i in sorted(items)]
