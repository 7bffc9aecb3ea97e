"""Command-line options declared as data, each once, and the argparse parsers built from them.

A command's options are a table: opt() for an option that takes a value (or a positional,
whose name has no dashes), flag() for an on/off switch, group() for options shown under a
heading (or mutually exclusive). Options several commands share are declared once, as a
module-level value, and named in each table; a command is command(), and add_commands()
builds a group of them under a `facekit` group such as `model`. `facekit` (facekit.cli) and
the kit's `facekit-detector` and health gate (facekit.detector) build their parsers this way.

Python 3.5, standard library only: the Vision Kit uses it.
"""

import argparse
import collections

Option = collections.namedtuple("Option", ["flags", "settings"])
Option.__doc__ = """One add_argument call: flags (a tuple of names) and its keyword settings."""

Group = collections.namedtuple("Group", ["title", "description", "options", "exclusive"])
Group.__doc__ = """Options shown under a title (an argument group), or, with exclusive, a
mutually exclusive group (no title)."""

Command = collections.namedtuple("Command", ["name", "func", "help", "description",
                                             "options", "epilog"])
Command.__doc__ = """A subcommand: its name, the function it runs (func(args) -> exit status),
the one-line help in its group's list, the description of its --help, its options and an
epilog (text after the options, or None)."""


def opt(flags, metavar, help, **settings):  # noqa: A002 - argparse's own word
    """An option that takes a value, `--name VALUE` (flags: one name or a tuple of them), or a
    positional when the name has no leading dash. Other add_argument settings (type,
    default, required, choices, action...) go as keywords."""
    settings.update(metavar=metavar, help=help)
    return Option(flags if isinstance(flags, tuple) else (flags,), settings)


def flag(flags, help, **settings):  # noqa: A002 - argparse's own word
    """An on/off switch (store_true unless settings say otherwise)."""
    settings.setdefault("action", "store_true")
    settings.update(help=help)
    return Option(flags if isinstance(flags, tuple) else (flags,), settings)


def group(title, *options, description=None, exclusive=False):
    """Options under a heading; exclusive=True makes them mutually exclusive instead."""
    return Group(title, description, options, exclusive)


def command(name, func, help, description, *options, epilog=None):  # noqa: A002
    return Command(name, func, help, description, options, epilog)


def add_options(parser, options):
    """Add a table of Options and Groups to an argparse parser (or argument group)."""
    for item in options:
        if isinstance(item, Group):
            if item.exclusive:
                target = parser.add_mutually_exclusive_group()
            else:
                target = parser.add_argument_group(item.title, item.description)
            add_options(target, item.options)
        else:
            parser.add_argument(*item.flags, **item.settings)


class Formatter(argparse.HelpFormatter):
    """argparse's help layout, but a description or epilog written on several lines (usage
    examples, a protocol's layout) keeps its lines; one written as one string is wrapped."""

    def _fill_text(self, text, width, indent):
        if "\n" in text.strip("\n"):
            return "".join(indent + line for line in text.splitlines(True))
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


def add_commands(subparsers, name, help, description, commands, *, epilog=None):  # noqa: A002
    """The group `name` on a parser's subparsers, with its commands (epilog: the group's
    --help ends with it). Every command's parser is also set as args.parser (for usage
    errors the options cannot express) and its function as args.func."""
    raw = Formatter
    parent = subparsers.add_parser(name, help=help, description=description, epilog=epilog,
                                   formatter_class=raw)
    children = parent.add_subparsers(
        dest="command", metavar="{{{}}}".format(",".join(c.name for c in commands)))
    children.required = True
    for item in commands:
        parser = children.add_parser(item.name, help=item.help, description=item.description,
                                     epilog=item.epilog, formatter_class=raw)
        add_options(parser, item.options)
        parser.set_defaults(func=item.func, parser=parser)
    return parent
