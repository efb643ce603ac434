"""A new user's first hour (issue 10): the real CLI on a tiny synthetic folder.

Each test runs the commands a user runs and checks what they print and write.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from napari_pal.cli import build_parser, main
from napari_pal.data.synthetic import make_sample_dataset

REPO = Path(__file__).resolve().parents[2]
FAST = ["--size", "32", "--width", "4", "--threads", "1", "--batch-size", "4"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """Six 64 px chests with masks (two spoilt) and corruption.csv."""
    root = tmp_path_factory.mktemp("tiny") / "data"
    make_sample_dataset(root, n=6, size=64, seed=3, bad_fraction=0.34)
    return root


@pytest.fixture(scope="module")
def run1(tiny, tmp_path_factory) -> Path:
    """A run of one epoch: far too short to learn anything."""
    run = tmp_path_factory.mktemp("runs") / "run1"
    assert main(["train", str(tiny), "--out", str(run), "--epochs", "1", *FAST]) == 0
    return run


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --- 1. make demo works as the first command -------------------------------------------
def test_demo_installs_what_it_needs_and_demo_cli_prints_no_raw_csv():
    make = (REPO / "Makefile").read_text()
    assert re.search(r"^demo:.*\bsysdeps\b", make, re.M), "demo needs xvfb-run: sysdeps"
    assert re.search(r"^demo-cli:.*\bvenv\b", make, re.M)
    block = make.split("\ndemo-cli:")[1].split("\n\n")[0]
    assert "head" not in block and "scores.csv" in block
    assert "about a minute" not in make


# --- 2. --resume keeps the run's settings ----------------------------------------------
def test_resume_keeps_settings_and_extends_only_on_purpose(tiny, tmp_path, capsys, monkeypatch):
    from napari_pal.method import training

    run = tmp_path / "run"
    real_step = training.Trainer._step

    def step_then_stop(self, *args):  # as if Ctrl-C came during the first step
        out = real_step(self, *args)
        self.stop()
        return out

    monkeypatch.setattr(training.Trainer, "_step", step_then_stop)
    assert main(["train", str(tiny), "--out", str(run), "--epochs", "2", *FAST]) == 130
    err = capsys.readouterr().err
    assert any(line.startswith("stopped; resume with: napari-pal train")
               for line in err.splitlines()), err
    monkeypatch.undo()

    # a plain --resume continues with the run's 32 px and 2 epochs, not the defaults
    assert main(["train", str(tiny), "--out", str(run), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "at 32 px, 2 epochs" in err and "epoch 2/2" in err
    saved = json.loads((run / "config.json").read_text())["config"]
    assert saved["size"] == 32 and saved["epochs"] == 2 and saved["width"] == 4

    assert main(["train", str(tiny), "--out", str(run), "--resume", "--size", "64"]) == 2
    err = capsys.readouterr().err
    assert "--size 64 (the run has 32)" in err
    assert main(["train", str(tiny), "--out", str(run), "--resume"]) == 2
    assert "finished 2 epochs" in capsys.readouterr().err
    assert main(["train", str(tiny), "--out", str(run), "--resume", "--epochs", "1"]) == 2
    assert "already trained 2 epochs" in capsys.readouterr().err

    assert main(["train", str(tiny), "--out", str(run), "--resume", "--epochs", "3",
                 "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "extending the run from 2 to 3 epochs" in err
    assert "epoch 3/3" in err and "epoch 3/2" not in err
    assert json.loads((run / "config.json").read_text())["config"]["epochs"] == 3
    assert len(list(csv.DictReader(open(run / "history.csv")))) == 3


def test_resume_without_a_run_is_an_error(tiny, tmp_path, capsys):
    assert main(["train", str(tiny), "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "holds no run" in capsys.readouterr().err


# --- 3. images without masks -----------------------------------------------------------
def test_predict_and_score_on_images_without_masks(tiny, run1, tmp_path, capsys):
    bare = tmp_path / "bare"
    shutil.copytree(tiny / "images", bare / "images")
    out = tmp_path / "pred"
    assert main(["predict", str(run1), str(bare), "--out", str(out)]) == 0
    assert "6 images had no masks" in capsys.readouterr().out
    assert len(list((out / "masks" / "heart").glob("*.png"))) == 6
    assert (out / "classes.txt").read_text().split() == ["lungs", "heart", "clavicles"]
    assert main(["score", str(run1), str(bare), "--out", str(tmp_path / "s.csv")]) == 0
    assert "none is scored" in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert len(rows) == 6 and {r["status"] for r in rows} == {"draft"}
    assert {r["quality"] for r in rows} == {""}


def test_partly_annotated_folder(tiny, tmp_path, capsys):
    from napari_pal.data.dataset import open_dataset

    data = _copy(tiny, tmp_path / "part")
    for cls in ("lungs", "heart", "clavicles"):
        for name in ("chest_001", "chest_004"):
            (data / "masks" / cls / f"{name}.png").unlink()
    ds = open_dataset(data, unannotated=True)
    assert ds.unannotated_names == ["chest_001", "chest_004"] and len(ds.annotated()) == 4
    assert not ds.items[1].annotated and ds.items[0].annotated
    with pytest.raises(Exception, match="have no mask"):
        open_dataset(data)  # the default still says a mask is missing

    run = tmp_path / "run"
    assert main(["train", str(data), "--out", str(run), "--epochs", "1", *FAST]) == 0
    err = capsys.readouterr().err
    assert "skipping 2 images without masks (chest_001, chest_004)" in err
    assert "on 4 images" in err
    assert main(["predict", str(run), str(data), "--out", str(tmp_path / "pred")]) == 0
    assert len(list((tmp_path / "pred" / "masks" / "lungs").glob("*.png"))) == 6
    scores = tmp_path / "scores.csv"
    assert main(["score", str(run), str(data), "--out", str(scores)]) == 0
    out = capsys.readouterr().out
    assert "4 images scored, 2 without masks (draft)" in out
    assert "draft (no masks, not scored): chest_001, chest_004" in out
    rows = {r["name"]: r for r in csv.DictReader(open(scores))}
    assert len(rows) == 6
    assert {n for n, r in rows.items() if r["status"] == "draft"} == {"chest_001", "chest_004"}
    assert rows["chest_001"]["quality"] == "" and rows["chest_000"]["quality"] != ""


# --- 4. masks in a format the product does not read ------------------------------------
@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".bmp"])
def test_unaccepted_mask_format_is_named(tiny, tmp_path, capsys, suffix):
    from PIL import Image

    data = _copy(tiny, tmp_path / "d")
    png = data / "masks" / "heart" / "chest_002.png"
    Image.open(png).convert("L").save(png.with_suffix(suffix))
    png.unlink()
    assert main(["train", str(data), "--out", str(tmp_path / "run"), *FAST]) == 2
    err = capsys.readouterr().err
    assert f"chest_002{suffix}" in err and ".png, .tif, .tiff" in err
    assert "no mask" not in err


# --- 5. outputs are never mixed or overwritten silently --------------------------------
def test_outputs_need_overwrite(tiny, run1, tmp_path, capsys):
    out = tmp_path / "pred"
    out.mkdir()
    (out / "old.txt").write_text("from another run")
    assert main(["predict", str(run1), str(tiny), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "old.txt").exists()
    assert main(["predict", str(run1), str(tiny), "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["classes.txt", "masks"]
    assert [p.name for p in tmp_path.iterdir()] == ["pred"], "no temporary folder left"

    scores = tmp_path / "scores.csv"
    scores.write_text("keep me")
    assert main(["score", str(run1), str(tiny), "--out", str(scores)]) == 2
    assert "--overwrite" in capsys.readouterr().err and scores.read_text() == "keep me"
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "x.tif").write_text("old")
    assert main(["score", str(run1), str(tiny), "--out", str(tmp_path / "new.csv"),
                 "--maps", str(maps)]) == 2
    assert "--maps" in capsys.readouterr().err
    assert main(["score", str(run1), str(tiny), "--out", str(scores), "--maps", str(maps),
                 "--overwrite"]) == 0
    assert scores.read_text().startswith("name,quality")
    assert sorted(p.name for p in maps.iterdir()) == [f"chest_00{i}.tif" for i in range(6)]


# --- 6. a model that has not learnt a class --------------------------------------------
def test_untrained_model_is_flagged_not_ranked(tiny, run1, tmp_path, capsys):
    scores = tmp_path / "scores.csv"
    assert main(["score", str(run1), str(tiny), "--out", str(scores)]) == 0
    captured = capsys.readouterr()
    assert re.search(r"class '(lungs|heart|clavicles)' is not reliable: the model", captured.err)
    assert "not a ranking" in captured.out
    rows = list(csv.DictReader(open(scores)))
    flagged = [c for c in ("lungs", "heart", "clavicles") if rows[0][f"reliable_{c}"] == "no"]
    assert flagged and all(f"class '{c}' is not reliable" in captured.err for c in flagged)
    assert "ROC AUC" not in captured.out, "no detection claim from noise"


def test_reliability_rule():
    from napari_pal.scoring.quality import ImageScore
    from napari_pal.scoring.reliability import assess, rank_by_reliable

    def score(name, dice_a, off_a, q_a, q_b):
        return ImageScore(name, (q_a + q_b) / 2, {"a": q_a, "b": q_b},
                          {"dice_a": dice_a, "offset_a": off_a, "dice_b": 0.9, "offset_b": 0.5})

    learnt = [score(f"i{k}", 0.9, 1.0, 0.5, 0.9) for k in range(10)]
    assert all(v.reliable for v in assess(learnt, ["a", "b"]).values())
    never = [score(f"i{k}", 0.0, float("inf"), 0.0, 0.1 * k) for k in range(10)]
    v = assess(never, ["a", "b"])
    assert not v["a"].reliable and "never predicts" in v["a"].reason and v["b"].reliable
    ranked = rank_by_reliable(never, v)
    assert [s.quality for s in ranked] == [0.1 * k for k in range(10)], "b alone ranks"
    poor = [score(f"i{k}", 0.2, 3.0, 0.5, 0.5) for k in range(10)]
    assert "median Dice 0.20" in assess(poor, ["a", "b"])["a"].reason


def test_score_prints_a_table_and_the_auc(tiny, run1, tmp_path, capsys, monkeypatch):
    """What make demo-cli shows: aligned columns, no CSV, no inf, the AUC vs corruption.csv."""
    from napari_pal.scoring import reliability

    monkeypatch.setattr(reliability, "MIN_MEDIAN_DICE", 0.0)  # rank even this poor model
    monkeypatch.setattr(reliability, "MIN_PREDICTED", 0.0)
    assert main(["score", str(run1), str(tiny), "--out", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert "inf" not in out and "," not in out.split("worst")[1].split("ROC")[0]
    assert re.search(r"^  name\s+quality\s+lungs\s+heart\s+clavicles\s+why$", out, re.M)
    worst = r"^  \S+(\s+[0-9.]+){4}\s+(lungs|heart|clavicles): \w"  # each with its reason
    assert re.search(worst, out, re.M)
    assert re.search(r"ROC AUC of quality vs .*corruption.csv: \d\.\d{3} \(\d of the 2 ", out)


# --- 7. small ones ---------------------------------------------------------------------
def test_no_arguments_lists_the_commands(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    for cmd in ("train", "score", "predict", "evaluate", "corrupt", "benchmark", "speed"):
        assert re.search(rf"^\s+{cmd}\b", err, re.M), cmd


def test_version(capsys):
    from napari_pal import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out


def test_help_shows_defaults_from_train_config(capsys):
    from napari_pal.method.config import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for s in TrainConfig.settings():
        if s.type is not bool:
            assert f"(default: {s.default})" in text, s.name
        assert " ".join(s.help.split())[:30] in text, s.name


def test_every_positional_argument_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        for action in p._actions:
            if not action.option_strings:
                assert action.help, f"{name} {action.dest} has no help"


def test_plurals_and_one_plain_resample_warning(tiny, tmp_path, capsys):
    from PIL import Image

    data = _copy(tiny, tmp_path / "half")
    for p in (data / "masks").rglob("*.png"):  # masks stored at half the image size
        im = Image.open(p)
        im.resize((32, 32), Image.NEAREST).save(p)
    assert main(["train", str(data), "--out", str(tmp_path / "r"), "--epochs", "1",
                 *FAST]) == 0
    err = capsys.readouterr().err
    assert "1 epoch," in err and "1 epochs" not in err
    assert err.count("are resampled to the image size") == 1
    assert "napari-pal: warning: masks in" in err
    assert "Warning:" not in err and "warnings.warn" not in err


def test_corrupt_pixels_column_is_a_radius(tiny, tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["corrupt", str(tiny), str(out), "--fraction", "1", "--pixels", "2", "3"]) == 0
    assert "of 6 images" in capsys.readouterr().out
    rows = list(csv.DictReader(open(out / "corruption.csv")))
    assert {int(r["pixels"]) for r in rows} <= {2, 3}
    sample = list(csv.DictReader(open(REPO / "resources" / "sample" / "corruption.csv")))
    sizes = [int(r["pixels"]) for r in sample if r["pixels"]]
    assert max(sizes) <= 16, "a radius in px, not a count of changed pixels"
