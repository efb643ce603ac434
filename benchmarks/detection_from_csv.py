"""ROC AUC, average precision and precision@k of a scores.csv against a corruption.csv.

Usage: python benchmarks/detection_from_csv.py SCORES.csv CORRUPTION.csv [COLUMN ...]
Low values of a column mean "likely bad" for quality* and dice* columns; for dist* and
|offset*| the sign is flipped so that higher always means "more likely bad".
"""

import csv
import sys

import numpy as np

from napari_pal.data.corruption import read_corruption_csv
from napari_pal.scoring.detection import detection_metrics


def badness(rows: list[dict], column: str) -> np.ndarray:
    """Higher = more likely bad. A signal name without a class (``dist``, ``offset``,
    ``dice``) is averaged over the classes."""
    cols = [column] if column in rows[0] else [c for c in rows[0] if c.startswith(column + "_")]
    vals = np.array([[float(r[c]) for c in cols] for r in rows])
    vals = np.where(np.isfinite(vals), vals, 1e9)
    if column.startswith(("dist", "offset")):
        return np.abs(vals).mean(axis=1)
    return -vals.mean(axis=1)


def main() -> None:
    scores, truth_csv, *columns = sys.argv[1:]
    rows = list(csv.DictReader(open(scores)))
    truth = read_corruption_csv(truth_csv)
    rows = [r for r in rows if r["name"] in truth]
    is_bad = np.array([truth[r["name"]] for r in rows])
    for column in columns or ["quality"]:
        if not any(c == column or c.startswith(column + "_") for c in rows[0]):
            continue
        m = detection_metrics(is_bad, badness(rows, column))
        print(f"{column}: n={len(rows)} bad={int(is_bad.sum())} "
              + " ".join(f"{k}={v:.3f}" for k, v in m.items()))


if __name__ == "__main__":
    main()
