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
