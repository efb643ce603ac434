"""End to end on a slice of the real JSRT data: corrupt, train, score, predict, evaluate."""

import csv
from pathlib import Path

import pytest
import tifffile

from napari_pal.cli import main


@pytest.fixture(scope="module")
def jsrt_slice(tmp_path_factory, jsrt256) -> Path:
    rows = list(csv.DictReader(open(jsrt256 / "split.csv")))
    train = [r["name"] for r in rows if r["split"] == "train"][:10]
    test = [r["name"] for r in rows if r["split"] == "test"][:4]
    split = tmp_path_factory.mktemp("split") / "slice.csv"
    split.write_text("name,split\n" + "".join(f"{n},train\n" for n in train)
                     + "".join(f"{n},test\n" for n in test))
    return split


def test_corrupt_train_score_predict_evaluate(tmp_path, jsrt_slice, jsrt256, capsys,
                                              tree_hash):
    JSRT = jsrt256  # noqa: N806 - the real data set, read-only
    before = tree_hash(JSRT)
    noisy = tmp_path / "noisy"
    assert main(["corrupt", str(JSRT), str(noisy), "--fraction", "0.5", "--pixels", "5", "13",
                 "--split", f"{jsrt_slice}:train"]) == 0
    truth = list(csv.DictReader(open(noisy / "corruption.csv")))
    bad = {r["name"] for r in truth if r["operation"] != "none"}
    assert len(bad) == 5

    run = tmp_path / "run"
    assert main(["train", str(noisy), "--out", str(run), "--split", f"{noisy}/split.csv:train",
                 "--epochs", "2", "--size", "64", "--batch-size", "5", "--width", "4",
                 "--warmup", "1", "--threads", "1"]) == 0
    history = list(csv.DictReader(open(run / "history.csv")))
    assert len(history) == 2 and history[1]["weighting"] == "1"
    assert history[1]["clean_weight"] and history[1]["corrupt_weight"], "truth was picked up"
    assert main(["train", str(noisy), "--out", str(run), "--epochs", "2", "--threads", "1"]) == 2
    assert "--resume" in capsys.readouterr().err

    scores = tmp_path / "scores.csv"
    assert main(["score", str(run), str(noisy), "--split", f"{noisy}/split.csv:train",
                 "--out", str(scores), "--maps", str(tmp_path / "maps")]) == 0
    maps = sorted((tmp_path / "maps").glob("*.tif"))
    assert len(maps) == 10
    disagreement = tifffile.imread(maps[0])
    assert disagreement.shape == (256, 256) and 0 <= disagreement.min() <= disagreement.max() <= 1
    rows = list(csv.DictReader(open(scores)))
    assert len(rows) == 10
    assert list(rows[0])[:5] == ["name", "quality", "quality_clavicles", "quality_heart",
                                 "quality_lungs"]
    assert {"qam", "dist_lungs", "dice_heart", "offset_clavicles"} <= set(rows[0])
    q = [float(r["quality"]) for r in rows]
    assert q == sorted(q) and all(0 <= v <= 1 for v in q)

    pred = tmp_path / "pred"
    assert main(["predict", str(run), str(JSRT), "--split", f"{jsrt_slice}:test",
                 "--out", str(pred)]) == 0
    assert len(list((pred / "masks" / "heart").glob("*.png"))) == 4
    table = tmp_path / "dice.csv"
    assert main(["evaluate", str(pred), str(JSRT), "--split", f"{jsrt_slice}:test",
                 "--out", str(table)]) == 0
    out = capsys.readouterr().out
    assert "4 images" in out and "mean" in out
    last = list(csv.DictReader(open(table)))[-1]
    assert last["name"] == "MEAN" and 0 <= float(last["dice_mean"]) <= 1
    assert tree_hash(JSRT) == before, "nothing is written into the input folder"


def test_output_inside_the_input_folder_is_refused(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "never writes" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_every_command_has_help(capsys):
    for cmd in ("train", "score", "predict", "evaluate", "corrupt"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        assert "--split" in capsys.readouterr().out
