"""Data-parallel training on torch.distributed, with the method's batch-wide weights exact.

Launched by ``torchrun`` (or :func:`launch`), every rank holds the whole training set,
draws the same permutation per epoch and trains on its contiguous slice of each global
batch of ``--batch-size``. What keeps it the single-process method:

* QAM weights are a softmax over the *global* batch (Eq. 1): the per-sample scores are
  all-gathered with gradient (collectives.py), every rank
  computes all the weights and takes its share of Σ wᵢ·Lᵢ. The gather's backward sums the
  gradients of all shares, so each score gets the gradient of the whole sum.
* DistributedDataParallel averages the parameter gradients over the ranks, so each rank's
  share is multiplied by the number of ranks: the average is then the gradient of Σ wᵢ·Lᵢ.
* Batch norm statistics are those of the global batch (SyncBatchNorm, see syncnorm.py).
* The stop flag is agreed on by all ranks before each step, and only rank 0 writes.
"""

from __future__ import annotations

import datetime
import inspect
import os
import socket
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from napari_pal.errors import PalError
from napari_pal.method import device as dev
from napari_pal.method.collectives import all_gather_with_grad
from napari_pal.method.syncnorm import sync_batchnorm
from napari_pal.method.weighting import sample_weights

# seconds a rank waits in a collective for the others before it gives up with an error
TIMEOUT_ENV = "NAPARI_PAL_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0


