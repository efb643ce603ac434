"""What the benchmark scripts share on their command lines: the spoilt folder they read."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def spoilt_folder_parser(prog: str, description: str | None, out_help: str
                         ) -> argparse.ArgumentParser:
    """A parser with --folder (a spoilt copy made by `napari-pal corrupt`), --clean (the
    folder it came from, for the true masks) and --out."""
    from napari_pal.bench.benchmark import default_data

    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", required=True, help="spoilt folder (napari-pal corrupt)")
    p.add_argument("--clean", default=str(default_data()), help="the clean folder it came from")
    p.add_argument("--out", required=True, help=out_help)
    return p


def run_or_report(name: str, run: Callable[[argparse.Namespace], int],
                  a: argparse.Namespace) -> int:
    """Run a benchmark; bad input (napari-pal's own error) is one line and exit status 2."""
    from napari_pal.errors import PalError

    try:
        return run(a)
    except PalError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
