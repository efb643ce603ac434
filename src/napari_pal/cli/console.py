"""How the CLI talks: plain lines on stderr that never land inside a progress bar."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence


def plural(n: int, word: str) -> str:
    """'1 image', '2 images'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def say(text: str) -> None:
    """A status line on stderr, written above any progress bar that is showing."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)


def plain_warnings() -> None:
    """Show each distinct warning once, as 'napari-pal: warning: ...' (no source line,
    above the progress bar), not in Python's warning format."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = str(message)
        if text not in seen:
            seen.add(text)
            say(f"napari-pal: warning: {text}")

    warnings.showwarning = show
    # dedupe here, by text, not per source line; library deprecations stay hidden
    warnings.simplefilter("always", UserWarning)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Columns aligned: text left, numbers right."""
    cols = list(zip(header, *rows)) if rows else [(h,) for h in header]
    widths = [max(len(str(v)) for v in col) for col in cols]

    def fmt(row: Sequence[str], header_row: bool = False) -> str:
        cells = []
        for k, (v, w) in enumerate(zip(row, widths)):
            v = str(v)
            left = k == 0 or header_row or not _numeric(v)
            cells.append(v.ljust(w) if left else v.rjust(w))
        return indent + "  ".join(cells).rstrip()

    return "\n".join([fmt(header, True), *(fmt(r) for r in rows)])


def _numeric(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True