def launched_by_torchrun() -> bool:
    """True inside a process that torchrun (or srun with the same variables) started as
    one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


@dataclass
class RankGroup:
    """This process's place among the ranks, and the collectives the trainer needs."""

    rank: int
    size: int
    local_rank: int = 0
    local_size: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S
    device: torch.device | None = None

    @classmethod
    def from_env(cls) -> RankGroup:
        """The rank torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, ...) describe."""
        try:
            return cls(rank=int(os.environ["RANK"]), size=int(os.environ["WORLD_SIZE"]),
                       local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                       local_size=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
                       timeout_s=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
        except (KeyError, ValueError) as exc:
            raise PalError(f"distributed training needs torchrun's RANK and WORLD_SIZE "
                           f"variables ({exc}); launch with torchrun --nproc_per_node N "
                           f"-m napari_pal train ...") from None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # --- set-up -------------------------------------------------------------------------
    def start(self, device_name: str = "auto") -> torch.device:
        """Join the process group (NCCL on GPUs, gloo on CPUs) and pick this rank's device."""
        if device_name in ("auto", "cuda") and torch.cuda.is_available():
            device = torch.device("cuda", self.local_rank % torch.cuda.device_count())
        elif device_name.startswith("cuda:") and self.local_size > 1:
            raise PalError(f"--device {device_name} names one GPU, but {self.local_size} "
                           f"ranks run on this node: use --device cuda (rank i gets GPU i)")
        else:
            device = dev.pick_device(device_name)
            if device.type == "mps":
                device = torch.device("cpu")  # no MPS collectives: CPU ranks with gloo
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            # binding NCCL to this rank's GPU up front (torch >= 2.3) avoids a guess later
            bind = (device.type == "cuda" and
                    "device_id" in inspect.signature(dist.init_process_group).parameters)
            dist.init_process_group(
                backend="nccl" if device.type == "cuda" else "gloo",
                timeout=datetime.timedelta(seconds=self.timeout_s),
                **({"device_id": device} if bind else {}))
        self.device = device
        return device

    def cpu_threads(self) -> int:
        """CPU threads per rank when the user asked for 'all cores': the node's cores
        shared between its ranks, so ranks do not oversubscribe them."""
        return max(1, (os.cpu_count() or 1) // max(1, self.local_size))

    def wrap(self, module: nn.Module) -> nn.Module:
        """Global-batch batch norm, then DDP (which averages gradients in buckets while
        backward runs). The returned wrapper is only for forward: checkpoints save
        ``module`` itself, with the single-device state-dict keys."""
        sync_batchnorm(module, self.device)
        ids = [self.device.index] if self.device.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel
        # buffers need no broadcast before each forward: global batch norm gives every rank
        # the same running statistics (newer torch renamed the switch)
        sync = ("forward_sync_buffers" if "forward_sync_buffers" in
                inspect.signature(ddp).parameters else "broadcast_buffers")
        return ddp(module, device_ids=ids, **{sync: False})

    def check_batches(self, smallest: int, batch_size: int) -> None:
        if smallest < self.size:
            raise PalError(
                f"{self.size} ranks, but a batch of {smallest} images (--batch-size "
                f"{batch_size}, the epoch's last batch) cannot give every rank one; use a "
                f"--batch-size of at least {self.size} that leaves a last batch of at least "
                f"{self.size}, or fewer ranks")

    # --- the global batch ---------------------------------------------------------------
    def counts(self, n: int) -> list[int]:
        """Images per rank of a global batch of ``n``: equal shares, the first ``n % size``
        ranks one more (uneven is exact too: weights, losses and batch norm are global)."""
        return [n // self.size + (r < n % self.size) for r in range(self.size)]

    def share(self, idx: torch.Tensor) -> tuple[torch.Tensor, int]:
        """This rank's contiguous slice of a global batch, and where it starts."""
        counts = self.counts(len(idx))
        start = sum(counts[:self.rank])
        return idx[start:start + counts[self.rank]], start

    def gather(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """The global batch's values of a per-sample tensor, in batch order, with gradient.

        Shares may differ by one, so they are padded to equal length for the collective
        and trimmed after it; the backward sums every rank's gradient into the owner's.
        """
        counts = self.counts(n)
        rows = max(counts)
        gathered = all_gather_with_grad(F.pad(local, (0, rows - local.shape[0])))
        return torch.cat([gathered[r * rows:r * rows + c] for r, c in enumerate(counts)])

    def batch_weights(self, scores: torch.Tensor, n: int, strategy: str, lam: float,
                      trusted: torch.Tensor | None, anchor_strength: float = 1.0
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the global batch's weights (with gradient) and all of them
        (detached, for the progress log). ``trusted`` covers the global batch."""
        weights = sample_weights(self.gather(scores, n), strategy, lam, trusted,
                                 anchor_strength)
        start = sum(self.counts(n)[:self.rank])
        return weights[start:start + scores.shape[0]], weights.detach()

    def loss_scale(self) -> float:
        """DDP averages gradients over the ranks; each rank holds a share of one sum."""
        return float(self.size)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum over the ranks (no gradient): the step's loss for the log and NaN check."""
        values = values.detach().clone()
        dist.all_reduce(values)
        return values

    def any(self, flag: bool) -> bool:
        """True on every rank when any rank set ``flag`` (a stop request from one rank's
        signal handler stops all ranks at the same step)."""
        t = torch.tensor([int(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def barrier(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


_current: RankGroup | None = None


def activate(group: RankGroup | None) -> None:
    """Make ``group`` the one a Trainer built without an explicit group joins (set only by
    the torchrun entry point, so the unchanged CLI code trains data-parallel)."""
    global _current
    _current = group


def current() -> RankGroup | None:
    return _current


def lost_contact(exc: BaseException) -> bool:
    """Whether an exception comes from a collective whose peers died or stalled."""
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        k in text for k in ("gloo", "nccl", "connection", "timed out", "timeout", "peer"))


def lost_message(exc: BaseException, group: RankGroup) -> str:
    """What a surviving rank says when another rank died or stalled."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first = first.split(". This is typically")[0][:300]
    return (f"rank {group.rank} of {group.size} lost contact with the other ranks (one died, "
            f"or stalled past the {group.timeout_s:.0f} s timeout; its own message says why): "
            f"{first}. The last checkpoint in the --out folder was kept: run the same command "
            f"with --resume to continue, on any number of ranks")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child(local_rank: int, fn: Callable, size: int, port: int, timeout_s: float,
           args: tuple) -> None:
    os.environ.update(RANK=str(local_rank), WORLD_SIZE=str(size), LOCAL_RANK=str(local_rank),
                      LOCAL_WORLD_SIZE=str(size), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    group = RankGroup.from_env()
    group.timeout_s = timeout_s
    try:
        fn(group, *args)
    except BaseException as exc:
        # a failed rank leaves the group broken; tearing it down can block on dead peers
        code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
        if not isinstance(exc, SystemExit):
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    group.close()


def launch(fn: Callable, size: int, *args, timeout_s: float = DEFAULT_TIMEOUT_S,
           deadline_s: float | None = None, check: bool = True) -> list[int]:
    """Run ``fn(group, *args)`` in ``size`` fresh processes on this machine, as torchrun
    would (for tests and benchmarks; ``fn`` must be importable at module level).

    Waits for every process (a failing one does not kill the others, so a test can see
    how they react); returns the exit codes, raising if ``check`` and any is not 0.
    Processes still running after ``deadline_s`` are killed.
    """
    import time

    import torch.multiprocessing as mp

    ctx = mp.start_processes(_child, args=(fn, size, free_port(), timeout_s, args),
                             nprocs=size, start_method="spawn", join=False)
    end = None if deadline_s is None else time.monotonic() + deadline_s
    for p in ctx.processes:
        p.join(None if end is None else max(0.0, end - time.monotonic()))
    for p in ctx.processes:
        if p.is_alive():
            p.kill()
            p.join()
    codes = [p.exitcode for p in ctx.processes]
    if check and any(codes):
        raise RuntimeError(f"distributed processes exited with codes {codes} (rank order); "
                           f"their tracebacks are above")
    return codes
