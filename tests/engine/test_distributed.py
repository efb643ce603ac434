"""Data-parallel training (2 gloo ranks on CPU) is the single-process method, step for step.

Tolerances (float32, CPU, 3 steps at width 4): weights and losses 1e-5 relative (measured
up to 2.5e-6), parameters and batch-norm buffers 1e-4 absolute (measured up to 1.4e-5, in
the QAM's 2x2 deepest layer, where Adam turns last-bit differences of near-zero gradients
into steps of up to lr = 1e-3). Only the summation order of gradients and batch
statistics differs between one process and two. A per-rank softmax misses by 0.1-1.2 in
the weights and 1.3e-2 in the parameters.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tinydata import tiny_set

from napari_pal.__main__ import _interrupt, rank_main
from napari_pal.data.synthetic import make_sample_dataset
from napari_pal.method import distributed
from napari_pal.method.checkpoint import load_checkpoint
from napari_pal.method.config import TrainConfig
from napari_pal.method.inference import TrainedModel
from napari_pal.method.training import Trainer
from napari_pal.method.weighting import sample_weights

STOP_AFTER = 3  # of 4 steps: two epochs of batches 5 + 6 (11 images, --batch-size 5)
WEIGHT_TOL, PARAM_TOL = 1e-5, 1e-4


def config() -> TrainConfig:
    # batches of 5 then 6 (the last lone image joins the one before): shares 3+2, 3+3
    return TrainConfig(epochs=2, size=32, batch_size=5, width=4, depth=2, qam_width=4,
                       warmup_epochs=0, precision="fp32", threads=1, strategy="qam_ocm")


def make_trainer(run_dir, group=None, resume=False) -> Trainer:
    trainer = Trainer(tiny_set(11), config(), run_dir, trusted=["im4"], resume=resume,
                      group=group, checkpoint_every_s=0)  # every epoch end: ranks agree
    if not resume:  # scores that differ from the first step (the last layer starts at 0)
        with torch.no_grad():
            torch.manual_seed(1)
            trainer.qam.score.weight.normal_(0, 0.5)
            trainer.qam.score.bias.fill_(0.1)
    return trainer


def run_until(trainer: Trainer, stop_after: int | None, main: bool = True) -> list[dict]:
    events = []
    for ev in trainer.run():
        events.append({"step": ev.step, "loss": ev.loss, "names": ev.names,
                       "weights": ev.weights, "state": ev.state})
        if main and ev.step == stop_after and ev.state == "running":
            trainer.stop()
    return events


class PerRankSoftmax(distributed.RankGroup):
    """The mistake the design avoids: each rank's softmax over its own slice only (scaled
    so the weights still sum to one over the global batch)."""

    def batch_weights(self, scores, n, strategy, lam, trusted, anchor_strength=1.0):
        start = sum(self.counts(n)[:self.rank])
        mine = trusted[start:start + len(scores)]
        local = sample_weights(scores, strategy, lam, mine, anchor_strength) / self.size
        return local, self.gather(local.detach(), n)


def _train_rank(group, run_dir: Path, report: Path) -> None:
    import napari_pal.method.training as training

    saves = []
    real_save = training.save_checkpoint

    def counting_save(path, state):
        saves.append(str(path))
        real_save(path, state)

    training.save_checkpoint = counting_save
    try:
        events = run_until(make_trainer(run_dir, group), STOP_AFTER, main=group.is_main)
    finally:
        training.save_checkpoint = real_save
    report.write_text(json.dumps({"events": events, "saves": saves}))


def _die_at_step_two(group, run_dir: Path, report: Path) -> None:
    trainer = make_trainer(run_dir, group)
    start = None
    try:
        for ev in trainer.run():
            if ev.step == 1:
                if group.rank == 1:
                    os._exit(3)  # a rank that dies: no goodbye to the others
                start = time.monotonic()
    except Exception as exc:  # noqa: BLE001 - whatever the backend raises is recorded
        report.write_text(json.dumps({
            "lost": distributed.lost_contact(exc),
            "message": distributed.lost_message(exc, group),
            "after_s": time.monotonic() - start}))
        raise SystemExit(1) from None


def _cli_train(root: Path, rank: int) -> None:
    """``torchrun -m napari_pal train ...`` as each rank runs it (torchrun's variables are
    set by ``distributed.launch``)."""
    from napari_pal.__main__ import rank_main

    real, sys.stderr = sys.stderr, io.StringIO()
    try:
        code = rank_main(["train", str(root / "data"), "--out", str(root / "cli"), "--size",
                          "32", "--width", "4", "--batch-size", "4", "--epochs", "1",
                          "--threads", "1", "--precision", "fp32"])
        text = sys.stderr.getvalue()
    finally:
        sys.stderr = real
    (root / f"cli-rank{rank}.json").write_text(json.dumps({"code": code, "stderr": text}))


def _scenarios(group, root: str) -> None:
    """One launch (each costs seconds of start-up) runs all the 2-rank scenarios."""
    torch.set_num_threads(1)
    root = Path(root)
    _train_rank(group, root / "ddp", root / f"ddp-rank{group.rank}.json")
    group.__class__ = PerRankSoftmax
    _train_rank(group, root / "per_rank", root / f"per_rank-rank{group.rank}.json")
    group.__class__ = distributed.RankGroup
    _cli_train(root, group.rank)
    _die_at_step_two(group, root / "die", root / "die-rank0.json")


def params(path: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)
    return {f"{net}.{k}": v.float() for net in ("segmenter", "qam")
            for k, v in state[net].items()}


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    root = tmp_path_factory.mktemp("ranks")
    make_sample_dataset(root / "data", n=8, size=64)
    codes = distributed.launch(_scenarios, 2, str(root), timeout_s=20, deadline_s=150,
                               check=False)
    return root, codes


def reports(root: Path, name: str) -> list[dict]:
    return [json.loads((root / f"{name}-rank{r}.json").read_text()) for r in range(2)]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One process: stopped after STOP_AFTER steps (checkpoint copied), then resumed."""
    root = tmp_path_factory.mktemp("single")
    events = run_until(make_trainer(root / "run"), STOP_AFTER)
    shutil.copy(root / "run" / "checkpoint.pt", root / "stopped.pt")
    run_until(make_trainer(root / "run", resume=True), None)
    return {"events": events, "stopped": params(root / "stopped.pt"),
            "finished": params(root / "run" / "checkpoint.pt")}


