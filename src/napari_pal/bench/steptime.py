"""``python -m napari_pal.bench.steptime``: time (and profile) the product's training step.

One ``Trainer._step`` (U-Net + QAM past warm-up, augmentation on, the Trainer's own
layout and precision) on random images of any size, so a change to the step is measured
without a data set: median seconds per step and images/s, for each thread count given,
in one process and interleaved (``--threads 1 2 1 2``) because other jobs share the
machine. ``--profile`` prints torch.profiler's table of the ops; ``--compile`` also times
the networks under ``torch.compile`` (inductor) and reports the compile seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

from napari_pal.atomic import write_text
from napari_pal.bench.machine import machine_info
from napari_pal.method.device import synchronize


def synthetic_set(n: int, size: int, classes: int = 3, seed: int = 0):
    """``n`` random images with blocky masks (what a step costs does not depend on them)."""
    from napari_pal.data.geometry import Frame
    from napari_pal.data.trainset import TrainingSet

    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.random((n, 1, size, size), dtype=np.float32))
    masks = torch.zeros((n, classes, size, size), dtype=torch.uint8)
    for i in range(n):
        for c in range(classes):
            a, b = sorted(rng.integers(0, size, 2))
            masks[i, c, a:b + 1, size // 4: 3 * size // 4] = 1
    return TrainingSet([f"im{i}" for i in range(n)], [f"c{c}" for c in range(classes)],
                       [Frame(size, size, size)] * n, images, masks)


def time_steps(trainer, steps: int, warm: int = 1) -> tuple[list[float], float]:
    """Seconds of each of ``steps`` steps after ``warm`` warm-up steps (whose total, the
    compile time where the networks are compiled, is returned too)."""
    batches = trainer._batches(0)
    per_epoch = len(batches)
    total = per_epoch * 1000
    epoch = trainer.config.warmup  # past warm-up: the quality module runs
    t0 = time.perf_counter()
    for s in range(warm):
        trainer._step(epoch, s % per_epoch, per_epoch, total, batches[s % per_epoch])
    synchronize(trainer.device)
    warm_s = time.perf_counter() - t0
    times = []
    for s in range(steps):
        t0 = time.perf_counter()
        trainer._step(epoch, s % per_epoch, per_epoch, total, batches[s % per_epoch])
        synchronize(trainer.device)
        times.append(time.perf_counter() - t0)
    return times, warm_s


def run(a: argparse.Namespace) -> dict:
    from napari_pal.method.config import TrainConfig
    from napari_pal.method.training import Trainer

    data = synthetic_set(2 * a.batch_size, a.size)
    cfg = TrainConfig(size=a.size, batch_size=a.batch_size, epochs=1000, warmup_epochs=0,
                      precision=a.precision, device=a.device)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pal-steptime-") as tmp:
        for variant in (["eager", "compiled"] if a.compile else ["eager"]):
            trainer = Trainer(data, cfg, tmp)
            if variant == "compiled":
                trainer._nets = tuple(torch.compile(n) for n in trainer._nets)
            for threads in a.threads:
                if trainer.device.type == "cpu":
                    torch.set_num_threads(threads)
                times, warm_s = time_steps(trainer, a.steps, a.warm)
                med = statistics.median(times)
                rows.append({"variant": variant, "threads": threads, "s_per_step": med,
                             "images_per_s": a.batch_size / med, "warm_s": warm_s,
                             "step_times": [round(t, 3) for t in times]})
                print(f"{variant}, {threads} threads: {med:.3f} s/step, "
                      f"{a.batch_size / med:.1f} images/s (warm-up {warm_s:.1f} s)",
                      file=sys.stderr, flush=True)
            if a.profile:
                from torch.profiler import ProfilerActivity, profile

                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    time_steps(trainer, 1, 0)
                print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
        precision = {torch.bfloat16: "bf16"}.get(trainer.amp, "fp32")
    return {"info": machine_info(), "size": a.size, "batch": a.batch_size,
            "precision": precision, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m napari_pal.bench.steptime", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, nargs="+", default=[1],
                   help="thread counts, timed in this order (repeat to interleave)")
    p.add_argument("--steps", type=int, default=4, help="timed steps per thread count")
    p.add_argument("--warm", type=int, default=1, help="untimed steps first")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd networks")
    p.add_argument("--profile", action="store_true", help="print torch.profiler's op table")
    p.add_argument("--out", help="write the result here as JSON")
    a = p.parse_args(argv)
    result = run(a)
    text = json.dumps(result, indent=2)
    if a.out:
        write_text(a.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
