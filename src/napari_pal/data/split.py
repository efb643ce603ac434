"""Split files: a CSV naming each image's part (train, test ...), selected as FILE:PART."""

from __future__ import annotations

import csv
from pathlib import Path

from napari_pal.errors import DatasetError


def read_split(path: Path) -> dict[str, str]:
    """name -> split part, from a CSV with ``name`` and ``split`` columns."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
            fields = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(f"cannot read split file '{path}' ({err}). "
                           "Fix: give a CSV file with columns name,split.") from err
    if "name" not in fields or "split" not in fields:
        raise DatasetError(f"split file '{path}' needs columns 'name' and 'split' (has "
                           f"{list(fields)}). Fix: add a header line 'name,split'.")
    out: dict[str, str] = {}
    for row in rows:
        name, part = (row["name"] or "").strip(), (row["split"] or "").strip()
        if name and out.setdefault(name, part) != part:
            raise DatasetError(f"split file '{path}' puts '{name}' in two parts. "
                               "Fix: list each name once.")
    return out


def parse_split_spec(spec: str) -> tuple[Path, str]:
    """'DATA/split.csv:train' -> (Path('DATA/split.csv'), 'train')."""
    file, sep, part = str(spec).rpartition(":")
    if not sep or not file or not part.strip():
        raise DatasetError(f"split '{spec}' is not FILE:PART. "
                           "Fix: write e.g. DATA/split.csv:train.")
    return Path(file), part.strip()
