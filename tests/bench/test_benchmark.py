"""The benchmark, detection and speed commands on tiny settings (no timing asserted)."""

from __future__ import annotations

import argparse
import csv
import json
import math

import numpy as np
import pytest

from napari_pal.bench import benchmark, speed
from napari_pal.bench import detection as benchmark_detection
from napari_pal.bench import report as benchmark_report
from napari_pal.errors import PalError
from napari_pal.scoring.detection import (
    average_precision,
    cleanlab_quality,
    detection_metrics,
    precision_at_k,
    roc_auc,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="napari-pal")
    sub = p.add_subparsers(dest="command", required=True)
    benchmark.add_parser(sub)
    speed.add_parser(sub)
    return p


def _run(*argv: str) -> int:
    a = _parser().parse_args(list(argv))
    return a.func(a)


# --- detection metrics ----------------------------------------------------------------------

def test_detection_metrics_match_sklearn():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    checked = 0
    for trial in range(300):
        n = int(rng.integers(2, 60))
        y = rng.random(n) < rng.uniform(0.1, 0.9)
        if y.all() or not y.any():
            continue
        # half the trials with many ties
        s = rng.integers(0, 4, n).astype(float) if trial % 2 else rng.normal(size=n)
        assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
        checked += 1
    assert checked > 200


def test_precision_at_k_and_edge_cases():
    y = np.array([1, 0, 1, 0, 0], bool)
    s = np.array([0.9, 0.8, 0.1, 0.3, 0.2])
    assert precision_at_k(y, s) == 0.5  # k = 2: top two are 0.9 (bad), 0.8 (clean)
    assert precision_at_k(y, s, k=1) == 1.0
    assert precision_at_k(y, -s, k=5) == pytest.approx(0.4)
    perfect = detection_metrics(y, y.astype(float))
    assert perfect == {"auc": 1.0, "ap": 1.0, "p_at_k": 1.0}
    none_bad = detection_metrics(np.zeros(4, bool), np.arange(4.0))
    assert all(math.isnan(v) for v in none_bad.values())
    assert roc_auc(y, [np.inf, 0, 5, 1, np.nan]) == 1.0  # inf ranks top, NaN bottom


def test_cleanlab_quality_ranks_a_wrong_mask_lower():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:32, :32]
    disk = (yy - 16) ** 2 + (xx - 16) ** 2 < 64
    masks = np.stack([np.stack([disk, ~disk])] * 4)  # (4, 2, 32, 32), overlapping-style classes
    probs = np.clip(masks * 0.9 + 0.05 + rng.normal(0, 0.02, masks.shape), 0, 1)
    given = masks.copy()
    given[2, 0] = (yy - 16) ** 2 + (xx - 16) ** 2 < 150  # dilated
    q = cleanlab_quality(given, probs)
    assert q.shape == (4,) and np.all(np.isfinite(q))
    assert q.argmin() == 2


# --- grid and corruption --------------------------------------------------------------------

def test_grid_runs_no_noise_once_and_adds_one_sided_rows():
    grid = benchmark.make_grid([0, 25, 50, 75], ["1-8", "5-13"], ["baseline", "qam", "qam_ocm"],
                               [0, 1], [("erode", "dilate"), ("dilate",)])
    zero = [g for g in grid if g.fraction == 0]
    assert len(zero) == 3 * 2 and {g.level for g in zero} == {"none"}
    assert len(grid) == 6 + 2 * 3 * 2 * 3 * 2
    assert len({(g.ops, g.fraction, g.level, g.strategy, g.seed) for g in grid}) == len(grid)


def test_corrupt_in_memory_equals_corrupt_command(sample_dir, tmp_path):
    from napari_pal.data.corruption import corrupt_dataset
    from napari_pal.data.dataset import open_dataset

    records = corrupt_dataset(sample_dir, tmp_path / "c", fraction=0.5, pixels=(2, 6), seed=3)
    src, written = open_dataset(sample_dir), open_dataset(tmp_path / "c")
    got = benchmark.corrupt_in_memory(src, 0.5, (2, 6), 3, ("erode", "dilate"))
    assert set(got) == {r.name for r in records if r.operation != "none"}
    for name, masks in got.items():
        assert np.array_equal(masks, written.read_masks(written.index(name)))


def test_bad_arguments_raise_palerror(jsrt256, tmp_path):
    with pytest.raises(PalError):
        _run("benchmark", "--data", str(jsrt256), "--out", str(tmp_path), "--levels", "8-1")
    with pytest.raises(PalError):
        _run("benchmark", "--data", str(jsrt256), "--out", str(tmp_path), "--ops", "blur")
    with pytest.raises(PalError):
        _run("benchmark", "--data", str(jsrt256), "--out", str(jsrt256 / "x"))


# --- a tiny benchmark run -------------------------------------------------------------------

