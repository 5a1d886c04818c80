"""What submitit executors for schedulers without a plugin of their own share (Grid Engine,
PBS Professional): a job script from a function of parameters, arrays submitted as submitit's
SLURM executor does (pickles first, renamed once the array's id is known), ids parsed from qsub,
and a multi-node job's one task per node, started through the scheduler's own remote start."""
from __future__ import annotations

import abc
import functools
import inspect
import os
import re
import shlex
import shutil
import sys
import typing as tp
import uuid
from pathlib import Path

from submitit.core import core, job_environment, utils


class QuietWatcher(core.InfoWatcher):
    """States are read by jobs/schedulers/, once per refresh for a whole run, not per job."""

    def _make_command(self) -> tp.Optional[tp.List[str]]:
        return None

    def get_state(self, job_id: str, mode: str = "standard") -> str:
        return "UNKNOWN"


class ScriptExecutor(core.PicklingExecutor):
    """Subclasses name their job class, their script function (keyword parameters with defaults,
    plus command, folder and map_count) and how qsub is called and answers."""

    job_class: tp.Type[core.Job[tp.Any]] = core.Job
    submit_program = "qsub"

    def __init__(self, folder: tp.Union[str, Path], max_num_timeout: int = 3, python: tp.Optional[str] = None):
        super().__init__(folder, max_num_timeout=max_num_timeout)
        self.python = shlex.quote(sys.executable) if python is None else python
        if shutil.which(self.submit_program) is None:
            raise RuntimeError(f'Could not find "{self.submit_program}": is this a submit host of the cluster?')

    @staticmethod
    @abc.abstractmethod
    def make_script(command: str, folder: tp.Union[str, Path], map_count: tp.Optional[int] = None, **parameters) -> str:
        """The job script for these parameters."""

    @classmethod
    def _valid_parameters(cls) -> tp.Set[str]:
        return set(default_parameters(cls.make_script))

    def _internal_update_parameters(self, **kwargs: tp.Any) -> None:
        invalid = sorted(set(kwargs) - self._valid_parameters() - {"map_count"})
        if invalid:
            raise ValueError(f"unavailable parameter(s) {invalid}; valid: {sorted(self._valid_parameters())}")
        self.make_script(command="check", folder=self.folder, **{**self.parameters, **kwargs})
        super()._internal_update_parameters(**kwargs)

    def _internal_process_submissions(
        self, delayed_submissions: tp.List[utils.DelayedSubmission]
    ) -> tp.List[core.Job[tp.Any]]:
        if len(delayed_submissions) == 1:
            return super()._internal_process_submissions(delayed_submissions)
        folder = utils.JobPaths.get_first_id_independent_folder(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        pickle_paths = []
        for delayed in delayed_submissions:
            path = folder / f"{uuid.uuid4().hex}.pkl"
            delayed.set_timeout(self.parameters.get("time", 5), self.max_num_timeout)
            delayed.dump(path)
            pickle_paths.append(path)
        array = type(self)(self.folder, self.max_num_timeout, self.python)
        array.update_parameters(**self.parameters)
        array.parameters["map_count"] = len(delayed_submissions)
        self._throttle()
        first = array._submit_command(self._submitit_command_str)
        jobs: tp.List[core.Job[tp.Any]] = [self.job_class(folder=self.folder, job_id=f"{first.job_id}_{k}")
                                           for k in range(len(delayed_submissions))]
        for job, path in zip(jobs, pickle_paths):
            job.paths.move_temporary_file(path, "submitted_pickle")
        return jobs

    @property
    def _submitit_command_str(self) -> str:
        return " ".join([self.python, "-u -m submitit.core._submit", shlex.quote(str(self.folder))])

    def _make_submission_file_text(self, command: str, uid: str) -> str:
        return self.make_script(command=command, folder=self.folder, **self.parameters)

    def _num_tasks(self) -> int:
        return int(self.parameters.get("nodes", 1))  # one task per node


@functools.lru_cache()
def default_parameters(make_script) -> tp.Dict[str, tp.Any]:
    specs = inspect.getfullargspec(make_script)
    zipped = zip(specs.args[-len(specs.defaults):], specs.defaults)  # type: ignore
    return {key: value for key, value in zipped if key not in {"command", "folder", "map_count"}}


def log_redirect(folder: str) -> str:
    """Send the job's output where submitit looks for it: <folder>/<job id>_0_log.{out,err}
    (the script sets SUBMITIT_JOB_ID first)."""
    quoted = shlex.quote(folder)
    return (f'exec >> {quoted}/"${{SUBMITIT_JOB_ID}}_0_log.out" '
            f'2>> {quoted}/"${{SUBMITIT_JOB_ID}}_0_log.err"')


class NodeTaskJobEnvironment(job_environment.JobEnvironment):
    """A job of one task per node, as these scripts run it: a one-node job's single task, or the
    tasks `per_node_tasks` starts, which know their rank and the job's hosts from RETMASK_NODE_RANK
    and RETMASK_NODE_HOSTS. Without those, the hosts come from the scheduler's host file."""

    _env = {"job_id": "", "num_tasks": "", "num_nodes": "", "node": "", "global_rank": "", "local_rank": ""}

    def host_file(self) -> tp.List[str]:
        return []

    def _node_hosts(self) -> tp.List[str]:
        return [host for host in os.environ.get("RETMASK_NODE_HOSTS", "").split(",") if host]

    @property
    def hostnames(self) -> tp.List[str]:
        return self._node_hosts() or list(dict.fromkeys(self.host_file())) or [self.hostname]

    @property
    def num_tasks(self) -> int:
        return len(self._node_hosts()) or 1

    @property
    def num_nodes(self) -> int:
        return len(self.hostnames)

    @property
    def node(self) -> int:
        return int(os.environ.get("RETMASK_NODE_RANK", "0"))

    @property
    def global_rank(self) -> int:
        return self.node

    @property
    def local_rank(self) -> int:
        return 0


def host_file_lines(variable: str) -> tp.List[str]:
    """First words of the lines of the file an environment variable names (none: [])."""
    path = os.environ.get(variable, "")
    if not path or not os.path.isfile(path):
        return []
    with open(path) as handle:
        return [line.split()[0] for line in handle if line.strip()]


_PER_NODE_TASKS = r"""
# One task per node, its submitit rank the node's: rank 0 runs here, on the job's first host, the
# others through the scheduler's remote start ({remote}). A task is a script that takes its rank,
# sets the job's variables, reruns the setup on its node and starts submitit.
RETMASK_NODE_HOSTS=$({hosts} | awk '!seen[$1]++ {{ print $1 }}' | paste -sd, -)
node_task={folder}/"${{SUBMITIT_JOB_ID}}_node_task.sh"
{{
  printf 'export RETMASK_NODE_RANK="$1"'
  for name in RETMASK_NODE_HOSTS SUBMITIT_JOB_ID {variables}; do printf ' %s=%q' "$name" "${{!name:-}}"; done
  printf '\ncd %q || exit 1\n' "$PWD"
  cat << 'NODE_TASK'
{setup}
{exports}
exec >> {folder}/"${{SUBMITIT_JOB_ID}}_${{RETMASK_NODE_RANK}}_log.out" 2>> {folder}/"${{SUBMITIT_JOB_ID}}_${{RETMASK_NODE_RANK}}_log.err"
exec {command}
NODE_TASK
}} > "$node_task"
status=0 tasks=() rank=0
if [ "$(tr , '\n' <<< "$RETMASK_NODE_HOSTS" | wc -l)" -ne {nodes} ]; then
  echo "a job of {nodes} nodes was given the hosts $RETMASK_NODE_HOSTS" >&2
  status=1
else
  for host in ${{RETMASK_NODE_HOSTS//,/ }}; do
    if [ "$rank" -eq 0 ]; then /bin/bash "$node_task" 0 &
    else {remote} "$host" /bin/bash "$node_task" "$rank" &
    fi
    tasks+=("$!") rank=$((rank + 1))
  done
fi
# the first task to fail ends the others, which would wait for it at the rendezvous (KILL:
# submitit bypasses TERM; the end of the job ends the tasks on other nodes)
for _ in "${{tasks[@]}}"; do
  wait -n
  code=$?
  if [ "$code" -ne 0 ]; then status=$code; kill -KILL "${{tasks[@]}}" 2> /dev/null; wait; break; fi
done"""


def per_node_tasks(command: str, folder: str, nodes: int, setup: tp.Optional[tp.List[str]], exports: str,
                   hosts: str, remote: str, variables: tp.Sequence[str]) -> tp.List[str]:
    """Script lines that run `command` once per node of a multi-node job and leave the first
    failure's exit status in `status`. `hosts` prints the job's hosts (first word of each line;
    repeats are one node), `remote` starts a command on a host of the job (Grid Engine's
    `qrsh -inherit`, PBS's `pbs_tmrsh`), `variables` are the job's own (its id, its array index),
    handed to the tasks whatever the remote start passes on."""
    if not re.fullmatch(r"[\w./+@:-]+", folder):
        raise ValueError(f"a multi-node job's folder is named in commands run on other nodes: {folder!r} must "
                         "hold only letters, digits and . / + @ : - _ (no spaces or quotes)")
    text = _PER_NODE_TASKS.format(command=command, folder=folder, nodes=nodes, exports=exports, hosts=hosts,
                                  remote=remote, variables=" ".join(variables), setup="\n".join(setup or []))
    return text.splitlines()
