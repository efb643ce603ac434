"""The error-kind benchmark and the review-effort helpers on tiny settings."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from napari_pal.bench import errorkinds
from napari_pal.scoring.effort import found_curve, random_reviews, reviews_to_find


def test_reviews_to_find_counts_masks_in_score_order():
    bad = np.array([0, 1, 0, 1, 0, 0, 1, 0], bool)
    perfect = bad.astype(float)
    assert reviews_to_find(bad, perfect) == {0.5: 2, 0.9: 3, 1.0: 3}
    worst = -perfect
    assert reviews_to_find(bad, worst) == {0.5: 7, 0.9: 8, 1.0: 8}
    np.testing.assert_array_equal(found_curve(bad, perfect), [0, 1, 2, 3, 3, 3, 3, 3, 3])
    # the m-th of P bad among N lies on average at m (N + 1) / (P + 1)
    assert random_reviews(3, 8)[1.0] == pytest.approx(3 * 9 / 4)
    rng = np.random.default_rng(0)
    sims = [reviews_to_find(bad, rng.random(8))[1.0] for _ in range(4000)]
    assert np.mean(sims) == pytest.approx(random_reviews(3, 8)[1.0], abs=0.1)


def test_benchmark_runs_end_to_end_at_tiny_settings(tmp_path, capsys):
    from napari_pal.data.synthetic import make_sample_dataset

    make_sample_dataset(tmp_path / "src", n=10, size=64, bad_fraction=0.0)
    (tmp_path / "src" / "corruption.csv").unlink()
    out = tmp_path / "bench"
    args = ["--data", str(tmp_path / "src"), "--out", str(out), "--fraction", "0.6",
            "--pixels", "2", "4", "--size", "32", "--epochs", "2", "--width", "4"]
    assert errorkinds.main(args) == 0
    table = (out / "table.md").read_text()
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert len(rows) == 10 * 3
    kinds = {r["kind"] for r in rows} - {"none"}
    assert len(kinds) >= 5  # one or two classes of 6 images, each its own kind
    for kind in kinds:
        assert f"| {kind} |" in table
    for r in rows:
        for sig in ("quality", "outline", "dice", "cleanlab"):
            assert 0.0 <= float(r[sig]) <= 1.0
        assert not math.isnan(float(r["qam"]))
    assert (out / "effort.png").stat().st_size > 0 and "random (expected)" in table
    assert "| **all** |" in capsys.readouterr().out
    # a trained run is reused and the spoilt folder kept
    assert errorkinds.main([*args, "--run", str(out / "run"), "--out", str(tmp_path / "b2"),
                            "--folder", str(out / "data")]) == 0
    def cells(text):
        return [line for line in text.splitlines() if line.startswith("|")]

    assert cells((tmp_path / "b2" / "table.md").read_text()) == cells(table)
    # out of fold: two fold models, each scoring the images it did not train on
    assert errorkinds.main([*args, "--out", str(tmp_path / "b3"), "--folder", str(out / "data"),
                            "--oof-folds", "2"]) == 0
    assert (tmp_path / "b3" / "fold2of2" / "checkpoint.pt").is_file()
    assert "out of fold" in (tmp_path / "b3" / "table.md").read_text()


def test_refuses_unknown_kinds_and_folders_without_truth(tmp_path):
    assert errorkinds.main(["--out", str(tmp_path / "o"), "--kinds", "melt"]) == 2
    (tmp_path / "empty").mkdir()
    assert errorkinds.main(["--out", str(tmp_path / "o"), "--folder",
                            str(tmp_path / "empty")]) == 2
