"""What submitit executors for schedulers without a plugin of their own share (Grid Engine,
PBS Professional): a job script from a function of parameters, arrays submitted as submitit's
SLURM executor does (pickles first, renamed once the array's id is known), ids parsed from qsub."""
from __future__ import annotations

import abc
import functools
import inspect
import os
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
        return 1


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


class OneTaskJobEnvironment(job_environment.JobEnvironment):
    """A job of one task (one process, on the first of its hosts), as these scripts run it; the
    hosts come from the scheduler's host file (`host_file`)."""

    _env = {"job_id": "", "num_tasks": "", "num_nodes": "", "node": "", "global_rank": "", "local_rank": ""}

    def host_file(self) -> tp.List[str]:
        return []

    @property
    def hostnames(self) -> tp.List[str]:
        return list(dict.fromkeys(self.host_file())) or [self.hostname]

    @property
    def num_tasks(self) -> int:
        return 1

    @property
    def num_nodes(self) -> int:
        return len(self.hostnames)

    @property
    def node(self) -> int:
        return self.hostnames.index(self.hostname) if self.hostname in self.hostnames else 0

    @property
    def global_rank(self) -> int:
        return 0

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
