"""Where and in what precision the networks run."""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache

import torch


def pick_device(name: str = "auto") -> torch.device:
    """cuda, then mps, else CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True where the CPU does bfloat16 natively (AVX-512 BF16 or AMX) and torch may use it;
    elsewhere bf16 is slow. ``ATEN_CPU_CAPABILITY=avx2`` or ``ONEDNN_MAX_CPU_ISA=AVX2`` (how a
    CPU without AVX-512 is emulated on one with it) count as "no", as on such a CPU."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            flags = fh.read()
    except OSError:
        return False
    if "avx512_bf16" not in flags and "amx_bf16" not in flags:
        return False
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    if isa not in ("ALL", "DEFAULT") and not isa.startswith(("AVX512_CORE_BF16", "AVX512_CORE_AMX",
                                                             "AVX10")):
        return False
    return "AVX512" in torch.backends.cpu.get_cpu_capability().upper()


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The mixed-precision dtype to use, or None for float32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait for a GPU's queued work, so a clock measures it (CUDA and MPS run async)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def set_threads(threads: int = 0) -> None:
    """Use ``threads`` CPU threads (0: all cores)."""
    torch.set_num_threads(threads if threads > 0 else (os.cpu_count() or 1))
