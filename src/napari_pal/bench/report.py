"""Results of ``napari-pal benchmark``: the CSV (one row per run), the Markdown tables
(aggregated over seeds, beside the paper's Table 1) and the Fig. 4 weight plots."""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from napari_pal.atomic import atomic_path, write_text

#: Zhu et al., MICCAI 2019, Table 1 ("Results on JSRT dataset"), copied from the paper:
#: (noise %, level) -> strategy -> (lungs, heart, clavicles, average). Level None: no noise.
PAPER_TABLE1: dict[tuple[int, str], dict[str, tuple[float, float, float, float]]] = {
    (0, "none"): {"baseline": (0.943, 0.941, 0.862, 0.915), "qam": (0.939, 0.923, 0.831, 0.898),
                  "qam_ocm": (0.941, 0.940, 0.852, 0.911)},
    (25, "1-8"): {"baseline": (0.868, 0.888, 0.538, 0.765), "qam": (0.925, 0.926, 0.748, 0.866),
                  "qam_ocm": (0.936, 0.925, 0.823, 0.895)},
    (50, "1-8"): {"baseline": (0.873, 0.884, 0.539, 0.765), "qam": (0.922, 0.925, 0.726, 0.857),
                  "qam_ocm": (0.936, 0.929, 0.828, 0.898)},
    (75, "1-8"): {"baseline": (0.820, 0.828, 0.512, 0.720), "qam": (0.898, 0.825, 0.536, 0.753),
                  "qam_ocm": (0.937, 0.939, 0.809, 0.895)},
    (25, "5-13"): {"baseline": (0.865, 0.857, 0.422, 0.715), "qam": (0.893, 0.835, 0.615, 0.781),
                   "qam_ocm": (0.935, 0.935, 0.801, 0.890)},
    (50, "5-13"): {"baseline": (0.755, 0.807, 0.393, 0.652), "qam": (0.828, 0.853, 0.491, 0.714),
                   "qam_ocm": (0.942, 0.942, 0.853, 0.912)},
    (75, "5-13"): {"baseline": (0.745, 0.738, 0.381, 0.621), "qam": (0.770, 0.772, 0.366, 0.636),
                   "qam_ocm": (0.938, 0.937, 0.801, 0.892)},
}
PAPER_CLASSES = ("lungs", "heart", "clavicles")
PAPER_OPS = "erode+dilate"  # the paper's noise: each corrupted mask eroded OR dilated
STRATEGY_LABEL = {"baseline": "baseline", "qam": "QAM", "qam_ocm": "QAM+OCM"}

#: Columns that identify a run; a row with the same values is not run again.
KEY = ("protocol", "size", "epochs", "batch_size", "lr", "lam", "qam_loss", "ops",
       "fraction", "level", "strategy", "seed")
#: Key columns that make one table (a protocol and the method's settings).
PROTOCOL_KEY = ("protocol", "size", "epochs", "batch_size", "lr", "lam", "qam_loss")
#: Values of key columns added later, for rows of older CSVs that lack them.
KEY_DEFAULTS = {"lam": "2.0", "qam_loss": "bce+dice"}
SCORES = ("quality", "qam", "cleanlab")  # detection scores, see benchmark_detection
METRICS = ("auc", "ap", "p_at_k")


def row_key(row: dict) -> tuple[str, ...]:
    return tuple(str(row.get(k, KEY_DEFAULTS.get(k, ""))) for k in KEY)