def test_two_ranks_train_as_one_process_and_resume_on_one(single, two_ranks):
    root, _ = two_ranks
    run, (rank0, rank1) = root / "ddp", reports(root, "ddp")
    steps = [e for e in single["events"] if e["state"] == "running"]
    got = [e for e in rank0["events"] if e["state"] == "running"]
    assert [e["step"] for e in got] == [1, 2, 3]
    for s, g in zip(steps, got):
        assert g["names"] == s["names"]  # same global batches, in the same order
        np.testing.assert_allclose(g["weights"], s["weights"], rtol=WEIGHT_TOL)
        np.testing.assert_allclose(g["loss"], s["loss"], rtol=WEIGHT_TOL)
    assert len(set(got[0]["weights"])) > 2  # the scores differ: the test can see a softmax
    assert rank0["events"][-1]["state"] == rank1["events"][-1]["state"] == "stopped"
    # only rank 0 writes: epoch 1's end and the stop; nothing half-written is left
    assert len(rank0["saves"]) == 2 and rank1["saves"] == []
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint.pt", "config.json", "history.csv", "history.json"]
    assert max_diff(params(run / "checkpoint.pt"), single["stopped"]) < PARAM_TOL
    # the checkpoint is the single-device one: one process resumes the 2-rank run
    run_until(make_trainer(run, resume=True), None)
    assert max_diff(params(run / "checkpoint.pt"), single["finished"]) < PARAM_TOL


def test_a_per_rank_softmax_is_caught(single, two_ranks):
    root, _ = two_ranks
    run, (rank0, _) = root / "per_rank", reports(root, "per_rank")
    steps = [e for e in single["events"] if e["state"] == "running"]
    got = [e for e in rank0["events"] if e["state"] == "running"]
    worst = max(float(np.max(np.abs(np.subtract(g["weights"], s["weights"]))))
                for s, g in zip(steps, got))
    assert worst > 100 * WEIGHT_TOL
    assert max_diff(params(run / "checkpoint.pt"), single["stopped"]) > 10 * PARAM_TOL


def test_a_rank_that_dies_makes_the_other_exit_with_a_clear_message(two_ranks):
    root, codes = two_ranks
    assert codes == [1, 3]  # rank 0 stopped with an error of its own, not killed at the deadline
    report = json.loads((root / "die-rank0.json").read_text())
    assert report["lost"] and report["after_s"] < 25  # the peer's death, or the 20 s timeout
    assert "lost contact" in report["message"] and "--resume" in report["message"]


def test_torchrun_train_command_on_two_ranks(two_ranks):
    root, _ = two_ranks
    rank0, rank1 = reports(root, "cli")
    assert rank0["code"] == rank1["code"] == 0
    assert "saved" in rank0["stderr"] and rank1["stderr"] == ""  # rank 0 speaks for all
    assert TrainedModel.load(root / "cli").classes == ["lungs", "heart", "clavicles"]


def test_python_m_napari_pal_without_torchrun_is_the_cli_and_loads_no_torch():
    code = ("import json, sys\nfrom napari_pal.__main__ import main\n"
            "try:\n    rc = main(['--help'])\nexcept SystemExit as exc:\n    rc = exc.code\n"
            "print(json.dumps([rc, 'torch' in sys.modules]))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120).stdout
    assert json.loads(out.strip().splitlines()[-1]) == [0, False]


def test_only_train_runs_on_ranks(capsys):
    assert rank_main(["score", "RUN", "DATA", "--out", "x.csv"]) == 2
    assert "without torchrun" in capsys.readouterr().err


def test_sigterm_stops_like_ctrl_c():
    seen = []
    old_int = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    assert seen == [signal.SIGTERM]


def test_shares_cover_the_global_batch_once():
    idx = torch.arange(7)
    for size in (1, 2, 3, 4):
        parts = [distributed.RankGroup(rank=r, size=size).share(idx) for r in range(size)]
        assert torch.equal(torch.cat([p for p, _ in parts]), idx)
        assert [o for _, o in parts] == [sum(len(p) for p, _ in parts[:r]) for r in range(size)]
        assert max(len(p) for p, _ in parts) - min(len(p) for p, _ in parts) <= 1
