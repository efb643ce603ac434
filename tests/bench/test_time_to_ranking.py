"""The time-to-ranking benchmark on a tiny slice of JSRT (no timing asserted)."""

from __future__ import annotations

import csv
import json
import math
import shutil

from napari_pal.bench import ranking
from napari_pal.bench.machine import machine_info


def tiny_jsrt(jsrt256, root, train=8, test=4):
    rows = list(csv.DictReader((jsrt256 / "split.csv").open()))
    picked = ([r for r in rows if r["split"] == "train"][:train]
              + [r for r in rows if r["split"] == "test"][:test])
    for r in picked:
        for src in jsrt256.rglob(f"{r['name']}.*"):
            dst = root / src.relative_to(jsrt256)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    (root / "split.csv").write_text("name,split\n" + "".join(
        f"{r['name']},{r['split']}\n" for r in picked))
    return root


def test_ranking_benchmark_reports_auc_per_refresh_and_test_dice(jsrt256, tmp_path, capsys):
    data = tiny_jsrt(jsrt256, tmp_path / "jsrt")
    out = tmp_path / "out"
    assert ranking.main(["--data", str(data), "--out", str(out), "--size", "32",
                         "--epochs", "2", "--every", "0", "--threads", "1"]) == 0
    result = json.loads((out / "ranking-50-5-13-s0.json").read_text())
    rows = result["rows"]
    assert rows and rows[-1]["final"] == 1 and rows[-1]["epoch"] == 2
    # a refresh before any class is learnt has no ranking to measure (NaN)
    assert all((0.0 <= r["auc"] <= 1.0 and 0.0 <= r["ap"] <= 1.0)
               or (math.isnan(r["auc"]) and math.isnan(r["ap"])) for r in rows)
    assert result["images"] == 8
    assert set(result["test_dice"]) == {"clavicles", "heart", "lungs", "mean"}
    assert all(0.0 <= v <= 1.0 for v in result["test_dice"].values())
    assert (out / "ranking-50-5-13-s0.png").stat().st_size > 0
    text = (out / "ranking-50-5-13-s0.md").read_text()
    assert "ROC AUC" in text and "cpu_flags" in text and "torch_cpu_kernels" in text
    assert "| minutes from Train |" in capsys.readouterr().out
    with (out / "ranking-50-5-13-s0.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    # the noisy copy is made once and reused; the data folder is left alone
    assert (out / "noisy-50-5-13-erodedilate" / "corruption.csv").is_file()


def test_machine_info_names_flags_kernels_threads_and_build():
    info = machine_info(1)
    assert info["threads"] == 1
    assert info["torch_build"] == "CPU" or str(info["torch_build"]).startswith("CUDA ")
    assert isinstance(info["torch_cpu_kernels"], str) and info["torch_cpu_kernels"]
    assert {"cpu", "cpu_flags", "emulated", "torch"} <= set(info)


def test_stays_from_is_when_the_ranking_reached_a_level_for_good():
    rows = [{"wall_s": t, "auc": a} for t, a in
            [(10, math.nan), (20, 0.96), (30, 0.94), (40, 0.97), (50, 0.99)]]
    assert ranking.first_at(rows, 0.95) == 20
    assert ranking.stays_from(rows, 0.95) == 40  # the dip at 30 s does not count as settled
    assert ranking.stays_from(rows[:3], 0.95) is None  # below at the last refresh
    assert ranking.stays_from([{"wall_s": 5, "auc": math.nan}], 0.5) is None


def test_ranking_benchmark_by_hand_stages_and_the_live_comparison(jsrt256, tmp_path):
    data = tiny_jsrt(jsrt256, tmp_path / "jsrt")
    out = tmp_path / "out"
    assert ranking.main(["--data", str(data), "--out", str(out), "--size", "32", "--epochs",
                         "2", "--stages", "16:1", "--every", "0", "--threads", "1",
                         "--compare-live"]) == 0
    result = json.loads((out / "ranking-50-5-13-s0.json").read_text())
    rows = result["rows"]
    assert result["config"]["stages"] == "16:1" and "1 epochs at 16 px" in result["plan"]
    assert [r["size"] for r in rows] == [16, 32]  # each refresh at the size just trained
    assert all(r["score_s"] >= 0 for r in rows)
    assert math.isnan(rows[-1]["live_auc"])  # the final refresh is the trained model's own
