"""The machine's measured arithmetic peak and the FLOPs of one training image.

A loop's images/s says little across machines; its achieved GFLOP/s as a share of what
this machine reaches on the same threads and precision says how much is left. The peak
is measured, not looked up: a float32 matmul and a 3×3 convolution of U-Net shape (the
level that holds most of the network's FLOPs at a quarter of the training size), in
bfloat16 too where the CPU does it natively (AVX-512 BF16/AMX) or on a GPU that does.
The FLOPs of one image are counted by ``torch.utils.flop_counter.FlopCounterMode`` on a
real forward+backward step (U-Net, and the QAM unless ``baseline``), so they follow the
networks' settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from napari_pal.method import device as dev


def _rate(fn: Callable[[], object], flops: float, device: torch.device,
          min_s: float) -> float:
    """GFLOP/s of ``fn`` (``flops`` each call): best of three timings of at least
    ``min_s`` / 3 seconds each, after a warm-up call."""
    fn()
    dev.synchronize(device)
    best = 0.0
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dev.synchronize(device)
            elapsed = time.perf_counter() - t0
            if elapsed >= min_s / 3:
                break
        best = max(best, n * flops / elapsed / 1e9)
    return best


def _matmul_rate(n: int, device: torch.device, dtype: torch.dtype, min_s: float) -> float:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device, dtype)
    b = torch.randn(n, n, generator=gen).to(device, dtype)
    return _rate(lambda: a @ b, 2.0 * n**3, device, min_s)


def _conv_rate(batch: int, hw: int, device: torch.device, dtype: torch.dtype,
               min_s: float) -> float:
    gen = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).to(
        device, dtype, memory_format=torch.channels_last)
    x = torch.randn(batch, 64, hw, hw, generator=gen).to(device, dtype).contiguous(
        memory_format=torch.channels_last)
    with torch.no_grad():
        return _rate(lambda: conv(x), 2.0 * batch * hw * hw * 64 * 64 * 9, device, min_s)


def peak_precisions(device: torch.device) -> list[str]:
    """fp32 always; bf16 where this device runs it natively."""
    bf16 = (device.type == "cpu" and dev.cpu_has_bf16()) or (
        device.type == "cuda" and torch.cuda.is_bf16_supported())
    return ["fp32", "bf16"] if bf16 else ["fp32"]


def measure_peak(device: torch.device, *, batch: int = 16, size: int = 256,
                 min_s: float = 1.0, matmul_n: int | None = None) -> dict[str, dict]:
    """{precision: {"matmul_gflops", "conv3x3_gflops", "gflops" (the larger), shapes}}
    on this process's threads. Convolution: ``batch`` × 64 → 64 channels at size/4 px,
    channels-last (the U-Net's third level, the layout the product uses)."""
    n = matmul_n or (8192 if device.type == "cuda" else 2048)
    hw = max(size // 4, 8)
    out: dict[str, dict] = {}
    for precision in peak_precisions(device):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        mm, cv = _matmul_rate(n, device, dtype, min_s), _conv_rate(batch, hw, device, dtype, min_s)
        out[precision] = {"matmul_gflops": round(mm, 1), "conv3x3_gflops": round(cv, 1),
                          "gflops": round(max(mm, cv), 1), "matmul": f"{n}x{n}x{n}",
                          "conv3x3": f"{batch}x64x{hw}x{hw} -> 64"}
    return out


def flops_per_image(cfg, classes: int, device: torch.device, batch: int = 2) -> float:
    """FLOPs of one training image (forward + backward of the U-Net and, unless the
    strategy is ``baseline``, the QAM and its weighted loss), counted on a real step of
    ``batch`` random images at ``cfg.size`` on ``device``."""
    from torch.utils.flop_counter import FlopCounterMode

    from napari_pal.method.training import build_networks, quality_input
    from napari_pal.method.weighting import per_sample_loss, sample_weights

    seg, qam = build_networks(cfg, classes)
    seg.to(device).train()
    qam.to(device).train()
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 1, cfg.size, cfg.size, generator=gen).to(device)
    masks = (torch.rand(batch, classes, cfg.size, cfg.size, generator=gen) > 0.5).float()
    masks = masks.to(device)
    counter = FlopCounterMode(display=False)
    with counter:
        logits = seg(images)
        losses = per_sample_loss(logits, masks)
        if cfg.strategy == "baseline":
            loss = losses.mean()
        else:
            scores = qam(quality_input(images, masks, logits, cfg))
            loss = (sample_weights(scores, cfg.strategy, cfg.lam) * losses).sum()
        loss.backward()
    return counter.get_total_flops() / batch


def achieved(images_per_s: float, flops_image: float, peak_gflops: float) -> dict:
    """GFLOP/s a loop reached and its % of the measured peak."""
    gflops = images_per_s * flops_image / 1e9
    return {"gflops": gflops, "pct_peak": 100.0 * gflops / peak_gflops}


__all__ = ["achieved", "flops_per_image", "measure_peak", "peak_precisions"]
