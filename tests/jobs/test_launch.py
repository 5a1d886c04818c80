"""The training launcher: each node's machine rank and the rendezvous host as its scheduler's job
environment gives them; the rendezvous port, free on the first node, shared through the run dir."""
import socket
import threading

import pytest

from jobs.launch import rendezvous_port, this_node
from retmask.rundir import RunDir


def test_the_first_node_publishes_a_free_port_that_the_others_read(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    seen = {}
    reader = threading.Thread(target=lambda: seen.setdefault("node1", rendezvous_port(run, "1", timeout_s=30)))
    reader.start()  # a later node may start first: it waits for node 0's port
    port = rendezvous_port(run, "0")
    reader.join(30)
    assert seen["node1"] == port
    with socket.socket() as probe:
        probe.bind(("", port))  # free for the launcher to take
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # a requeued job never reads its last attempt's port
    assert not (run.log_dir("train") / "rendezvous-4242-1.port").exists()


@pytest.mark.parametrize("scheduler, variables", [
    ("slurm", {"SLURM_JOB_ID": "77", "SLURM_NODEID": "1", "SLURM_JOB_NODELIST": "gpu[07-08]"}),
    ("gridengine", {"JOB_ID": "77", "RETMASK_NODE_RANK": "1", "RETMASK_NODE_HOSTS": "gpu07,gpu08"}),
    ("pbs", {"PBS_JOBID": "77.pbs1", "RETMASK_NODE_RANK": "1", "RETMASK_NODE_HOSTS": "gpu07,gpu08"}),
])
def test_the_second_node_knows_its_rank_and_the_first_host(monkeypatch, scheduler, variables):
    from submitit.core import plugins

    monkeypatch.setenv("SUBMITIT_EXECUTOR", scheduler)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    # this package's job environment is picked by SUBMITIT_EXECUTOR when submitit loads its
    # plugins, once per process (a job's process is new): load them again for each scheduler
    reload = [plugins._get_plugins.cache_clear, plugins.get_job_environments.cache_clear]
    for clear in reload:
        clear()
    try:
        assert this_node() == ("1", "gpu07")
    finally:
        for clear in reload:
            clear()
