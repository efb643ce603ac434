"""``python -m napari_pal.bench.viewer_scale``: a folder of N full-size radiographs in napari.

For each N it makes a folder of N radiographs with masks (the 2048 px JSRT cases of
--source, hard-linked under new names in --work, never in the repository), then opens it in
napari with the review widget in a fresh process per N (``napari_pal._napari.scale_probe``,
under Xvfb when there is no display), so that peak memory (ru_maxrss) is that N's alone,
and reports:

* ``first_image_s``: from ``viewer.open`` to the first image shown (its slice loaded and
  drawn); ``process_first_image_s`` the same from the process start (imports included);
* ``jump_s``: moving to slice 0.75 N until it is shown;
* ``peak_mb``: the process's peak resident memory at the end (after export);
* then it paints a brush stroke into the lungs mask, scores the image shown with a tiny run
  (trained once, before the first N, for --epochs epochs at 64 px on the --source images),
  accepts its prediction, exports every mask (``export_s``) and checks the export: every
  image has its masks at its own size, the painted-then-accepted slice holds the prediction,
  an unedited slice equals its input, and the input folder is unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

#: the shared data beside the repository (the worktree's or the main checkout's)
SOURCE = next((p for p in (Path(__file__).resolve().parents[k] / "shared" / "data" / "jsrt-fullres"
                           for k in (3, 4)) if p.is_dir()), Path("/work/shared/data/jsrt-fullres"))


def make_folder(source: Path, out: Path, n: int) -> Path:
    """N images (+ their masks, every class folder) hard-linked from ``source`` under new names."""
    if (out / "images").is_dir() and len(list((out / "images").iterdir())) == n:
        return out
    shutil.rmtree(out, ignore_errors=True)
    cases = sorted(p.name for p in (source / "images").iterdir())
    classes = sorted(p.name for p in (source / "masks").iterdir() if p.is_dir())
    for sub in ["images", *(f"masks/{c}" for c in classes)]:
        (out / sub).mkdir(parents=True)
    for k in range(n):
        case = cases[k % len(cases)]
        name = f"r{k:05d}_{case}"
        for sub in ["images", *(f"masks/{c}" for c in classes)]:
            try:
                os.link(source / sub / case, out / sub / name)
            except OSError:  # another file system: copy
                shutil.copyfile(source / sub / case, out / sub / name)
    return out


def train_tiny(source: Path, run: Path, epochs: int, threads: int) -> None:
    if (run / "checkpoint.pt").is_file():
        return
    cmd = [sys.executable, "-m", "napari_pal.cli", "train", str(source), "--out", str(run),
           "--size", "64", "--epochs", str(epochs), "--batch-size", "4",
           "--threads", str(threads), "--device", "cpu"]
    subprocess.run(cmd, check=True)


def _tree_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m napari_pal.bench.viewer_scale",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[300, 2000], help="folder sizes")
    p.add_argument("--source", type=Path, default=SOURCE, help="full-size dataset to repeat")
    p.add_argument("--work", type=Path, default=Path("/tmp/napari-pal-viewer-scale"),
                   help="where the folders, the run and the exports go (not the repository)")
    p.add_argument("--epochs", type=int, default=2, help="epochs of the tiny 64 px run")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the results here")
    a = p.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads),
           "NAPARI_PAL_RECOVERY": str(a.work / "cache" / "recovery"),
           "NAPARI_PAL_LAYER_CACHE": str(a.work / "cache" / "layers")}
    run = a.work / "run"
    train_tiny(a.source, run, a.epochs, a.threads)
    results = []
    for n in a.n:
        folder = make_folder(a.source, a.work / f"radiographs-{n}", n)
        before = _tree_state(folder)
        cmd = [sys.executable, "-m", "napari_pal._napari.scale_probe", "--threads",
               str(a.threads), str(folder), str(run), str(a.work / f"export-{n}")]
        if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
            cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", *cmd]
        env["NAPARI_PAL_BENCH_T0"] = str(time.time())
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not line:
            print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
            return 1
        res = json.loads(line[-1][len("RESULT "):])
        res["checks"]["input_unchanged"] = _tree_state(folder) == before
        results.append(res)
        print(json.dumps(res), flush=True)
    keys = ["n", "first_image_s", "process_first_image_s", "jump_s", "paint_stroke_s",
            "score_and_accept_s", "export_s", "peak_mb"]
    print("\n| " + " | ".join(keys) + " | checks |")
    print("|" + "---|" * (len(keys) + 1))
    for r in results:
        ok = "all pass" if all(r["checks"].values()) else \
            "FAIL: " + ", ".join(k for k, v in r["checks"].items() if not v)
        print("| " + " | ".join(str(r[k]) for k in keys) + f" | {ok} |")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    return 0 if all(all(r["checks"].values()) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
