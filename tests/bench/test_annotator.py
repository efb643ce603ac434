"""The simulated annotator's loop and the validation choice of λ, on tiny settings."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_pal.bench import annotator, validation


@pytest.fixture
def spoilt(tmp_path):
    """A clean synthetic folder with a 10/4 split, and a copy with 60 % of its training
    images over-drawn (truth in corruption.csv)."""
    from napari_pal.data.corruption import corrupt_dataset
    from napari_pal.data.synthetic import make_sample_dataset

    clean = tmp_path / "clean"
    make_sample_dataset(clean, n=14, size=64, bad_fraction=0.0)
    (clean / "corruption.csv").unlink()
    names = sorted(p.stem for p in (clean / "images").iterdir())
    (clean / "split.csv").write_text("name,split\n" + "".join(
        f"{n},{'train' if i < 10 else 'test'}\n" for i, n in enumerate(names)))
    corrupt_dataset(clean, tmp_path / "spoilt", fraction=0.6, pixels=(2, 4), seed=0,
                    ops=["dilate"], split=f"{clean / 'split.csv'}:train")
    return clean, tmp_path / "spoilt"


def test_review_replaces_the_worst_masks_with_true_ones(spoilt):
    clean, folder = spoilt
    loop = annotator.load_loop(folder, clean, 32)
    assert len(loop.names) == 10 and loop.bad.sum() == 6
    given = loop.given.numpy()
    assert all((given[i] != loop.clean[i].numpy()).any() == loop.bad[i] for i in range(10))
    quality = np.arange(10, dtype=float)[::-1].copy()  # image 9 worst
    assert loop.review(quality, 3) == [loop.names[i] for i in (9, 8, 7)]
    assert loop.review(quality, 2) == [loop.names[i] for i in (6, 5)]  # never twice
    masks = loop.training_set().masks.numpy()
    for i in range(10):
        want = loop.clean[i] if i >= 5 else loop.given[i]
        np.testing.assert_array_equal(masks[i], want.numpy())
    row = annotator.round_row(loop, quality, np.full(10, np.nan))
    assert row["unreviewed"] == 5 and row["bad_left"] == int(loop.bad[:5].sum())
    assert np.isnan(row["auc_qam"])


def test_loop_runs_rounds_and_trusts_the_reviewed(spoilt, tmp_path):
    clean, folder = spoilt
    out = tmp_path / "loop"
    args = ["--folder", str(folder), "--clean", str(clean), "--out", str(out), "--k", "3",
            "--rounds", "2", "--epochs", "2", "--round-epochs", "1", "--size", "32",
            "--width", "4"]
    assert annotator.main(args) == 0
    rows = list(csv.DictReader(open(out / "rounds.csv")))
    assert [int(r["reviewed"]) for r in rows] == [0, 3, 6]
    assert [int(r["epochs"]) for r in rows] == [2, 3, 4]  # continued, not restarted
    assert [int(r["unreviewed"]) for r in rows] == [10, 7, 4]
    for r in rows:
        assert 0.0 <= float(r["test_dice"]) <= 1.0
    reviewed = (out / "reviewed1.txt").read_text().split() + \
        (out / "reviewed2.txt").read_text().split()
    assert len(set(reviewed)) == 6
    from napari_pal.data.corruption import read_corruption_csv

    bad = read_corruption_csv(folder / "corruption.csv")
    found = sum(bad.get(n, False) for n in reviewed)
    assert int(rows[-1]["bad_left"]) == 6 - found
    assert "| 2 | 6 |" in (out / "rounds.md").read_text()
    # from scratch: each round a new model for --epochs
    assert annotator.main([*args, "--out", str(tmp_path / "s"), "--rounds", "1",
                           "--scratch"]) == 0  # the later --out and --rounds win
    rows = list(csv.DictReader(open(tmp_path / "s" / "rounds.csv")))
    assert [int(r["epochs"]) for r in rows] == [2, 2]
    assert "from scratch" in (tmp_path / "s" / "rounds.md").read_text()


def test_loop_refuses_folders_without_truth(tmp_path):
    (tmp_path / "f").mkdir()
    assert annotator.main(["--folder", str(tmp_path / "f"), "--out", str(tmp_path / "o")]) == 2
    assert annotator.main(["--folder", str(tmp_path / "f"), "--out", str(tmp_path / "o"),
                           "--k", "0"]) == 2


def test_holdout_is_seeded_and_never_everything():
    a = validation.holdout_indices(165, 0.2, 0)
    assert len(a) == 33 and (a == validation.holdout_indices(165, 0.2, 0)).all()
    assert len(validation.holdout_indices(3, 0.9, 0)) == 1
    with pytest.raises(Exception, match="holdout"):
        validation.holdout_indices(10, 1.0, 0)


def test_choice_uses_validation_dice_only():
    rows = [{"lam": 0.5, "val_dice": 0.80, "test_dice": 0.95, "train_s": 1.0},
            {"lam": 1.0, "val_dice": 0.85, "test_dice": 0.70, "train_s": 1.0},
            {"lam": 2.0, "val_dice": 0.85, "test_dice": 0.90, "train_s": 1.0}]
    assert validation.choose(rows)["lam"] == 1.0  # best validation; tie -> smaller λ
    assert "| 1 **chosen** (default) |" in validation.table(rows)


def test_validation_runs_end_to_end(spoilt, tmp_path):
    clean, folder = spoilt
    out = tmp_path / "val"
    assert validation.main(["--folder", str(folder), "--clean", str(clean), "--out", str(out),
                            "--lams", "0.5", "2", "--epochs", "1", "--size", "32",
                            "--width", "4", "--holdout", "0.3"]) == 0
    rows = list(csv.DictReader(open(out / "lambda.csv")))
    assert [float(r["lam"]) for r in rows] == [0.5, 2.0]
    assert len((out / "validation.txt").read_text().split()) == 3
    assert "chosen" in (out / "lambda.md").read_text()
