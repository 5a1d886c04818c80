"""Local shards as processes forked from a warm parent that has the heavy libraries imported.

A shard started by submitit's LocalExecutor is a fresh interpreter that imports torch,
transformers, TRL and DeepSpeed again: 2-5 s before any work, more than a rehearsal's or the toy's
whole shard takes. Here a forkserver (multiprocessing's, started once per driver process) imports
them once, and every shard is a fork of it: a process of its own as before (killed on cancel or
time-out, its memory returned when it ends, its stdout and stderr in the log folder under submitit's
names), started in milliseconds. It runs with the driver's environment and working directory at
submission, not the forkserver's.

Shards that run vLLM in-process keep LocalExecutor: vLLM starts engine processes of its own.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

# Imported once in the forkserver (transformers and TRL import their parts lazily: the parts the
# stages use are named); a module that fails to import there is imported by the shard that needs it.
PRELOAD = ["jobs.runner", "jobs.pipeline", "torch", "datasets", "accelerate", "deepspeed", "safetensors",
           "rouge_score.rouge_scorer", "transformers.modeling_utils", "transformers.generation.utils",
           "transformers.trainer", "transformers.models.auto.modeling_auto",
           "transformers.models.auto.tokenization_auto", "trl.trainer.dpo_trainer", "trl.trainer.sft_trainer",
           "deepspeed.runtime.engine", "deepspeed.runtime.zero.muon.muon_optimizer"]
_context = None


def _forkserver():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


@dataclass(frozen=True)
class JobPaths:
    stdout: Path
    stderr: Path
    result: Path


def _child(function, args, paths: JobPaths, environment: dict, cwd: str) -> None:
    """In the forked process: the driver's environment and folder, output to the log files, the
    result (or the error) pickled beside them."""
    os.environ.clear()
    os.environ.update(environment)
    os.chdir(cwd)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for stream, path in ((sys.stdout, paths.stdout), (sys.stderr, paths.stderr)):
        stream.flush()
        handle = open(path, "a")
        os.dup2(handle.fileno(), stream.fileno())
    try:
        outcome = ("success", function(*args))
    except BaseException as error:  # noqa: BLE001 - the driver gets every failure, logged here in full
        traceback.print_exc()
        outcome = ("error", f"{type(error).__name__}: {error}")
    sys.stdout.flush()
    sys.stderr.flush()
    with open(paths.result, "wb") as handle:
        pickle.dump(outcome, handle)
    sys.exit(0 if outcome[0] == "success" else 1)  # multiprocessing then runs its finalizers and exits


class ForkedJob:
    def __init__(self, job_id: str, process, paths: JobPaths, timeout_s: float):
        self.job_id = job_id
        self.paths = paths
        self._process = process
        self._deadline = time.time() + timeout_s
        self._timed_out = False

    @property
    def sentinel(self) -> int:
        """Ready to read once the process has ended (multiprocessing.connection.wait)."""
        return self._process.sentinel

    def done(self) -> bool:
        if self._process.is_alive() and time.time() > self._deadline:
            self._timed_out = True
            self.cancel()
        return not self._process.is_alive()

    def result(self):
        self._process.join()
        if self._timed_out:
            raise TimeoutError(f"job {self.job_id} ran past its time limit")
        try:
            status, value = pickle.loads(self.paths.result.read_bytes())
        except (OSError, EOFError, pickle.UnpicklingError):
            raise RuntimeError(f"job {self.job_id} ended (exit code {self._process.exitcode}) without a result; "
                               f"see {self.paths.stderr}") from None
        if status != "success":
            raise RuntimeError(value)
        return value

    def cancel(self, check: bool = False) -> None:
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()


class ForkedExecutor:
    """The part of submitit's executor interface the local pipeline uses: submit, folder, timeout."""

    def __init__(self, folder: Path, timeout_min: int = 1440):
        self.folder = Path(folder)
        self.timeout_min = timeout_min

    def update_parameters(self, timeout_min: int) -> None:
        self.timeout_min = timeout_min

    def submit(self, function, *args) -> ForkedJob:
        self.folder.mkdir(parents=True, exist_ok=True)
        job_id = f"f{os.getpid()}-{time.monotonic_ns()}"
        paths = JobPaths(self.folder / f"{job_id}_0_log.out", self.folder / f"{job_id}_0_log.err",
                         self.folder / f"{job_id}_0_result.pkl")
        process = _forkserver().Process(target=_child, args=(function, args, paths, dict(os.environ), os.getcwd()),
                                        name=f"retmask-{job_id}")
        process.start()
        return ForkedJob(job_id, process, paths, self.timeout_min * 60)
