"""The local executor on real stages: a failing stage stops its dependents with its error named,
and a rerun resumes from what finished."""
import pytest

from jobs.local import LocalPipeline, PipelineFailed
from jobs.progress_view import ProgressView
from jobs.runner import load_run_config
from retmask.config import load_config, save_config
from retmask.rundir import RunDir
from tests.conftest import REPO


def prepared(tmp_path, *overrides):
    cfg = load_config(REPO / "configs" / "tiny.yaml", list(overrides))
    run = RunDir(tmp_path / "run")
    save_config(cfg, run.config_path)
    return load_run_config(run), run


def test_failed_stage_is_named_with_its_error_and_rerun_resumes(tmp_path, toy_model_dir):
    cfg, run = prepared(tmp_path, "selection.tau=2.0")  # no head can reach it
    pipeline = LocalPipeline(cfg, run, log=lambda line: None, until="mask")
    assert [s.name for s in pipeline.stages] == ["toy_model", "detect", "merge_scores", "select_heads", "mask"]
    with pytest.raises(PipelineFailed) as error:
        pipeline.execute(max_parallel=2)
    assert "select_heads shard 0" in str(error.value) and "chose no heads" in str(error.value)
    manifest = run.read_manifest()["stages"]
    assert manifest["detect"]["state"] == "done" and manifest["select_heads"]["state"] == "failed"
    assert manifest["mask"]["done"] == [], "a stage after a failure must not start"

    cfg, run = prepared(tmp_path, "selection.tau=0.5")
    pipeline = LocalPipeline(cfg, run, log=lambda line: None, until="mask")
    assert pipeline.progress["detect"].skipped and not pipeline.progress["select_heads"].skipped
    pipeline.execute(max_parallel=2)
    assert run.read_manifest()["stages"]["mask"]["state"] == "done"
    assert len(list((run.root / "superseded").glob("select_heads-*"))) == 0  # a failed shard leaves no marker


def test_a_toy_model_trained_by_the_run_shows_its_progress(tmp_path, monkeypatch):
    monkeypatch.setenv("RETMASK_CACHE", str(tmp_path / "cache"))  # this recipe is not shipped: it trains
    cfg, run = prepared(tmp_path, "toy_model.steps=100", "toy_model.batch_size=4", "toy_model.eval_examples=4",
                        "toy_model.prompts=4")
    lines = []
    view = ProgressView(write=lines.append, every_s=0)  # every change, not one line per 30 s
    LocalPipeline(cfg, run, until="toy_model", view=view).execute(max_parallel=1)
    progress = [line for line in lines if line.startswith("[toy_model] ") and " steps" in line]
    done = [int(line.split()[1].split("/")[0]) for line in progress]
    assert len(progress) >= 2 and done == sorted(done), lines
    assert progress[-1].startswith("[toy_model] 100/100 steps, ") and "; loss " in progress[-1]
