"""bench.scale on a tiny folder: every stage runs and reports (no timing or memory asserted)."""

from __future__ import annotations

from pathlib import Path

from napari_pal.bench import scale


def test_make_folder_links_n_images_under_new_names(tmp_path: Path) -> None:
    folder = scale.make_folder(tmp_path, 7, 32, base_images=3)
    names = sorted(p.name for p in (folder / "images").iterdir())
    assert names == [f"img_{i:05d}.png" for i in range(7)]
    for c in (folder / "classes.txt").read_text().split():
        assert len(list((folder / "masks" / c).iterdir())) == 7
    assert scale.make_folder(tmp_path, 7, 32, base_images=3) == folder  # reused


def test_child_reports_every_stage(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NAPARI_PAL_GRID_CACHE", str(tmp_path / "grids"))
    folder = scale.make_folder(tmp_path, 6, 32, base_images=3)
    r = scale.child(folder, 32, steps=2, threads=1, score=True, width=4)
    assert r["images"] == 6 and r["scored"] == 6 and r["train_steps"] >= 1
    for stage in ("open_checked", "cache_build", "cache_reuse", "train", "score"):
        assert r[f"{stage}_s"] >= 0 and r[f"peak_mb_after_{stage}"] > 0
    assert r["peak_mb"] >= r["peak_mb_after_import"]
    assert len(list((tmp_path / "grids").glob("*.grid"))) == 1


def test_speed_compares_both_ways_of_holding_the_samples(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NAPARI_PAL_GRID_CACHE", str(tmp_path / "grids"))
    folder = scale.make_folder(tmp_path, 6, 32, base_images=3)
    r = scale.speed(folder, 32, epochs=2, threads=1, rounds=1)
    for k in ("in_memory", "grid_cache"):
        assert len(r[f"{k}_images_per_s"]) == 1 and r[f"{k}_median"] > 0
        assert r[f"{k}_batch_read_ms_median"] > 0
