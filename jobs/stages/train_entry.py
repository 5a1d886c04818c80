"""Entry point of each training process under a launcher: `python -m jobs.stages.train_entry RUN`
(accelerate launch on clusters; the deepspeed launcher adds --local_rank)."""
from __future__ import annotations

import argparse
import os

from jobs.runner import load_run_config
from jobs.stages.train import run
from retmask.rundir import RunDir


def main(run_root: str) -> None:
    run_dir = RunDir(run_root)
    run(load_run_config(run_dir), run_dir, 0)  # the stage starts DeepSpeed's process group where it needs to
    if _leave_process_group():
        _exit_skipping_finalizers()


def _leave_process_group() -> bool:
    """Wait for every rank, then tear the group down. Returns whether there was a group."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return False
    dist.barrier()
    dist.destroy_process_group()
    return True


def _exit_skipping_finalizers() -> None:
    """Exit 0 without interpreter finalization. Gloo and ZeRO-3 worker threads can still hold
    tensors after destroy_process_group; freeing them while the interpreter shuts down aborts the
    rank ("terminate called without an active exception", SIGABRT) after a good run, and the
    launcher then reports the whole job failed. Every output is written and closed by now."""
    import logging
    import sys

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.stages.train_entry")
    parser.add_argument("run_root")
    # Set by the deepspeed launcher; the LOCAL_RANK environment variable carries the same.
    parser.add_argument("--local_rank", "--local-rank", type=int, default=-1)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args().run_root)
