"""``napari-pal score`` and ``predict``: use a trained run on a folder, with or without masks.

Images without masks are never scored as if annotated: ``predict`` drafts their masks,
``score`` lists them with status "draft".
"""

from __future__ import annotations

import argparse
import csv
import io
import math
from pathlib import Path

from napari_pal.cli.console import plural, say, table
from napari_pal.outputs import check_file, check_folder, new_folder, outside

WORST_SHOWN = 10


def add_parsers(sub: argparse._SubParsersAction, common) -> None:
    s = sub.add_parser(
        "score", help="rank every mask of DATA by quality, worst first",
        description="Score every annotated image of DATA with a trained run, worst first; "
        "images without masks are listed with status 'draft', not scored. A class the model "
        "has not learnt is flagged (warning, reliable_<class> = no), not ranked.")
    s.add_argument("run", help="run folder from 'train'")
    s.add_argument("data", help="dataset folder (images/, masks/ for the images to score)")
    s.add_argument("--out", required=True, help="CSV to write")
    s.add_argument("--maps", metavar="DIR", help="also write each image's per-pixel "
                   "disagreement map (float32 TIFF, 0 agree .. 1 confident conflict) to DIR")
    s.add_argument("--truth", help="corruption.csv to print the detection ROC AUC against "
                   "(default: DATA/corruption.csv if present)")
    s.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file / --maps folder")
    common(s)
    s.set_defaults(func=run_score)

    p = sub.add_parser(
        "predict", help="write predicted masks in DATA's layout and sizes",
        description="Predict the masks of every image of DATA (masks are not needed): the "
        "predictions of images without masks are draft masks to correct.")
    p.add_argument("run", help="run folder from 'train'")
    p.add_argument("data", help="folder with images/ (masks/ optional: only their layout "
                   "and format are copied)")
    p.add_argument("--out", required=True, help="folder for the predicted masks (must be "
                   "new or empty)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --out as a whole (never a mix of two runs)")
    common(p)
    p.set_defaults(func=run_predict)


def _open(a: argparse.Namespace, classes):
    from napari_pal.data.dataset import open_dataset

    return open_dataset(Path(a.data), split=a.split, classes=classes, unannotated=True)