def read_rows(path: Path) -> list[dict[str, str]]:
    if not Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_rows(path: Path, rows: Sequence[dict]) -> None:
    """The whole CSV, atomically (an interrupted grid keeps every finished row)."""
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", restval="")
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock (POSIX) so benchmark processes can share one --out folder."""
    try:
        import fcntl
    except ImportError:  # Windows: one process per folder
        yield
        return
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)  # an empty lock file, never written
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def add_row(path: Path, row: dict) -> list[dict]:
    """Put one finished run into the CSV (replacing a row with its key) and return all rows;
    rows that other processes wrote meanwhile are kept."""
    path = Path(path)
    with _locked(path.parent / (path.name + ".lock")):
        rows = [r for r in read_rows(path) if row_key(r) != row_key(row)] + [row]
        write_rows(path, rows)
    return rows


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _pm(values: Sequence[float], digits: int = 3) -> str:
    vals = [v for v in values if math.isfinite(v)]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{np.mean(vals):.{digits}f} ± {np.std(vals, ddof=1):.{digits}f}"


def _groups(rows: Iterable[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        k = (*(str(r.get(c, KEY_DEFAULTS.get(c, ""))) for c in PROTOCOL_KEY), str(r["ops"]),
             int(r["fraction"]), str(r["level"]), str(r["strategy"]))
        out.setdefault(k, []).append(r)
    order = {"none": 0, "1-8": 1, "5-13": 2}
    strat = {"baseline": 0, "qam": 1, "qam_ocm": 2}
    n = len(PROTOCOL_KEY)
    return dict(sorted(out.items(), key=lambda kv: (
        kv[0][:5], kv[0][n] != PAPER_OPS, kv[0][n], order.get(kv[0][n + 2], 9), kv[0][n + 2],
        kv[0][n + 1], strat.get(kv[0][n + 3], 9), kv[0][5:n])))


def _tables(groups: dict[tuple, list[dict]]) -> list[tuple]:
    """One table per protocol and λ / QAM-loss variant; runs without λ ("-": baseline,
    qam) join each variant they match, and make a table of their own only where none ran."""
    n = len(PROTOCOL_KEY)
    weighted = sorted({k[:n] for k in groups if k[5] != "-"})
    plain = sorted({k[:n] for k in groups if k[5] == "-" and not any(
        w[:5] == k[:5] and k[6] in ("-", w[6]) for w in weighted)})
    return weighted + plain


def _classes(rows: Sequence[dict]) -> list[str]:
    found = [k[5:] for k in rows[0] if k.startswith("dice_") and k != "dice_mean"] if rows else []
    return [c for c in PAPER_CLASSES if c in found] + [c for c in found if c not in PAPER_CLASSES]


def markdown(rows: Sequence[dict]) -> str:
    """Dice table (mean ± sample std over seeds) beside the paper's, then the detection table."""
    if not rows:
        return "# Benchmark\n\nNo finished runs yet.\n"
    classes = _classes(rows)
    lines = ["# Benchmark: Pick-and-Learn on JSRT", "",
             "Test Dice of the final model (no model selection) on the clean test masks; "
             "mean ± standard deviation over seeds where more than one ran. "
             "**paper** columns: Zhu et al., MICCAI 2019, Table 1, as printed (256 px, "
             "batch 32, lr 1e-4, their networks), not re-run here; `–` where the paper has "
             "no such row (e.g. one-sided noise).", ""]
    all_groups = _groups(rows)
    n = len(PROTOCOL_KEY)
    for proto in _tables(all_groups):
        name, size, epochs, batch, lr, lam, qam_loss = proto
        groups = {k: v for k, v in all_groups.items()
                  if k[:n] == proto or (k[:5] == proto[:5] and k[5] == "-"
                                        and k[6] in ("-", proto[6]))}
        method = "" if lam == "-" else f", λ {lam}, the QAM ranks the {qam_loss} loss"
        lines += [f"## Protocol `{name}`: {size} px, {epochs} epochs, batch {batch}, "
                  f"lr {lr}{method}", "", "### Dice", ""]
        head = ["noise", "level", "ops", "strategy", "seeds", *classes, "mean",
                *(f"paper {c}" for c in PAPER_CLASSES), "paper mean", "train s / run"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key, rs in groups.items():
            ops, frac, level, strategy = key[n:]
            paper = PAPER_TABLE1.get((frac, level), {}).get(strategy) \
                if ops == PAPER_OPS or frac == 0 else None
            cells = [f"{frac} %", level, ops, STRATEGY_LABEL.get(strategy, strategy),
                     str(len(rs)), *(_pm([_num(r[f"dice_{c}"]) for r in rs]) for c in classes),
                     _pm([_num(r["dice_mean"]) for r in rs]),
                     *((f"{v:.3f}" for v in paper) if paper else ["–"] * 4),
                     _pm([_num(r["train_s"]) for r in rs], 0)]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "### Detection of the corrupted training masks", "",
                  "Per-image scores on the training images (whose corruption is known): "
                  "**quality** = napari-pal's score (outline distance of mask vs prediction), "
                  "**QAM** = the quality module's λ·tanh(t), **cleanlab** = "
                  "`get_label_quality_scores(method='softmin')`, each class a two-class "
                  "problem, averaged over classes; all three from the same predictions. "
                  "*in sample*: the final model's predictions of its own training images (what "
                  "the product does); *out of fold*: K models of the same strategy, each "
                  "predicting the fold it did not train on. k = number of corrupted images; "
                  "P@k = precision among the k lowest-quality images.", ""]
        has_oof = any(r.get("auc_quality_oof", "") != "" for rs in groups.values() for r in rs)
        modes = [("in sample", "")] + ([("out of fold", "_oof")] if has_oof else [])
        head = ["noise", "level", "ops", "strategy", "seeds", "k", "predictions",
                *(f"{m} {s}" for s in SCORES for m in ("AUC", "AP", "P@k"))]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key, rs in groups.items():
            if key[n + 1] == 0:
                continue
            ops, frac, level, strategy = key[n:]
            for label, suffix in modes:
                got = [r for r in rs if r.get(f"auc_quality{suffix}", "") != ""]
                if not got:
                    continue
                cells = [f"{frac} %", level, ops, STRATEGY_LABEL.get(strategy, strategy),
                         str(len(got)), _pm([_num(r["n_corrupt"]) for r in got], 0), label,
                         *(_pm([_num(r.get(f"{m}_{s}{suffix}")) for r in got])
                           for s in SCORES for m in METRICS)]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def read_history(run_dir: Path) -> list[dict[str, float]]:
    rows = read_rows(Path(run_dir) / "history.csv")
    return [{k: _num(v) for k, v in r.items()} for r in rows]


