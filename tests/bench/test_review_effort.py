"""The review-effort benchmark: a spoilt folder and a trained run in, a table and a PNG out."""

from __future__ import annotations

import re

import pytest

from napari_pal.bench import review_effort


@pytest.fixture(scope="module")
def folder_and_run(tmp_path_factory):
    """A synthetic folder, 60 % of its 10 training images over-drawn, and a tiny run."""
    from napari_pal.data.corruption import corrupt_dataset
    from napari_pal.data.dataset import open_dataset
    from napari_pal.data.synthetic import make_sample_dataset
    from napari_pal.data.trainset import load_training_set
    from napari_pal.method.config import TrainConfig
    from napari_pal.method.training import Trainer

    tmp = tmp_path_factory.mktemp("effort")
    clean = tmp / "clean"
    make_sample_dataset(clean, n=12, size=64, bad_fraction=0.0)
    (clean / "corruption.csv").unlink()
    names = sorted(p.stem for p in (clean / "images").iterdir())
    (clean / "split.csv").write_text("name,split\n" + "".join(
        f"{n},{'train' if i < 10 else 'test'}\n" for i, n in enumerate(names)))
    spoilt = tmp / "spoilt"
    corrupt_dataset(clean, spoilt, fraction=0.6, pixels=(3, 5), seed=0, ops=["dilate"],
                    split=f"{clean / 'split.csv'}:train")
    data = load_training_set(open_dataset(spoilt, split=f"{spoilt / 'split.csv'}:train"), 32)
    for _ in Trainer(data, TrainConfig(size=32, epochs=2, width=4, threads=1),
                     tmp / "run").run():
        pass
    return spoilt, tmp / "run", names[:10]


def _found(text: str, order: str) -> list[int]:
    row = next(line for line in text.splitlines() if line.startswith(f"| {order} |"))
    return [int(float(c)) for c in re.findall(r"\| ([\d.]+)", row)]


def test_writes_the_table_and_the_curve(folder_and_run, tmp_path, capsys):
    folder, run, _ = folder_and_run
    out = tmp_path / "eff"
    assert review_effort.main(["--folder", str(folder), "--run", str(run),
                               "--out", str(out), "--title", "six over-drawn"]) == 0
    text = (out / "effort.md").read_text()
    assert (out / "effort.png").stat().st_size > 0
    assert "in sample" in text and "Image ROC AUC / AP:" in text
    for order in ("napari-pal quality", "cleanlab softmin", "Dice", "random (expected)"):
        half, ninety, full = _found(text, order)
        assert 3 <= half <= ninety <= full <= 10  # 6 spoilt among 10: at least 3 reviewed
    assert _found(text, "random (expected)") == [5, 9, 9]  # m (N+1)/(P+1): 3*11/7, 6*11/7
    assert "six over-drawn" in capsys.readouterr().out


def test_reviewed_images_come_first_in_every_order(folder_and_run, tmp_path):
    folder, run, names = folder_and_run
    (tmp_path / "reviewed1.txt").write_text("\n".join(names[:5]) + "\n")
    out = tmp_path / "eff"
    assert review_effort.main(["--folder", str(folder), "--run", str(run), "--out", str(out),
                               "--reviewed", str(tmp_path / "reviewed1.txt")]) == 0
    text = (out / "effort.md").read_text()
    assert "the 5 images reviewed in earlier rounds come first" in text
    assert "(5 images not reviewed)" in text
    truth = (folder / "corruption.csv").read_text().splitlines()[1:]
    bad = {r.split(",")[0] for r in truth if r.split(",")[2] != "none"}
    in_first = sum(n in bad for n in names[:5])
    # the first five reviews are the listed ones in every order: all their bad are found
    # before any other image is looked at
    for order in ("napari-pal quality", "cleanlab softmin", "QAM score", "Dice"):
        half = _found(text, order)[0]
        assert (half <= 5) == (in_first >= 3)


def test_refuses_folders_without_truth_runs_without_checkpoint_and_unknown_names(
        folder_and_run, tmp_path):
    folder, run, _ = folder_and_run
    (tmp_path / "empty").mkdir()
    args = ["--out", str(tmp_path / "o")]
    assert review_effort.main([*args, "--folder", str(tmp_path / "empty"),
                               "--run", str(run)]) == 2
    assert review_effort.main([*args, "--folder", str(folder),
                               "--run", str(tmp_path / "empty")]) == 2
    (tmp_path / "r.txt").write_text("NOT_AN_IMAGE\n")
    assert review_effort.main([*args, "--folder", str(folder), "--run", str(run),
                               "--reviewed", str(tmp_path / "r.txt")]) == 2


def test_reviewed_first_puts_the_listed_images_ahead_in_their_order(tmp_path):
    import numpy as np

    from napari_pal.bench.errorkinds import Scored
    from napari_pal.scoring.effort import found_curve

    names = ["a", "b", "c", "d"]
    sc = Scored(names, ["x"], np.array([["none"], ["erode"], ["none"], ["dilate"]], object),
                {}, {"quality": np.array([0.1, 0.9, 0.2, 0.8]), "dice": np.full(4, np.nan)})
    (tmp_path / "r1.txt").write_text("c\n")
    (tmp_path / "r2.txt").write_text("\nb\nc\n")
    assert review_effort.reviewed_first(sc, [tmp_path / "r1.txt", tmp_path / "r2.txt"]) == [
        "c", "b"]
    order = np.argsort(sc.per_image["quality"], kind="stable")
    assert [names[i] for i in order] == ["c", "b", "a", "d"]
    bad = np.array([False, True, False, True])
    np.testing.assert_array_equal(found_curve(bad, -sc.per_image["quality"]), [0, 0, 1, 1, 2])
    assert np.isnan(sc.per_image["dice"][[0, 3]]).all()
