"""``python -m napari_pal``: the command line, and its data-parallel form under torchrun.

``torchrun --nproc_per_node N -m napari_pal train DATA --out RUN ...`` starts N ranks;
each runs the same ``train`` command (see napari_pal.method.distributed): rank 0 prints
and writes, the others stay quiet unless they fail. Detected from torchrun's variables
(WORLD_SIZE > 1), so the command line needs no extra flag.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Sequence


def _interrupt(signum: int, frame) -> None:
    """SIGTERM (torchrun shutting down, a scheduler's time limit) does what Ctrl-C does:
    the trainer stops after the current step and saves a checkpoint."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signum, frame)
    else:
        raise KeyboardInterrupt


def rank_main(argv: Sequence[str]) -> int:
    """One rank of a torchrun launch: the ``train`` command, joined to the other ranks."""
    if not argv or argv[0] != "train":
        print("napari-pal: error: only 'train' runs on several ranks; run "
              f"'{argv[0] if argv else 'COMMAND'}' without torchrun", file=sys.stderr)
        return 2
    import torch.distributed as dist

    from napari_pal import cli
    from napari_pal.method import distributed

    group = distributed.RankGroup.from_env()
    owned = not dist.is_initialized()  # leave a process group someone else set up
    distributed.activate(group)
    real_out, real_err = sys.stdout, sys.stderr
    quiet = not group.is_main
    if quiet:  # progress and messages are rank 0's; the others show theirs only on failure
        os.environ["TQDM_DISABLE"] = "1"
        sys.stdout = sys.stderr = captured = io.StringIO()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    code, lost = 1, False
    try:
        code = cli.main(list(argv))
    except KeyboardInterrupt:
        code = 130
        print("stopped before training started", file=sys.stderr)
    except Exception as exc:
        if not distributed.lost_contact(exc):
            raise
        lost = True
        print(f"napari-pal: error: {distributed.lost_message(exc, group)}", file=real_err)
    finally:
        sys.stdout, sys.stderr = real_out, real_err
        signal.signal(signal.SIGTERM, previous)
        distributed.activate(None)
        if quiet:
            os.environ.pop("TQDM_DISABLE", None)
            if code not in (0, 130) and not lost:
                for line in captured.getvalue().strip().splitlines():
                    print(f"[rank {group.rank}] {line}", file=real_err)
    if lost:  # the group is broken: tearing it down could block on the dead peer
        sys.stderr.flush()
        os._exit(1)
    if owned:
        group.close()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return rank_main(argv)
    from napari_pal.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
