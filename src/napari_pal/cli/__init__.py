"""The ``napari-pal`` command line: train, score, predict, evaluate, corrupt (and, from the
``bench`` extra, benchmark and speed, imported only when asked for).

Start-up imports no torch: each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from napari_pal.errors import PalError

DESCRIPTION = """Pick-and-Learn for radiographs: train a segmenter that is not fooled by bad
masks, and rank every mask of a folder from the worst up."""

EPILOG = """Start with: napari-pal train DATA --out RUN, then napari-pal score RUN DATA --out
scores.csv. 'napari-pal COMMAND --help' shows a command's options and defaults."""

#: sub-commands from the bench extra: name -> (module, one-line help shown in the list)
BENCH = {"benchmark": ("napari_pal.bench.benchmark",
                       "the paper's Table 1 grid on JSRT: Dice, detection, Fig. 4"),
         "speed": ("napari_pal.bench.speed",
                   "training/scoring throughput: product vs plain PyTorch")}


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, but not 'default: None' for options without one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or "default:" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def _common(p: argparse.ArgumentParser) -> None:
    p.formatter_class = _Formatter
    p.add_argument("--split", metavar="FILE:PART",
                   help="work on one part of a split file, e.g. DATA/split.csv:train")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("napari-pal")
    except PackageNotFoundError:
        from napari_pal import __version__

        return __version__


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; a bench sub-command's module is imported only when ``argv`` asks for it."""
    from napari_pal.cli import folders, score, train

    p = argparse.ArgumentParser(prog="napari-pal", description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"napari-pal {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    train.add_parser(sub, _common)
    score.add_parsers(sub, _common)
    folders.add_parsers(sub, _common)
    wanted = next((x for x in (argv or []) if not x.startswith("-")), None)
    for name, (module, help) in BENCH.items():
        if name == wanted:
            try:
                importlib.import_module(module).add_parser(sub)
            except ImportError as err:
                raise PalError(f"'{name}' needs the bench extra ({err}): "
                               "pip install 'napari-pal[bench]'") from err
        else:
            sub.add_parser(name, help=help, add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; with no command, print the list of commands and return 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        from napari_pal.cli.console import plain_warnings

        with warnings.catch_warnings():  # the plain format is the CLI's, not the caller's
            plain_warnings()
            return args.func(args)
    except PalError as exc:
        print(f"napari-pal: error: {exc}", file=sys.stderr)
        return 2


__all__ = ["build_parser", "main"]
