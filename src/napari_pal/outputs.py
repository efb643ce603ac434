"""What napari-pal does with its outputs, in the CLI and the widget alike: never into the
input folder, never over an existing product unless told (``--overwrite``), never
half-written, never a mix of two runs."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from napari_pal.errors import PalError


def outside(out: str | Path, data: str | Path, fix: str = "choose --out elsewhere") -> None:
    """Nothing napari-pal does writes into a user's input folder: the one check, used by the
    CLI and by the widget's jobs."""
    out, data = Path(out).resolve(), Path(data).resolve()
    if out == data or data in out.parents:
        raise PalError(f"{out} lies inside the input folder {data}; napari-pal never writes "
                       f"into an input folder: {fix}")


def check_file(path: Path, overwrite: bool, flag: str = "--out") -> None:
    """An existing file is replaced only with --overwrite."""
    if path.is_dir():
        raise PalError(f"{flag} {path} is a folder; give a file name, e.g. {path / 'scores.csv'}")
    if path.exists() and not overwrite:
        raise PalError(f"{path} exists; pass --overwrite to replace it, or choose another {flag}")


def check_folder(path: Path, overwrite: bool, flag: str = "--out") -> None:
    """A non-empty folder is replaced (as a whole) only with --overwrite."""
    if path.exists() and not path.is_dir():
        raise PalError(f"{flag} {path} is a file; give a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise PalError(f"{path} is not empty; pass --overwrite to replace its content as a "
                       f"whole, or choose another {flag}")


@contextlib.contextmanager
def new_folder(path: Path) -> Iterator[Path]:
    """Yield a fresh sibling folder to fill; on success it takes ``path``'s place (the old
    content is removed only after the swap), on failure it is removed and ``path`` is left
    as it was. At no moment does ``path`` hold files of two runs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        old.rmdir()
        path.rename(old)
    tmp.rename(path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