def run_predict(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_pal.data.dataset import Layout, write_classes_txt, write_masks
    from napari_pal.method.inference import TrainedModel

    out = Path(a.out)
    outside(out, Path(a.data))
    check_folder(out, a.overwrite)
    model = TrainedModel.load(a.run)
    ds = _open(a, model.classes)
    given = [it.mask_paths[0].suffix for it in ds.items if it.annotated]
    suffix = given[0] if given else (".tif" if ds.layout is Layout.MULTICHANNEL else ".png")
    with new_folder(out) as tmp:
        for i in tqdm(range(len(ds)), desc="predicting", unit="img"):
            probs = model.predict(ds.read_image(i))
            write_masks(tmp, ds.layout, ds.classes, ds.names[i], probs > 0.5, suffix=suffix)
        write_classes_txt(tmp, ds.classes)
    drafts = ds.unannotated_names
    note = (f"; {plural(len(drafts), 'image')} had no masks in DATA: "
            f"{'their masks are drafts' if len(drafts) > 1 else 'its mask is a draft'} to correct"
            if drafts else "")
    print(f"wrote masks for {plural(len(ds), 'image')} to {out / 'masks'}{note}")
    return 0


def run_score(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_pal.method.inference import TrainedModel
    from napari_pal.scoring.quality import analyse

    out = Path(a.out)
    outside(out, Path(a.data))
    check_file(out, a.overwrite)
    maps = Path(a.maps) if a.maps else None
    if maps:
        outside(maps, Path(a.data))
        check_folder(maps, a.overwrite, "--maps")
    model = TrainedModel.load(a.run)
    full = _open(a, model.classes)
    drafts, ds = full.unannotated_names, full.annotated()

    def analyse_all(folder: Path | None):
        scores = []
        for r in tqdm(analyse(model, ds, maps=folder is not None), total=len(ds),
                      desc="scoring", unit="img"):
            scores.append(r.score)
            if folder is not None:
                from napari_pal.data.imagefiles import write_tiff

                write_tiff(folder / f"{r.score.name}.tif", r.disagreement.astype("float32"))
        return scores

    if maps is None:
        scores = analyse_all(None)
    else:
        with new_folder(maps) as tmp:
            scores = analyse_all(tmp)
    text, verdicts = score_table(scores, model.classes, drafts)
    from napari_pal.atomic import write_text

    write_text(out, text)
    _report(a, out, text, verdicts, model.classes, drafts)
    return 0


def score_table(scores, classes, drafts, *, warn: bool = True):
    """scores.csv's text (worst first over the reliable classes, drafts last, reliable_<class>
    columns) and the per-class verdicts; warns about each unreliable class."""
    from napari_pal.scoring import reliability
    from napari_pal.scoring.quality import scores_csv

    verdicts = reliability.assess(scores, classes)
    if warn:
        for line in reliability.warnings_text(verdicts):
            say(f"napari-pal: warning: {line}")
    scores = reliability.rank_by_reliable(scores, verdicts)
    status = {s.name: "scored" for s in scores} | {n: "draft" for n in drafts}
    text = scores_csv(scores, classes, status=status, unscored=drafts)
    return _with_reliability(text, verdicts), verdicts


def _with_reliability(text: str, verdicts) -> str:
    """Add reliable_<class> (yes/no) after the per-class qualities of every row."""
    rows = list(csv.reader(io.StringIO(text)))
    at = rows[0].index("quality") + 1 + len(verdicts)
    cols = [f"reliable_{c}" for c in verdicts]
    flags = ["yes" if v.reliable else "no" for v in verdicts.values()]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(rows[0][:at] + cols + rows[0][at:])
    for r in rows[1:]:
        draft = r[1] == ""
        w.writerow(r[:at] + ([""] * len(cols) if draft else flags) + r[at:])
    return buf.getvalue()


def _report(a, out: Path, text: str, verdicts, classes, drafts) -> None:
    """The worst masks as an aligned table, the drafts, and the AUC against known truth."""
    rows = list(csv.DictReader(io.StringIO(text)))
    scored = [r for r in rows if r["status"] != "draft"]
    ok = [c for c in classes if verdicts[c].reliable]
    print(f"wrote {out} ({plural(len(scored), 'image')} scored"
          f"{', ' + str(len(drafts)) + ' without masks (draft)' if drafts else ''})")
    if not scored:
        print(f"no image in {a.data} has masks, so none is scored; 'napari-pal predict "
              f"{a.run} {a.data} --out DIR' drafts their masks")
    elif not ok:
        print("no class is reliable (see the warnings): the table is not a ranking; "
              "train longer or at a larger --size")
    else:
        k = min(WORST_SHOWN, len(scored))
        print(f"the {str(k) + ' ' if k > 1 else ''}worst (most likely wrong) "
              f"mask{'s' if k > 1 else ''}"
              f"{'' if len(ok) == len(classes) else ' by ' + ', '.join(ok)}:")
        header = ["name", "quality", *(c if verdicts[c].reliable else f"{c}(unreliable)"
                                       for c in classes), "why"]
        body = [[r["name"], f"{float(r['quality']):.3f}",
                 *(f"{float(r['quality_' + c]):.3f}" if verdicts[c].reliable else "-"
                   for c in classes), r["why"]] for r in scored[:WORST_SHOWN]]
        print(table(header, body))
    if drafts:
        shown = ", ".join(drafts[:WORST_SHOWN]) + (", ..." if len(drafts) > WORST_SHOWN else "")
        print(f"draft (no masks, not scored): {shown}")
    _auc(a, scored, bool(ok))


def _auc(a, scored: list[dict], ranked: bool) -> None:
    from napari_pal.data.corruption import read_corruption_csv
    from napari_pal.scoring.detection import roc_auc

    truth_file = Path(a.truth) if a.truth else Path(a.data) / "corruption.csv"
    if not ranked or not truth_file.is_file():
        return
    truth = read_corruption_csv(truth_file)
    known = [r for r in scored if r["name"] in truth]
    bad = [truth[r["name"]] for r in known]
    auc = roc_auc(bad, [-float(r["quality"]) for r in known])
    if math.isnan(auc):
        return
    hits = sum(bad[: sum(bad)])  # rows are worst first
    print(f"ROC AUC of quality vs {truth_file}: {auc:.3f} ({hits} of the {sum(bad)} "
          f"corrupted images among the {sum(bad)} worst)")
