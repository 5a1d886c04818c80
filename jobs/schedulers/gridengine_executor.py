"""A submitit executor and job environment for Grid Engine (TSUBAME 4.0's scheduler), loaded by
submitit as a plugin (the `submitit` entry-point group in setup.cfg), so pickling, requeue and
job folders stay submitit's.

Grid Engine differs from SLURM where it matters here:
- array task ids start at 1 ($SGE_TASK_ID); submitit's start at 0. The script maps them, and
  names its log files as submitit expects (`<job>_<task-1>_0_log.out`).
- `-hold_jid` releases a dependent whatever its parent's exit status; a job exiting with status
  100 is put in error state instead, which holds its dependents. So the script turns any failure
  into 100 (99 still asks Grid Engine to run the job again: submitit's requeue).
- a job nearing `h_rt` gets SIGUSR1 at `s_rt`: submitit listens for it to checkpoint and requeue.
- no srun: a multi-node job starts its other nodes' tasks with `qrsh -inherit` (tight
  integration, hosts from $PE_HOSTFILE).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import typing as tp
from pathlib import Path

from submitit.core import core, utils

from jobs.schedulers.script_executor import (NodeTaskJobEnvironment, QuietWatcher, ScriptExecutor,
                                              default_parameters, host_file_lines, log_redirect, per_node_tasks)

HOLD_DEPENDENTS = 100  # Grid Engine: error state, dependents stay held
RUN_AGAIN = 99  # Grid Engine: reschedule the job


class GridEngineJob(core.Job[core.R]):
    _cancel_command = "qdel"
    watcher = QuietWatcher(delay_s=600)

    def _get_cancel_command(self) -> tp.List[str]:
        return ["qdel", grid_engine_id(self.job_id)]


def grid_engine_id(job_id: str) -> str:
    """submitit's `123_4` (0-based task) is Grid Engine's `123.5`."""
    base, _, task = job_id.partition("_")
    return f"{base}.{int(task) + 1}" if task else base


class GridEngineExecutor(ScriptExecutor):
    """Parameters (see make_qsub_script): job_name, queue, time (minutes), cpus (a `pe` of that
    many slots), pe, resources (-l key=value), nodes (tasks, one per host), group (qsub -g,
    TSUBAME), project (-P), hold_jid, array_parallelism, setup, signal_delay_s,
    additional_parameters."""

    job_class = GridEngineJob

    @staticmethod
    def make_script(command: str, folder: tp.Union[str, Path], map_count: tp.Optional[int] = None,
                    **parameters) -> str:
        return make_qsub_script(command, folder, map_count, **parameters)

    @classmethod
    def _valid_parameters(cls) -> tp.Set[str]:
        return set(default_parameters(make_qsub_script))

    def _make_submission_command(self, submission_file_path: Path) -> tp.List[str]:
        return qsub_command(self.parameters, str(submission_file_path))

    @staticmethod
    def _get_job_id_from_submission_command(string: tp.Union[bytes, str]) -> str:
        """`qsub -terse` prints `123`, or `123.1-4:1` for an array."""
        text = string.decode() if isinstance(string, bytes) else string
        match = re.search(r"^(?P<id>\d+)(\.\d+-\d+:\d+)?\s*$", text.strip(), re.MULTILINE)
        if match is None:
            raise utils.FailedSubmissionError(f'Could not make sense of qsub output "{text}"')
        return match.group("id")

    @classmethod
    def affinity(cls) -> int:
        return -1 if shutil.which("qconf") is None else 1


def qsub_command(parameters: tp.Dict[str, tp.Any], script: str) -> tp.List[str]:
    """TSUBAME reads the group (-g) from qsub's command line, not from the script."""
    group = parameters.get("group")
    return ["qsub", "-terse", *(["-g", group] if group else []), script]


def _hours(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}:00"


