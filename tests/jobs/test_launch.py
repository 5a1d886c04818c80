"""The training launcher's rendezvous: a port free on the first node, shared through the run dir."""
import socket
import threading

from jobs.launch import rendezvous_port
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
