"""Screenshots of the napari plugin for the docs.

Opens napari (under Xvfb when there is no display) on a few images of a dataset folder,
spoils some of their masks (``napari_pal.data.corruption``, so that bad masks exist to find),
trains briefly in the widget, and saves into docs/screenshots/:

- ``widget_table.png``: the dock widget with the live plot and the quality table filled;
- ``bad_mask_disagreement.png``: the worst image selected, its masks, the prediction
  contours and the disagreement map.

With ``--run RUN`` it trains nothing: it opens DATA as it is and scores it with the
checkpoint of an earlier run (e.g. one of ``benchmarks/engine_runs.sh``), which is how the
README's screenshots were made::

    .venv/bin/python resources/screenshots.py bench/engine/noisy-erode-dilate \
        --split bench/engine/noisy-erode-dilate/split.csv:train --images 165 \
        --run bench/engine/qam_ocm-erode-dilate

Usage (from the repository root)::

    .venv/bin/python resources/screenshots.py [DATA] [--split FILE:PART] [--images 24]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JSRT = REPO.parent / "shared" / "data" / "jsrt256"


def _subset(data: Path, split: str | None, n: int, out: Path) -> Path:
    from napari_pal.data.dataset import open_dataset

    ds = open_dataset(data, split=split, check=False)
    for it in ds.items[:n]:
        for p in (it.image_path, *it.mask_paths):
            dest = out / p.relative_to(data)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest)
    if (data / "classes.txt").is_file():
        shutil.copy2(data / "classes.txt", out / "classes.txt")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", nargs="?", default=str(JSRT))
    p.add_argument("--split", default=f"{JSRT / 'split.csv'}:train")
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--fraction", type=float, default=0.35, help="share of masks to spoil")
    p.add_argument("--out", default=str(REPO / "docs" / "screenshots"))
    p.add_argument("--run", help="score with this run's checkpoint instead of training")
    a = p.parse_args()
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run") and "_PAL_XVFB" not in os.environ:
        env = {**os.environ, "_PAL_XVFB": "1"}
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, *sys.argv]
        return subprocess.call(cmd, env=env)

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_pal._napari.widget import PalWidget
    from napari_pal.data.corruption import corrupt_dataset

    data = Path(a.data)
    split = a.split if a.split and a.split.lower() != "none" else None
    if data.resolve() != JSRT.resolve() and a.split == p.get_default("split"):
        split = None
    work = Path(tempfile.mkdtemp(prefix="pal-shots-"))
    src = _subset(data, split, a.images, work / "src")
    spoilt = work / "chest-xrays"
    if a.run:
        src.rename(spoilt)
    else:
        corrupt_dataset(src, spoilt, fraction=a.fraction, pixels=(6, 14), seed=1)

    viewer = napari.Viewer(title="napari-pal")
    viewer.window.resize(1500, 950)
    widget = PalWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pick-and-Learn quality review", area="right")
    training = widget.training_panel
    training.runs_dir = work / "runs"
    widget.open_folder(spoilt)
    for k, v in {"epochs": a.epochs, "size": a.size, "batch_size": 8,
                 "threads": max(1, (os.cpu_count() or 2) - 1)}.items():
        training.form[k].value = v
    app = QApplication.instance()
    if a.run:
        training.score_checkpoint(Path(a.run).resolve())
    else:
        training.start_training()
    import time

    while training.runner.running:
        app.processEvents()
        time.sleep(0.02)
    for _ in range(20):
        app.processEvents()
    if not widget.state.scores:
        print("training produced no scores", file=sys.stderr)
        return 1
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    widget.viewer.layers["disagreement"].visible = False
    widget.review_panel.next_worst()
    for _ in range(10):
        app.processEvents()
    viewer.screenshot(str(out / "widget_table.png"), canvas_only=False)
    widget.viewer.layers["disagreement"].visible = True
    for _ in range(10):
        app.processEvents()
    viewer.screenshot(str(out / "bad_mask_disagreement.png"), canvas_only=False)
    print(f"wrote {out / 'widget_table.png'} and {out / 'bad_mask_disagreement.png'}")
    viewer.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
