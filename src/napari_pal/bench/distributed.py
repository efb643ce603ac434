"""``python -m napari_pal.bench.distributed``: data-parallel training throughput.

Runs the product's training step (``Trainer``: U-Net + QAM with global-batch weights,
augmentation, the precision ``--precision`` picks) for a few steps in fresh processes and
reports images/s of the *global* batch:

* CPU: 1 process x 1 thread, 1 process x all cores, and N ranks (gloo) x cores/N threads.
  Scaling efficiency = speed-up over 1 process x 1 thread / threads in use. On a machine
  with as many cores as ranks, the fair comparison is against 1 process using all the
  cores: that ratio is also reported (data-parallel pays where cores are many or the
  devices are GPUs).
* GPU (when CUDA is present): 1..G ranks (NCCL), one GPU each, same global batch
  (strong scaling), efficiency = speed-up over 1 GPU / G.

Images are random tensors held in memory (throughput does not depend on their content).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from napari_pal.atomic import write_text
from napari_pal.method import distributed
from napari_pal.method.device import synchronize


def _data(n: int, size: int, classes: int = 3):
    from napari_pal.data.geometry import Frame
    from napari_pal.data.trainset import TrainingSet

    gen = torch.Generator().manual_seed(0)
    images = torch.rand((n, 1, size, size), generator=gen)
    masks = (torch.rand((n, classes, size, size), generator=gen) > 0.7).to(torch.uint8)
    return TrainingSet([f"im{i}" for i in range(n)], [f"c{k}" for k in range(classes)],
                       [Frame(size, size, size)] * n, images, masks)


def _worker(group: distributed.RankGroup, settings: dict, threads: int, report: str) -> None:
    """Time ``steps`` training steps after ``warmup`` steps; rank 0 writes the result."""
    from napari_pal.method.config import TrainConfig
    from napari_pal.method.training import Trainer

    steps, warmup = settings["steps"], settings["warmup"]
    config = TrainConfig(epochs=1, size=settings["size"], batch_size=settings["batch_size"],
                         width=settings["width"], warmup_epochs=0, threads=threads,
                         precision=settings["precision"], device=settings["device"])
    data = _data(config.batch_size * (warmup + steps + 1), config.size)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(data, config, tmp, group=group if group.size > 1 else None)
        marks = {}
        for ev in trainer.run():
            if ev.step in (warmup, warmup + steps):
                synchronize(trainer.device)
                marks[ev.step] = time.perf_counter()
            if ev.step == warmup + steps:
                trainer.stop()
    if group.is_main:
        seconds = marks[warmup + steps] - marks[warmup]
        Path(report).write_text(json.dumps({
            "ranks": group.size, "threads_per_rank": torch.get_num_threads(),
            "device": str(trainer.device), "precision": str(trainer.amp or "float32"),
            "seconds": seconds, "images_per_s": steps * config.batch_size / seconds}))


def measure(ranks: int, threads: int, settings: dict) -> dict:
    """Throughput of ``ranks`` fresh processes with ``threads`` CPU threads each."""
    with tempfile.TemporaryDirectory() as tmp:
        report = str(Path(tmp) / "report.json")
        distributed.launch(_worker, ranks, settings, threads, report, deadline_s=1800)
        return json.loads(Path(report).read_text())


def _cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return "unknown"
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines()
                  if ln.startswith("flags")), [])
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                  if ln.startswith("model name")), platform.processor())
    shown = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}; {' '.join(shown)}"


def best_of(plans: list[tuple[int, int]], settings: dict, repeat: int) -> list[dict]:
    """Each plan ``repeat`` times, interleaved (so a burst of load hits them alike); the
    fastest run of each is kept, with all the runs' images/s beside it."""
    best: dict[tuple[int, int], dict] = {}
    for _ in range(repeat):
        for ranks, threads in plans:
            r = measure(ranks, threads, settings)
            print(_row(r), file=sys.stderr)
            runs = best.get((ranks, threads), {}).get("all_images_per_s", []) + [
                round(r["images_per_s"], 2)]
            if r["images_per_s"] > best.get((ranks, threads), {}).get("images_per_s", 0):
                best[(ranks, threads)] = r
            best[(ranks, threads)]["all_images_per_s"] = runs
    return [best[p] for p in plans]


def run(settings: dict, cpu_ranks: int, repeat: int = 1) -> dict:
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    if settings["device"] in ("auto", "cpu") and not (settings["device"] == "auto"
                                                      and torch.cuda.is_available()):
        plans = [(1, 1), (1, cores), (cpu_ranks, max(1, cores // cpu_ranks))]
        rows = best_of(list(dict.fromkeys(plans)), settings, repeat)
        one = rows[0]["images_per_s"]
        alone = rows[1]["images_per_s"]
        for r in rows:  # per CPU thread in use, against one process on one thread
            r["efficiency_vs_1_thread"] = r["images_per_s"] / (
                one * r["ranks"] * r["threads_per_rank"])
            r["speedup_vs_1_process_all_cores"] = r["images_per_s"] / alone
    else:
        plans = [(ranks, 1) for ranks in range(1, torch.cuda.device_count() + 1)]
        rows = best_of(plans, {**settings, "device": "cuda"}, repeat)
        for r in rows:
            r["efficiency_vs_1_gpu"] = r["images_per_s"] / (rows[0]["images_per_s"] * r["ranks"])
    return {"settings": settings, "repeat": repeat, "rows": rows, "torch": torch.__version__,
            "cpu": _cpu_flags(), "cores": cores,
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            "load_before": load_before, "load_after": os.getloadavg()}


def _row(r: dict) -> str:
    return (f"{r['ranks']} rank(s) x {r['threads_per_rank']} thread(s) on {r['device']} "
            f"({r['precision']}): {r['images_per_s']:.2f} images/s")


def table(result: dict) -> str:
    lines = ["| ranks | threads/rank | device | precision | images/s (best) | runs | "
             "efficiency | vs 1 process |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        eff = r.get("efficiency_vs_1_thread", r.get("efficiency_vs_1_gpu"))
        vs = r.get("speedup_vs_1_process_all_cores")
        lines.append(f"| {r['ranks']} | {r['threads_per_rank']} | {r['device']} | "
                     f"{r['precision']} | {r['images_per_s']:.2f} | "
                     f"{', '.join(map(str, r['all_images_per_s']))} | {eff:.2f} | "
                     f"{'' if vs is None else f'{vs:.2f}x'} |")
    s = result["settings"]
    lines.append(f"\n{s['size']} px, global batch {s['batch_size']}, width {s['width']}, "
                 f"{s['steps']} timed steps after {s['warmup']}, best of "
                 f"{result['repeat']}; torch {result['torch']}; "
                 f"{result['cpu']}; {result['cores']} cores; load average "
                 f"{result['load_before'][0]:.2f} before, {result['load_after'][0]:.2f} after")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m napari_pal.bench.distributed",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16, help="global batch")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--steps", type=int, default=6, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--ranks", type=int, default=2, help="CPU ranks to compare with 1")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per setting, interleaved; the fastest is kept (noisy machines)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument("--device", default="auto", help="auto (GPUs if present), cpu, cuda")
    p.add_argument("--out", help="write the result as JSON here (and a .md table beside)")
    a = p.parse_args(argv)
    settings = {k: getattr(a, k) for k in ("size", "batch_size", "width", "steps", "warmup",
                                           "precision", "device")}
    result = run(settings, a.ranks, a.repeat)
    print(table(result))
    if a.out:
        write_text(a.out, json.dumps(result, indent=2))
        write_text(Path(a.out).with_suffix(".md"), table(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
