"""Entry point of each training process under `accelerate launch`: `python -m jobs.train_entry RUN`."""
from __future__ import annotations

import sys

from jobs.runner import load_run_config
from jobs.train import run
from retmask.rundir import RunDir


def main(run_root: str) -> None:
    run_dir = RunDir(run_root)
    run(load_run_config(run_dir), run_dir, 0)


if __name__ == "__main__":
    main(sys.argv[1])
