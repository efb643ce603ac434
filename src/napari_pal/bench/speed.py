"""``napari-pal speed``: training and scoring throughput, the product against plain PyTorch.

Training, all variants on the same images, networks (``training.build_networks``), loss
(``weighting``), batch size and machine, in one process, no augmentation:
- ``plain``: float32, default memory format, a standard ``torch.utils.data.DataLoader``
  over a Dataset that decodes the PNGs from disk every epoch;
- ``fp32_nchw_mem``: the same loop, images held in memory as tensors;
- ``+channels_last``: ... and channels_last tensors and weights;
- ``+bf16``: ... and bfloat16 autocast;
- ``product``: ``training.Trainer`` itself (in memory, channels_last, precision from
  ``--precision``, a checkpoint saved every epoch).
Speed is s/epoch (median over the epochs after the first, which warms up) and images/s;
beside it the loop's achieved GFLOP/s (images/s × the FLOPs of one training image, counted
on a real step) as a % of the machine's peak measured in the same run, on the same threads
and precision (``peak.py``: a matmul and a 3×3 convolution), and × the plain loop.
Scoring: images/s of ``quality.analyse`` (score) and ``TrainedModel.predict`` over a
folder, and peak memory (ru_maxrss; torch.cuda.max_memory_allocated on a GPU).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from napari_pal.atomic import write_text
from napari_pal.bench import peak as peaks
from napari_pal.bench.machine import machine_info, markdown_line
from napari_pal.errors import PalError
from napari_pal.method import device as dev

VARIANTS = ("plain", "fp32_nchw_mem", "+channels_last", "+bf16", "product")


class DiskDataset(torch.utils.data.Dataset):
    """Decodes image and masks from disk on every access (the plain loop's data)."""

    def __init__(self, ds, size: int):
        self.ds, self.size = ds, size

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        from napari_pal.data.grid import grid_sample_of

        _, img, masks = grid_sample_of(self.ds, i, self.size)
        return torch.from_numpy(img)[None], torch.from_numpy(masks.astype("float32"))


def _peak_gpu(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _rss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 2**20 if sys.platform == "darwin" else kib / 2**10  # macOS reports bytes


def _summary(name: str, times: list[float], n: int) -> dict:
    measured = times[1:] if len(times) > 1 else times
    s_epoch = statistics.median(measured)
    return {"variant": name, "s_per_epoch": s_epoch, "images_per_s": n / s_epoch,
            "epoch_times": [round(t, 3) for t in times]}


def variant_precision(name: str, product_precision: str | None = None) -> str:
    """The precision a variant computes in: the ablations' by their name, the product's
    as it chose."""
    if name == "product":
        return product_precision or "fp32"
    return "bf16" if name == "+bf16" else "fp32"


def rate_rows(train: list[dict], peak: dict[str, dict], flops: dict[str, float]) -> None:
    """Add precision, GFLOP/s, % of the peak of that precision (fp32's, the machine's
    fastest measured, where the device has no native bf16), × plain and × the row before
    (the ablations' steps) to each row."""
    prev = None
    for r in train:
        prec = variant_precision(r["variant"], r.get("precision"))
        key = prec if prec in peak else "fp32"
        r.update(precision=prec, peak_of=key, gflop_per_image=flops[r["strategy"]] / 1e9,
                 **peaks.achieved(r["images_per_s"], flops[r["strategy"]], peak[key]["gflops"]))
        plain = next((p for p in train if p["strategy"] == r["strategy"]
                      and p["variant"] == "plain"), None)
        r["x_plain"] = r["images_per_s"] / plain["images_per_s"] if plain else None
        r["x_previous"] = (r["images_per_s"] / prev["images_per_s"] if prev and r["variant"]
                           not in ("plain", "product") and prev["strategy"] == r["strategy"]
                           else None)
        prev = r


def own_loop(name: str, cfg, data, ds, device: torch.device, workers: int) -> dict:
    """One of the minimal loops: plain (from disk) or an in-memory ablation step."""
    from napari_pal.method.training import build_networks, quality_input
    from napari_pal.method.weighting import per_sample_loss, sample_weights

    cl = name in ("+channels_last", "+bf16")
    fmt = torch.channels_last if cl else torch.contiguous_format
    amp = torch.bfloat16 if name == "+bf16" else None
    seg, qam = build_networks(cfg, len(data.classes))
    seg.to(device, memory_format=fmt).train()
    qam.to(device, memory_format=fmt).train()
    opt = torch.optim.Adam(list(seg.parameters()) + list(qam.parameters()), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    if name == "plain":
        loader = torch.utils.data.DataLoader(DiskDataset(ds, cfg.size), batch_size=cfg.batch_size,
                                             shuffle=True, num_workers=workers, generator=gen)
    times = []
    for _ in range(cfg.epochs):
        t0 = time.perf_counter()
        if name == "plain":
            batches = iter(loader)
        else:
            order = torch.randperm(len(data), generator=gen).split(cfg.batch_size)
            batches = ((data.images[i], data.masks[i].float()) for i in order)
        for images, masks in batches:
            images = images.to(device).contiguous(memory_format=fmt)
            masks = masks.to(device)
            with dev.autocast(device, amp):
                logits = seg(images)
                scores = None if cfg.strategy == "baseline" else \
                    qam(quality_input(images, masks, logits, cfg)).float()
            losses = per_sample_loss(logits, masks)
            if scores is None:
                loss = losses.mean()
            else:
                loss = (sample_weights(scores, cfg.strategy, cfg.lam) * losses).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            float(loss.detach())  # a loop logs its loss: one sync per step, as the Trainer's
        dev.synchronize(device)
        times.append(time.perf_counter() - t0)
    return _summary(name, times, len(data))


def product_loop(cfg, data, run_dir: Path) -> dict:
    from napari_pal.method.training import Trainer

    trainer = Trainer(data, cfg, run_dir)
    times, t0 = [], time.perf_counter()
    for ev in trainer.run():
        if ev.epoch_end:
            dev.synchronize(trainer.device)
            now = time.perf_counter()
            times.append(now - t0)
            t0 = now
    out = _summary("product", times, len(data))
    out["precision"] = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(trainer.amp, "fp32")
    return out


def _config(a, strategy: str, device: torch.device):
    from napari_pal.method.config import TrainConfig

    return TrainConfig(strategy=strategy, epochs=a.epochs, size=a.size,
                       batch_size=a.batch_size, lr=1e-3, warmup_epochs=0, augment=False,
                       precision=a.precision, device=str(device), threads=a.threads)


def train_speed(a, ds, run_dir: Path, device: torch.device) -> list[dict]:
    from napari_pal.data.trainset import load_training_set

    data = load_training_set(ds, a.size)
    results = []
    for strategy in a.strategies:
        cfg = _config(a, strategy, device)
        for name in a.variants:
            print(f"  {strategy} / {name} ...", file=sys.stderr, flush=True)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            if name == "product":
                r = product_loop(cfg, data, run_dir / strategy)
            else:
                r = own_loop(name, cfg, data, ds, device, a.workers)
            r.update(strategy=strategy, rss_peak_mib=round(_rss_mib(), 1),
                     gpu_peak_mib=_peak_gpu(device))
            results.append(r)
            print(f"    {r['s_per_epoch']:.2f} s/epoch, {r['images_per_s']:.1f} img/s",
                  file=sys.stderr)
    return results


def score_speed(run: Path, ds, device: str) -> dict:
    from napari_pal.method.inference import TrainedModel
    from napari_pal.scoring.quality import analyse

    model = TrainedModel.load(run, device=device)
    t0 = time.perf_counter()
    n = sum(1 for _ in analyse(model, ds, maps=False))
    dev.synchronize(model.device)
    t_score = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(len(ds)):
        model.predict(ds.read_image(i))
    dev.synchronize(model.device)
    t_pred = time.perf_counter() - t0
    return {"images": n, "size": model.config.size, "score_images_per_s": n / t_score,
            "predict_images_per_s": len(ds) / t_pred, "rss_peak_mib": round(_rss_mib(), 1),
            "gpu_peak_mib": _peak_gpu(model.device)}


#: the training table's columns: header and the row key each shows
COLUMNS = (("strategy", "strategy"), ("variant", "variant"), ("precision", "precision"),
           ("s/epoch", "s_per_epoch"), ("images/s", "images_per_s"),
           ("GFLOP/s", "gflops"), ("% of peak", "pct_peak"), ("× plain", "x_plain"),
           ("× previous", "x_previous"), ("peak RSS MiB", "rss_peak_mib"))


def _cell(key: str, r: dict) -> str:
    v = r.get(key)
    if v is None:
        return "–"
    if key == "pct_peak":
        return f"{v:.1f} % of {r['peak_of']}"
    if key in ("s_per_epoch", "x_plain", "x_previous"):
        return f"{v:.2f}"
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def markdown(info: dict, train: list[dict], score: dict | None,
             peak: dict[str, dict] | None = None, flops: dict[str, float] | None = None) -> str:
    lines = ["# Speed", "", markdown_line(info), ""]
    if peak:
        lines += ["## Measured peak (this run's threads)", "",
                  "| precision | matmul GFLOP/s | 3×3 conv GFLOP/s | peak GFLOP/s |",
                  "|---|---|---|---|"]
        lines += [f"| {p} | {v['matmul_gflops']} ({v['matmul']}) | {v['conv3x3_gflops']} "
                  f"({v['conv3x3']}) | {v['gflops']} |" for p, v in peak.items()]
        lines.append("")
    if flops:
        lines += ["FLOPs of one training image (forward + backward, FlopCounterMode): "
                  + ", ".join(f"{s} {f / 1e9:.2f} GFLOP" for s, f in flops.items()), ""]
    if train:
        lines += ["## Training throughput", "",
                  "| " + " | ".join(h for h, _ in COLUMNS) + " |",
                  "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(_cell(k, r) for _, k in COLUMNS) + " |" for r in train]
        lines.append("")
    if score:
        lines += ["## Scoring throughput", "",
                  f"{score['images']} images at {score['size']} px: score "
                  f"{score['score_images_per_s']:.1f} images/s, predict "
                  f"{score['predict_images_per_s']:.1f} images/s; peak RSS "
                  f"{score['rss_peak_mib']} MiB"
                  + (f", GPU peak {score['gpu_peak_mib']:.0f} MiB" if score["gpu_peak_mib"]
                     else ""), ""]
    return "\n".join(lines)


def ratio(train: list[dict], strategy: str) -> float | None:
    """images/s of the product over the plain loop for one strategy."""
    got = {r["variant"]: r for r in train if r["strategy"] == strategy}
    if "plain" in got and "product" in got:
        return got["product"]["images_per_s"] / got["plain"]["images_per_s"]
    return None


def cmd_speed(a: argparse.Namespace) -> int:
    from napari_pal.bench.benchmark import default_data
    from napari_pal.data.dataset import open_dataset

    bad = [v for v in a.variants if v not in VARIANTS]
    if bad:
        raise PalError(f"unknown variants {bad}: choose among {', '.join(VARIANTS)}")
    if a.size % 16 or a.epochs < 1 or a.batch_size < 1:
        raise PalError("--size must be a multiple of 16; --epochs and --batch-size >= 1")
    data = Path(a.data) if a.data else default_data()
    split = data / "split.csv"
    train_ds = open_dataset(data, split=f"{split}:train" if split.is_file() else None)
    if a.images:
        train_ds = train_ds.subset(train_ds.names[: a.images])
    out = Path(a.out)
    device = dev.pick_device(a.device)
    if device.type == "cpu":  # thread settings are the CPU's; a GPU run keeps torch's own
        dev.set_threads(a.threads)
    info = machine_info(torch.get_num_threads() if device.type == "cpu" else None)
    info.update(device=str(device), images=len(train_ds), size=a.size, batch=a.batch_size,
                epochs=a.epochs, workers=a.workers)
    peak, flops = None, {}
    if a.variants:
        print("  measuring the peak ...", file=sys.stderr, flush=True)
        peak = peaks.measure_peak(device, batch=a.batch_size, size=a.size,
                                  min_s=a.peak_seconds, matmul_n=a.peak_matmul or None)
        classes = len(train_ds.classes)
        flops = {s: peaks.flops_per_image(_config(a, s, device), classes, device)
                 for s in a.strategies}
    with tempfile.TemporaryDirectory(prefix="pal-speed-") as tmp:
        train = train_speed(a, train_ds, Path(tmp), device) if a.variants else []
        if train:
            rate_rows(train, peak, flops)
        score = None
        if a.score_images != 0:
            run = Path(a.run) if a.run else (Path(tmp) / a.strategies[0] if train and
                                             "product" in a.variants else None)
            if run is None:
                raise PalError("scoring needs a trained run: give --run or keep 'product' "
                               "among --variants (or --score-images 0 to skip)")
            full = open_dataset(data)
            if a.score_images > 0:
                full = full.subset(full.names[: a.score_images])
            score = score_speed(run, full, a.device)
    result = {"info": info, "peak": peak, "flops_per_image": flops, "train": train,
              "score": score, "ratio": {s: ratio(train, s) for s in a.strategies}}
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "speed.json", json.dumps(result, indent=2))
    text = markdown(info, train, score, peak, flops)
    for s, r in result["ratio"].items():
        if r is not None:
            text += f"\nproduct / plain ({s}): {r:.2f}× images/s\n"
    write_text(out / "speed.md", text)
    print(text)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("speed", help="training/scoring throughput: product vs plain PyTorch",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--data", help="JSRT folder (default ../shared/data/jsrt256)")
    s.add_argument("--out", required=True, help="folder for speed.json and speed.md")
    s.add_argument("--size", type=int, default=256)
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--epochs", type=int, default=3, help="per variant; the first is warm-up")
    s.add_argument("--images", type=int, default=0, help="first N training images (0: all)")
    s.add_argument("--strategies", nargs="+", default=["baseline", "qam_ocm"])
    s.add_argument("--variants", nargs="*", default=list(VARIANTS))
    s.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="the product's precision")
    s.add_argument("--workers", type=int, default=0, help="DataLoader workers of 'plain'")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=0, help="CPU threads (0: all)")
    s.add_argument("--peak-seconds", type=float, default=2.0,
                   help="time spent measuring each peak operation")
    s.add_argument("--peak-matmul", type=int, default=0,
                   help="matmul size N of the peak (0: 2048 on a CPU, 8192 on a GPU)")
    s.add_argument("--run", help="run folder to score with (default: the product run)")
    s.add_argument("--score-images", type=int, default=-1,
                   help="images of DATA to score (-1: all, 0: skip scoring)")
    s.set_defaults(func=cmd_speed)


def main(argv: list[str] | None = None) -> int:
    from napari_pal.bench.args import run_or_report

    p = argparse.ArgumentParser(prog="python -m napari_pal.bench")
    add_parser(p.add_subparsers(dest="command", required=True))
    a = p.parse_args(["speed", *(sys.argv[1:] if argv is None else argv)])
    return run_or_report("speed", cmd_speed, a)


__all__ = ["COLUMNS", "VARIANTS", "add_parser", "main", "ratio", "rate_rows"]


if __name__ == "__main__":
    sys.exit(main())
