"""What submitit loads from this package's `submitit` entry points (setup.cfg): one executor and
one job environment per package, so the job environment is chosen here, inside the job, by the
executor its script names (SUBMITIT_EXECUTOR)."""
from __future__ import annotations

import os

from jobs.schedulers.gridengine_executor import GridEngineExecutor  # noqa: F401  (the registered executor)


def job_environment():
    if os.environ.get("SUBMITIT_EXECUTOR") == "pbs":
        from jobs.schedulers.pbs_executor import PBSJobEnvironment

        return PBSJobEnvironment()
    from jobs.schedulers.gridengine_executor import GridEngineJobEnvironment

    return GridEngineJobEnvironment()