def make_qsub_script(
    command: str,
    folder: tp.Union[str, Path],
    map_count: tp.Optional[int] = None,
    job_name: str = "submitit",
    queue: str = "",
    time: int = 60,
    cpus: int = 1,
    pe: str = "smp",
    resources: tp.Optional[tp.Dict[str, tp.Any]] = None,
    nodes: int = 1,
    group: str = "",
    project: str = "",
    hold_jid: tp.Optional[tp.List[str]] = None,
    array_parallelism: int = 256,
    setup: tp.Optional[tp.List[str]] = None,
    signal_delay_s: int = 90,
    additional_parameters: tp.Optional[tp.Dict[str, str]] = None,
) -> str:
    """The job script, with `#$` directives as qsub reads them."""
    folder = str(folder)
    directives = [("-N", job_name), ("-S", "/bin/bash"), ("-o", folder), ("-e", folder), ("-r", "y")]
    if queue:
        directives.append(("-q", queue))
    limits = {"h_rt": _hours(time)}
    if time * 60 > signal_delay_s:  # SIGUSR1 this long before the hard limit: submitit checkpoints, requeues
        soft = time * 60 - signal_delay_s
        limits["s_rt"] = f"{soft // 3600}:{soft % 3600 // 60:02d}:{soft % 60:02d}"
    for key, value in {**limits, **(resources or {})}.items():
        directives.append(("-l", f"{key}={value}"))
    if pe and cpus > 1:
        directives.append(("-pe", f"{pe} {cpus}"))
    if project:
        directives.append(("-P", project))
    if hold_jid:
        directives.append(("-hold_jid", ",".join(hold_jid)))
    if map_count:
        directives += [("-t", f"1-{map_count}"), ("-tc", str(min(map_count, array_parallelism)))]
    for key, value in (additional_parameters or {}).items():
        directives.append((key if key.startswith("-") else f"-{key}", value))
    lines = ["#!/bin/bash"]
    if group:
        lines.append(f"# submitted as: qsub -g {shlex.quote(group)} <this script>")
    lines += ["", "# Parameters"] + [f"#$ {flag} {value}" for flag, value in directives]
    if setup:
        lines += ["", "# setup"] + list(setup)
    lines += [
        "",
        "# submitit's ids count array tasks from 0, Grid Engine's from 1",
        'if [ -n "${SGE_TASK_ID:-}" ] && [ "$SGE_TASK_ID" != undefined ]; then',
        '  SUBMITIT_JOB_ID="${JOB_ID}_$((SGE_TASK_ID - 1))"',
        "else",
        '  SUBMITIT_JOB_ID="$JOB_ID"',
        "fi",
        log_redirect(folder),
        "",
        "# command",
    ]
    exports = "export SUBMITIT_EXECUTOR=gridengine SUBMITIT_PREEMPT_SIGNAL=USR1"
    if nodes > 1:  # the host file's lines read "host slots queue processors"
        lines += per_node_tasks(command, folder, nodes, setup, exports, hosts='cat "$PE_HOSTFILE"',
                                remote="qrsh -inherit -nostdin", variables=("JOB_ID", "SGE_TASK_ID"))
    else:
        lines += [exports, command, "status=$?"]
    lines += [
        f"# a failure holds the dependents (exit {HOLD_DEPENDENTS}); {RUN_AGAIN} asks for a rerun (requeue)",
        f'if [ "$status" -ne 0 ] && [ "$status" -ne {RUN_AGAIN} ]; then exit {HOLD_DEPENDENTS}; fi',
        'exit "$status"',
        "",
    ]
    return "\n".join(lines)


class GridEngineJobEnvironment(NodeTaskJobEnvironment):
    _env = {**NodeTaskJobEnvironment._env, "job_id": "JOB_ID", "array_job_id": "JOB_ID", "array_task_id": "SGE_TASK_ID"}

    @property
    def array_job_id(self) -> tp.Optional[str]:
        return os.environ["JOB_ID"] if self.array_task_id is not None else None

    @property
    def array_task_id(self) -> tp.Optional[str]:
        task = os.environ.get("SGE_TASK_ID", "undefined")
        return None if task in ("", "undefined") else str(int(task) - 1)

    def host_file(self) -> tp.List[str]:
        return host_file_lines("PE_HOSTFILE")  # `host slots queue processors` per line

    def _requeue(self, countdown: int) -> None:
        """Grid Engine reruns a job that exits with 99 (the script passes it through)."""
        sys.exit(RUN_AGAIN)
