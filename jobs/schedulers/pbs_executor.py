"""A submitit executor and job environment for Altair PBS Professional (ABCI 3.0's scheduler).

PBS differs from SLURM where it matters here:
- an array (`-J 0-N`) is one job, `123[]`; its subjobs are `123[4]`, and a dependency can name
  only the whole array. submitit's `123_4` is PBS's `123[4]`.
- at the walltime PBS sends SIGTERM, then SIGKILL a few seconds later, and only operators may
  requeue (`qrerun`): a job cut short ends as failed, and `retmask resume` resubmits it (its shard
  continues from the rows or the checkpoint it wrote).
- no srun: a multi-node job starts its other nodes' tasks with `pbs_tmrsh` (PBS's task manager,
  hosts from $PBS_NODEFILE, one line per MPI process).
"""
from __future__ import annotations

import os
import re
import shlex
import typing as tp
from pathlib import Path

from submitit.core import core, utils

from jobs.schedulers.script_executor import (NodeTaskJobEnvironment, QuietWatcher, ScriptExecutor,
                                              default_parameters, host_file_lines, log_redirect, per_node_tasks)


def pbs_id(job_id: str) -> str:
    """submitit's `123_4` is PBS's subjob `123[4]`; `123` stays."""
    base, _, task = job_id.partition("_")
    return f"{base}[{task}]" if task else base


class PBSJob(core.Job[core.R]):
    _cancel_command = "qdel"
    watcher = QuietWatcher(delay_s=600)

    def _get_cancel_command(self) -> tp.List[str]:
        return ["qdel", pbs_id(self.job_id)]


class PBSExecutor(ScriptExecutor):
    """Parameters (see make_pbs_script): job_name, queue (ABCI: the resource type), project (-P),
    select (nodes), resources (more -l), time (minutes), depend, array_parallelism, setup,
    additional_parameters."""

    job_class = PBSJob

    @staticmethod
    def make_script(command: str, folder: tp.Union[str, Path], map_count: tp.Optional[int] = None,
                    **parameters) -> str:
        return make_pbs_script(command, folder, map_count, **parameters)

    @classmethod
    def _valid_parameters(cls) -> tp.Set[str]:
        return set(default_parameters(make_pbs_script))

    def _make_submission_command(self, submission_file_path: Path) -> tp.List[str]:
        return ["qsub", str(submission_file_path)]

    def _num_tasks(self) -> int:
        return int(self.parameters.get("select", 1))  # one task per node

    @staticmethod
    def _get_job_id_from_submission_command(string: tp.Union[bytes, str]) -> str:
        """qsub prints `1234.server`, or `1235[].server` for an array: the number is the id."""
        text = string.decode() if isinstance(string, bytes) else string
        match = re.search(r"^(?P<id>\d+)(\[\])?(\.\S+)?\s*$", text.strip(), re.MULTILINE)
        if match is None:
            raise utils.FailedSubmissionError(f'Could not make sense of qsub output "{text}"')
        return match.group("id")


def _walltime(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def make_pbs_script(
    command: str,
    folder: tp.Union[str, Path],
    map_count: tp.Optional[int] = None,
    job_name: str = "submitit",
    queue: str = "",
    project: str = "",
    select: int = 1,
    resources: tp.Optional[tp.Dict[str, tp.Any]] = None,
    time: int = 60,
    depend: str = "",
    array_parallelism: int = 256,
    setup: tp.Optional[tp.List[str]] = None,
    additional_parameters: tp.Optional[tp.Dict[str, str]] = None,
) -> str:
    """The job script, with `#PBS` directives as qsub reads them."""
    folder = str(folder)
    # arrays are always rerunnable (qsub refuses -r n with -J); the job's own output goes to
    # submitit's log files (below), PBS's -o file keeps what comes before
    directives = [("-N", job_name[:236]), ("-j", "oe"), ("-o", f"{folder}/")]
    if queue:
        directives.append(("-q", queue))
    if project:
        directives.append(("-P", project))
    directives.append(("-l", f"select={select}"))
    directives.append(("-l", f"walltime={_walltime(time)}"))
    for key, value in (resources or {}).items():
        directives.append(("-l", f"{key}={value}"))
    if map_count:
        # subjob indices from 0, as submitit's (PBS refuses a one-index range: submitit submits a
        # single job then); at most array_parallelism running at once
        directives.append(("-J", f"0-{map_count - 1}"))
        directives.append(("-W", f"max_run_subjobs={min(map_count, array_parallelism)}"))
    if depend:
        directives.append(("-W", f"depend={depend}"))
    for key, value in (additional_parameters or {}).items():
        directives.append((key if key.startswith("-") else f"-{key}", value))
    lines = ["#!/bin/bash", "", "# Parameters"] + [f"#PBS {flag} {value}" for flag, value in directives]
    if setup:
        lines += ["", "# setup"] + list(setup)
    lines += [
        "",
        "# submitit's id: the job number, and the subjob index of an array",
        'SUBMITIT_JOB_ID="${PBS_JOBID%%[.[]*}${PBS_ARRAY_INDEX:+_$PBS_ARRAY_INDEX}"',
        log_redirect(folder),
        "",
        "# command",
    ]
    exports = "export SUBMITIT_EXECUTOR=pbs"
    if select > 1:
        lines += per_node_tasks(command, folder, select, setup, exports, hosts='cat "$PBS_NODEFILE"',
                                remote="pbs_tmrsh", variables=("PBS_JOBID", "PBS_ARRAY_INDEX"))
        lines.append('exit "$status"')
    else:
        lines += [exports, command]
    lines.append("")
    return "\n".join(lines)


class PBSJobEnvironment(NodeTaskJobEnvironment):
    _env = {**NodeTaskJobEnvironment._env, "job_id": "PBS_JOBID", "array_task_id": "PBS_ARRAY_INDEX"}

    @property
    def raw_job_id(self) -> str:
        """`1235[3].server` or `1234.server` -> the job number."""
        return re.split(r"[.\[]", os.environ["PBS_JOBID"], maxsplit=1)[0]

    @property
    def array_job_id(self) -> tp.Optional[str]:
        return self.raw_job_id if self.array_task_id is not None else None

    @property
    def array_task_id(self) -> tp.Optional[str]:
        return os.environ.get("PBS_ARRAY_INDEX") or None

    def host_file(self) -> tp.List[str]:
        return host_file_lines("PBS_NODEFILE")  # a line per process: hosts repeat

    def _requeue(self, countdown: int) -> None:
        """Only PBS operators may requeue (qrerun): the job ends, `retmask resume` resubmits it."""
        raise SystemExit(f"job {shlex.quote(self.job_id)} cut short; resubmit it with `retmask resume`")
