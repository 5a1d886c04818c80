"""A local run's shards forked from a warm process (jobs/forked.py) against fresh interpreters
(submitit's LocalExecutor): the same config run whole both ways, wall-clock seconds and their ratio.

    python benchmarks/local_shards.py [--config configs/tiny.yaml] [--set section.key=value ...]

Each way runs in a run directory of its own (nothing reused); the forked way starts its forkserver
inside the timing, as a fresh `retmask run` does.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run_once(config: str, overrides: list[str], run_dir: Path, fork: bool) -> float:
    from jobs.local import LocalPipeline
    from jobs.runner import record_config
    from retmask.config import load_config

    cfg = load_config(config, overrides)
    cfg.run_dir = str(run_dir)
    started = time.perf_counter()
    LocalPipeline(cfg, record_config(cfg), log=lambda line: None, fork=fork).execute(max_parallel=2)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = run_once(args.config, args.set, Path(tmp) / "fresh", fork=False)
        forked = run_once(args.config, args.set, Path(tmp) / "forked", fork=True)
    print(f"{Path(args.config).name}, every stage, 2 shards at once:")
    print(f"  fresh interpreters (LocalExecutor): {fresh:.1f}s")
    print(f"  forked from a warm process:         {forked:.1f}s")
    print(f"  forked / fresh: {forked / fresh:.2f}")


if __name__ == "__main__":
    main()