def plot_fig4(curves: dict[str, list[dict[str, float]]], path: Path, title: str) -> Path | None:
    """The paper's Fig. 4: mean weight (batch mean = 1) of clean vs corrupted training
    masks per epoch, one pair of lines per run. None if no run has both weights."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    drawn = 0
    for i, (label, hist) in enumerate(curves.items()):
        pts = [(h["epoch"], h["clean_weight"], h["corrupt_weight"]) for h in hist
               if math.isfinite(h.get("clean_weight", math.nan))
               and math.isfinite(h.get("corrupt_weight", math.nan))]
        if not pts:
            continue
        ep, clean, bad = (np.array(v) for v in zip(*pts))
        color = f"C{i % 10}"
        ax.plot(ep, clean, "-", marker="o", ms=2.5, color=color, label=f"{label}: clean")
        ax.plot(ep, bad, "--", marker="x", ms=2.5, color=color, label=f"{label}: corrupted")
        starts = [h["epoch"] for h in hist if h.get("weighting") == 1]
        if starts and starts[0] > 1:  # before: warm-up, uniform weights
            ax.axvline(starts[0] - 0.5, color=color, lw=0.6, ls=":")
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.axhline(1.0, color="0.7", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean sample weight (batch mean = 1)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


__all__ = ["KEY", "PAPER_TABLE1", "markdown", "plot_fig4", "read_history", "read_rows",
           "row_key", "write_rows"]
