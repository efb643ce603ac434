"""The napari side of ``python -m napari_pal.bench.viewer_scale``: run in a fresh process
per folder (``python -m napari_pal._napari.scale_probe FOLDER RUN EXPORT``), it opens the
folder in napari with the review widget, times the first image and a jump, paints, accepts
a prediction, exports, checks the export, and prints one ``RESULT {json}`` line."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _wait_shown(app, layer, timeout: float = 120.0) -> None:
    """Process events until ``layer``'s current slice is loaded and drawn."""
    t = time.perf_counter()
    while True:
        app.processEvents()
        if layer.loaded and not layer._slice.empty:
            app.processEvents()
            return
        if time.perf_counter() - t > timeout:
            raise TimeoutError("the slice was not shown in time")
        time.sleep(0.005)


def probe(folder: Path, run: Path, export_dir: Path, t_process: float) -> dict:
    """Open ``folder`` in napari and do the review steps (see the module doc)."""
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    from napari_pal._napari.widget import PalWidget
    from napari_pal.data.dataset import open_dataset
    from napari_pal.method.inference import TrainedModel
    from napari_pal.scoring.quality import analyse

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    app.processEvents()
    t0 = time.perf_counter()
    viewer.open(str(folder), plugin="napari-pal")
    widget = PalWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pick-and-Learn quality review")
    image = viewer.layers[f"{folder.name} images"]
    _wait_shown(app, image)
    first = time.perf_counter() - t0
    stages = {"after_first_image": round(_peak_mb())}
    process_first = time.time() - t_process
    state = widget.state
    n = len(state.names)

    j = int(0.75 * n)
    t1 = time.perf_counter()
    viewer.dims.set_current_step(0, j)
    _wait_shown(app, image)
    for ly in state.mask_layers():
        _wait_shown(app, ly)
    jump = time.perf_counter() - t1
    stages["after_jump"] = round(_peak_mb())

    lungs = state.mask_layers()[0]
    t2 = time.perf_counter()
    lungs.brush_size = 40
    for x in range(600, 1400, 10):  # a brush stroke across the right lung
        lungs.paint((j, 1000, x), 1, refresh=True)
    app.processEvents()
    paint = time.perf_counter() - t2
    painted = np.asarray(lungs.data[j, 1000, 600:1400]).astype(bool).all()

    model = TrainedModel.load(run, device="cpu")
    ds = state.dataset()
    one = ds.subset([state.names[j]])
    t3 = time.perf_counter()
    analysis = next(iter(analyse(model, one, maps=True)))
    state.add_analysis(j, analysis)
    widget.review_panel.accept_prediction(None)
    app.processEvents()
    accept = time.perf_counter() - t3
    stages["after_accept"] = round(_peak_mb())
    h, w = state.meta["shapes"][j]
    want = analysis.probs > 0.5
    accepted = all(np.array_equal(np.asarray(ly.data[j, :h, :w]) > 0, want[k])
                   for k, ly in enumerate(state.mask_layers()))

    shutil.rmtree(export_dir, ignore_errors=True)
    t4 = time.perf_counter()
    ok = widget.export_panel.export(export_dir) is not None
    export = time.perf_counter() - t4
    back = open_dataset(export_dir)
    orig = open_dataset(folder)
    mask_files = sum(1 for _ in (export_dir / "masks").rglob("*.png"))
    checks = {
        "export_ok": ok,
        "names_kept": back.names == orig.names,
        "mask_files": mask_files == n * len(orig.classes),
        "painted_stroke_seen": bool(painted),
        "accepted_prediction_in_layers": bool(accepted),
        "accepted_prediction_exported": bool(np.array_equal(back.read_masks(j), want)),
        "unedited_equal_input": bool(np.array_equal(back.read_masks(1), orig.read_masks(1))),
        "own_size": back.read_masks(j).shape[1:] == orig.image_shape(j),
    }
    peak = _peak_mb()
    viewer.close()
    return {"n": n, "first_image_s": round(first, 2),
            "process_first_image_s": round(process_first, 2), "jump_to": j,
            "jump_s": round(jump, 2), "paint_stroke_s": round(paint, 2),
            "score_and_accept_s": round(accept, 2), "export_s": round(export, 1),
            "peak_mb": round(peak), "peak_mb_by_stage": stages, "checks": checks}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m napari_pal._napari.scale_probe")
    p.add_argument("folder", type=Path)
    p.add_argument("run", type=Path, help="a run folder whose model predicts the image shown")
    p.add_argument("export", type=Path, help="where to export (replaced)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    import torch

    torch.set_num_threads(a.threads)
    t_process = float(os.environ.get("NAPARI_PAL_BENCH_T0", time.time()))
    res = probe(a.folder, a.run, a.export, t_process)
    print("RESULT " + json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
