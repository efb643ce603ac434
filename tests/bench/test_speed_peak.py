"""The speed benchmark's one run: measured peak, FLOPs per image, and for each loop its
GFLOP/s, % of that peak and × plain (tiny sizes; no timing asserted)."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from napari_pal.bench import peak as peaks
from napari_pal.bench import speed
from napari_pal.method.config import TrainConfig

TINY = ("--size", "32", "--images", "4", "--epochs", "1", "--batch-size", "2",
        "--threads", "1", "--peak-seconds", "0.03", "--peak-matmul", "128",
        "--score-images", "0")


def _speed(*argv: str) -> int:
    p = argparse.ArgumentParser()
    speed.add_parser(p.add_subparsers(dest="command", required=True))
    a = p.parse_args(["speed", *argv])
    return a.func(a)


def test_one_run_reports_peak_flops_and_every_column(jsrt256, tmp_path):
    out = tmp_path / "speed"
    assert _speed("--data", str(jsrt256), "--out", str(out), *TINY,
                  "--strategies", "baseline", "qam_ocm",
                  "--variants", "plain", "+channels_last", "product") == 0
    res = json.loads((out / "speed.json").read_text())
    for key in ("cpu_flags", "torch_cpu_kernels", "emulated", "threads", "torch_build"):
        assert key in res["info"], key
    assert res["info"]["threads"] == 1
    peak = res["peak"]
    assert "fp32" in peak
    for p in peak.values():  # the peak is the better of the two measured operations
        assert p["matmul_gflops"] > 0 and p["conv3x3_gflops"] > 0
        assert p["gflops"] == max(p["matmul_gflops"], p["conv3x3_gflops"])
    flops = res["flops_per_image"]
    assert flops["qam_ocm"] > flops["baseline"] > 0
    rows = res["train"]
    assert [(r["strategy"], r["variant"]) for r in rows] == [
        (s, v) for s in ("baseline", "qam_ocm") for v in ("plain", "+channels_last", "product")]
    for r in rows:
        for _, key in speed.COLUMNS:
            assert key in r, (key, r["variant"])
        # achieved GFLOP/s and % of peak come from this run's measured numbers
        want = r["images_per_s"] * flops[r["strategy"]] / 1e9
        assert r["gflops"] == pytest.approx(want, rel=1e-9)
        assert r["pct_peak"] == pytest.approx(100 * want / peak[r["peak_of"]]["gflops"],
                                              rel=1e-9)
        plain = next(p for p in rows if p["strategy"] == r["strategy"]
                     and p["variant"] == "plain")
        assert r["x_plain"] == pytest.approx(r["images_per_s"] / plain["images_per_s"])
        assert r["peak_of"] == (r["precision"] if r["precision"] in peak else "fp32")
    md = (out / "speed.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| strategy"))
    assert [c.strip() for c in header.strip("|").split("|")] == [h for h, _ in speed.COLUMNS]
    assert "Measured peak" in md and "cpu_flags" in md and "torch_build" in md
    product = next(r for r in rows if r["variant"] == "product" and r["strategy"] == "qam_ocm")
    assert f"{product['pct_peak']:.1f} % of {product['peak_of']}" in md


def test_rate_rows_uses_the_peak_of_each_rows_precision():
    peak = {"fp32": {"gflops": 100.0}, "bf16": {"gflops": 400.0}}
    rows = [{"strategy": "s", "variant": "plain", "images_per_s": 2.0},
            {"strategy": "s", "variant": "+bf16", "images_per_s": 8.0},
            {"strategy": "s", "variant": "product", "images_per_s": 4.0, "precision": "bf16"}]
    speed.rate_rows(rows, peak, {"s": 10e9})
    assert [r["gflops"] for r in rows] == [20.0, 80.0, 40.0]
    assert [r["pct_peak"] for r in rows] == [20.0, 20.0, 10.0]
    assert [r["x_plain"] for r in rows] == [1.0, 4.0, 2.0]
    assert [r["x_previous"] for r in rows] == [None, 4.0, None]
    # no native bf16 measured: a bf16 loop is held against the fp32 peak, and says so
    rows = [{"strategy": "s", "variant": "+bf16", "images_per_s": 1.0}]
    speed.rate_rows(rows, {"fp32": {"gflops": 50.0}}, {"s": 10e9})
    assert rows[0]["peak_of"] == "fp32" and rows[0]["pct_peak"] == 20.0
    assert rows[0]["x_plain"] is None


def test_flops_per_image_follow_the_networks_and_the_pixels():
    def count(strategy: str, size: int) -> float:
        cfg = TrainConfig(strategy=strategy, size=size, width=4, qam_width=4)
        return peaks.flops_per_image(cfg, 3, torch.device("cpu"))

    base32, qam32 = count("baseline", 32), count("qam_ocm", 32)
    assert qam32 > base32 > 0
    # every counted op is a convolution or a matmul whose work grows with the pixels
    assert count("baseline", 64) == pytest.approx(4 * base32, rel=1e-6)
    # forward + backward of a 3×3 conv net: at least 2× its forward convolutions
    first = 2 * 32 * 32 * 1 * 4 * 9  # the U-Net's first conv alone, forward
    assert base32 > 2 * first


def test_measure_peak_is_positive_on_this_device():
    got = peaks.measure_peak(torch.device("cpu"), batch=2, size=32, min_s=0.03, matmul_n=64)
    assert set(got) == set(peaks.peak_precisions(torch.device("cpu")))
    assert all(math.isfinite(v["gflops"]) and v["gflops"] > 0 for v in got.values())


def test_steptime_times_the_trainers_step_for_each_thread_count(tmp_path):
    from napari_pal.bench import steptime

    out = tmp_path / "step.json"
    assert steptime.main(["--size", "32", "--batch-size", "2", "--threads", "1", "1",
                          "--steps", "2", "--precision", "fp32", "--device", "cpu",
                          "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [r["threads"] for r in res["rows"]] == [1, 1]
    for r in res["rows"]:
        assert len(r["step_times"]) == 2 and r["s_per_step"] > 0
        assert r["images_per_s"] == pytest.approx(2 / r["s_per_step"])
    assert res["precision"] == "fp32" and "cpu_flags" in res["info"]