def test_tiny_benchmark_writes_csv_markdown_fig4_and_resumes(jsrt256, tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["benchmark", "--data", str(jsrt256), "--out", str(out), "--size", "32",
            "--epochs", "1", "--limit-train", "8", "--limit-test", "4", "--fractions", "50",
            "--levels", "5-13", "--strategies", "baseline", "qam_ocm", "--threads", "1"]
    assert _run(*argv) == 0
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["strategy"] for r in rows] == ["baseline", "qam_ocm"]
    for r in rows:
        assert (r["protocol"], r["size"], r["fraction"], r["level"]) == ("cpu", "32", "50", "5-13")
        assert r["n_train"] == "8" and r["n_corrupt"] == "4" and r["n_test"] == "4"
        for col in ("dice_lungs", "dice_heart", "dice_clavicles", "dice_mean", "train_s",
                    "auc_quality", "ap_quality", "p_at_k_quality",
                    "auc_cleanlab", "ap_cleanlab", "p_at_k_cleanlab"):
            assert math.isfinite(float(r[col])), col
            if col != "train_s":
                assert 0.0 <= float(r[col]) <= 1.0, col
    assert math.isnan(float(rows[0]["auc_qam"])) and math.isfinite(float(rows[1]["auc_qam"]))
    md = (out / "results.md").read_text()
    assert "0.912" in md and "0.652" in md  # the paper's 50 %, 5-13 px rows beside ours
    assert "| 50 % | 5-13 | erode+dilate | QAM+OCM | 1 |" in md
    assert "AUC cleanlab" in md
    for png in (out / "fig4.png", out / "runs" / rows[1]["run_dir"].split("/")[-1] / "fig4.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # started again: both runs are skipped
    capsys.readouterr()
    assert _run(*argv) == 0
    assert capsys.readouterr().err.count("skipped") == 2
    # a run whose row is missing (killed after training) is evaluated from its checkpoint
    with open(out / "results.csv", newline="") as fh:
        text = fh.read().splitlines()
    (out / "results.csv").write_text("\n".join(text[:2]) + "\n")
    assert _run(*argv) == 0
    err = capsys.readouterr().err
    assert err.count("skipped") == 1 and "epoch 1/1" not in err
    with open(out / "results.csv", newline="") as fh:
        again = list(csv.DictReader(fh))
    assert again[1]["dice_mean"] == rows[1]["dice_mean"]


def test_out_of_fold_detection_adds_columns_and_reuses_finished_runs(jsrt256, tmp_path, capsys):
    out = tmp_path / "bench"
    base = ["benchmark", "--data", str(jsrt256), "--out", str(out), "--size", "32",
            "--epochs", "1", "--limit-train", "8", "--limit-test", "2", "--fractions", "50",
            "--levels", "5-13", "--strategies", "qam_ocm", "--threads", "1"]
    assert _run(*base) == 0
    capsys.readouterr()
    assert _run(*base, "--oof-folds", "2") == 0  # in-sample row redone with the oof columns
    err = capsys.readouterr().err
    assert "skipped" not in err and "fold1of2 epoch 1/1" in err and "fold2of2 epoch 1/1" in err
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and rows[0]["oof_folds"] == "2"
    for col in ("auc_quality_oof", "ap_cleanlab_oof", "p_at_k_qam_oof"):
        assert 0.0 <= float(rows[0][col]) <= 1.0, col
    assert "| out of fold |" in (out / "results.md").read_text()
    folds = benchmark_detection.fold_indices(8, 2, 0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(8))
    assert all(len(f) == 4 for f in folds)


def test_runs_without_lambda_join_every_lambda_table():
    proto = dict(benchmark.PROTOCOLS["cpu"], lam=1.0, qam_loss="bce")
    assert benchmark.method_settings(proto, "baseline")["lam"] == "-"
    assert benchmark.method_settings(proto, "baseline")["qam_loss"] == "-"
    assert benchmark.method_settings(proto, "qam") == dict(proto, lam="-")
    assert benchmark.method_settings(proto, "qam_ocm") == proto

    def row(strategy, lam, dice):
        base = benchmark.method_settings(dict(proto, lam=lam), strategy)
        return {"protocol": "cpu", **base, "ops": "erode+dilate", "fraction": 50,
                "level": "5-13", "strategy": strategy, "seed": 0, "n_corrupt": 82,
                "dice_lungs": dice, "dice_mean": dice, "train_s": 1}

    md = benchmark_report.markdown([row("baseline", 1.0, 0.8), row("qam_ocm", 1.0, 0.91),
                                    row("qam_ocm", 2.0, 0.92)])
    assert md.count("## Protocol `cpu`") == 2  # one table per λ
    assert md.count("| 50 % | 5-13 | erode+dilate | baseline | 1 | 0.800 |") == 2
    assert md.count("QAM+OCM | 1 | 0.910") == 1 and md.count("QAM+OCM | 1 | 0.920") == 1


# --- speed ----------------------------------------------------------------------------------

def test_speed_runs_every_variant_and_reports_a_ratio(jsrt256, tmp_path):
    out = tmp_path / "speed"
    assert _run("speed", "--data", str(jsrt256), "--out", str(out), "--size", "32",
                "--images", "4", "--epochs", "1", "--batch-size", "2",
                "--strategies", "qam_ocm", "--score-images", "3", "--threads", "1",
                "--peak-seconds", "0.05", "--peak-matmul", "256") == 0
    res = json.loads((out / "speed.json").read_text())
    assert [r["variant"] for r in res["train"]] == list(speed.VARIANTS)
    for r in res["train"]:
        assert r["images_per_s"] > 0 and r["s_per_epoch"] > 0 and r["rss_peak_mib"] > 0
    assert res["ratio"]["qam_ocm"] > 0
    assert res["score"]["images"] == 3 and res["score"]["score_images_per_s"] > 0
    assert "product / plain (qam_ocm)" in (out / "speed.md").read_text()
