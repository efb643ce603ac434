"""Demo: napari with the Pick-and-Learn widget docked on the bundled sample data.

Opens the dataset folder, trains in the widget's worker, scores every image and shows the
quality table (worst first) with the worst image selected. While training runs the table is
refreshed (the anytime ranking); each refresh prints how settled the ranking is.
By default the settings are set by hand (50 epochs at 128 px, λ 0.5: the numbers the
README reports); ``--minutes M`` uses the widget's time budget instead (calibrate, plan).
Where the folder holds a corruption.csv (the bundled sample does) it prints the ROC AUC of
the quality column at telling the corrupted images from the clean ones (not when no class
is reliable: then the table is not a ranking).

With a display napari stays open; without one the demo re-runs itself under Xvfb
(xvfb-run), saves a screenshot of the whole window after scoring and exits.

Usage (from the repository root)::

    .venv/bin/python resources/demo.py [--data resources/sample] [--epochs 50] [--size 128]
        [--lam 0.5] [--minutes M] [--screenshot runs/demo/screenshot.png] [--exit-after]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WIDGET = "Pick-and-Learn quality review"


def roc_auc(quality: dict[str, float], bad: set[str]) -> float:
    """P(a corrupted image scores lower than a clean one); ties count half."""
    pos = [q for n, q in quality.items() if n in bad]
    neg = [q for n, q in quality.items() if n not in bad]
    if not pos or not neg:
        return float("nan")
    wins = sum((p < q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def corrupted_names(data: Path) -> set[str] | None:
    path = data / "corruption.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        return {r["name"] for r in csv.DictReader(fh) if r.get("operation", "none") != "none"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(REPO / "resources" / "sample"))
    p.add_argument("--out", default=str(REPO / "runs" / "demo"),
                   help="where runs, quality.csv and the screenshot go")
    p.add_argument("--epochs", type=int, default=50)
    # λ 0.5 rather than the engine's 1 or the paper's 2: on 36 images the re-weighting
    # starts (after a fifth of the epochs) while the segmenter is still rough, and λ 2
    # (weights up to e^4 apart) lets a few samples dominate each batch and stalls it
    p.add_argument("--lam", type=float, default=0.5, help="OCM bound λ")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--minutes", type=float, default=None,
                   help="train for this time budget (the widget plans size and epochs) "
                        "instead of --epochs/--size")
    p.add_argument("--screenshot", default=None,
                   help="save a screenshot here after scoring (default without a display: "
                        "OUT/screenshot.png)")
    p.add_argument("--exit-after", action="store_true",
                   help="quit after scoring (and the screenshot); the default without a display")
    a = p.parse_args()

    headless = not os.environ.get("DISPLAY") and sys.platform.startswith("linux")
    if headless and "_PAL_XVFB" not in os.environ:
        if not shutil.which("xvfb-run"):
            print("no display and no xvfb-run: install xvfb (make sysdeps)", file=sys.stderr)
            return 1
        env = {**os.environ, "_PAL_XVFB": "1"}
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable,
               str(Path(__file__).resolve()), *sys.argv[1:]]
        return subprocess.call(cmd, env=env)
    under_xvfb = "_PAL_XVFB" in os.environ
    exit_after = a.exit_after or under_xvfb
    out = Path(a.out).resolve()
    shot = Path(a.screenshot) if a.screenshot else (out / "screenshot.png" if under_xvfb
                                                    else None)
    # autosaves of what is painted in the demo go beside its runs, not to the user cache
    os.environ.setdefault("NAPARI_PAL_RECOVERY", str(out / "recovery"))

    import napari
    from qtpy.QtCore import QTimer

    from napari_pal.review.export import write_quality_csv

    data = Path(a.data).resolve()
    t0 = time.perf_counter()
    viewer = napari.Viewer(title="napari-pal demo")
    viewer.window.resize(1500, 950)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-pal", WIDGET)
    training, review, state = widget.training_panel, widget.review_panel, widget.state
    training.runs_dir = out / "runs"
    widget.open_folder(data)
    if state.meta is None:
        print(f"could not open {data} as a dataset folder", file=sys.stderr)
        return 1
    for k, v in {"epochs": a.epochs, "size": a.size, "batch_size": a.batch_size,
                 "lam": a.lam, "threads": a.threads}.items():
        training.form[k].value = v
    training.by_hand.setChecked(a.minutes is None)
    if a.minutes is not None:
        training.minutes.setValue(a.minutes)
    result = {"rc": 0}

    from napari_pal.review.ranking import refresh_text

    state.ranking_refreshed.connect(
        lambda r: print(f"[{time.perf_counter() - t0:4.0f} s] {refresh_text(r)}", flush=True))

    def finish() -> None:
        elapsed = time.perf_counter() - t0
        if not state.scores:
            print(f"training produced no scores: {training.progress_label.text()}",
                  file=sys.stderr)
            result["rc"] = 1
        else:
            csv_path = write_quality_csv(out / "quality.csv", state.names, state.classes,
                                         state.scores, state.status)
            order = state.worst_first()
            bad = corrupted_names(data)
            if training.plan_label.text():
                print(training.plan_label.text())
            print(f"trained {training.form['epochs'].value} epochs at "
                  f"{training.form['size'].value} px and scored {len(order)} images "
                  f"in {elapsed:.0f} s; quality table: {csv_path}")
            print(refresh_text(state.refresh))
            if review.reliability_label.text():
                print(review.reliability_label.text())
            if not review.model.ranking_shown:
                print("no ranking and no AUC: no class is reliable (train longer)")
                bad, order = None, []
            else:
                print("8 worst (most likely wrong) masks:")
            for s in order[:8]:
                flag = "" if bad is None else ("  corrupted" if s.name in bad else "  clean")
                print(f"  {s.name}  quality {s.quality:.3f}{flag}")
            if bad is not None:
                auc = roc_auc({s.name: s.quality for s in order}, bad)
                hits = sum(s.name in bad for s in order[:len(bad)])
                print(f"ROC AUC of quality vs corruption.csv: {auc:.3f} "
                      f"({hits}/{len(bad)} corrupted images among the {len(bad)} worst)")
            viewer.layers["disagreement"].visible = False
            review.next_worst()
        QTimer.singleShot(500, shoot)

    def shoot() -> None:
        if shot is not None:
            shot.parent.mkdir(parents=True, exist_ok=True)
            viewer.screenshot(str(shot), canvas_only=False)
            print(f"screenshot: {shot}")
        if exit_after:
            viewer.close()

    def poll() -> None:
        if not training.runner.running:
            timer.stop()
            QTimer.singleShot(300, finish)  # let the last table/layer updates paint

    timer = QTimer()
    timer.setInterval(200)
    timer.timeout.connect(poll)
    training.start_training()
    if not training.runner.running:
        print("training did not start (see the notification)", file=sys.stderr)
        return 1
    timer.start()
    napari.run()
    return result["rc"]


if __name__ == "__main__":
    sys.exit(main())
