"""A job's task runs only on complete inputs, whatever released it."""
import pytest

from jobs.pipeline import build_stages, stage_fingerprints
from jobs.runner import record_config, run_unit_task
from retmask.config import load_config
from tests.conftest import REPO


def test_a_task_released_before_its_inputs_are_complete_fails_naming_them(tmp_path):
    cfg = load_config(REPO / "configs" / "tiny.yaml")
    cfg.run_dir = str(tmp_path / "run")
    run = record_config(cfg)
    run.mark_done("detect", 0, stage_fingerprints(cfg, build_stages(cfg))["detect"], 1.0)  # shard 1 never ran
    with pytest.raises(RuntimeError, match=r"upstream stage detect is not complete \(1 of 2 shards done\)"):
        run_unit_task(str(run.root), "synthesize_rejected", 0, before=("merge_scores",), waits_for=("detect",))
    assert not run.stage_dir("merge_scores").exists()  # nothing ran on the partial scores


def test_two_attempts_of_one_shard_on_slurm_write_it_once(local_slurm, toy_model_dir, tmp_path):
    """Two jobs of the same detection shard at once (a resubmission racing a task that still runs):
    the second waits for the first's claim, finds the shard done and writes nothing; the rows are
    those of one attempt, none twice."""
    import submitit

    from jobs.runner import run_shard
    from retmask.io import read_json, read_jsonl

    cfg = load_config(REPO / "configs" / "tiny.yaml")
    cfg.run_dir = str(tmp_path / "run")
    run = record_config(cfg)
    run.write_manifest({"executor": "slurm", "order": [], "stages": {}})
    executor = submitit.SlurmExecutor(folder=tmp_path / "logs")
    executor.update_parameters(partition="debug", time=10, cpus_per_task=1, mem="2GB", wckey=None)
    first = executor.submit(run_shard, str(run.root), "toy_model", 0)  # the toy model: a stage of its own
    assert first.result() in ("done", "already done")
    jobs = [executor.submit(run_shard, str(run.root), "detect", 0) for _ in range(2)]
    outcomes = sorted(job.result() for job in jobs)
    assert outcomes == ["done", "done by another attempt"], outcomes
    rows = read_jsonl(run.shard_file("detect", 0))
    ids = [row["instance_id"] for row in rows]
    assert len(ids) == len(set(ids)) and len(rows) == read_json(run.marker("detect", 0))["output"]["rows"]
