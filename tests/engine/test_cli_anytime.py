"""`train --minutes` (time budget) and `train --score-every` (anytime ranking) on the real CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from napari_pal.cli import main
from napari_pal.data.synthetic import make_sample_dataset
from napari_pal.method.budget import SIZES

TINY_NET = ["--width", "4", "--threads", "1", "--batch-size", "4"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "data"
    make_sample_dataset(root, n=6, size=64, seed=3, bad_fraction=0.34)
    return root


def test_minutes_plans_size_and_epochs_and_score_every_writes_the_ranking(tiny, tmp_path,
                                                                          capsys):
    run = tmp_path / "run"
    assert main(["train", str(tiny), "--out", str(run), "--minutes", "0.2",
                 "--score-every", "0.001", *TINY_NET]) == 0
    err = capsys.readouterr().err
    assert "planned: " in err and "ranking (final) at epoch" in err
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["size"] in SIZES and 10 <= config["epochs"] <= 60
    with (run / "ranking.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["name"] for r in rows) == sorted(p.stem for p in (tiny / "images").iterdir())
    assert {"quality", "status"} <= set(rows[0]) and any(k.startswith("reliable_") for k in rows[0])
    qualities = [float(r["quality"]) for r in rows]
    assert qualities == sorted(qualities)  # worst first


@pytest.mark.parametrize("extra", [["--size", "64"], ["--epochs", "3"], ["--stages", "32:2"]])
def test_minutes_with_size_or_epochs_is_refused(tiny, tmp_path, capsys, extra):
    assert main(["train", str(tiny), "--out", str(tmp_path / "r"), "--minutes", "1",
                 *extra, *TINY_NET]) == 2
    assert "give either --minutes or --size/--epochs" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_without_score_every_no_ranking_is_written(tiny, tmp_path):
    run = tmp_path / "run"
    assert main(["train", str(tiny), "--out", str(run), "--size", "32", "--epochs", "1",
                 *TINY_NET]) == 0
    assert not (run / "ranking.csv").exists()
