"""What a timing was measured on: CPU kind and flags, the kernels torch chose, threads, build.

A number without this is meaningless here: the same run is 7x slower on a CPU without
AVX-512 BF16. ``ATEN_CPU_CAPABILITY``/``ONEDNN_MAX_CPU_ISA`` emulate a lesser CPU on a
better one; they are reported so that such a run says it was emulated.
"""

from __future__ import annotations

import os
import platform

FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_model_and_flags() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    return model, [f for f in FLAGS if f in flags]


def machine_info(threads: int | None = None) -> dict[str, object]:
    """A dict for a benchmark's report (JSON- and Markdown-friendly)."""
    import torch

    from napari_pal.method import device as dev

    model, flags = cpu_model_and_flags()
    return {
        "cpu": model,
        "cpu_flags": " ".join(flags) or "none of " + " ".join(FLAGS),
        "torch_cpu_kernels": torch.backends.cpu.get_cpu_capability(),
        "emulated": " ".join(f"{k}={os.environ[k]}" for k in
                             ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in os.environ)
                    or "no",
        "threads": threads if threads is not None else torch.get_num_threads(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_build": f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU",
        "device": str(dev.pick_device("auto")),
        "bf16_native": dev.cpu_has_bf16(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }


def markdown_line(info: dict[str, object]) -> str:
    return ("Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()) + ".")
