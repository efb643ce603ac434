"""``python -m napari_pal.bench.scale``: memory and time of training and scoring vs. folder size.

For each N it makes a folder of N radiographs with masks (a few synthetic chests from
``data.synthetic``, hard-linked under N names, in --work, never in the repository), then, in
a fresh process per N so that peak memory (ru_maxrss) is that N's alone: opens and checks the
folder, builds the grid cache (and opens it again, as a second run would), trains --steps
steps, and scores every image the way ``napari-pal score`` does. Peak memory flat in N is the
promise; the grid cache makes it so.

``--speed DATA`` instead compares the training step on DATA with the samples held as float32
tensors in memory (the former training set) and read from the grid cache batch by batch.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_IMAGES = 48


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def make_folder(work: Path, n: int, size: int, base_images: int = BASE_IMAGES) -> Path:
    """work/n<N>: N images with masks (copies of a few synthetic chests, renamed)."""
    from napari_pal.data.synthetic import make_sample_dataset

    base = work / f"base-{size}"
    if not (base / "classes.txt").is_file():
        make_sample_dataset(base, n=base_images, size=size, seed=0, bad_fraction=0.3)
    folder = work / f"n{n}"
    if (folder / "classes.txt").is_file() and len(list((folder / "images").iterdir())) == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    classes = (base / "classes.txt").read_text().split()
    names = sorted(p.stem for p in (base / "images").glob("*.png"))
    for d in ["images", *(f"masks/{c}" for c in classes)]:
        (folder / d).mkdir(parents=True)
    for i in range(n):
        src, dst = names[i % len(names)], f"img_{i:05d}"
        _link(base / "images" / f"{src}.png", folder / "images" / f"{dst}.png")
        for c in classes:
            _link(base / "masks" / c / f"{src}.png", folder / "masks" / c / f"{dst}.png")
    shutil.copyfile(base / "classes.txt", folder / "classes.txt")
    return folder


def child(folder: Path, size: int, steps: int, threads: int, score: bool,
          width: int | None = None) -> dict:
    """One N, in this process: time and peak memory of each stage."""
    import torch  # noqa: F401 - import cost counted before the first stage

    from napari_pal.data.dataset import open_dataset
    from napari_pal.data.trainset import load_training_set
    from napari_pal.method.config import TrainConfig
    from napari_pal.method.inference import TrainedModel
    from napari_pal.method.training import Trainer
    from napari_pal.scoring.quality import analyse, scores_csv

    out: dict = {"images": None, "size": size, "threads": threads,
                 "peak_mb_after_import": round(_peak_mb())}

    def stage(name: str, t0: float) -> None:
        out[f"{name}_s"] = round(time.perf_counter() - t0, 2)
        out[f"peak_mb_after_{name}"] = round(_peak_mb())
        out[f"rss_mb_after_{name}"] = round(_rss_mb())

    t0 = time.perf_counter()
    ds = open_dataset(folder)
    out["images"] = len(ds)
    stage("open_checked", t0)
    t0 = time.perf_counter()
    data = load_training_set(ds, size)
    stage("cache_build", t0)
    t0 = time.perf_counter()
    data = load_training_set(ds, size)
    stage("cache_reuse", t0)
    config = TrainConfig(epochs=1, size=size, threads=threads, seed=0,
                         **({"width": width, "qam_width": width} if width else {}))
    run = Path(tempfile.mkdtemp(prefix="pal-scale-run-"))
    trainer = Trainer(data, config, run)
    t0, done = time.perf_counter(), 0
    for ev in trainer.run():
        if ev.state == "running":
            done = ev.step
            if done == 1:
                t1 = time.perf_counter()  # the first step warms up
            if done >= steps:
                trainer.stop()
    stage("train", t0)
    out["train_steps"] = done
    out["train_images_per_s"] = round((done - 1) * config.batch_size / (time.perf_counter() - t1),
                                      1) if done > 1 else None
    if score:
        t0 = time.perf_counter()
        model = TrainedModel.load(run)
        scores = [r.score for r in analyse(model, ds, maps=False)]
        text = scores_csv(scores, model.classes)
        stage("score", t0)
        out["scored"] = text.count("\n") - 1
    shutil.rmtree(run, ignore_errors=True)
    out["peak_mb"] = round(_peak_mb())
    return out


def speed(folder: Path, size: int, epochs: int, threads: int, rounds: int) -> dict:
    """Images/s of the training step: samples as in-memory float32 tensors vs. the grid cache,
    and the time to get one batch of each."""
    import torch

    from napari_pal.data.dataset import open_dataset
    from napari_pal.data.trainset import TrainingSet, load_training_set
    from napari_pal.method.config import TrainConfig
    from napari_pal.method.training import Trainer

    cached = load_training_set(open_dataset(folder), size)
    dense = TrainingSet(cached.names, cached.classes, cached.frames, cached.images[:],
                        cached.masks[:])
    config = TrainConfig(epochs=epochs, size=size, threads=threads, seed=0)
    read_ms = {}
    gen = torch.Generator().manual_seed(0)
    for name, data in (("in_memory", dense), ("grid_cache", cached)):
        times = []
        for _ in range(200):  # what one step waits for without the prefetch
            idx = torch.randperm(len(data), generator=gen)[: config.batch_size]
            t0 = time.perf_counter()
            data.batch(idx)
            times.append(1000 * (time.perf_counter() - t0))
        read_ms[f"{name}_batch_read_ms_median"] = round(statistics.median(times), 2)
    rates: dict[str, list[float]] = {"in_memory": [], "grid_cache": []}
    for _ in range(rounds):  # alternate, so load from other processes hits both alike
        for name, data in (("in_memory", dense), ("grid_cache", cached)):
            with tempfile.TemporaryDirectory(prefix="pal-speed-") as run:
                ends = [time.perf_counter()]
                for ev in Trainer(data, config, run).run():
                    if ev.epoch_end:
                        ends.append(time.perf_counter())
            per_epoch = [b - a for a, b in zip(ends[1:], ends[2:])]  # the first warms up
            rates[name].append(len(data) / statistics.median(per_epoch))
    return {"data": str(folder), "images": len(cached), "size": size, "epochs": epochs,
            "threads": threads, "batch_size": config.batch_size, "rounds": rounds, **read_ms,
            **{f"{k}_images_per_s": [round(r, 2) for r in v] for k, v in rates.items()},
            **{f"{k}_median": round(statistics.median(v), 2) for k, v in rates.items()}}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m napari_pal.bench.scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[300, 1000, 3000],
                   help="folder sizes to measure (default: 300 1000 3000)")
    p.add_argument("--size", type=int, default=256, help="training grid (default 256)")
    p.add_argument("--steps", type=int, default=20, help="training steps per N (default 20)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--no-score", action="store_true", help="skip scoring")
    p.add_argument("--work", default=None,
                   help="folder for the generated data and caches (default: a temp folder, "
                        "removed at the end; give one to keep the folders between runs)")
    p.add_argument("--out", default=None, help="also write the results as JSON here")
    p.add_argument("--speed", metavar="DATA", default=None,
                   help="compare the training step, in memory vs. grid cache, on DATA")
    p.add_argument("--epochs", type=int, default=4, help="--speed: epochs per round")
    p.add_argument("--rounds", type=int, default=2, help="--speed: rounds per variant")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    if a.child:
        print(json.dumps(child(Path(a.child), a.size, a.steps, a.threads, not a.no_score)))
        return 0
    keep = a.work is not None
    work = Path(a.work or tempfile.mkdtemp(prefix="pal-scale-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ["NAPARI_PAL_GRID_CACHE"] = str(work / "grids")
    try:
        if a.speed:
            results = [speed(Path(a.speed), a.size, a.epochs, a.threads, a.rounds)]
            print(json.dumps(results[0], indent=2))
        else:
            results = []
            for n in a.n:
                folder = make_folder(work, n, a.size)
                shutil.rmtree(work / "grids", ignore_errors=True)  # time a fresh build
                cmd = [sys.executable, "-m", "napari_pal.bench.scale", "--child", str(folder),
                       "--size", str(a.size), "--steps", str(a.steps),
                       "--threads", str(a.threads), *(["--no-score"] if a.no_score else [])]
                done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
                if done.returncode:
                    sys.stderr.write(done.stderr)
                    return done.returncode
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(json.dumps(results[-1]), flush=True)
            _table(results)
        if a.out:
            from napari_pal.atomic import write_text

            write_text(Path(a.out), json.dumps(results, indent=2))
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _table(rows: list[dict]) -> None:
    cols = [("images", "images"), ("open_checked_s", "open s"), ("cache_build_s", "cache s"),
            ("cache_reuse_s", "reuse s"), ("train_images_per_s", "train img/s"),
            ("score_s", "score s"), ("peak_mb_after_train", "peak MB train"),
            ("peak_mb", "peak MB all")]
    print("| " + " | ".join(h for _, h in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "")) for k, _ in cols) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
