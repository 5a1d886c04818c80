"""`retmask status` on a synthetic run of 10,000 shards: seconds to answer (goal <= 1 s).

    python benchmarks/status.py [--shards 10000]

The run directory is built in a temporary folder: a manifest of one stage of N shards, done
markers for 70% of them, a shard file per done shard, failures with logs for 1%.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(root: Path, shards: int) -> None:
    from retmask.io import write_json
    from retmask.rundir import RunDir

    run = RunDir(root)
    stage, fingerprint = "synthesize_chosen", "f" * 16
    logs = run.log_dir(stage) / "attempt"
    logs.mkdir(parents=True)
    (run.stage_dir(stage) / "shards").mkdir(parents=True)
    failed = {}
    for shard in range(shards):
        if shard % 10 < 7:
            run.mark_done(stage, shard, fingerprint, 12.0)
            (run.stage_dir(stage) / "shards" / f"{shard:05d}.jsonl").write_text('{"row": 1}\n' * 30)
        elif shard % 100 == 99:
            failed[str(shard)] = "RuntimeError: CUDA out of memory"
            (logs / f"{1000 + shard}_0_log.err").write_text("Traceback...\nRuntimeError: CUDA out of memory\n")
    write_json(run.manifest_path, {"executor": "local", "order": [stage], "stages": {stage: {
        "fingerprint": fingerprint, "shards": shards, "failed": failed,
        "job_ids": {str(k): str(1000 + k) for k in range(shards)},
        "log_folders": {str(k): str(logs) for k in range(shards)}}}})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=10000)
    args = parser.parse_args()
    from jobs.status import format_status, run_status
    from retmask.rundir import RunDir

    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp), args.shards)
        started = time.perf_counter()
        stages, source = run_status(RunDir(tmp))
        text = format_status(stages, source)
        seconds = time.perf_counter() - started
    print(text.splitlines()[2])
    print(f"status of {args.shards} shards: {seconds:.3f}s (goal <= 1 s: {seconds / 1.0:.2f} of the budget)")


if __name__ == "__main__":
    main()
